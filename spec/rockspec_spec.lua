-- The rockspecs against the checkout: every module and C source listed, the
-- dependencies those modules require, and one version everywhere.
local files = require "support.files"
local support = require "support.sandbox"

local function lines(command)
  local pipe = assert(io.popen(command))
  local list = {}
  for line in pipe:lines() do
    list[#list + 1] = line
  end
  pipe:close()
  return list
end

local function load_rockspec(path)
  local spec = {}
  assert(loadfile(path, "t", spec))()
  return spec
end

-- The version src/version.h gives CSVUP_VERSION.
local function source_version()
  return assert(files.read("src/version.h"):match('#define CSVUP_VERSION "([^"]+)"'))
end

-- The rocks that the modules a rock installs require from outside csvup,
-- by the Lua module names each rock provides.
local ROCK_OF = { cjson = "lua-cjson", ["cjson.safe"] = "lua-cjson", argparse = "argparse", socket = "luasocket",
  ltn12 = "luasocket" }

-- find_args: what `find` lists (the Lua files of a folder).
local function required_rocks(find_args)
  local rocks = {}
  for _, path in ipairs(lines("find " .. find_args)) do
    for name in files.read(path):gmatch('require%s*%(?%s*"([^"]+)"') do
      if not name:match("^csvup") then
        rocks[assert(ROCK_OF[name], path .. " requires " .. name .. ", which no rock is known to provide")] = true
      end
    end
  end
  return rocks
end

local RELEASE = "rockspec/csvup-" .. source_version() .. "-1.rockspec"

describe("the rockspecs", function()
  for _, path in ipairs { "rockspec/csvup-scm-1.rockspec", RELEASE } do
    describe(path, function()
      local spec

      setup(function()
        assert(io.open(path), path .. " is missing"):close()
        spec = load_rockspec(path)
      end)

      it("lists every Lua module of lua/csvup under its module name", function()
        local modules = spec.build.modules
        local listed = {}
        for _, file in ipairs(lines("find lua/csvup -name '*.lua' | sort")) do
          local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
          assert.are.equal(file, modules[name], path .. " does not list " .. file .. " as " .. name)
          listed[name] = true
        end
        for name, file in pairs(modules) do
          assert.is_true(listed[name] or name == "csvup.core", path .. " lists " .. name .. " (" .. tostring(file)
            .. "), which is not a file of lua/csvup")
        end
      end)

      it("builds csvup.core from every C source of src/ and nothing else", function()
        local sources = spec.build.modules["csvup.core"].sources
        table.sort(sources)
        assert.are.same(lines("ls src/*.c | sort"), sources)
      end)

      it("depends on Lua 5.4 and exactly the rocks the installed modules require, luasocket only for the sandbox", function()
        local deps = {}
        for i, d in ipairs(spec.dependencies) do
          deps[i] = d:match("^(%S+)")
        end
        assert.are.equal("lua >= 5.4, < 5.5", spec.dependencies[1])
        -- the sandbox is loaded only by `csvup sandbox`: what it needs is not the rock's dependency
        assert.is_true(required_rocks("lua/csvup/sandbox -name '*.lua'").luasocket)
        local expected = { "lua" }
        for rock in pairs(required_rocks("lua/csvup -path lua/csvup/sandbox -prune -o -name '*.lua' -print")) do
          expected[#expected + 1] = rock
        end
        table.sort(deps)
        table.sort(expected)
        assert.are.same(expected, deps)
      end)

      it("links libcurl, SQLite and libcrypto, found as external dependencies", function()
        local names = {}
        for name in pairs(spec.external_dependencies) do
          names[#names + 1] = name
        end
        table.sort(names)
        assert.are.same({ "CRYPTO", "CURL", "SQLITE" }, names)
        local libraries = spec.build.modules["csvup.core"].libraries
        assert.is_truthy(table.concat(libraries, " "):find("curl sqlite3", 1, true))
      end)

      it("installs the csvup command", function()
        assert.are.equal("lua/bin/csvup", spec.build.install.bin.csvup)
      end)
    end)
  end

  it("has a release rockspec for src/version.h's version, otherwise the same as scm-1", function()
    local release, scm = load_rockspec(RELEASE), load_rockspec("rockspec/csvup-scm-1.rockspec")
    assert.are.equal(source_version() .. "-1", release.version)
    assert.are.same(scm.build, release.build)
    assert.are.same(scm.dependencies, release.dependencies)
    assert.are.same(scm.external_dependencies, release.external_dependencies)
  end)
end)

describe("the version", function()
  it("is the release rockspec's in csvup.VERSION and csvup --version", function()
    local version = load_rockspec(RELEASE).version:match("^(.*)%-1$")
    assert.are.equal(version, require("csvup").VERSION)
    local out = lines(support.LUA .. " lua/bin/csvup --version")
    assert.are.same({ "csvup " .. version }, out)
  end)
end)
