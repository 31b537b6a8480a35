-- Rows and files are checked against the endpoint's schema: before anything is sent, or, for a file sent as it is, by the read that sends it.
local csvup = require "csvup"
local socket = require "socket"
local core = require "csvup.core"
local validate = require "csvup.validate"
local support = require "support.sandbox"
local files = require "support.files"
local recorder = require "support.recorder"

local NOW = os.time()

local function problems_of(schema, rows, ctx)
  local ok, err = validate.rows(schema, rows, nil, ctx)
  assert.is_nil(ok)
  assert.are.equal("validation_failed", err.code)
  return err
end

local function reasons(err)
  local out = {}
  for i, p in ipairs(err.problems) do
    out[i] = ("%s %s: %s"):format(p.row or p.line, p.column, p.reason)
  end
  return table.concat(out, "\n")
end

-- The bytes this process has read, from files and sockets alike.
local function bytes_read()
  local f = assert(io.open("/proc/self/io"))
  local n = tonumber(f:read("a"):match("rchar: (%d+)"))
  f:close()
  return n
end

describe("validate.rows", function()
  it("accepts good offline conversions", function()
    assert.is_true(validate.rows("offline_conversions", {
      { ClientId = "133591247640966458", Target = "GOAL1", DateTime = 1481718166, Price = 123.45, Currency = "RUB" },
      { UserId = "u-1", Target = "GOAL1", DateTime = "1481718166", Price = "10" },
    }))
  end)

  it("names the missing required column and the missing id group", function()
    local err = problems_of("offline_conversions", { { DateTime = 1481718166, Price = 1 } })
    assert.matches("1 Target: the required column is missing", reasons(err))
    assert.matches("UserId|ClientId|Yclid|PurchaseId: one of these columns is required", reasons(err))
  end)

  it("finds rows where no id is filled and required values are empty", function()
    local err = problems_of("offline_conversions", {
      { ClientId = "1", Target = "G", DateTime = 1 },
      { ClientId = "", Target = "", DateTime = 1 },
    })
    assert.matches("2 Target: is empty", reasons(err))
    assert.matches("2 UserId|ClientId|Yclid|PurchaseId: none of these is filled", reasons(err))
    assert.are.equal(2, err.problems[1].row)
    assert.are.equal(3, err.problems[1].line)
  end)

  it("explains milliseconds, future times, floats for ids, commas in prices and lower-case currencies", function()
    local err = problems_of("offline_conversions", {
      { ClientId = 1.3359124764096646e17, Target = "G", DateTime = 1481718166000, Price = "12,50", Currency = "rub" },
      { ClientId = "1", Target = "G", DateTime = NOW + 86400, Price = 0 / 0, Currency = "XXY" },
    })
    local text = reasons(err)
    assert.matches("1 ClientId: .* is a float, which cannot hold an id above 2%^53 exactly", text)
    assert.matches("1 DateTime: 1481718166000 looks like milliseconds %(13 digits%): the API takes seconds, divide by 1000", text)
    assert.matches("1 Price: \"12,50\" uses ',' as the decimal separator", text)
    assert.matches("1 Currency: \"rub\" is not in upper case", text)
    assert.matches("2 DateTime: %d+ is in the future", text)
    assert.matches("2 Price: .* is not a finite number", text)
    assert.matches("2 Currency: \"XXY\" is not an ISO 4217 currency code", text)
  end)

  it("matches Metrica's column names as the service does, and refuses one it does not know", function()
    assert.is_true(validate.rows("offline_conversions", { { clientid = "1", ["[Target]"] = "G", ["Date Time"] = 1 } }))
    local err = problems_of("offline_conversions", { { Client = "1", Target = "G", DateTime = 1 } })
    assert.matches("Client: is not a column this endpoint knows", reasons(err))
    err = problems_of("offline_conversions", { { clientid = "1", ClientId = "2", Target = "G", DateTime = 1 } })
    assert.matches("the column appears twice in the header", reasons(err))
  end)

  it("refuses Carrot quest header names with spaces or invisible characters, and an unknown Metrica one", function()
    local err = problems_of("carrotquest_users", { { ["$user_id"] = "1", ["name "] = "x" } }, { merge_field = "$user_id" })
    assert.matches("the column name has a leading or trailing space", reasons(err))
    err = problems_of("carrotquest_users", { { ["\226\128\139$user_id"] = "1" } }, { merge_field = "$user_id" })
    assert.matches("U%+200B zero%-width space", reasons(err))
    err = problems_of("offline_conversions", { { ["\194\160ClientId"] = "1", Target = "G", DateTime = 1 } })
    assert.matches("U%+00A0 no%-break space", reasons(err))
  end)

  it("checks expense dates, ranges, traffic sources and amounts", function()
    assert.is_true(validate.rows("expenses", {
      { Date = "2026-02-28", Expenses = "100.5", TrafficSource = "ad" },
      { Date = "2026-11-01/2026-11-07", Expenses = 7000, UTMSource = "vk" },
    }))
    local err = problems_of("expenses", {
      { Date = "2026-02-30", Expenses = "1", TrafficSource = "tv" },
      { Date = "2026-11-07/2026-11-01", Expenses = "1e3", UTMSource = "vk" },
    })
    local text = reasons(err)
    assert.matches("1 Date: \"2026%-02%-30\" is not a date", text)
    assert.matches("1 TrafficSource: \"tv\" is not a TrafficSource", text)
    assert.matches("2 Date: .* is a range that ends before it starts", text)
    assert.matches("2 Expenses: \"1e3\" is not a number", text)
  end)

  it("takes 0/1 flags and booleans for calls", function()
    assert.is_true(validate.rows("calls", { { ClientId = "1", DateTime = 1, StaticCall = true, CallMissed = 0, TalkDuration = 61 } }))
    local err = problems_of("calls", { { ClientId = "1", DateTime = 1, CallMissed = "yes", TalkDuration = -5 } })
    assert.matches("CallMissed: \"yes\" is not 0 or 1", reasons(err))
    assert.matches("TalkDuration: %-5 is negative", reasons(err))
  end)

  it("for Carrot quest: the merge column, tidy key values, $ names, numbers within 2^53, strings of 255", function()
    local ctx = { merge_field = "$email" }
    assert.is_true(validate.rows("carrotquest_users", { { ["$email"] = "a@b.c", ["$name"] = "A", plan = "gold", visits = 12 } }, ctx))
    local err = problems_of("carrotquest_users", {
      { ["$email"] = " a@b.c", ["$nick"] = "x", big = 2 ^ 60, note = ("я"):rep(256) },
      { ["$email"] = "", ["$nick"] = "y", big = 1, note = "" },
    }, ctx)
    local text = reasons(err)
    assert.is_nil(text:find("$nick", 1, true)) -- a system property csvup does not list: a warning
    assert.are.equal("$nick", err.warnings[1].column)
    assert.matches("1 %$email: \" a@b.c\" has a leading or trailing space", text)
    assert.matches("1 big: .* is outside ±2%^53", text)
    assert.matches("1 note: .* is longer than 255 characters", text)
    assert.matches("2 %$email: is empty", text)
    err = problems_of("carrotquest_users", { { name = "x" } }, { merge_field = "$user_id" })
    assert.matches("%$user_id: the required column is missing", reasons(err))
  end)

  it("lists at most 20 problems and counts them all", function()
    local rows = {}
    for i = 1, 50 do
      rows[i] = { ClientId = "1", Target = "G", DateTime = "soon" }
    end
    local err = problems_of("offline_conversions", rows)
    assert.are.equal(20, #err.problems)
    assert.are.equal(50, err.problem_count)
    assert.matches("^validation_failed: 50 problems in the rows: row 1, DateTime: .*%(and 47 more%)$", tostring(err))
  end)
end)

describe("validation in the clients", function()
  local sandbox, m, dir

  setup(function()
    sandbox = support.start()
    dir = files.tmpdir()
  end)

  teardown(function()
    sandbox.stop()
    files.remove(dir)
  end)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
  end)

  local function file(name, text)
    return files.write(dir .. "/" .. name, text)
  end

  it("checks rows fully and sends nothing when one is bad", function()
    local ok, err = m:upload_offline_conversions { rows = { { ClientId = "1", Target = "G", DateTime = 1481718166000 } } }
    assert.is_nil(ok)
    assert.are.equal("validation_failed", err.code)
    assert.are.same({}, sandbox.requests())
  end)

  it("checks every row of a file by default, the header with validate = 'header', nothing with false", function()
    local bad_header = file("h.csv", "ClientId,Target,When\n1,G,1\n")
    local _, err = m:upload_offline_conversions { file = bad_header }
    assert.matches("h%.csv: validation_failed: .*line 1, When: is not a column this endpoint knows", tostring(err))
    local bad_row = file("r.csv", "ClientId,Target,DateTime\n1,G,1\n2,G,1481718166000\n")
    _, err = m:upload_offline_conversions { file = bad_row }
    assert.are.same({ line = 3, column = "DateTime" }, { line = err.problems[1].line, column = err.problems[1].column })
    assert.are.equal("input", err.kind)
    _, err = m:upload_offline_conversions { file = bad_row, validate = "header" } -- sent: only the API sees the row
    assert.are.equal(400, err.status)
    assert.are.equal(1, #sandbox.requests())
    _, err = m:upload_offline_conversions { file = bad_header, validate = false }
    assert.matches('unknown column "When"', err.message) -- the API's word now
    assert.are.equal(2, #sandbox.requests())
  end)

  it("scans a file for invalid UTF-8 and names line and byte", function()
    local latin1 = file("cp1251.csv", "ClientId,Target,DateTime\n1,G,1\n2,\207\240\232\226\229\242,1\n")
    local _, err = m:upload_offline_conversions { file = latin1 }
    assert.are.equal("invalid_utf8", err.code)
    assert.are.same({ 3, 3 }, { err.line, err.column })
    assert.matches("cp1251%.csv:3:3: invalid_utf8: byte 3 of line 3 is not valid UTF%-8", tostring(err))
    assert.are.same({}, sandbox.requests())
  end)

  it("finds a multibyte character cut by the scan's chunk boundary valid", function()
    local head = "ClientId,Target,DateTime\n"
    local filler = ("x"):rep(65536 - #head - 5)
    local path = file("edge.csv", head .. "1,G" .. filler .. "\208\175,1\n") -- "Я" across the 64 KB mark
    assert(core.utf8_check_file(path))
  end)

  it("writes calls flags from booleans as 1 and 0", function()
    assert(m:upload_calls { rows = { { ClientId = "1", DateTime = 1481718166, CallMissed = true, StaticCall = false } },
      columns = { "ClientId", "DateTime", "CallMissed", "StaticCall" } })
    assert.are.equal("ClientId,DateTime,CallMissed,StaticCall\n1,1481718166,1,0\n", sandbox.requests()[1].file.content)
  end)
end)

describe("csvup validate", function()
  local function run(args)
    local pipe = io.popen(support.LUA .. " lua/bin/csvup validate " .. args .. " 2>&1; echo \"exit $?\"")
    local output = pipe:read("a")
    pipe:close()
    return output:match("^(.-)exit (%d+)\n$")
  end

  it("exits 0 for a valid file", function()
    local output, code = run("offline-conversions spec/fixtures/offline_conversions.csv")
    assert.are.equal("0", code)
    assert.matches("valid for offline%-conversions", output)
  end)

  it("exits 3 and lists file:line: column: reason for each problem", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write("ClientId,Target,DateTime\n1,G,1481718166000\n2,,1\n")
    f:close()
    local output, code = run("offline-conversions " .. path)
    os.remove(path)
    assert.are.equal("3", code)
    assert.matches(path .. ":2: DateTime: \"1481718166000\" looks like milliseconds", output, 1, true)
    assert.matches(path .. ":3: Target: is empty", output, 1, true)
  end)

  it("exits 2 for a wrong kind or a missing file", function()
    assert.are.equal("2", select(2, run("leads spec/fixtures/offline_conversions.csv")))
    assert.are.equal("2", select(2, run("calls /nonexistent.csv")))
  end)
end)

describe("validate.file", function()
  local dir

  setup(function()
    dir = files.tmpdir()
  end)

  teardown(function()
    files.remove(dir)
  end)

  local function file(name, text)
    return files.write(dir .. "/" .. name, text)
  end

  local function failure(name, path, opts)
    local ok, err = validate.file(name, path, opts)
    assert.is_nil(ok)
    return err
  end

  it("checks every row by default, only the header with level = 'header'", function()
    local path = file("rows.csv", "ClientId,Target,DateTime\n1,G,1\n2,G,1481718166000\n")
    local err = failure("offline_conversions", path)
    assert.are.same({ 3, "DateTime" }, { err.problems[1].line, err.problems[1].column })
    assert.is_true(validate.file("offline_conversions", path, { level = "header" }))
  end)

  it("counts quoted line breaks in the lines it names", function()
    local path = file("quoted.csv", 'UserId,Target,DateTime\n"a\nb",G,1\n"c",G,soon\n')
    assert.are.equal(4, failure("offline_conversions", path).problems[1].line)
  end)

  it("refuses a header longer than 64 KB without reading the whole line", function()
    local path = dir .. "/wide.csv"
    assert(os.execute(("head -c 104857600 /dev/zero | tr '\\0' x > %s"):format(path)))
    local script = ([[
      local ok, err = require("csvup.validate").file("offline_conversions", %q, { level = "header" })
      print(ok, err and err.message, io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]):format(path)
    local out = assert(io.popen(support.LUA .. " -e '" .. script .. "'")):read("a")
    os.remove(path)
    local ok, message, peak = out:match("^(%S+)\t(.-)\t(%d+)\n$")
    assert.are.equal("nil", ok)
    assert.matches("header .*longer than 64 KB", message)
    assert.is_true(tonumber(peak) < 64 * 1024, "peak RSS " .. peak .. " kB")
  end)

  it("checks rows beyond ASCII as strictly as others, wherever they fall in the file", function()
    local rows = { "$email;$name;city" }
    for i = 2, 20001 do
      rows[i] = ("u%d@example.com;Анна Пётр %d;Москва"):format(i, i)
    end
    rows[5001] = 'u5001@example.com;"Пётр ""Первый"", Ёж";Санкт-Петербург'
    rows[6001] = "u6001@example.com;" .. ("ж"):rep(255) .. ";Омск"
    rows[7001] = "u7001\194\160@example.com;Анна;Москва"
    rows[12001] = "u12001@example.com;" .. ("ж"):rep(256) .. ";Омск"
    local opts = { merge_field = "$email", delimiter = ";" }
    local err = failure("carrotquest_users", file("cyrillic.csv", table.concat(rows, "\n") .. "\n"), opts)
    assert.are.equal(2, err.problem_count)
    assert.are.same({ 7001, "$email" }, { err.problems[1].line, err.problems[1].column })
    assert.matches("U%+00A0 no%-break space", err.problems[1].reason)
    assert.are.same({ 12001, "$name" }, { err.problems[2].line, err.problems[2].column })
    assert.matches("longer than 255 characters", err.problems[2].reason)
    rows[7001], rows[12001] = rows[2], rows[2]
    rows[15001] = "u15001@example.com;Анна \208;Москва"
    err = failure("carrotquest_users", file("cut.csv", table.concat(rows, "\n") .. "\n"), opts)
    assert.are.same({ "invalid_utf8", 15001 }, { err.code, err.line })
    rows[15001] = rows[2]
    assert.is_true(validate.file("carrotquest_users", file("good.csv", table.concat(rows, "\n") .. "\n"), opts))
  end)

  it("answers at once for a file whose delimiter is a byte beyond ASCII", function()
    local path = file("high.csv", "$email\166$name\nu@example.com\166Анна\n")
    local script = ([[local ok, err = require("csvup.validate").file("carrotquest_users", %q,
      { merge_field = "$email", delimiter = "\166" })
      print(ok, err.code, err.line)]]):format(path)
    local out = assert(io.popen("timeout 10 env " .. support.LUA .. " -e '" .. script .. "'")):read("a")
    assert.are.equal("nil\tinvalid_utf8\t2\n", out) -- that byte is no UTF-8
  end)

  it("quotes at most 80 characters of a value in a message", function()
    local path = file("long.csv", "ClientId,Target,DateTime\n" .. ("9"):rep(5000) .. "x,G,1\n")
    local reason = failure("offline_conversions", path).problems[1].reason
    assert.matches('^"' .. ("9"):rep(80) .. '…" is not an id', reason)
  end)

  it("names what a CR-only file has instead of a repeated column", function()
    local err = failure("offline_conversions", file("mac.csv", "ClientId,Target,DateTime\r1,G,1\r2,G,1\r"))
    assert.are.equal("malformed_csv", err.code)
    assert.matches("lone CR", tostring(err))
  end)

  it("refuses a lone CR at the very end of a file, as anywhere else, before anything is sent", function()
    local path = file("cr_end.csv", "ClientId,Target,DateTime\n1,G,1481718166\n2,G,1481718167\r")
    local err = failure("offline_conversions", path)
    assert.are.same({ "malformed_csv", 3, 15 }, { err.code, err.line, err.column })
    local ok
    ok, err = pcall(function()
      for _ in assert(csvup.csv.rows(path)) do end
    end)
    assert.is_false(ok)
    assert.matches("lone CR", tostring(err))
  end)

  it("refuses what is not a regular file instead of reading it forever", function()
    local err = failure("offline_conversions", "/dev/zero")
    assert.matches("not a regular file", tostring(err))
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    err = failure("offline_conversions", fifo)
    assert.matches("not a regular file", tostring(err))
  end)

  it("matches user parameter columns without regard to case; a delete_keys file may hold only the key", function()
    assert.is_true(validate.file("user_params", file("up.csv", "clientid,key,value\n123,plan,gold\n")))
    assert.is_true(validate.file("user_params", file("up2.csv", "UserID,KEY,Value\nu1,plan,gold\n")))
    assert.is_true(validate.rows("user_params", { { userid = "u1", key = "plan", value = "x" } }))
    local keys_only = file("del.csv", "key\nplan\n")
    assert.matches("one of these columns is required", tostring(failure("user_params", keys_only)))
    assert.is_true(validate.file("user_params_delete", keys_only))
    assert.matches("2 key: is empty", reasons(failure("user_params_delete", file("del2.csv", "key,clientid\n,1\n"))))
  end)

  it("takes Metrica text of any length, which the service's documentation does not bound", function()
    local url = "https://example.com/landing?" .. ("utm_content=x&"):rep(30) .. "q=" .. ("ж"):rep(40)
    assert.is_true(validate.file("calls", file("long_url.csv", "ClientId,DateTime,URL\n1,1481718166," .. url .. "\n")))
    assert.is_true(validate.rows("calls", { { ClientId = 1, DateTime = 1481718166, CallTrackerURL = url } }))
    assert.is_true(validate.file("offline_conversions",
      file("long_target.csv", "ClientId,Target,DateTime\n1," .. ("goal"):rep(100) .. ",1481718166\n")))
  end)

  it("refuses an update file of user parameters with no value column, which only a delete_keys file may omit", function()
    local no_value = file("novalue.csv", "clientid,key\n123,plan\n")
    local err = failure("user_params", no_value)
    assert.are.same({ "input", "validation_failed" }, { err.kind, err.code })
    assert.matches("1 Value: the required column is missing", reasons(err), 1, true)
    assert.is_true(validate.file("user_params_delete", no_value))
  end)

  it("takes the CRM order date formats and an order without an id", function()
    local good = { "10.01.2024", "10.01.24", "2024-01-10", "10.01.2024 11:56", "10.01.24 11:56:07", "2024-01-10 23:59:59" }
    local lines = { "id,create_date_time,client_ids" }
    for i, d in ipairs(good) do
      lines[#lines + 1] = ("%s,%s,c%d"):format(i == 1 and "" or tostring(i), d, i)
    end
    assert.is_true(validate.file("crm_simple_orders", file("orders.csv", table.concat(lines, "\n") .. "\n")))
    local bad = { "2024-01-10T11:56", "32.01.2024", "10.13.2024", "10.01.2024 24:00", "10/01/2024", "10.01.2024 11:5" }
    lines = { "id,create_date_time,client_ids" }
    for i, d in ipairs(bad) do
      lines[#lines + 1] = ("%d,%s,c"):format(i, d)
    end
    local err = failure("crm_simple_orders", file("bad_orders.csv", table.concat(lines, "\n") .. "\n"))
    assert.are.equal(#bad, err.problem_count)
    assert.matches("is not a date and time", err.problems[1].reason)
  end)

  it("shows a value of the wrong type in rows as what it is, and refuses a NUL inside quotes in a file", function()
    local _, err = validate.rows("offline_conversions", { { ClientId = true, Target = "G", DateTime = 1481718166 } })
    assert.matches("ClientId: true is not an id", err.message)
    local nul = file("nul.csv", 'ClientId,Target,DateTime\n1,"G\0x",1481718166\n')
    _, err = validate.file("offline_conversions", nul)
    assert.are.same({ "malformed_csv", 2 }, { err.code, err.line })
  end)

  it("hashes the file in the pass that checks it, at either level, a few megabytes as well", function()
    local rows = { "ClientId,Target,DateTime\n" }
    for i = 1, 100000 do
      rows[#rows + 1] = ("%d,GOAL%d,%d\n"):format(i * 7919, i % 13, 1481718166 + i)
    end
    for _, path in ipairs { file("digest.csv", "ClientId,Target,DateTime\n1,G,1481718166\n2,G,1481718166\n"),
      file("digest_big.csv", table.concat(rows)) } do
      for _, level in ipairs { "full", "header" } do
        local digest = {}
        assert(validate.file("offline_conversions", path, { level = level, digest = digest }))
        assert.are.same({ core.sha256_file(path) }, { digest.sha256, digest.size }, level)
      end
    end
  end)

  it("lets a Carrot quest system property it does not list through, with a warning", function()
    local ok, warnings = validate.file("carrotquest_users", file("cq.csv", "$user_id,$city,plan\n1,Paris,gold\n"),
      { merge_field = "$user_id" })
    assert.is_true(ok)
    assert.are.equal("$city", warnings[1].column)
  end)
end)

describe("a big file whose only bad row is line 4,000,001", function()
  local sandbox, dir, path

  setup(function()
    sandbox = support.start()
    dir = files.tmpdir()
    path = dir .. "/big.csv"
    local row = "133591247640966458,GOAL1,1481718166,123.45,RUB"
    assert(os.execute(("{ echo ClientId,Target,DateTime,Price,Currency; yes %s 2>/dev/null | head -n 3999999; "
      .. "echo 133591247640966458,GOAL1,1481718166000,123.45,RUB; yes %s 2>/dev/null | head -n 300000; } > %s"):format(row, row, path)))
  end)

  teardown(function()
    sandbox.stop()
    files.remove(dir)
  end)

  it("is refused by csvup validate, naming that line", function()
    local pipe = io.popen(support.LUA .. " lua/bin/csvup validate offline-conversions " .. path .. " 2>&1; echo \"exit $?\"")
    local output = pipe:read("a")
    pipe:close()
    assert.matches("exit 3\n$", output)
    assert.matches(path .. ":4000001: DateTime: \"1481718166000\" looks like milliseconds", output, 1, true)
  end)

  it("is refused by a default upload, and nothing reaches the service", function()
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
    local _, err = m:upload_offline_conversions { file = path }
    m:close()
    assert.are.same({ "input", "validation_failed", 4000001 }, { err.kind, err.code, err.problems[1].line })
    assert.are.same({}, sandbox.requests())
  end)
end)

describe("a default upload checks each record as it sends it", function()
  local server, dir

  before_each(function()
    server = recorder.start()
    server.answer { { method = "POST", path = "/upload", body = '{"uploading":{"id":7,"status":"UPLOADED"}}' } }
    dir = files.tmpdir()
  end)

  after_each(function()
    server.stop()
    files.remove(dir)
  end)

  -- rows of 37 bytes: 8 MB before the bad one, 1 MB after it
  local function file_with(bad)
    local path = dir .. "/conversions.csv"
    local row = "133591247640966458,GOAL1,1481718166"
    assert(os.execute(("{ echo ClientId,Target,DateTime; yes %s 2>/dev/null | head -n 230000; echo %s; yes %s 2>/dev/null | head -n 30000; } > %s")
      :format(row, bad, row, path)))
    return path
  end

  it("stops the body before the record that fails: the service gets no complete request", function()
    local path = file_with("133591247640966458,GOAL1,1481718166000")
    local m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
    local _, err = m:upload_offline_conversions { file = path }
    m:close()
    assert.are.same({ "input", "validation_failed", 230002 }, { err.kind, err.code, err.problems[1].line })
    assert.matches("looks like milliseconds", err.problems[1].reason)
    local requests = server.requests()
    for _ = 1, 50 do -- the server writes down a cut request once it sees the connection close
      if #requests > 0 then
        break
      end
      socket.sleep(0.1)
      requests = server.requests()
    end
    assert.are.equal(1, #requests)
    local declared = tonumber(requests[1].head:match("[Cc]ontent%-[Ll]ength: (%d+)"))
    local size = io.open(path):seek("end")
    assert.is_true(declared > size)
    assert.is_true(#requests[1].body < size, "the body stopped before the file's end")
    assert.is_nil(requests[1].body:find("1481718166000", 1, true))
  end)

  -- plain records, more than one libcurl buffer of them, then a few the quick
  -- pass leaves to the reader (a line break inside quotes, CRLF), three times;
  -- `last` ends the file, with no line break. The file's path and the line `last` is on.
  local function mixed_file(last)
    local path, line = dir .. "/mixed.csv", 1
    local f = assert(io.open(path, "wb"))
    local plain = ("133591247640966458,GOAL1,1481718166\n"):rep(1000)
    f:write("ClientId,Target,DateTime\n")
    for _ = 1, 3 do
      for _ = 1, 80 do
        f:write(plain)
      end
      f:write('133591247640966458,"GOAL\n1",1481718166\n', "133591247640966458,GOAL2,1481718166\r\n",
        '133591247640966458,"say ""hi""",1481718166\n')
      line = line + 80000 + 4
    end
    f:write(last)
    f:close()
    return path, line + 1
  end

  it("passes the reader's records and the quick pass's alike, byte for byte, counting every line", function()
    local path = mixed_file("133591247640966458,GOAL1,1481718167")
    local m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
    assert(m:upload_offline_conversions { file = path })
    local f = io.open(path, "rb")
    assert.is_truthy(server.requests()[1].body:find(f:read("a"), 1, true))
    f:close()
    local bad, line = mixed_file("133591247640966458,GOAL1,1481718166000")
    local _, err = m:upload_offline_conversions { file = bad }
    m:close()
    assert.are.same({ "validation_failed", line }, { err.code, err.problems[1].line })
  end)

  it("reads the file about once, also when the quick pass leaves records to the reader", function()
    -- quoted ids, which only the reader reads; CRLF, whose CR ends a 64-byte block now and then
    for _, row in ipairs { '"133591247640966458",GOAL1,1481718166\n', "133591247640966458,GOAL1,1481718166\r\n" } do
      local path = dir .. "/reread.csv"
      local f = assert(io.open(path, "wb"))
      f:write("ClientId,Target,DateTime\n", row:rep(100000))
      f:close()
      local m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
      local before = bytes_read()
      assert(m:upload_offline_conversions { file = path })
      local read = bytes_read() - before
      m:close()
      assert.is_true(read < 2 * #row * 100000, ("%d bytes read for a file of %d"):format(read, #row * 100000))
    end
  end)

  it("sends blank lines as they are, however many come before a record", function()
    local path = dir .. "/blank.csv"
    local f = assert(io.open(path, "wb"))
    f:write("ClientId,Target,DateTime\n", ("\n"):rep(300000), "133591247640966458,GOAL1,1481718166\n")
    f:close()
    local m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
    assert(m:upload_offline_conversions { file = path })
    m:close()
    f = io.open(path, "rb")
    assert.is_truthy(server.requests()[1].body:find(f:read("a"), 1, true))
    f:close()
  end)

  it("sends the whole file in one pass when every record passes", function()
    local path = file_with("133591247640966458,GOAL1,1481718167")
    local m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
    local uploading = assert(m:upload_offline_conversions { file = path })
    m:close()
    assert.are.equal("7", tostring(uploading.id))
    local body = server.requests()[1].body
    local f = io.open(path)
    assert.is_truthy(body:find(f:read("a"), 1, true))
    f:close()
  end)
end)

describe("an upload with validate = 'header' scans the file for UTF-8 as it sends it", function()
  local server, dir, m

  before_each(function()
    server = recorder.start()
    server.answer { { method = "POST", path = "/upload", body = '{"uploading":{"id":7,"status":"UPLOADED"}}' } }
    dir = files.tmpdir()
    m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url })
  end)

  after_each(function()
    m:close()
    server.stop()
    files.remove(dir)
  end)

  -- `pad` bytes after the header, then rows of 2-, 3- and 4-byte characters: some cut by each libcurl read
  local function wide_file(pad, last)
    local path = dir .. "/wide.csv"
    local f = assert(io.open(path, "wb"))
    f:write("ClientId,Target,DateTime\n", ("1,x,1\n"):rep(pad))
    f:write(("133591247640966458,Я€😀Я😀€😀,1481718166\n"):rep(100000), last)
    f:close()
    return path
  end

  it("reads the file about once", function()
    local path = wide_file(0, "")
    local before = bytes_read()
    assert(m:upload_offline_conversions { file = path, validate = "header" })
    local read, size = bytes_read() - before, io.open(path):seek("end")
    assert.is_true(read < 1.5 * size, ("%d bytes read for a file of %d"):format(read, size))
  end)

  it("reads a file about once also for an endpoint with no schema, at either level", function()
    server.answer { { method = "POST", path = "/data/contacts/csv",
      body = '{"uploading":{"uploading_id":"u1","api_validation_status":"PASSED"}}' } }
    local path = dir .. "/contacts.csv"
    local f = assert(io.open(path, "wb"))
    f:write("uniq_id,name,emails\n", ("c-1,Анна Иванова,anna@example.com\n"):rep(100000))
    f:close()
    for _, level in ipairs { "full", "header" } do
      local before = bytes_read()
      assert(m:upload_crm { entity = "contacts", merge_mode = "SAVE", file = path, validate = level })
      local read, size = bytes_read() - before, io.open(path):seek("end")
      assert.is_true(read < 1.5 * size, ("%s: %d bytes read for a file of %d"):format(level, read, size))
    end
  end)

  it("sends characters cut by the reads whole, byte for byte", function()
    for pad = 0, 3 do
      local path = wide_file(pad, "")
      assert(m:upload_offline_conversions { file = path, validate = "header" })
      local f = io.open(path, "rb")
      assert.is_truthy(server.requests()[pad + 1].body:find(f:read("a"), 1, true), pad)
      f:close()
    end
  end)

  it("stops the body at a byte that is no UTF-8, naming its line and byte: the service gets no complete request", function()
    for i, last in ipairs { "1,G\207,1\n", "1,G,1\240\159\152" } do -- a byte of CP1251; a character cut by the file's end
      local path = wide_file(0, last)
      local _, err = m:upload_offline_conversions { file = path, validate = "header" }
      assert.are.same({ "input", "invalid_utf8", 100002 }, { err.kind, err.code, err.line })
      assert.are.equal(last:find("\207") and 4 or 6, err.column)
      local requests = server.requests()
      for _ = 1, 50 do -- the server writes down a cut request once it sees the connection close
        if #requests >= i then
          break
        end
        socket.sleep(0.1)
        requests = server.requests()
      end
      assert.are.equal(i, #requests, "the body was begun, then stopped")
      assert.is_true(#requests[i].body < io.open(path):seek("end"), "the body stopped before the file's end")
    end
  end)

  it("stops with file_changed, not a UTF-8 error, when the file is cut inside a character while it is sent", function()
    local path = wide_file(0, "")
    local text = io.open(path, "rb"):read("a")
    local cut = #text - 200
    while text:byte(cut + 1) < 0x80 or text:byte(cut + 1) >= 0xC0 do -- the file ends inside a character
      cut = cut + 1
    end
    local changed = false
    local _, err = m:upload_offline_conversions { file = path, validate = "header", progress = function(sent)
      if sent > 0 and not changed then
        changed = true
        assert(os.execute("truncate -s " .. cut .. " " .. path))
      end
    end }
    assert.are.same({ "input", "file_changed" }, { err.kind, err.code })
  end)
end)

describe("csvup validate, a file that never ends", function()
  it("ends with an error on /dev/zero", function()
    local pipe = io.popen("timeout 20 env " .. support.LUA .. " lua/bin/csvup validate offline-conversions /dev/zero 2>&1; echo \"exit $?\"")
    local output = pipe:read("a")
    pipe:close()
    assert.matches("not a regular file.*exit 2\n$", output)
  end)
end)
