-- The README's collector recipe in a real nginx against the sandbox: events
-- gathered into batch uploads through the spool, nothing lost or sent twice
-- across kill -9 and reload, the spool's bound kept.
local socket = require "socket"
local http = require "socket.http"
local json = require "csvup.json"
local support = require "support.sandbox"
local collector = require "support.collector"
local load = require "support.load"

local ID = 133591247640966000 -- event i is the conversion of ClientId ID + i

local function order(i)
  return "/order-paid?client_id=" .. string.format("%d", ID + i)
end

local function stats(n, method)
  local chunks = {}
  local _, status = http.request { url = n.url .. "/csvup/paid", method = method or "GET",
    sink = require("ltn12").sink.table(chunks) }
  return json.decode(table.concat(chunks)), status
end

-- Waits (bounded) until the sandbox holds count rows; what it received.
local function received(sandbox, count, seconds)
  local deadline = socket.gettime() + (seconds or 30)
  while true do
    local seen, rows, uploads = collector.received(sandbox)
    if rows >= count or socket.gettime() > deadline then
      return seen, rows, uploads
    end
    socket.sleep(0.2)
  end
end

local function all_answered(result, count)
  assert.are.equal(count, result.answered)
  for i = 1, count do
    assert.are.equal(200, result.status[i], "event " .. i .. ": " .. tostring(result.body[i]))
  end
end

-- Each event's id arrived once; an event the client sent again after a lost
-- answer (nginx killed between taking it and answering) at most twice.
local function exactly_once(seen, result, count)
  local twice = 0
  for i = 1, count do
    local times = seen[string.format("%d", ID + i)]
    if result.resent[i] and times == 2 then
      twice = twice + 1
    else
      assert.are.equal(1, times, "event " .. i)
    end
  end
  return twice
end

describe("the README's collector recipe", function()
  local sandbox = support.sandbox()

  setup(function()
    assert(io.open("build/luajit/csvup/core.so"), "build the LuaJIT module first: make luajit"):close()
    sandbox.start()
  end)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  it("takes orders as pasted, shows them in stats, and sends them as one upload per worker on a flush", function()
    local n = collector.start(sandbox, support.TOKEN)
    finally(n.stop)
    for i = 1, 5 do
      local body, status = http.request(n.url .. order(i))
      assert.are.same({ "ok\n", 200 }, { body, status }, n.log())
    end
    local _, status = http.request(n.url .. "/order-paid")
    assert.are.equal(400, status)
    local st = stats(n)
    assert.is_true(st.bytes > 0)
    assert.are.same({ 0, 1000 }, { st.uploads_today, st.uploads_per_day })
    assert.are.equal(0, #sandbox.requests()) -- nothing sent before the interval or a flush
    -- a flush sends the spool of the worker that answers: ask until both have answered
    for _ = 1, 20 do
      stats(n, "POST")
      if select(2, collector.received(sandbox)) == 5 then
        break
      end
    end
    local seen, rows, uploads = collector.received(sandbox)
    assert.are.equal(5, rows)
    assert.is_true(uploads <= 2)
    for i = 1, 5 do
      assert.are.equal(1, seen[string.format("%d", ID + i)])
    end
    local r = sandbox.requests()[1]
    assert.are.equal("/management/v1/counter/2215573/offline_conversions/upload", r.path)
    assert.matches("^ClientId,DateTime,Target\n%d+,%d+,paid\n", r.file.content)
    st = stats(n)
    assert.are.same({ 0, 0, 0 }, { st.bytes, st.batches, st.rejected })
    assert.are.equal(uploads, st.uploads_today)
  end)

  it("delivers 3,000 events from 100 clients exactly once in a few uploads, nginx killed (-9) and restarted halfway", function()
    local n = collector.start(sandbox, support.TOKEN, { interval = 1 })
    finally(n.stop)
    local killed, restarted
    local result = load.run { port = n.port, count = 3000, concurrency = 100, path = order, seconds = 120,
      between = function(done)
        if done == 1500 and not killed then
          killed = socket.gettime()
          n.kill()
          n.start()
          restarted = socket.gettime()
        end
      end }
    all_answered(result, 3000)
    local seen, rows, uploads = received(sandbox, 3000)
    local twice = exactly_once(seen, result, 3000)
    local resent, steady = 0, {}
    for _ in pairs(result.resent) do
      resent = resent + 1
    end
    for i, latency in pairs(result.latency) do -- the answers of events sent while nginx ran
      if result.sent_at[i] + latency < killed or result.sent_at[i] > restarted then
        steady[#steady + 1] = latency
      end
    end
    print(("\n  3,000 events, 100 clients, kill -9 halfway: answer time p50 %.1f ms, p99 %.1f ms (all: p99 %.1f ms, "
      .. "max %.1f ms, over the restart); %d uploads, %d rows; %d sent again after a lost answer (%d arrived twice)")
      :format(load.percentile(steady, 50), load.percentile(steady, 99), load.percentile(result.latency, 99),
        load.percentile(result.latency, 100), uploads, rows, resent, twice))
    assert.is_true(uploads <= 20, uploads .. " uploads")
    assert.is_truthy(killed)
  end)

  it("loses nothing across a reload (HUP) in the middle", function()
    local n = collector.start(sandbox, support.TOKEN, { interval = 1 })
    finally(n.stop)
    local result = load.run { port = n.port, count = 1000, concurrency = 20, path = order, seconds = 60,
      between = function(done)
        if done == 500 then
          n.reload()
        end
      end }
    all_answered(result, 1000)
    local seen, rows = received(sandbox, 1000)
    assert.are.equal(1000, rows)
    exactly_once(seen, result, 1000)
  end)

  it("refuses a row with spool_full once the spool holds max_spool_bytes, and takes rows again once sent", function()
    local n = collector.start(sandbox, support.TOKEN, { max_spool_bytes = 300 })
    finally(n.stop)
    local refused
    for i = 1, 30 do
      local body, status = http.request(n.url .. order(i))
      if status == 503 then
        refused = refused or i
        assert.are.equal("spool_full\n", body)
      else
        assert.are.equal(200, status, n.log())
      end
    end
    assert.is_truthy(refused, "never refused")
    assert.is_true(stats(n).bytes <= 300)
    assert.matches("spool_full", n.log())
    for _ = 1, 20 do -- once sent, rows are taken again
      if stats(n, "POST").bytes == 0 then
        break
      end
    end
    local body, status = http.request(n.url .. order(31))
    assert.are.same({ "ok\n", 200 }, { body, status })
  end)
end)
