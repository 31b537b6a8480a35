-- One public surface, one registry, one error model: what a maintainer and a
-- user rely on when they change or call csvup.
local csvup = require "csvup"
local docs = require "csvup.docs"
local support = require "support.sandbox"

local function slurp(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

describe("the shape of csvup", function()
  it("has one public API: require 'csvup' exposes no core", function()
    assert.is_nil(csvup.core)
    assert.is_function(csvup.metrika.new)
    assert.is_function(csvup.errors.new)
  end)

  it("names each endpoint in one Lua module only (the sandbox keeps its own reading)", function()
    local listing = io.popen("find lua/csvup lua/bin -name '*.lua' -not -path '*/sandbox/*'; echo lua/bin/csvup")
    local modules = {}
    for path in listing:lines() do
      modules[#modules + 1] = { path = path, text = slurp(path) }
    end
    listing:close()
    for _, name in ipairs { "offline_conversion_uploading", "calls_uploadings", "expense_uploading",
      "user_params_uploading", "upload_calls", "upload_user_params" } do
      local found = {}
      for _, m in ipairs(modules) do
        if m.text:find("%f[%w_]" .. name .. "%f[^%w_]") then
          found[#found + 1] = m.path
        end
      end
      assert.are.same({ "lua/csvup/registry.lua" }, found, name)
    end
  end)

  it("keeps the README's endpoint table what the registry says", function()
    local readme = slurp("README.md")
    local table = docs.endpoint_table()
    assert.is_truthy(readme:find(table, 1, true), "README.md's endpoint table should read:\n" .. table)
  end)

  it("resets a libcurl handle in one place", function()
    local grep = io.popen("cat src/*.c | grep -c curl_easy_reset")
    assert.are.equal("1", grep:read("l"))
    grep:close()
  end)
end)

describe("error kinds", function()
  local sandbox = support.sandbox()

  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function metrika(url)
    return assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = url, retries = 0 })
  end

  it("network for a refused connection", function()
    local m = metrika("http://127.0.0.1:1")
    local _, err = m:expense_uploadings()
    m:close()
    assert.are.same({ "network", "COULDNT_CONNECT" }, { err.kind, err.code })
  end)

  it("api for a 429", function()
    sandbox.fault { fault = "too_many_requests" }
    local m = metrika(sandbox.url)
    local _, err = m:expense_uploadings()
    m:close()
    assert.are.same({ "api", 429 }, { err.kind, err.status })
  end)

  it("input for a missing file and for a failed validation", function()
    local m = metrika(sandbox.url)
    local _, missing = m:upload_expenses { file = sandbox.tmp .. "/nope.csv" }
    local _, invalid = m:upload_expenses { rows = { { Date = "yesterday", Expenses = 1, UTMSource = "x" } } }
    m:close()
    assert.are.same({ "input", "file_not_found" }, { missing.kind, missing.code })
    assert.are.same({ "input", "validation_failed" }, { invalid.kind, invalid.code })
    assert.are.same({}, sandbox.requests())
  end)
end)
