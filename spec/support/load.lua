-- A small HTTP load generator for specs and benchmarks: count GET requests
-- over loopback, concurrency at a time, one HTTP/1.0 connection each, in one
-- process (luasocket, non-blocking, select). A request that gets no answer
-- (nginx down, the connection reset) is sent again until answered, within
-- the overall time bound.
local socket = require "socket"

local load = {}

-- load.run{ port, count, concurrency, path = function(i) -> "/..." end,
--   seconds (bound, 120), between = function(done) end (after each answer) }
-- -> { status = { [i] = code }, latency = { [i] = seconds of the answered attempt },
--      resent = { [i] = true when an attempt was sent whole and its answer lost },
--      sent_at = { [i] = when the answered attempt started },
--      seconds = the run's wall time }
function load.run(o)
  local started = socket.gettime()
  local deadline = started + (o.seconds or 120)
  local result = { status = {}, latency = {}, resent = {}, body = {}, sent_at = {} }
  local next_i, done, clients = 1, 0, {}

  local function start(client, i)
    local s = socket.tcp()
    s:settimeout(0)
    s:connect("127.0.0.1", o.port)
    client.sock, client.i, client.sent, client.buf = s, i, 0, {}
    client.request = ("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n"):format(o.path(i))
    client.t0 = socket.gettime()
  end

  local function retry(client)
    client.sock:close()
    if client.sent == #client.request then
      result.resent[client.i] = true
    end
    client.sock = nil
    client.wait_until = socket.gettime() + 0.02
  end

  for k = 1, math.min(o.concurrency, o.count) do
    clients[k] = {}
    start(clients[k], next_i)
    next_i = next_i + 1
  end

  while done < o.count and socket.gettime() < deadline do
    local readers, writers, by_sock = {}, {}, {}
    for _, c in ipairs(clients) do
      if c.sock then
        by_sock[c.sock] = c
        if c.sent < #c.request then
          writers[#writers + 1] = c.sock
        else
          readers[#readers + 1] = c.sock
        end
      elseif c.i and c.wait_until and socket.gettime() >= c.wait_until then
        c.wait_until = nil
        start(c, c.i)
      end
    end
    local r, w = socket.select(readers, writers, 0.01)
    for _, s in ipairs(w) do
      local c = by_sock[s]
      local n, err, partial = s:send(c.request, c.sent + 1)
      n = n or partial
      if err and err ~= "timeout" then
        retry(c)
      else
        c.sent = n
      end
    end
    for _, s in ipairs(r) do
      local c = by_sock[s]
      local data, err, partial = s:receive(8192)
      data = data or partial
      if data and #data > 0 then
        c.buf[#c.buf + 1] = data
      end
      if err == "closed" then
        local text = table.concat(c.buf)
        local status = tonumber(text:match("^HTTP/1%.%d (%d%d%d)"))
        if not status then
          retry(c)
        else
          s:close()
          result.status[c.i], result.latency[c.i], result.sent_at[c.i] = status, socket.gettime() - c.t0, c.t0
          result.body[c.i] = text:match("\r\n\r\n(.*)$")
          done = done + 1
          if o.between then
            o.between(done)
          end
          c.sock, c.i = nil, nil
          if next_i <= o.count then
            start(c, next_i)
            next_i = next_i + 1
          end
        end
      elseif err and err ~= "timeout" then
        retry(c)
      end
    end
  end
  for _, c in ipairs(clients) do
    if c.sock then
      c.sock:close()
    end
  end
  result.answered, result.seconds = done, socket.gettime() - started
  return result
end

-- The p-th percentile (0..100) of the values of a table, in ms.
function load.percentile(values, p)
  local sorted = {}
  for _, v in pairs(values) do
    sorted[#sorted + 1] = v * 1000
  end
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(#sorted * p / 100))] or 0
end

return load
