-- The sandbox against what the services' documentation says they refuse, and
-- the error bodies they refuse it with, in plain HTTP.
local support = require "support.sandbox"

local COUNTER = 2215573
local M = "/management/v1/counter/" .. COUNTER

local function csv_part(content)
  return { name = "file", filename = "data.csv", content = content }
end

local function assert_metrika_error(status, error_type, got_status, body)
  assert.are.equal(status, got_status)
  assert.is_table(body, "no JSON body")
  assert.are.equal(error_type, body.errors[1].error_type)
  assert.is_string(body.errors[1].message)
  assert.are.equal(status, body.code)
  assert.is_string(body.message)
end

describe("sandbox against the services' documentation", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function call(r)
    return support.call(sandbox.url, r)
  end

  local function upload(path, content)
    return call { path = M .. path, form = { csv_part(content) } }
  end

  describe("Metrica rows", function()
    local function assert_refused(path, content)
      local status, body = upload(path, content)
      assert_metrika_error(400, "invalid_uploading", status, body)
    end

    it("refuse a conversion Price that is not a number with '.' as the decimal separator", function()
      for _, price in ipairs { '"12,50"', "12a", "-", "1.2.3" } do
        assert_refused("/offline_conversions/upload", "ClientId,Target,DateTime,Price\n1,G,1481718166," .. price .. "\n")
        assert_refused("/offline_conversions/upload_calls", "ClientId,DateTime,Price\n1,1481718166," .. price .. "\n")
      end
    end)

    it("refuse a Currency that is not three upper-case letters (ISO 4217)", function()
      for _, currency in ipairs { "RUBL", "RU", "rub", "R1B", "₽" } do
        assert_refused("/offline_conversions/upload", "ClientId,Target,DateTime,Price,Currency\n1,G,1481718166,1.5,"
          .. currency .. "\n")
        assert_refused("/offline_conversions/upload_calls", "ClientId,DateTime,Currency\n1,1481718166," .. currency .. "\n")
        assert_refused("/expense/upload", "Date,UTMSource,Expenses,Currency\n2026-11-01,fb,10," .. currency .. "\n")
      end
    end)

    it("refuse Expenses that are not a number with '.'", function()
      for _, expenses in ipairs { '"12,50"', "", "1e3" } do
        assert_refused("/expense/upload", "Date,UTMSource,Expenses\n2026-11-01,fb," .. expenses .. "\n")
      end
    end)

    it("take prices, amounts and currencies as the documentation writes them, and an empty optional one", function()
      assert.are.equal(200, (upload("/offline_conversions/upload",
        "ClientId,Target,DateTime,Price,Currency\n133591247640966458,GOAL1,1481718166,123.45,RUB\n1,G,1481718167,,\n")))
      assert.are.equal(200, (upload("/offline_conversions/upload_calls",
        "ClientId,DateTime,Price,Currency\n1,1481718166,10,USD\n")))
      assert.are.equal(200, (upload("/expense/upload",
        "Date,UTMSource,Expenses,Currency\n2026-11-01,fb,1520.75,RUB\n2026-11-02,fb,7000,\n")))
    end)
  end)
end)
