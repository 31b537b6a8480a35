-- The modules that run inside nginx, under LuaJIT with the LuaJIT build of the core.
local support = require "support.sandbox"

describe("under LuaJIT", function()
  local sandbox

  setup(function()
    assert(io.open("build/luajit/csvup/core.so"), "build the LuaJIT module first: make luajit"):close()
    sandbox = support.start()
  end)

  teardown(function()
    sandbox.stop()
  end)

  it("encodes, decodes ids exactly as strings, validates and uploads", function()
    local pipe = io.popen(([[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/luajit/?.so;;" ]]
      .. [[luajit spec/support/luajit_check.lua %s %s 2>&1]]):format(sandbox.url, support.TOKEN))
    local output = pipe:read("a")
    pipe:close()
    assert.are.equal("ok\n", output)
  end)

  it("is a module LuaJIT can load, which a Lua 5.4 build is not", function()
    local pipe = io.popen([[LUA_CPATH="build/lua5.4/?.so;;" luajit -e 'require "csvup.core"' 2>&1]])
    local output = pipe:read("a")
    pipe:close()
    assert.matches("undefined symbol", output)
  end)
end)
