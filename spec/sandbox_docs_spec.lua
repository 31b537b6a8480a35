-- The sandbox against what the services' documentation says they refuse, and
-- the error bodies they refuse it with, in plain HTTP.
local support = require "support.sandbox"
local socket = require "socket"
local json = require "csvup.json"

local COUNTER = 2215573
local M = "/management/v1/counter/" .. COUNTER
local CDP = "/cdp/api/v1/counter/" .. COUNTER
local WAIT = 10

local function csv_part(content)
  return { name = "file", filename = "data.csv", content = content }
end

-- Sends raw bytes; returns the status, headers and decoded body of the answer.
local function exchange(url, bytes)
  local host, port = url:match("^http://([^:]+):(%d+)$")
  local sock = assert(socket.connect(host, tonumber(port)))
  sock:settimeout(WAIT)
  sock:send(bytes)
  local text, _, partial = sock:receive("*a")
  text = text or partial
  sock:close()
  local head, body = text:match("^(.-)\r\n\r\n(.*)$")
  local headers = {}
  for name, value in (head or ""):gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return tonumber((head or ""):match("^HTTP/1%.1 (%d+)")), headers, json.decode(body or "")
end

local function assert_metrika_error(status, error_type, got_status, body)
  assert.are.equal(status, got_status)
  assert.is_table(body, "no JSON body")
  assert.are.equal(error_type, body.errors[1].error_type)
  assert.is_string(body.errors[1].message)
  assert.are.equal(status, body.code)
  assert.is_string(body.message)
end

local function assert_carrot_error(status, got_status, body)
  assert.are.equal(status, got_status)
  assert.is_table(body, "no JSON body")
  assert.are.equal(status, body.meta.status)
  assert.is_string(body.meta.error)
  assert.is_string(body.meta.error_message)
  assert.are.same({}, body.data)
end

describe("sandbox against the services' documentation", function()
  local sandbox = support.sandbox()

  local function call(r)
    return support.call(sandbox.url, r)
  end

  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

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

  describe("Metrica, as its own tests show it reads uploads", function()
    local function assert_refused(path, content, query)
      local status, body = call { path = M .. path, query = query, form = { csv_part(content) } }
      assert_metrika_error(400, "invalid_uploading", status, body)
    end

    it("matches column names without regard to case and to the blanks, quotes and brackets around them", function()
      assert.are.equal(200, (upload("/offline_conversions/upload",
        " clientid ,'Price',[Target],Date Time\n1,10.5,G,1481718166\n")))
      assert.are.equal(200, (upload("/offline_conversions/upload_calls", "CLIENTID,\"(DateTime)\"\n1,1481718166\n")))
      assert.are.equal(200, (call { path = M .. "/user_params/uploadings/upload", query = { action = "update" },
        form = { csv_part("\"\tClie  --__ntid \",KEY,Value\n1,tier,gold\n") } }))
      assert_refused("/offline_conversions/upload", "Client,Target,DateTime\n1,G,1481718166\n")
    end)

    it("reads values trimmed of spaces and tabs, and a DateTime with a fraction", function()
      assert.are.equal(200, (upload("/offline_conversions/upload",
        "ClientId,Target,DateTime,Price\n 1 ,G,\t1481718166.12345 , 10.5\n")))
      assert_refused("/offline_conversions/upload", "ClientId,Target,DateTime\n1,G,1481718166.5.5\n")
    end)

    it("drops an expense column it does not know", function()
      assert.are.equal(200, (upload("/expense/upload", "Date,UTMSource,Trash,Expenses\n2026-11-01,fb,x,10\n")))
      assert.are.equal(200, (upload("/expense/upload", "ym:ev:date,Date,UTMSource,Expenses\n1,2026-11-01,fb,10\n")))
      assert.are.equal(200, (upload("/expense/delete", "Date,UTMSource,Trash\n2026-11-01,fb,x\n")))
    end)

    it("reads offline conversions of type CALLS by the calls columns and CHATS with ids optional", function()
      local calls = { type = "CALLS" }
      assert.are.equal(200, (call { path = M .. "/offline_conversions/upload", query = calls,
        form = { csv_part("ClientId,DateTime,TalkDuration\n1,1481718166,61\n") } }))
      assert_refused("/offline_conversions/upload", "DateTime,TalkDuration\n1481718166,61\n", calls)
      assert.are.equal(200, (call { path = M .. "/offline_conversions/upload", query = { type = "CHATS" },
        form = { csv_part("DateTime,Messenger\n1481718166,telegram\n") } }))
      assert_refused("/offline_conversions/upload", "DateTime,Messenger\n1481718166,telegram\n")
    end)

    it("refuses durations beyond 4294967295 or below 0", function()
      assert.are.equal(200, (upload("/offline_conversions/upload_calls",
        "ClientId,DateTime,TalkDuration,HoldDuration\n1,1481718166,4294967295,0\n")))
      assert_refused("/offline_conversions/upload_calls", "ClientId,DateTime,TalkDuration\n1,1481718166,4294967296\n")
      assert_refused("/offline_conversions/upload_calls", "ClientId,DateTime,HoldDuration\n1,1481718166,-1\n")
    end)

    it("fails simple orders dated before 1970 or with upper-case letters in emails", function()
      local function status_of(content)
        local _, body = call { path = CDP .. "/data/simple_orders", query = { merge_mode = "SAVE" },
          form = { csv_part(content) } }
        return body.uploading.api_validation_status
      end
      assert.are.equal("PASSED", status_of("create_date_time,emails\n01.01.1970,a@b.ru\n"))
      assert.are.equal("FAILED", status_of("create_date_time,emails\n31.12.1969,a@b.ru\n"))
      assert.are.equal("FAILED", status_of("create_date_time,emails\n1969-12-31,a@b.ru\n"))
      assert.are.equal("FAILED", status_of("create_date_time,emails\n2024-01-10,A@b.ru\n"))
    end)

    it("answers a quota as 429, or 420 as the English quotas page gives it, naming the quota", function()
      sandbox.fault { fault = "too_many_requests", quota = "quota_requests_by_uid", status = 420 }
      local status, body = call { path = M .. "/goals" }
      assert_metrika_error(420, "quota_requests_by_uid", status, body)
      sandbox.fault { fault = "too_many_requests" }
      status, body = call { path = M .. "/goals" }
      assert_metrika_error(429, "quota_requests_by_ip", status, body)
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

  describe("error bodies", function()
    local function raw(path, head_lines, body)
      return exchange(sandbox.url, "POST " .. path .. " HTTP/1.1\r\nHost: x\r\n" .. head_lines .. "\r\n" .. (body or ""))
    end

    it("are Metrica's for requests refused before they reach an endpoint", function()
      local status, _, body = raw(M .. "/expense/upload", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n")
      assert_metrika_error(411, "missing_parameter", status, body)
      status, _, body = raw(CDP .. "/data/contacts/csv", "Content-Length: 3000000000\r\n")
      assert_metrika_error(413, "limit_exceeded", status, body)
      status, _, body = raw(M .. "/expense/upload", "X-Big: " .. ("a"):rep(9000) .. "\r\n")
      assert_metrika_error(431, "limit_exceeded", status, body)
      status, _, body = raw(M .. "/expense/upload", "Content-Length: abc\r\n")
      assert_metrika_error(400, "invalid_parameter", status, body)
      status, _, body = exchange(sandbox.url, "GET /" .. ("a"):rep(9000) .. " HTTP/1.1\r\n\r\n")
      assert_metrika_error(431, "limit_exceeded", status, body)
    end)

    it("are Carrot quest's for its paths", function()
      local status, _, body = raw("/users/import", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n")
      assert_carrot_error(411, status, body)
      status, _, body = raw("/users/import", "Content-Length: 3000000000\r\n")
      assert_carrot_error(413, status, body)
      status, _, body = raw("/users/import", "X-Big: " .. ("a"):rep(9000) .. "\r\n")
      assert_carrot_error(431, status, body)
    end)

    it("answer an unknown path or method as an unknown resource: 404", function()
      local status, body = call { path = "/management/v2/counter/1/goals" }
      assert_metrika_error(404, "not_found", status, body)
      status, body = call { path = M .. "/goals", method = "DELETE" }
      assert_metrika_error(404, "not_found", status, body)
      status, body = call { path = CDP .. "/last_uploadings", method = "POST", body = "" }
      assert_metrika_error(404, "not_found", status, body)
      status, body = call { path = "/users/export", token = "Token " .. support.TOKEN }
      assert_carrot_error(404, status, body)
      status, body = call { path = "/users/import" }
      assert_carrot_error(404, status, body)
    end)
  end)

  describe("lists", function()
    it("of user parameters take limit and offset, as the other lists do", function()
      for _ = 1, 3 do
        call { path = M .. "/user_params/uploadings/upload", query = { action = "update" },
          form = { csv_part("clientid,key,value\n1,tier,gold\n") } }
      end
      local status, body = call { path = M .. "/user_params/uploadings" }
      assert.are.equal(200, status)
      assert.are.equal(3, #body.uploadings)
      status, body = call { path = M .. "/user_params/uploadings", query = { limit = "1", offset = "1" } }
      assert.are.equal(200, status)
      assert.are.equal(1, #body.uploadings)
    end)

    it("take limit and offset only as whole numbers", function()
      for _, query in ipairs { { limit = "1.5" }, { limit = "0x10" }, { offset = "1e1" }, { offset = " 1" } } do
        local status, body = call { path = M .. "/expense/uploadings", query = query }
        assert_metrika_error(400, "invalid_parameter", status, body)
      end
    end)

    it("of CRM uploadings take limit from 1 to 1000 only as a whole number, 10 by default", function()
      for _ = 1, 11 do
        call { path = CDP .. "/data/contacts/csv", query = { merge_mode = "SAVE" }, form = { csv_part("uniq_id\nc\n") } }
      end
      assert.are.equal(10, #select(2, call { path = CDP .. "/last_uploadings" }).uploadings)
      for _, limit in ipairs { "1", "1000" } do
        assert.are.equal(200, (call { path = CDP .. "/last_uploadings", query = { limit = limit } }))
      end
      for _, limit in ipairs { "0", "1001", "0x10", "1e2", "+5", "", "10.0" } do
        local status, body = call { path = CDP .. "/last_uploadings", query = { limit = limit } }
        assert_metrika_error(400, "invalid_parameter", status, body)
        assert.are.equal("limit", body.errors[1].location)
      end
    end)
  end)
end)

describe("sandbox over its connection limit", function()
  local sandbox = support.sandbox { options = { max_connections = 1 } }
  setup(sandbox.start)
  teardown(sandbox.stop)

  it("answers 503 backend_error in Metrica's error body, so that a client retries", function()
    local host, port = sandbox.url:match("^http://([^:]+):(%d+)$")
    local held = assert(socket.connect(host, tonumber(port)))
    local status, headers, body = exchange(sandbox.url, "GET " .. M .. "/goals HTTP/1.1\r\nHost: x\r\n\r\n")
    held:close()
    assert_metrika_error(503, "backend_error", status, body)
    assert.is_not_nil(headers["retry-after"])
  end)
end)

describe("sandbox quota of parallel requests", function()
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)

  -- A Metrica request by token whose body is still coming: in flight until closed.
  local function hold(token)
    local host, port = sandbox.url:match("^http://([^:]+):(%d+)$")
    local sock = assert(socket.connect(host, tonumber(port)))
    sock:send(("POST %s/expense/upload HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth %s\r\nContent-Length: 100000\r\n"
      .. "Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n"):format(M, token))
    return sock
  end

  local function goals(token)
    return exchange(sandbox.url, ("GET %s/goals HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth %s\r\n"
      .. "Connection: close\r\n\r\n"):format(M, token))
  end

  -- Asks (bounded) until the answer's status is the one expected, as the
  -- sandbox may not have read the held requests or a close yet; the last answer.
  local function goals_until(expected, token)
    local status, headers, body
    for _ = 1, 50 do
      status, headers, body = goals(token)
      if status == expected then
        break
      end
      socket.sleep(0.1)
    end
    return status, headers, body
  end

  it("answers a fourth Metrica request of one token in flight with 429 quota_parallel_requests", function()
    local held = { hold(support.TOKEN), hold(support.TOKEN), hold(support.TOKEN) }
    local status, _, body = goals_until(429, support.TOKEN)
    assert_metrika_error(429, "quota_parallel_requests", status, body)
    assert.are_not.equal(429, (goals("another-token")))
    held[1]:close()
    assert.are.equal(200, (goals_until(200, support.TOKEN)))
    held[2]:close()
    held[3]:close()
  end)
end)

for _, case in ipairs {
  { "lists", function(e) return e["3"][1] end },
  { "entries", function(e) return e[1].row == 3 and e[1].error end },
  { "text", function(e) return e:match("^line 3: (.*)") end },
  { "empty" },
} do
  describe("sandbox's Carrot quest row_errors in another shape than the answer page's example: " .. case[1], function()
    local sandbox = support.sandbox { options = { row_errors = case[1] } }
    setup(sandbox.start)
    teardown(sandbox.stop)

    it("answers an accepted import with the same errors in that shape", function()
      local status, body = support.call(sandbox.url, { path = "/users/import", form = {
        { name = "app", content = "1" }, { name = "delimiter", content = "," }, csv_part("$user_id,n\nu1,1\n,2\n") } })
      assert.are.equal(200, status)
      if case[2] then
        assert.matches("Empty value of %$user_id", case[2](body.data.row_errors))
        assert.are.equal(1, body.data.updates_planned)
      else
        assert.are.same({}, body.data)
      end
    end)
  end)
end
