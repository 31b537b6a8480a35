-- Rows and files are checked against the endpoint's schema before anything is sent.
local csvup = require "csvup"
local core = require "csvup.core"
local validate = require "csvup.validate"
local support = require "support.sandbox"
local files = require "support.files"

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

  it("refuses an unknown column, suggesting the one meant", function()
    local err = problems_of("offline_conversions", { { clientid = "1", Target = "G", DateTime = 1 } })
    assert.matches("clientid: is not a column this endpoint knows %(did you mean ClientId%?%)", reasons(err))
  end)

  it("refuses header names with spaces or invisible characters", function()
    local err = problems_of("expenses", { { ["Date "] = "2026-11-01", Expenses = 1, UTMSource = "fb" } })
    assert.matches("the column name has a leading or trailing space", reasons(err))
    err = problems_of("carrotquest_users", { { ["\226\128\139$user_id"] = "1" } }, { merge_field = "$user_id" })
    assert.matches("U%+200B zero%-width space", reasons(err))
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
    assert.matches("TalkDuration: %-5 is not a whole number", reasons(err))
  end)

  it("for Carrot quest: the merge column, tidy key values, $ names, numbers within 2^53, strings of 255", function()
    local ctx = { merge_field = "$email" }
    assert.is_true(validate.rows("carrotquest_users", { { ["$email"] = "a@b.c", ["$name"] = "A", plan = "gold", visits = 12 } }, ctx))
    local err = problems_of("carrotquest_users", {
      { ["$email"] = " a@b.c", ["$nick"] = "x", big = 2 ^ 60, note = ("я"):rep(256) },
      { ["$email"] = "", ["$nick"] = "y", big = 1, note = "" },
    }, ctx)
    local text = reasons(err)
    assert.matches("%$nick: starts with %$, which is for system properties", text)
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
    local bad_header = file("h.csv", "ClientId,Target,Datetime\n1,G,1\n")
    local _, err = m:upload_offline_conversions { file = bad_header }
    assert.matches("h%.csv: validation_failed: .*line 1, Datetime: is not a column this endpoint knows %(did you mean DateTime%?%)",
      tostring(err))
    local bad_row = file("r.csv", "ClientId,Target,DateTime\n1,G,1\n2,G,1481718166000\n")
    _, err = m:upload_offline_conversions { file = bad_row }
    assert.are.same({ line = 3, column = "DateTime" }, { line = err.problems[1].line, column = err.problems[1].column })
    assert.are.equal("input", err.kind)
    _, err = m:upload_offline_conversions { file = bad_row, validate = "header" } -- sent: only the API sees the row
    assert.are.equal(400, err.status)
    assert.are.equal(1, #sandbox.requests())
    _, err = m:upload_offline_conversions { file = bad_header, validate = false }
    assert.matches('unknown column "Datetime"', err.message) -- the API's word now
    assert.are.equal(2, #sandbox.requests())
  end)

  it("scans a file for invalid UTF-8 and names line and byte", function()
    local latin1 = file("cp1251.csv", "ClientId,Target,DateTime\n1,G,1\n2,\207\240\232\226\229\242,1\n")
    local _, err = m:upload_offline_conversions { file = latin1 }
    assert.are.equal("invalid_utf8", err.code)
    assert.are.same({ 3, 3 }, { err.line, err.column })
    assert.matches("cp1251%.csv: line 3, byte 3 of the line is not valid UTF%-8", err.message)
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
