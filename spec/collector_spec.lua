-- The README's collector recipe in a real nginx against the sandbox: events
-- gathered into batch uploads through the spool, nothing lost or sent twice
-- across kill -9 and reload, the spool's bound kept.
local socket = require "socket"
local http = require "socket.http"
local json = require "csvup.json"
local files = require "support.files"
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

-- Waits past a GMT midnight that is less than a minute away: the day's
-- upload budget starts again then.
local function past_midnight()
  local left = 86400 - os.time() % 86400
  if left < 60 then
    socket.sleep(left + 1)
  end
end

local function all_answered(result, count, log)
  assert.are.equal(count, result.answered)
  for i = 1, count do
    assert.are.equal(200, result.status[i], "event " .. i .. ": " .. tostring(result.body[i]) .. (log or ""))
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
    past_midnight()
    local n = collector.start(sandbox, support.TOKEN, { interval = 10 })
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
    -- a flush sends the spool of the worker that answers: ask until both have
    -- answered, or the interval sent the spool of one the asking never reaches
    local deadline, seen, rows, uploads = socket.gettime() + 30
    repeat
      stats(n, "POST")
      seen, rows, uploads = collector.received(sandbox)
      socket.sleep(rows == 5 and 0 or 0.05)
    until rows == 5 or socket.gettime() > deadline
    assert.are.equal(5, rows)
    assert.is_true(uploads <= 2)
    for i = 1, 5 do
      assert.are.equal(1, seen[string.format("%d", ID + i)])
    end
    local r = sandbox.requests()[1]
    assert.are.equal("/management/v1/counter/2215573/offline_conversions/upload", r.path)
    assert.matches("^ClientId,DateTime,Target\n%d+,%d+,paid\n", r.file.content)
    for _ = 1, 100 do -- a batch the interval sent is gone once its answer is in
      st = stats(n)
      if st.bytes == 0 then
        break
      end
      socket.sleep(0.1)
    end
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
    all_answered(result, 1000, n.log())
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
  it("keeps a batch whose answer was lost and whose lookup failed, and finds it by its marker instead of sending it again", function()
    local n = collector.start(sandbox, support.TOKEN, { interval = 1 }, { client = "resolve_timeout = 0.1, retries = 0," })
    finally(n.stop)
    sandbox.fault { fault = "lost_answer", path = "/offline_conversions/upload", count = 1 }
    -- the lookup right after the lost answer fails both times it looks in 0.1 s; the next flush's finds it
    sandbox.fault { fault = "backend_error", path = "/offline_conversions/uploadings", count = 2 }
    for i = 1, 10 do
      assert.are.equal(200, select(2, http.request(n.url .. order(i))))
    end
    local deadline, lookups = socket.gettime() + 30
    repeat
      socket.sleep(0.2)
      lookups = 0
      for _, r in ipairs(sandbox.requests()) do
        lookups = lookups + (r.method == "GET" and r.path:find("uploadings", 1, true) and 1 or 0)
      end
    until (lookups >= 2 and stats(n).batches == 0) or socket.gettime() > deadline
    local seen, rows, uploads = collector.received(sandbox)
    assert.are.equal(10, rows, n.log())
    assert.is_true(uploads <= 2) -- a batch from each worker at most
    for i = 1, 10 do
      assert.are.equal(1, seen[string.format("%d", ID + i)])
    end
    assert.is_true(lookups >= 3, (function() local t = {} for _, r in ipairs(sandbox.requests()) do t[#t+1] = r.method .. " " .. r.path .. " " .. tostring(r.fault) .. " " .. tostring(r.time) end return table.concat(t, "\n") .. n.log() end)()) -- the failed ones, then the one that found it
    assert.matches("outcome_unknown", n.log())
    local left = io.popen("ls " .. n.spool):read("a")
    assert.are.equal("paid.budget\npaid.bytes\n", left)
  end)

  it("keeps uploads_per_day across workers: rows wait for the next GMT day, and stats says until when", function()
    past_midnight()
    local n = collector.start(sandbox, support.TOKEN, { interval = 1, uploads_per_day = 1 })
    finally(n.stop)
    for i = 1, 3 do
      assert.are.equal(200, select(2, http.request(n.url .. order(i))))
    end
    -- rows taken after the day's one upload wait, whichever worker took them
    -- (one worker may have taken and sent all of the first)
    received(sandbox, 1, 10)
    for i = 4, 6 do
      assert.are.equal(200, select(2, http.request(n.url .. order(i))))
    end
    socket.sleep(3) -- each worker flushed twice or more
    local _, rows, uploads = collector.received(sandbox)
    assert.are.equal(1, uploads)
    local st = stats(n)
    assert.are.same({ 1, 1, 6 }, { st.uploads_today, st.uploads_per_day, rows + st.rows })
    assert.is_true(st.batches >= 1)
    assert.are.equal((os.time() // 86400 + 1) * 86400, st.waiting_until)
    assert.matches("^%d%d%d%d%-%d%d%-%d%d 1\n$", files.read(n.spool .. "/paid.budget"))
  end)

  it("sends what an earlier nginx left first, and moves a batch the checks refuse aside with its error", function()
    local n = collector.start(sandbox, support.TOKEN, nil, { seed = function(spool)
      files.write(spool .. "/paid.1-1.1.spool", "ClientId,DateTime,Target\n" .. string.format("%d", ID + 1) .. ",1481718166,paid\n")
      files.write(spool .. "/paid.2-1.1.spool", "ClientId,DateTime,Target\nnot-an-id,1481718166,paid\n")
      files.write(spool .. "/paid.3-1.1.spool", "ClientId,DateTime,Target\n") -- its worker died before a row
    end })
    finally(n.stop)
    local seen, rows, uploads = received(sandbox, 1, 10)
    assert.are.same({ 1, 1 }, { rows, uploads })
    assert.are.equal(1, seen[string.format("%d", ID + 1)])
    local st
    for _ = 1, 100 do -- until the bad batch is moved aside and the others are gone
      st = stats(n)
      if st.rejected == 1 and st.batches == 0 then
        break
      end
      socket.sleep(0.1)
    end
    assert.are.same({ 1, 0 }, { st.rejected, st.batches })
    local left = io.popen("ls " .. n.spool):read("a")
    assert.matches("^paid%.2%-1%.1%.%d+%.x%.rejected%.csv\npaid%.2%-1%.1%.%d+%.x%.rejected%.txt\npaid%.budget\n"
      .. "paid%.bytes\n$", left)
    local why = files.read(n.spool .. "/" .. left:match("[^\n]*%.rejected%.txt"))
    assert.matches("ClientId", why) -- the check's error names the column

  end)
end)
