-- OpenResty: /ping latency while a 200 MB upload runs, in a worker thread
-- through csvup.ngx, and called directly in the handler; the answer time of
-- events taken by the README's collector recipe (3,000 events, 100 clients).
local socket = require "socket"
local http = require "socket.http"
local common = require "bench.common"
local collector = require "support.collector"
local load = require "support.load"
local openresty = require "support.openresty"
local support = require "support.sandbox"

-- Pings until the upload's answer is in; the latencies in ms, sorted.
local function pings_during(nginx, location, path)
  local upload = assert(socket.connect("127.0.0.1", nginx.port))
  upload:send(("GET %s?file=%s HTTP/1.0\r\nHost: localhost\r\n\r\n"):format(location, path))
  local latencies = {}
  repeat
    local started = socket.gettime()
    assert(http.request(nginx.url .. "/ping"))
    latencies[#latencies + 1] = (socket.gettime() - started) * 1000
  until #socket.select({ upload }, nil, 0) > 0
  upload:receive("*a")
  upload:close()
  table.sort(latencies)
  return latencies
end

return function()
  local sandbox = support.start()
  local nginx = openresty.start(sandbox.url, support.TOKEN)
  local path = common.conversions_file(200)
  local rows = {}
  for _, case in ipairs { { "/upload", "worker thread" }, { "/upload-direct", "direct, blocking call" } } do
    local l = pings_during(nginx, case[1], path)
    rows[#rows + 1] = { "/ping during a 200 MB upload: " .. case[2], nil,
      ("%d pings, median %.1f ms, max %.1f ms"):format(#l, l[(#l + 1) // 2], l[#l]) }
  end
  nginx.stop()
  sandbox.reset()
  local recipe = collector.start(sandbox, support.TOKEN, { interval = 1 })
  local result = load.run { port = recipe.port, count = 3000, concurrency = 100, seconds = 120,
    path = function(i) return ("/order-paid?client_id=%d"):format(1000000 + i) end }
  local deadline = socket.gettime() + 30
  local _, received, uploads = collector.received(sandbox)
  while received < 3000 and socket.gettime() < deadline do
    socket.sleep(0.2)
    _, received, uploads = collector.received(sandbox)
  end
  recipe.stop()
  rows[#rows + 1] = { "collector recipe: 3,000 events from 100 clients", { result.seconds },
    ("answer time p50 %.1f ms, p99 %.1f ms (goal: p99 <= 50 ms); %d answered, %d rows in %d uploads")
      :format(load.percentile(result.latency, 50), load.percentile(result.latency, 99), result.answered,
        received, uploads) }
  sandbox.stop()
  return rows
end
