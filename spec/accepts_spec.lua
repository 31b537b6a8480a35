-- What the services accept, as their own tests and documentation show it:
-- accepted and sent as it is, accepted with a warning, or refused before
-- anything is sent. Checked on the wire, against a server that records every
-- request and answers as told.
local csvup = require "csvup"
local files = require "support.files"
local json = require "csvup.json"
local recorder = require "support.recorder"
local support = require "support.sandbox"
local validate = require "csvup.validate"

local UPLOADING = '{"uploading":{"id":17,"status":"UPLOADED"}}'

describe("what the services accept", function()
  local server, m, cq, dir

  setup(function()
    server = recorder.start()
    dir = files.tmpdir()
  end)

  teardown(function()
    server.stop()
    files.remove(dir)
  end)

  before_each(function()
    m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url, retries = 0 })
    cq = assert(csvup.carrotquest.new { token = "t", base_url = server.url, retries = 0 })
  end)

  after_each(function()
    m:close()
    cq:close()
  end)

  local function file(name, text)
    local path = dir .. "/" .. name
    files.write(path, text)
    return path
  end

  local function last()
    local list = server.requests()
    return list[#list], #list
  end

  -- How many requests so far have a request line that matches pattern (an
  -- upload an earlier spec stopped may still come in meanwhile).
  local function matching(pattern)
    local n = 0
    for _, req in ipairs(server.requests()) do
      n = n + (req.line:find(pattern) and 1 or 0)
    end
    return n
  end

  -- The content of the multipart part `file`.
  local function sent_file(req)
    return req.body:match('name="file"; filename="[^"]*"\r\nContent%-Type: [^\r]*\r\n\r\n(.-)\r\n%-%-')
  end

  describe("Metrica headers and values", function()
    it("are read as the service reads them, and the file is sent as it is", function()
      server.answer { { method = "POST", path = "/offline_conversions/upload", body = UPLOADING } }
      for _, text in ipairs {
        " clientid ,'Price',[Target],Date Time\n133591247640966458, 10.5 , GOAL1 ,\t1481718166.12345\n",
        "\"CLIENTID\",\"(target)\",\"date time\"\n1,G,1481718166\n",
      } do
        local path = file("loose.csv", text)
        assert.is_true(validate.file("offline_conversions", path))
        local u = assert(m:upload_offline_conversions { file = path })
        assert.are.equal(17, u.id)
        assert.are.equal(text, sent_file(last()))
      end
    end)

    it("take a DateTime with a fraction from rows too", function()
      assert.is_true(validate.rows("offline_conversions", { { ClientId = "1", Target = "G", DateTime = 1481718166.5 } }))
      local _, err = validate.rows("offline_conversions", { { ClientId = "1", Target = "G", DateTime = -1.5 } })
      assert.matches("is not Unix time in seconds", tostring(err))
    end)

    it("are read so for every Metrica schema, user parameters by their letters", function()
      assert.is_true(validate.file("calls", file("c.csv", "CLIENTID,[DateTime],talk duration\n1,1481718166, 61 \n")))
      assert.is_true(validate.file("expenses", file("e.csv", "date,'UTMSource',Expenses\n 2026-11-01 ,fb,\t10\n")))
      assert.is_true(validate.file("user_params", file("u.csv", "\"\tClie  --__ntid \",KEY,value\n1,tier,gold\n")))
      assert.is_true(validate.file("crm_simple_orders", file("o.csv", "Create_Date_Time,Emails\n10.01.2024 11:56,a@b.ru\n")))
    end)

    it("still refuse what the service would misread, padded or not", function()
      local _, err = validate.file("offline_conversions", file("bad.csv",
        "ClientId,Target,DateTime,Price\n 1.3e+17 ,G, 1481718166000 ,\" 12,5 \"\n1,G,1481718166. ,1\n1,G,   ,1\n"))
      local reasons = {}
      for i, p in ipairs(err.problems) do
        reasons[i] = p.line .. " " .. p.column .. ": " .. p.reason
      end
      reasons = table.concat(reasons, "\n")
      assert.matches("2 ClientId: .* looks like a float", reasons)
      assert.matches("2 DateTime: .* looks like milliseconds", reasons)
      assert.matches("2 Price: .* uses ',' as the decimal separator", reasons)
      assert.matches("3 DateTime: .* is not Unix time in seconds", reasons)
      assert.matches("4 DateTime: .* holds only spaces", reasons)
    end)

    it("pass the quick pass on plain files and fall back, padded, to the per-record check with the same verdict", function()
      local rows = { "ClientId,Target,DateTime,Price" }
      for i = 1, 5000 do
        rows[#rows + 1] = ("%d,G%d,%d,%d.5"):format(133591247640966458 + i, i % 7, 1481718166 + i, i)
      end
      local plain = table.concat(rows, "\n") .. "\n"
      assert.is_true(validate.file("offline_conversions", file("plain.csv", plain)))
      local padded = plain:gsub(",(%d+)%.5\n", ", %1.5 \n", 100)
      assert.is_true(validate.file("offline_conversions", file("padded.csv", padded)))
      local wrong = padded:gsub(", (%d+)%.5 \n", ", %1x5 \n", 1)
      local _, err = validate.file("offline_conversions", file("wrong.csv", wrong))
      assert.are.same({ 2, "Price" }, { err.problems[1].line, err.problems[1].column })
    end)
  end)

  describe("expenses", function()
    it("accept a column the service does not know, name it in warnings, and send it", function()
      server.answer { { method = "POST", path = "/expense/", body = UPLOADING } }
      local text = "Date,UTMSource,Trash,ym:ev:date,Expenses\n2026-11-01,fb,x,1,10\n"
      local u = assert(m:upload_expenses { file = file("e.csv", text) })
      assert.are.same({ "Trash", "ym:ev:date" }, { u.warnings[1].column, u.warnings[2].column })
      assert.matches("the service drops it", u.warnings[1].reason)
      assert.are.equal(text, sent_file(last()))
      u = assert(m:delete_expenses { rows = { { Date = "2026-11-01", Trash = "x" } }, columns = { "Date", "Trash" } })
      assert.are.same({ "Trash" }, { u.warnings[1].column })
      assert.are.equal("Date,Trash\n2026-11-01,x\n", sent_file(last()))
    end)

    it("say the warning on one line of stderr from the command line", function()
      server.answer { { method = "POST", path = "/expense/", body = UPLOADING } }
      local path = file("e.csv", "Date,UTMSource,Trash,Expenses\n2026-11-01,fb,x,10\n")
      local err = dir .. "/stderr"
      assert(os.execute(("CSVUP_METRIKA_TOKEN=t %s lua/bin/csvup metrika upload-expenses --no-journal --counter 1 "
        .. "--base-url %s %s >/dev/null 2>%s"):format(support.LUA, server.url, path, err)))
      local text = files.read(err)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:]+Z csvup: .*e%.csv: warning: line 1, Trash: is not a column the service knows[^\n]*\n$", text)
      assert(os.execute(("%s lua/bin/csvup validate expenses %s >/dev/null 2>%s"):format(support.LUA, path, err)))
      assert.matches("warning: line 1, Trash", files.read(err))
    end)
  end)

  describe("offline conversions by type", function()
    it("check CALLS by the calls columns and CHATS with ids optional, BASIC as before", function()
      server.answer { { method = "POST", path = "/offline_conversions/upload", body = UPLOADING } }
      local calls = file("calls.csv", "ClientId,DateTime,TalkDuration\n1,1481718166,61\n")
      assert(m:upload_offline_conversions { file = calls, type = "CALLS" })
      assert.matches("type=CALLS", last().line)
      local chats = file("chats.csv", "DateTime,Messenger,Tag\n1481718166,telegram,x\n")
      assert(m:upload_offline_conversions { file = chats, type = "CHATS" })
      local before = #server.requests()
      local _, err = m:upload_offline_conversions { file = chats }
      assert.matches("Messenger: is not a column this endpoint knows", tostring(err))
      _, err = m:upload_offline_conversions { file = calls }
      assert.matches("Target: the required column is missing", tostring(err))
      _, err = m:upload_offline_conversions { file = file("b.csv", "ClientId,Target,DateTime\n1,G,1481718166\n"),
        type = "CALLS" }
      assert.matches("Target: is not a column this endpoint knows", tostring(err))
      assert.are.equal(before, #server.requests())
      local command = support.LUA .. " lua/bin/csvup validate offline-conversions %s %s >/dev/null 2>&1"
      assert(os.execute(command:format("--type CHATS", chats)))
      local ok, _, code = os.execute(command:format("", chats))
      assert.are.same({ false, 3 }, { ok or false, code })
    end)
  end)

  describe("refused before sending", function()
    it("durations beyond 4294967295 or below 0, simple orders before 1970, upper-case emails, NUL bytes", function()
      local cases = {
        { "upload_calls", {}, "ClientId,DateTime,TalkDuration\n1,1481718166,4294967296\n", "is above 4294967295" },
        { "upload_calls", {}, "ClientId,DateTime,HoldDuration\n1,1481718166,-1\n", "is negative" },
        { "upload_crm", { entity = "simple_orders", merge_mode = "SAVE" }, "create_date_time,emails\n31.12.1969,a@b.ru\n",
          "is before 1970" },
        { "upload_crm", { entity = "simple_orders", merge_mode = "SAVE" }, "create_date_time,emails\n2024-01-10,Ann@b.ru\n",
          "lower%-case the addresses" },
        { "upload_offline_conversions", { validate = "header" }, "ClientId,Target,DateTime\n\0\0\0,G,1\n", "a NUL byte" },
        { "upload_expenses", { validate = "header" }, "Date,UTMSource,Expenses\n2026-11-01,fb,10\n\0", "a NUL byte" },
      }
      local _, before = last()
      for _, case in ipairs(cases) do
        local opts = { file = file("x.csv", case[3]) }
        for k, v in pairs(case[2]) do
          opts[k] = v
        end
        local _, err = m[case[1]](m, opts)
        assert.are.equal("input", err and err.kind, case[3])
        -- a file checked as it is sent stops before the end of its body: the server never has it whole
        for i, req in ipairs(server.requests()) do
          assert.is_true(i <= before or not (req.body or ""):find(case[3], 1, true), case[3])
        end
        assert.matches(case[4], tostring(err), 1, false)
      end
      assert.is_true(validate.file("calls", file("ok.csv", "ClientId,DateTime,TalkDuration\n1,1481718166,4294967295\n")))
    end)
  end)

  describe("quotas", function()
    local function quota(status, error_type)
      return { method = "GET", path = "/goals", status = status, body = json.encode { code = status, message = "quota",
        errors = { { error_type = error_type, message = "quota" } } } }
    end

    it("return a daily or hourly quota at once, with the seconds until it lifts", function()
      local retrying = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url, retries = 3,
        backoff = { base = 0.01, max = 0.02 } })
      for _, case in ipairs { { 429, "quota_requests_by_uid", 86400 }, { 420, "quota_requests_by_counter_id", 86400 },
        { 429, "quota_delegate_requests", 3600 }, { 420, "quota_grants_requests", 3600 } } do
        server.answer { quota(case[1], case[2]) }
        local before = matching("^GET [^ ]*/goals ")
        local _, err = retrying:goals()
        assert.are.equal(before + 1, matching("^GET [^ ]*/goals "), case[2]) -- not retried
        assert.are.same({ "api", case[2], case[1] }, { err.kind, err.code, err.status })
        local off = (err.retry_after - (case[3] - os.time() % case[3])) % case[3] -- the period may turn meanwhile
        assert.is_true(off <= 2 or off >= case[3] - 2, case[2])
        assert.matches("this quota lifts at %d%d:%d%d GMT", err.message)
      end
      retrying:close()
    end)

    it("retry one that lifts soon, a 420 like a 429, and one of a type not known", function()
      local retrying = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url, retries = 2,
        backoff = { base = 0.01, max = 0.02 } })
      for _, case in ipairs { { 420, "quota_requests_by_ip" }, { 429, "quota_parallel_requests" },
        { 429, "quota_of_another_kind" } } do
        server.answer { quota(case[1], case[2]) }
        local before = matching("^GET [^ ]*/goals ")
        local _, err = retrying:goals()
        assert.are.equal(before + 3, matching("^GET [^ ]*/goals "), case[2])
        assert.are.equal(case[2], err.code)
      end
      retrying:close()
    end)
  end)

  describe("answers", function()
    local function import(data)
      server.answer { { method = "POST", path = "^/users/import", body = '{"meta":{"status":200},"data":' .. data .. "}" } }
      return cq:import_users { file = "spec/fixtures/carrotquest_users.csv", merge_field = "$email", delimiter = ";" }
    end

    it("a Carrot quest import accepted is a success whatever row_errors holds", function()
      local r = assert(import('{"row_errors":{"2":["bad email","empty"]},"updates_planned":4}'))
      assert.are.same({ [2] = "bad email; empty" }, r.row_errors)
      r = assert(import('{"row_errors":[{"row":3,"error":"bad"},{"line":5,"message":"empty"}],"updates_planned":4}'))
      assert.are.same({ [3] = "bad", [5] = "empty" }, r.row_errors)
      for odd, raw in pairs { ['"3 rows failed"'] = "3 rows failed", ['{"x":"a"}'] = { x = "a" },
        ['{"1":{"code":7}}'] = { ["1"] = { code = 7 } }, ['[{"what":1}]'] = { { what = 1 } }, ["17"] = 17 } do
        r = assert(import('{"row_errors":' .. odd .. ',"updates_planned":4}'), odd)
        assert.are.same({ {}, raw, 4 }, { r.row_errors, r.row_errors_raw, r.updates_planned }, odd)
      end
    end)

    it("keeps row_errors of a shape not known on the command line's output too, exit status 6", function()
      server.answer { { method = "POST", path = "^/users/import",
        body = '{"meta":{"status":200},"data":{"row_errors":"3 rows failed","updates_planned":4}}' } }
      local out = dir .. "/stdout"
      local ok, _, code = os.execute(("CSVUP_CARROTQUEST_TOKEN=t %s lua/bin/csvup carrotquest import-users "
        .. "--no-journal --merge-field '$email' --delimiter ';' --base-url %s spec/fixtures/carrotquest_users.csv >%s 2>&1")
        :format(support.LUA, server.url, out))
      assert.are.same({ false, 6 }, { ok or false, code })
      assert.matches('4 updates planned, 0 rows refused\n  row errors, as the service wrote them: "3 rows failed"\n',
        files.read(out), 1, true)
    end)

    it("data: [] is a Carrot quest success with nothing planned", function()
      local r = assert(import("[]"))
      assert.are.same({ row_errors = {}, updates_planned = 0 }, r)
      local out = dir .. "/stdout"
      server.answer { { method = "POST", path = "^/users/import", body = '{"meta":{"status":200},"data":[]}' } }
      assert(os.execute(("CSVUP_CARROTQUEST_TOKEN=t %s lua/bin/csvup carrotquest import-users --no-journal "
        .. "--merge-field '$email' --delimiter ';' --base-url %s spec/fixtures/carrotquest_users.csv >%s 2>&1")
        :format(support.LUA, server.url, out)))
      assert.matches("^0 updates planned, 0 rows refused\n", files.read(out))
    end)

    it("a CRM uploading with its id is a success, whatever its validation status says besides FAILED", function()
      local orders = file("orders.csv", "create_date_time,emails\n10.01.2024 11:56,a@b.ru\n")
      server.answer { { method = "POST", path = "/data/simple_orders", body = '{"uploading":{"uploading_id":"7"}}' } }
      local u = assert(m:upload_crm { entity = "simple_orders", merge_mode = "SAVE", file = orders })
      assert.are.equal("7", u.uploading_id)
      server.answer { { method = "POST", path = "/data/simple_orders", body = '{"uploading":{"datetime":"x"}}' } }
      local _, err = m:upload_crm { entity = "simple_orders", merge_mode = "SAVE", file = orders }
      assert.are.equal("bad_response", err.code)
    end)
  end)

  describe("lists", function()
    it("send only what their reference documents: the conversions list is filtered on its items' type", function()
      server.answer { { method = "GET", path = "/offline_conversions/uploadings", body = '{"uploadings":[{"id":1,'
        .. '"type":"BASIC"},{"id":2,"type":"CALLS"},{"id":3}]}' },
        { method = "GET", path = "/user_params/uploadings", body = '{"uploadings":[]}' } }
      local list = assert(m:offline_conversion_uploadings { type = "CALLS", limit = 5 })
      assert.are.same({ 2, 3 }, { list[1].id, list[2].id })
      assert.matches("/offline_conversions/uploadings%?limit=5 ", last().line)
      assert.are.equal(3, #assert(m:offline_conversion_uploadings()))
      assert(m:user_params_uploadings { limit = 5, offset = 10 })
      assert.matches("/user_params/uploadings%?limit=5&offset=10 ", last().line)
    end)
  end)

  describe("check_targets", function()
    it("counts only JavaScript-event goals with an exact condition, and says why another does not count", function()
      server.answer { { method = "GET", path = "/goals$", body = json.encode { goals = {
        { id = 1, type = "action", conditions = { { type = "exact", url = "paid" } } },
        { id = 2, type = "action", conditions = { { type = "contain", url = "lead" } } },
        { id = 3, type = "url", conditions = { { type = "exact", url = "promo" } } } } } },
        { method = "POST", path = "/offline_conversions/upload", body = UPLOADING } }
      local function upload(target)
        return m:upload_offline_conversions { check_targets = true,
          rows = { { ClientId = "1", Target = target, DateTime = 1481718166 } } }
      end
      assert(upload("paid"))
      local before = matching("^POST [^ ]*/upload")
      local _, err = upload("lead")
      assert.are.equal("unknown_target", err.code)
      assert.matches('"lead" is a JavaScript-event goal whose condition is contain, not exact', err.message, 1, true)
      _, err = upload("promo")
      assert.matches('"promo" is a goal of type url, not a JavaScript event', err.message, 1, true)
      assert.are.equal(before, matching("^POST [^ ]*/upload")) -- nothing uploaded
    end)
  end)
end)
