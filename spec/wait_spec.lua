-- m:wait follows an uploading to its final status, whatever its kind.
local csvup = require "csvup"
local support = require "support.sandbox"

describe("wait", function()
  local m
  local sandbox = support.sandbox { ["process-delay"] = 0.3 }
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
  end)

  local FAST = { interval = 0.05 }

  it("reaches PROCESSED and LINKAGE_FAILURE for offline conversions", function()
    local good = assert(m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv" })
    local bad = assert(m:upload_offline_conversions { file = "spec/fixtures/unmatched_conversions.csv" })
    assert.are.equal("PROCESSED", assert(m:wait(good, FAST)).status)
    assert.are.equal("LINKAGE_FAILURE", assert(m:wait(bad.id, FAST)).status)
    assert.is_true(#sandbox.requests() > 4) -- it polled
  end)

  it("returns callback_error when progress raises, even a value that cannot be shown as text", function()
    local u = assert(m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv" })
    local unshowable = setmetatable({}, { __tostring = function() error("no text") end })
    for _, raised in ipairs { "stop", unshowable } do
      local ok, result, err = pcall(m.wait, m, u, { interval = 0.05, progress = function() error(raised, 0) end })
      assert.is_true(ok, tostring(result))
      assert.is_nil(result)
      assert.are.same({ "internal", "callback_error" }, { err.kind, err.code })
      assert.are.equal(raised, err.cause)
      assert.is_string(tostring(err))
    end
  end)

  it("follows calls, expenses and user parameters by the kind their upload had", function()
    local calls = assert(m:upload_calls { file = "spec/fixtures/calls.csv" })
    assert.are.equal("PROCESSED", assert(m:wait(calls, FAST)).status)
    assert.matches("/calls_uploading/", sandbox.requests()[#sandbox.requests()].path)
    local costs = assert(m:upload_expenses { file = "spec/fixtures/expenses.csv" })
    assert.are.equal("PROCESSED", assert(m:wait(costs, FAST)).status)
    local params = assert(m:upload_user_params { file = "spec/fixtures/user_params.csv", action = "update", content_id_type = "client_id" })
    assert(m:confirm_user_params(params))
    assert.are.equal("processed", assert(m:wait(params, FAST)).status)
    local unmatched = assert(m:upload_user_params { rows = { { ClientId = "0", Key = "k", Value = "v" } }, action = "update", content_id_type = "client_id" })
    assert(m:confirm_user_params(unmatched))
    assert.are.equal("linkage_failure", assert(m:wait(unmatched.id, { kind = "user-params", interval = 0.05 })).status)
  end)

  it("gives up after timeout with the last status it saw", function()
    local params = assert(m:upload_user_params { file = "spec/fixtures/user_params.csv", action = "update", content_id_type = "client_id" })
    local u, err = m:wait(params, { timeout = 0.3, interval = 0.05 }) -- never confirmed: never processed
    assert.is_nil(u)
    assert.are.same({ "timeout", "is_processed" }, { err.code, err.last_status })
  end)

  it("refuses an unknown kind", function()
    local _, err = m:wait(1, { kind = "leads" })
    assert.are.equal("invalid_argument", err.code)
  end)
end)
