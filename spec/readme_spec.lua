-- The README's recipes, taken from it verbatim and run as a user would paste them.
local http = require "socket.http"
local files = require "support.files"
local nginx = require "support.nginx"
local readme = require "support.readme"
local support = require "support.sandbox"

local section, fenced = readme.section, readme.fenced

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

describe("the README's OpenResty configuration", function()
  local sandbox = support.sandbox()
  local dir, port, stop

  setup(function()
    sandbox.start()
    dir = files.tmpdir()
    -- the recipe's install command, into a temporary root
    local status, output = run(("make --no-print-directory install-luajit DESTDIR=%s PREFIX=/usr/local"):format(dir))
    assert(status == 0, output)
    -- the two things the README says to change: the listen address and the prefix of the Lua paths
    port = nginx.free_port()
    local config, listens = fenced("OpenResty", "nginx"):gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
    local prefixed
    config, prefixed = config:gsub('"/usr/local/', '"' .. dir .. "/usr/local/")
    assert(listens == 1 and prefixed == 2, "the recipe's listen address or Lua paths are not as the README says")
    files.write(dir .. "/nginx.conf", config)
    -- as `nginx -c`, in the foreground, with its pid and error log here
    local command = ("CSVUP_METRIKA_TOKEN=%s CSVUP_BASE_URL=%s exec nginx -p %s -c %s/nginx.conf -e %s/error.log "
      .. "-g 'daemon off; pid %s/nginx.pid;' 2>&1"):format(support.TOKEN, sandbox.url, dir, dir, dir, dir)
    stop = nginx.run(command, port)
  end)

  before_each(sandbox.reset)

  teardown(function()
    if stop then
      stop()
    end
    sandbox.stop()
    files.remove(dir)
  end)

  local function log()
    return files.peek(dir .. "/error.log")
  end

  it("uploads a paid order's conversion through a worker thread, with the token from the environment", function()
    local body, status = http.request(("http://127.0.0.1:%d/order-paid?client_id=133591247640966458"):format(port))
    assert.are.equal(200, status, log())
    assert.matches("^uploading %d+ UPLOADED\n$", body)
    local requests = sandbox.requests()
    assert.are.equal(1, #requests)
    assert.are.equal("/management/v1/counter/2215573/offline_conversions/upload", requests[1].path)
    assert.matches("^ClientId,DateTime,Target\n133591247640966458,%d+,paid\n$", requests[1].file.content)
  end)

  it("refuses a request without a client id, sending nothing", function()
    local _, status = http.request(("http://127.0.0.1:%d/order-paid"):format(port))
    assert.are.equal(400, status)
    assert.are.equal(0, #sandbox.requests())
  end)
end)

describe("the README's command line", function()
  local dir, prefix

  setup(function()
    dir = files.tmpdir()
    prefix = dir .. "/prefix"
    -- csvup on PATH as the README puts it there: make install PREFIX=...
    local status, output = run(("make --no-print-directory install PREFIX=%s DOCS=%s/docs"):format(prefix, dir))
    assert(status == 0, output)
  end)

  teardown(function()
    files.remove(dir)
  end)

  -- Runs a shell script in dir with the installed csvup first on PATH and no Lua paths.
  -- The installed command, as a user runs it: with the module `make install` built, and without the
  -- checker's preloaded runtime, under which the README's curl hangs before it connects.
  local function shell(script)
    return run(("cd %s && env -u LUA_PATH -u LUA_CPATH -u CSVUP_BASE_URL -u CSVUP_COUNTER -u LD_PRELOAD "
      .. "XDG_STATE_HOME=%s/state "
      .. "PATH=%s/bin:$PATH sh -c %s"):format(dir, dir, prefix, quote(script)))
  end

  it("rehearses a 429, a 503 and a lost answer against the sandbox, as the sandbox section shows", function()
    assert(os.execute("cp spec/fixtures/expenses.csv " .. dir .. "/costs.csv"))
    local port = nginx.free_port()
    local script, n = fenced("The sandbox", "sh"):gsub("8080", port) -- a free port: the one change
    assert.are.equal(2, n)
    local status, output = shell(script)
    assert.are.equal(0, status, output)
    local stamp = "\n%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ csvup: " -- off a terminal, each log line starts with the time
    output = "\n" .. output
    assert.matches(stamp .. "attempt 2 of 4 after 429 quota_requests_by_ip, in 1%.0 s" .. stamp .. "attempt 3 of 4 after "
      .. "429 quota_requests_by_ip, in 1%.0 s" .. stamp .. "the journal records costs.csv as sent: a rerun answers from "
      .. "it\nuploading %d+: UPLOADED [^\n]* provider=rehearsal429", output)
    assert.matches(stamp .. "attempt 4 of 4 after 503 backend_error, in [%d.]+ s" .. stamp .. "the journal keeps costs.csv open"
      .. "[^\n]*" .. stamp .. "HTTP 503 outcome_unknown",
      output)
    assert.matches(stamp .. "the answer was lost after the request was sent whole %(RECV_ERROR%): looking for the upload "
      .. "in the uploadings list by its marker" .. stamp .. "the lost answer was found by its marker: uploading %d+",
      output)
    assert.matches("\nuploading %d+: UPLOADED [^\n]* provider=rehearsallost", output)
  end)

  it("fixes an Excel export's decimal commas and dates with the csv.rows transform it shows", function()
    -- "Реклама" in Windows-1251, a non-breaking space (0xA0) as the thousands separator
    files.write(dir .. "/excel_export.csv", "Date;UTMSource;Expenses\r\n10.01.2024;\208\229\234\235\224\236\224;"
      .. "1\160234,50\r\n11.01.2024;fb;99,9\r\n")
    local status, output = run(("cd %s && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 "
      .. "-e %s"):format(dir, prefix, prefix, prefix, quote(section("CSV and validation"):match("\n```lua\n(local csv = require[^`]-)```"))))
    assert.are.equal(0, status, output)
    assert.are.equal("Date,UTMSource,Expenses\n2024-01-10,Реклама,1234.50\n2024-01-11,fb,99.9\n",
      files.read(dir .. "/costs.csv"))
    status, output = shell("csvup validate expenses costs.csv")
    assert.are.equal(0, status, output)
  end)

  it("prints the dry run the cron section shows, as shown", function()
    files.write(dir .. "/costs.csv", "Date;UTMSource;Expenses\r\n2024-01-10;fb;1234.50\r\n")
    local shown = section("From cron: the csvup command"):match("\n```\n%$ (.-)\n```\n")
    local command, expected = shown:match("^(.-)\n(.*)$")
    local status, output = shell(command)
    assert.are.equal(0, status, output)
    assert.are.equal(expected .. "\n", output)
  end)
end)
