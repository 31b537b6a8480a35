-- The sandbox against clients that misbehave: malformed and oversized heads,
-- silent and too many connections, a large upload; and what it lets anyone read.
local support = require "support.sandbox"
local socket = require "socket"
local ltn12 = require "ltn12"
local http = require "socket.http"

-- Every wait of these specs is bounded by this many seconds.
local WAIT = 10

local function connect(url)
  local host, port = url:match("^http://([^:]+):(%d+)$")
  local sock = assert(socket.connect(host, tonumber(port)))
  sock:settimeout(WAIT)
  return sock
end

-- Sends raw bytes; returns the status of the answer and whether the server then closed.
local function exchange(url, bytes)
  local sock = connect(url)
  sock:send(bytes)
  local line = sock:receive("*l")
  local status = line and tonumber(line:match("^HTTP/1%.1 (%d+)"))
  local _, err = sock:receive("*a")
  sock:close()
  return status, err == nil or err == "closed"
end

local function stats_status(url)
  local _, status = http.request { url = url .. "/_sandbox/stats", create = function()
    local s = socket.tcp()
    s:settimeout(WAIT)
    return s
  end }
  return status
end

describe("sandbox robustness", function()
  local sandbox = support.sandbox { options = { idle_timeout = 1, max_connections = 8 } }
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function post_head(length_lines)
    return "POST /management/v1/counter/1/expense/delete_single HTTP/1.1\r\nHost: x\r\n" .. length_lines .. "\r\n"
  end

  it("refuses a Content-Length that is not a number of bytes, and keeps serving", function()
    for _, lines in ipairs {
      "Content-Length: 1.5\r\n", "Content-Length: abc\r\n", "Content-Length: -1\r\n",
      "Content-Length: 10\r\nContent-Length: 20\r\n",
    } do
      local status, closed = exchange(sandbox.url, post_head(lines) .. "0123456789")
      assert.are.equal(400, status, lines)
      assert.is_true(closed)
      assert.are.equal(200, stats_status(sandbox.url))
    end
  end)

  it("refuses header lines and heads over their limits with 431", function()
    local status, closed = exchange(sandbox.url, post_head("X-Big: " .. ("a"):rep(30 * 1024) .. "\r\n"))
    assert.are.equal(431, status)
    assert.is_true(closed)
    status = exchange(sandbox.url, "GET /" .. ("a"):rep(30 * 1024) .. " HTTP/1.1\r\n\r\n")
    assert.are.equal(431, status)
    status = exchange(sandbox.url, post_head(("X-Some: 0123456789012345678901234567890123456789\r\n"):rep(2000)))
    assert.are.equal(431, status)
  end)

  it("serves others while a client sends a long header line slowly", function()
    local slow = connect(sandbox.url)
    slow:send("GET /_sandbox/stats HTTP/1.1\r\nX-Slow: " .. ("a"):rep(6000))
    assert.are.equal(200, stats_status(sandbox.url))
    slow:send(("a"):rep(24 * 1024) .. "\r\n\r\n")
    local line = slow:receive("*l")
    assert.are.equal("HTTP/1.1 431 Request Header Fields Too Large", line)
    slow:close()
  end)

  it("closes a connection that stays silent", function()
    local sock = connect(sandbox.url)
    local data, err, partial = sock:receive("*a")
    sock:close()
    assert.are_not.equal("timeout", err) -- closed by the sandbox, not given up on here
    assert.are.equal("", data or partial)
  end)

  it("answers 503 to connections over its limit, and serves again once they are gone", function()
    local held = {}
    for i = 1, 8 do
      held[i] = connect(sandbox.url)
    end
    local status, closed = exchange(sandbox.url, "GET /_sandbox/stats HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(503, status)
    assert.is_true(closed)
    for _, sock in ipairs(held) do
      sock:close()
    end
    local answered
    for _ = 1, 50 do -- the sandbox notices the closed connections on its next round
      answered = stats_status(sandbox.url)
      if answered == 200 then
        break
      end
      socket.sleep(0.1)
    end
    assert.are.equal(200, answered)
  end)

  it("does not serve the Authorization values it received", function()
    support.call(sandbox.url, { path = "/management/v1/counter/1/goals", token = "OAuth y0_secret-token-7Xq" })
    local _, text = support.call(sandbox.url, { path = "/_sandbox/requests", token = false })
    local requests = text.requests
    assert.are.equal("OAuth [hidden]", requests[1].headers.authorization)
    local raw = http.request(sandbox.url .. "/_sandbox/requests")
    assert.is_nil(raw:find("secret-token", 1, true))
  end)
end)

describe("sandbox under load", function()
  -- opening 1,100 connections can take longer than the default idle timeout
  -- (30 s) on a busy machine: the first would be closed before the count
  local sandbox = support.sandbox { options = { idle_timeout = 300 } }
  setup(sandbox.start)
  teardown(sandbox.stop)

  it("outlives 1,100 connections at once", function()
    local held = {}
    for i = 1, 1100 do
      held[i] = connect(sandbox.url)
    end
    local status = exchange(sandbox.url, "GET /_sandbox/stats HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(503, status)
    for _, sock in ipairs(held) do
      sock:close()
    end
    local answered
    for _ = 1, 100 do
      answered = stats_status(sandbox.url)
      if answered == 200 then
        break
      end
      socket.sleep(0.1)
    end
    assert.are.equal(200, answered)
  end)

  it("keeps an upload on disk, not in memory", function()
    if support.UNDER_CHECKER then
      return -- memory figures would measure the checker
    end
    local rows = 7 * 1000 * 1000 -- 105 MB
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("ClientId,Target,DateTime\n")
    local block = ("1,G,1481718166\n"):rep(10000)
    for _ = 1, rows / 10000 do
      f:write(block)
    end
    f:close()
    local size = 25 + rows * 15
    local boundary = "sandbox-spec-boundary"
    local head = "--" .. boundary .. '\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
      .. "Content-Type: text/csv\r\n\r\n"
    local tail = "\r\n--" .. boundary .. "--\r\n"
    local chunks = {}
    local _, status = http.request {
      url = sandbox.url .. "/management/v1/counter/1/offline_conversions/upload", method = "POST",
      headers = { authorization = "OAuth " .. support.TOKEN, ["content-length"] = #head + size + #tail,
        ["content-type"] = "multipart/form-data; boundary=" .. boundary },
      source = ltn12.source.cat(ltn12.source.string(head), ltn12.source.file(assert(io.open(path, "rb"))),
        ltn12.source.string(tail)),
      sink = ltn12.sink.table(chunks),
    }
    os.remove(path)
    assert.are.equal(200, status, table.concat(chunks))
    assert.matches('"source_quantity":' .. rows, table.concat(chunks), 1, true)
    assert.is_true(sandbox.peak_kb() < 64 * 1024, "peak memory " .. sandbox.peak_kb() .. " kB")
  end)
end)
