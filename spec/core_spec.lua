-- csvup.core: connections, keep-alive, headers, callbacks, errors, exact JSON.
local csvup = require "csvup"
local core = require "csvup.core"
local EP = require("csvup.registry").endpoint
local json = require "csvup.json"
local support = require "support.sandbox"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

describe("csvup.core", function()
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function client()
    return assert(csvup.metrika.new { token = support.TOKEN, counter = 42, base_url = sandbox.url })
  end

  it("offers one request that knows no endpoint, and exposes the versions", function()
    assert.is_function(core.request)
    for name in pairs(EP) do
      assert.is_nil(core[name], name)
    end
    -- what each endpoint is lives in csvup.registry alone
    assert.are.equal("", io.popen("grep -rlE 'management/v1|cdp/api|users/import|offline_conversions' src"):read("a"))
    assert.matches("^%d+%.%d+%.%d+$", csvup.VERSION)
    assert.are.equal(core.VERSION, csvup.VERSION)
  end)

  it("reuses one connection across reads (keep-alive), and gives each upload its own", function()
    local m = client()
    assert(m:offline_conversion_uploadings())
    assert(m:upload_offline_conversions { file = CONVERSIONS })
    assert(m:expense_uploadings())
    local requests = sandbox.requests()
    assert.are.equal(3, #requests)
    assert.are.equal(requests[1].connection, requests[3].connection)
    assert.are_not.equal(requests[1].connection, requests[2].connection)
    m:close()
  end)

  it("identifies itself as csvup and libcurl, after the user's own agent", function()
    local m = client()
    assert(m:expense_uploadings())
    assert.are.equal("csvup/" .. csvup.VERSION .. " libcurl/" .. core.CURL_VERSION, sandbox.requests()[1].headers["user-agent"])
    local named = assert(csvup.metrika.new { token = support.TOKEN, counter = 42, base_url = sandbox.url, user_agent = "nightly-sync/2" })
    assert(named:expense_uploadings())
    assert.matches("^nightly%-sync/2 csvup/", sandbox.requests()[2].headers["user-agent"])
    m:close()
    named:close()
  end)

  it("closes idempotently, and a closed client answers nil, err", function()
    local m = client()
    m:close()
    m:close()
    local result, err = m:expense_uploadings()
    assert.is_nil(result)
    assert.are.equal("closed", err.code)
  end)

  it("closes at the end of a <close> scope", function()
    local escaped
    do
      local m <close> = client()
      escaped = m
    end
    assert.matches("closed", tostring(escaped.conn))
  end)

  it("frees every handle and socket when clients are collected", function()
    collectgarbage()
    local before = support.open_fds()
    for _ = 1, 30 do
      assert(client():expense_uploadings())
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(support.open_fds() <= before) -- a descriptor an earlier spec left to the collector may close meanwhile
  end)

  it("reports upload progress in the file's bytes, ending at the whole file", function()
    local m = client()
    local calls, last_sent, last_total = 0, -1, 0
    assert(m:upload_offline_conversions { file = CONVERSIONS, progress = function(sent, total)
      assert.is_true(sent >= last_sent)
      calls, last_sent, last_total = calls + 1, sent, total
    end })
    assert.is_true(calls >= 1)
    assert.are.equal(last_total, last_sent)
    local f = assert(io.open(CONVERSIONS, "rb"))
    assert.are.equal(#f:read("a"), last_total)
    f:close()
    assert.is_true(tonumber(sandbox.requests()[1].headers["content-length"]) > last_total) -- the part headers
    m:close()
  end)

  it("aborts the transfer when the progress callback raises, and the client goes on", function()
    local m = client()
    local result, err = m:upload_offline_conversions { file = CONVERSIONS, progress = function()
      error("stop here")
    end }
    assert.is_nil(result)
    assert.are.equal("callback_error", err.code)
    assert.matches("stop here", tostring(err))
    assert(m:offline_conversion_uploadings())
    m:close()
  end)

  it("hides the token in verbose output", function()
    local script = ([[
      local m = require("csvup").metrika.new { token = "tok-SECRET-123", counter = 1, base_url = %q, verbose = true }
      m:expense_uploadings()]]):format(sandbox.url)
    local pipe = io.popen(support.LUA .. " -e '" .. script .. "' 2>&1")
    local output = pipe:read("a")
    pipe:close()
    assert.matches("> Authorization: %[hidden%]", output)
    assert.matches("> GET /management/v1/counter/1/expense/uploadings", output)
    assert.is_nil(output:find("SECRET", 1, true))
  end)

  it("gives errors a readable one-line form", function()
    assert.are.equal("HTTP 400 invalid_parameter: bad", tostring(core.error { status = 400, code = "invalid_parameter", message = "bad" }))
    assert.are.equal("a.csv:3:7: malformed_csv: oops",
      tostring(core.error { file = "a.csv", line = 3, column = 7, code = "malformed_csv", message = "oops" }))
  end)

  it("refuses an unknown query parameter", function()
    local m = client()
    local result, err = core.request(m.conn, EP.upload_calls, { counter = 42, file = CONVERSIONS, query = { comentt = "x" } })
    assert.is_nil(result)
    assert.matches("unknown query parameter 'comentt'", err.message)
    assert.are.same({}, sandbox.requests())
    m:close()
  end)
end)

describe("csvup.json", function()
  it("reads integers exactly, int64 ids included", function()
    local v = assert(json.decode('{"id":133591247640966458,"n":3,"f":1.5,"s":"-12345678901234567","big":99999999999999999999}'))
    assert.are.equal(133591247640966458, v.id)
    assert.are.equal("integer", math.type(v.n))
    assert.are.equal(1.5, v.f)
    assert.are.equal("-12345678901234567", v.s)
    assert.are.equal("99999999999999999999", v.big)
  end)

  it("writes integers exactly", function()
    assert.are.equal('{"uploading":{"id":9007199254740993}}', json.encode { uploading = { id = 9007199254740993 } })
    assert.are.equal('[123456789012345678901]', json.encode { json.raw_number("123456789012345678901") })
  end)
end)
