-- The README's recipes, taken from it verbatim and run as a user would paste them.
local files = require "support.files"

local README = "README.md"

-- The text of the README's "## title" section.
local function section(title)
  local text = files.read(README)
  local start = assert(text:find("\n## " .. title .. "\n", 1, true), "the README has no section " .. title)
  local stop = text:find("\n## ", start + 1, true)
  return text:sub(start, stop)
end

-- The one fenced block of a language in a section.
local function fenced(title, language)
  local text = section(title)
  local blocks = {}
  for block in text:gmatch("\n```" .. language .. "\n(.-\n)```") do
    blocks[#blocks + 1] = block
  end
  assert(#blocks == 1, ("the README's %s section has %d ```%s blocks, not one"):format(title, #blocks, language))
  return blocks[1]
end

local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("a")
  local ok, _, status = pipe:close()
  return ok and 0 or status, output
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("the README's LuaRocks command", function()
  local dir, copy, tree, only

  setup(function()
    dir = files.tmpdir()
    copy, tree, only = dir .. "/checkout", dir .. "/tree", dir .. "/only"
    -- a copy of the checkout, its git status included; build/ is not part of it
    assert(os.execute(("mkdir -p %s %s && tar -c --exclude=./build . | tar -x -C %s"):format(copy, only, copy)))
    -- lua-cjson and lua-argparse, and nothing else that Debian installed (luasocket)
    assert(os.execute(("ln -s %s %s/cjson.so && ln -s %s %s/argparse.lua"):format(
      package.searchpath("cjson", package.cpath), only, package.searchpath("argparse", package.path), only)))
  end)

  teardown(function()
    files.remove(dir)
  end)

  it("installs a rock that validates a file with only lua-cjson and lua-argparse beside it, leaving the checkout as it was", function()
    local command = fenced("Building and installing", "sh")
    -- a temporary tree instead of /usr/local: the one change to the command
    local into_tree, n = command:gsub("luarocks ", "luarocks --tree=" .. tree .. " ")
    assert.are.equal(1, n)
    local _, before = run("git -C " .. copy .. " status --porcelain")
    local status, output = run(("cd %s && TMPDIR=%s sh -c %s"):format(copy, dir, quote(into_tree)))
    assert.are.equal(0, status, output)
    local _, after = run("git -C " .. copy .. " status --porcelain")
    assert.are.equal(before, after)
    assert.are.equal("", select(2, run("find " .. dir .. " -maxdepth 1 -name 'tmp.*'"))) -- nor is the build folder left

    local env = ("env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;%s/?.lua' "
      .. "LUA_CPATH='%s/lib/lua/5.4/?.so;%s/?.so'"):format(tree, tree, only, tree, only)
    local valid = "spec/fixtures/offline_conversions.csv"
    status, output = run(("%s %s/bin/csvup validate offline-conversions %s"):format(env, tree, valid))
    assert.are.equal(0, status, output)
    assert.matches("valid for offline%-conversions", output)
    status, output = run(("%s %s/bin/csvup validate offline-conversions spec/fixtures/calls.csv"):format(env, tree))
    assert.are.equal(3, status, output)
    assert.matches("Target: the required column is missing", output)

    -- the same from Lua: the rock's modules, and luasocket neither reachable nor loaded
    status, output = run(env .. " TREE=" .. tree .. " lua5.4 -e " .. quote([[
      local tree = os.getenv("TREE")
      assert(not pcall(require, "socket"), "luasocket is on the path")
      package.loaded.socket = nil
      local cli = require "csvup.cli"
      assert(package.searchpath("csvup.cli", package.path):find(tree, 1, true) == 1)
      assert(package.searchpath("csvup.core", package.cpath):find(tree, 1, true) == 1)
      local status = cli.main { "validate", "offline-conversions", "]] .. valid .. [[" }
      assert(package.loaded.socket == nil and package.loaded["socket.core"] == nil, "luasocket was loaded")
      os.exit(status)]]))
    assert.are.equal(0, status, output)
  end)
end)
