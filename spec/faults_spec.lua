-- What the user sees when things go wrong: retries that never duplicate an
-- upload, and a structured error for every fault the sandbox can inject.
local csvup = require "csvup"
local socket = require "socket"
local support = require "support.sandbox"
local files = require "support.files"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"
local TOKEN = support.TOKEN

describe("retries", function()
  local m
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, backoff = { base = 0.05 },
      resolve_timeout = 0.3 })
  end)

  after_each(function()
    m:close()
  end)

  local function faults_seen()
    local seen = {}
    for i, r in ipairs(sandbox.requests()) do
      seen[i] = r.fault or "ok"
    end
    return seen
  end

  it("retries a 429 after its Retry-After", function()
    sandbox.fault { fault = "too_many_requests", retry_after = 1 }
    assert(m:upload_offline_conversions { file = CONVERSIONS })
    assert.are.same({ "too_many_requests", "ok" }, faults_seen())
  end)

  it("sends no retry of a file read before it was sent once the file has changed since", function()
    local dir = files.tmpdir()
    local cases = {
      { "journal", dir .. "/j.csv", "ClientId,Target,DateTime\n133591247640966458,GOAL1,1481718166\n",
        "not-an-id,,1481718166000\n", { journal = dir .. "/journal.sqlite3" }, {} },
      { "converted", dir .. "/c.csv", "ClientId;Target;DateTime\n133591247640966458;GOAL1;1481718166\n",
        "not-an-id;;1481718166000\n", {}, { delimiter = ";" } },
    }
    for _, case in ipairs(cases) do
      sandbox.reset()
      files.write(case[2], case[3])
      local client_opts = { token = TOKEN, counter = 1, base_url = sandbox.url }
      for k, v in pairs(case[5]) do
        client_opts[k] = v
      end
      local client = assert(csvup.metrika.new(client_opts))
      sandbox.fault { fault = "too_many_requests", retry_after = 1 }
      case[6].file = case[2]
      case[6].progress = function(sent, total) -- the row comes once the first body is sent whole
        if total > 0 and sent == total and case[4] then
          local g = assert(io.open(case[2], "a"))
          g:write(case[4])
          g:close()
          case[4] = nil
        end
      end
      local u, err = client:upload_offline_conversions(case[6])
      client:close()
      assert.is_nil(u, case[1])
      assert.are.same({ "input", "file_changed" }, { err.kind, err.code }, case[1])
      assert.are.same({ "too_many_requests" }, faults_seen(), case[1])
    end
    files.remove(dir)
  end)

  it("stops a converted file rewritten in place while it is sent with file_changed", function()
    local path = files.write(os.tmpname(), "ClientId;Target;DateTime\n"
      .. ("133591247640966458;GOAL1;1481718166\n"):rep(300000))
    local rewritten = false
    local u, err = m:upload_offline_conversions { file = path, delimiter = ";", progress = function(sent, total)
      if not rewritten and sent > 0 and sent < total / 2 then
        rewritten = true
        local g = assert(io.open(path, "r+b"))
        g:seek("set", 9000000)
        g:write("\nXXXX;;0\n") -- the same size, other bytes, near the end
        g:close()
      end
    end }
    os.remove(path)
    assert.is_true(rewritten)
    assert.is_nil(u)
    assert.are.same({ "input", "file_changed" }, { err.kind, err.code })
  end)

  it("retries a 429 without Retry-After, and 503 backend_error, with backoff", function()
    sandbox.fault { fault = "too_many_requests", count = 2 }
    sandbox.fault { fault = "backend_error" }
    assert(m:upload_offline_conversions { file = CONVERSIONS })
    assert.are.same({ "too_many_requests", "too_many_requests", "backend_error", "ok" }, faults_seen())
  end)

  it("gives up after `retries` attempts with the last error", function()
    sandbox.fault { fault = "backend_error", count = 10 }
    local ok, err = m:offline_conversion_uploadings()
    assert.is_nil(ok)
    assert.are.same({ 503, "backend_error", 4 }, { err.status, err.code, err.attempts })
    assert.are.equal(4, #sandbox.requests())
  end)

  it("does not wait for a Retry-After longer than backoff.max", function()
    local patient = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, backoff = { max = 5 } })
    sandbox.fault { fault = "too_many_requests", retry_after = 3600 }
    local _, err = patient:offline_conversion_uploadings()
    assert.are.same({ 429, 3600, 1 }, { err.status, err.retry_after, #sandbox.requests() })
    patient:close()
  end)

  it("reads a Retry-After given as an HTTP date as the seconds until then", function()
    local patient = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, backoff = { max = 5 } })
    sandbox.fault { fault = "too_many_requests", retry_after = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600) }
    local _, err = patient:offline_conversion_uploadings()
    assert.are.same({ 429, 1 }, { err.status, #sandbox.requests() })
    assert.is_true(err.retry_after > 3590 and err.retry_after <= 3600, tostring(err.retry_after))
    patient:close()
  end)

  it("retries a read that a gateway answered with a 5xx page, and never other HTTP errors", function()
    sandbox.fault { fault = "html_500", count = 3 }
    assert(m:offline_conversion_uploadings())
    assert.are.equal(4, #sandbox.requests())
    sandbox.reset()
    sandbox.fault { fault = "redirect", count = 3 }
    local _, err = m:offline_conversion_uploadings()
    assert.are.same({ 302, "http_302" }, { err.status, err.code })
    assert.are.equal(1, #sandbox.requests())
  end)

  it("re-sends an upload whose body was cut off mid-way: it cannot have been processed", function()
    sandbox.fault { fault = "reset_mid_upload" }
    assert(m:upload_offline_conversions { file = support.big_csv() })
    assert.are.same({ "reset_mid_upload", "ok" }, faults_seen())
  end)

  -- The methods of the requests the sandbox saw, in order.
  local function methods_seen()
    local seen = {}
    for i, r in ipairs(sandbox.requests()) do
      seen[i] = r.method
    end
    return seen
  end

  it("never re-sends an upload that was sent whole without an answer: outcome_unknown", function()
    sandbox.fault { fault = "drop_after_body" }
    local ok, err = m:upload_offline_conversions { file = CONVERSIONS }
    assert.is_nil(ok)
    assert.are.same({ "network", "outcome_unknown", "GOT_NOTHING" }, { err.kind, err.code, err.cause })
    assert.matches("look for it in the uploadings list", tostring(err))
    assert.matches("its marker: csvup%x+", tostring(err))
    -- one POST, then the uploadings list read for it (it was not kept: not found)
    local seen = methods_seen()
    assert.are.same({ "POST", "GET" }, { seen[1], seen[#seen] })
    assert.are.equal(1, select(2, table.concat(seen, " "):gsub("POST", "")))
  end)

  it("re-sends it anyway with retry_unsafe = true", function()
    local bold = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, retry_unsafe = true,
      backoff = { base = 0.05 } })
    sandbox.fault { fault = "drop_after_body" }
    assert(bold:upload_offline_conversions { file = CONVERSIONS })
    assert.are.same({ "drop_after_body", "ok" }, faults_seen())
    bold:close()
  end)

  it("finds an upload whose answer timed out in the uploadings list, and retries a read that timed out", function()
    local hasty = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, timeout = 0.3,
      upload_timeout = 0.3, backoff = { base = 0.05 } })
    sandbox.fault { fault = "slow", delay = 1 }
    local u = assert(hasty:upload_offline_conversions { file = CONVERSIONS }) -- kept by the service, answer lost
    assert.are.equal(3, u.line_quantity)
    assert.are.same({ "slow", "ok" }, faults_seen()) -- the upload, then the list that found it
    sandbox.fault { fault = "slow", delay = 1 }
    assert(hasty:offline_conversion_uploadings())
    assert.are.same({ "slow", "ok", "slow", "ok" }, faults_seen())
    hasty:close()
  end)

  it("retries a refused connection until the server is up", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local url = "http://127.0.0.1:" .. port
    local early = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = url, retries = 0 })
    local _, err = early:offline_conversion_uploadings()
    assert.are.equal("COULDNT_CONNECT", err.code)
    early:close()
    -- the sandbox comes up while the client is backing off
    local later = assert(io.popen("echo $$; sleep 0.5; " .. support.EXEC_LUA .. " lua/bin/csvup sandbox --port " .. port))
    local pid = later:read("l")
    local patient = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = url, retries = 8,
      backoff = { base = 0.2, max = 1 } })
    local list, late_err = patient:offline_conversion_uploadings()
    os.execute("kill " .. pid)
    later:close()
    patient:close()
    assert.is_table(list, tostring(late_err))
  end)
end)

describe("the fault matrix", function()
  local m
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = TOKEN, counter = 1, base_url = sandbox.url, retries = 0, timeout = 0.5,
      upload_timeout = 0.5, resolve_timeout = 0.3 })
  end)

  after_each(function()
    m:close()
  end)

  -- fault -> what the user sees: err.code and err.status. After the whole
  -- upload went out, only the service's own 4xx is a refusal: anything else
  -- is looked up, and stays outcome_unknown when the list does not show it.
  local MATRIX = {
    { "reset_mid_upload", "SEND_ERROR|RECV_ERROR", nil, true }, -- whichever side of the socket sees it first
    { "drop_after_body", "outcome_unknown" },
    { "html_500", "outcome_unknown", 500 },
    { "html_502", "outcome_unknown", 502 },
    { "too_many_requests", "quota_requests_by_ip", 429 },
    { "backend_error", "outcome_unknown", 503 },
    { "truncated_json", "outcome_unknown", 200 },
    { "wrong_content_type", "outcome_unknown", 200 },
    { "huge", "outcome_unknown" }, -- a 200 too large to read: whether it was kept is unknown
    { "redirect", "outcome_unknown", 302 },
  }

  local function upload(big)
    return m:upload_offline_conversions { file = big and support.big_csv() or CONVERSIONS }
  end

  for _, case in ipairs(MATRIX) do
    local fault, code, status, big = case[1], case[2], case[3], case[4]
    it(fault .. " gives " .. code .. ", leaks nothing, and the next call succeeds", function()
      assert(m:offline_conversion_uploadings()) -- the connection is open from here on
      local fds = support.open_fds()
      sandbox.fault { fault = fault, delay = 1 }
      local ok, err = upload(big)
      assert.is_nil(ok)
      assert.truthy(("|" .. code .. "|"):find("|" .. err.code .. "|", 1, true), tostring(err))
      assert.are.equal(status, err.status)
      assert.is_string(err.message)
      assert.is_nil(tostring(err):find(TOKEN, 1, true))
      assert(m:offline_conversion_uploadings())
      assert.is_true(support.open_fds() <= fds)
    end)
  end

  it("follows no redirect", function()
    sandbox.fault { fault = "redirect" }
    local _, err = m:offline_conversion_uploadings()
    assert.are.equal(302, err.status)
    assert.are.equal(1, #sandbox.requests())
  end)

  local memory_test = support.UNDER_CHECKER and pending or it
  memory_test("grows memory by less than 1 MB over 1000 failing calls", function()
    local function rss_kb()
      collectgarbage()
      collectgarbage()
      return tonumber(io.open("/proc/self/status"):read("a"):match("VmRSS:%s*(%d+)"))
    end
    sandbox.fault { fault = "html_500", count = 1100 }
    for _ = 1, 100 do
      m:offline_conversion_uploadings()
    end
    local before = rss_kb()
    for _ = 1, 1000 do
      local ok, err = m:offline_conversion_uploadings()
      assert(not ok and err.status == 500)
    end
    local growth = rss_kb() - before
    print(("\n  memory growth over 1000 failing calls: %d kB"):format(growth))
    assert.is_true(growth < 1024)
  end)

  it("keeps the token out of verbose output, even when things fail", function()
    sandbox.fault { fault = "drop_after_body" }
    local script = ([[
      local m = require("csvup").metrika.new { token = %q, counter = 1, base_url = %q, verbose = true }
      local _, err = m:upload_offline_conversions { file = %q }
      io.stderr:write(tostring(err), "\n")]]):format("tok-SECRET-42", sandbox.url, CONVERSIONS)
    local pipe = io.popen(support.LUA .. " -e '" .. script .. "' 2>&1")
    local output = pipe:read("a")
    pipe:close()
    assert.matches("outcome_unknown", output)
    assert.matches("Authorization: %[hidden%]", output)
    assert.is_nil(output:find("SECRET", 1, true))
  end)
end)
