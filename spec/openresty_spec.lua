-- Inside nginx: csvup.ngx runs a 200 MB upload in a worker thread while the
-- event loop keeps answering; called directly, the same upload stalls it.
local socket = require "socket"
local http = require "socket.http"
local support = require "support.sandbox"
local openresty = require "support.openresty"
local files = require "support.files"
local load = require "support.load"

local ROWS = 5825000 -- 36 bytes each: 200 MB

describe("OpenResty", function()
  local sandbox, nginx, dir, path

  setup(function()
    assert(io.open("build/luajit/csvup/core.so"), "build the LuaJIT module first: make luajit"):close()
    sandbox = support.start()
    nginx = openresty.start(sandbox.url, support.TOKEN)
    dir = files.tmpdir()
    path = dir .. "/conversions.csv"
    assert(os.execute(("{ echo ClientId,Target,DateTime; yes 133591247640966458,GOAL1,1481718166 2>/dev/null | head -n %d; } > %s")
      :format(ROWS, path)))
  end)

  teardown(function()
    nginx.stop()
    sandbox.stop()
    files.remove(dir)
  end)

  before_each(function()
    sandbox.reset()
  end)

  -- Starts the upload on its own connection, then pings until the upload's
  -- answer is in. Returns the pings ({ latency, during }) and the answer.
  local function upload_while_pinging(location)
    local upload = assert(socket.connect("127.0.0.1", nginx.port))
    upload:send(("GET %s?file=%s HTTP/1.0\r\nHost: localhost\r\n\r\n"):format(location, path))
    local pings = {}
    repeat
      local started = socket.gettime()
      local body, status = http.request(nginx.url .. "/ping")
      assert.are.same({ "pong\n", 200 }, { body, status })
      -- nginx writes the upload's answer before it serves a ping queued behind it
      local done = #socket.select({ upload }, nil, 0) > 0
      pings[#pings + 1] = { latency = socket.gettime() - started, during = not done }
    until done
    local answer = upload:receive("*a")
    upload:close()
    return pings, answer
  end

  local function summary(pings)
    local latencies = {}
    for i, p in ipairs(pings) do
      latencies[i] = p.latency * 1000
    end
    table.sort(latencies)
    return ("%d pings, median %.1f ms, max %.1f ms"):format(#pings, latencies[(#latencies + 1) // 2], latencies[#latencies])
  end

  it("uploads through a worker thread while every ping is answered", function()
    local pings, answer = upload_while_pinging("/upload")
    assert.matches("uploading %d+ UPLOADED", answer, nil, false, nginx.log())
    assert.are.equal(1, #sandbox.requests())
    assert.are.equal(ROWS * 36 + #"ClientId,Target,DateTime\n", sandbox.requests()[1].file.size)
    local during = 0
    for _, p in ipairs(pings) do
      during = during + (p.during and 1 or 0)
    end
    print("\n  /ping during a worker-thread upload: " .. summary(pings))
    assert.is_true(during >= 3, "pings answered while the upload ran: " .. during)
    assert.are.equal(#pings - 1, during) -- all but the one that saw the answer arrive
  end)

  it("stalls the event loop when called directly, for contrast", function()
    local pings, answer = upload_while_pinging("/upload-direct")
    assert.matches("uploading %d+ UPLOADED", answer)
    print("\n  /ping during a direct, blocking upload: " .. summary(pings))
    assert.are.equal(1, #pings) -- the first ping waited for the whole upload
    assert.is_false(pings[1].during)
  end)

  it("runs 200 concurrent uploads, each waiting for a free worker-thread VM instead of failing", function()
    local small = files.write(dir .. "/small.csv", "ClientId,Target,DateTime\n133591247640966458,GOAL1,1481718166\n")
    local result = load.run { port = nginx.port, count = 200, concurrency = 200, seconds = 300,
      path = function() return "/upload?file=" .. small end }
    assert.are.equal(200, result.answered)
    for i = 1, 200 do
      assert.matches("uploading %d+ UPLOADED", result.body[i], nil, false, nginx.log())
    end
    assert.are.equal(200, sandbox.posts())
    print(("\n  200 concurrent csvup.ngx.call uploads: all done in %.1f s"):format(result.seconds))
  end)

  it("says clearly that csvup.ngx needs OpenResty when called outside it", function()
    local result, err = require("csvup.ngx").call("csvup_pool", "metrika", "offline_conversion_uploadings", {}, {})
    assert.is_nil(result)
    assert.are.equal("not_openresty", err.code)
    assert.matches("needs OpenResty", tostring(err))
  end)
end)
