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

  local function carrot_import(content)
    return call { path = "/users/import", form = { { name = "app", content = "12345" },
      { name = "delimiter", content = "," }, csv_part(content) } }
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

  describe("Carrot quest property values", function()
    it("report a row with an integer beyond ±2^53 in row_errors, and do not plan it", function()
      local status, body = carrot_import("$user_id,score\nu1,9007199254740993\nu2,-9007199254740993\n"
        .. "u3,9007199254740992\nu4,-9007199254740992\n")
      assert.are.equal(200, status)
      assert.are.same({ "2", "3" }, (function()
        local keys = {}
        for k in pairs(body.data.row_errors) do
          keys[#keys + 1] = k
        end
        table.sort(keys)
        return keys
      end)())
      assert.are.equal(2, body.data.updates_planned)
    end)

    it("take values that only look like numbers as strings", function()
      local status, body = carrot_import("$user_id,$phone,account\n"
        .. "u1,+7 999 123-45-67,000000000000000000000042\nu2,+79991234567,12345678901234567890.5\n"
        .. "133591247640966458,89991234567,1e400\n")
      assert.are.equal(200, status)
      assert.are.same({}, body.data.row_errors)
      assert.are.equal(3, body.data.updates_planned)
    end)

    it("report a row with a string longer than 255 characters", function()
      local status, body = carrot_import("$user_id,note\nu1," .. ("я"):rep(255) .. "\nu2," .. ("я"):rep(256) .. "\n")
      assert.are.equal(200, status)
      assert.is_nil(body.data.row_errors["2"])
      assert.is_string(body.data.row_errors["3"])
      assert.are.equal(1, body.data.updates_planned)
    end)

    it("report a row with a date that is not YYYY-MM-DD[THH:MM:SS]", function()
      local status, body = carrot_import("$user_id,$last_seen\nu1,2026-11-20\nu2,2026-11-20T10:15:00\n"
        .. "u3,2026-13-01\nu4,2026-11-20 10:15\nu5,2026-11-20T25:00:00\nu6,2026-02-30\n")
      assert.are.equal(200, status)
      for _, line in ipairs { "4", "5", "6", "7" } do
        assert.is_string(body.data.row_errors[line], line)
      end
      assert.is_nil(body.data.row_errors["2"])
      assert.is_nil(body.data.row_errors["3"])
      assert.are.equal(2, body.data.updates_planned)
    end)
  end)
end)
