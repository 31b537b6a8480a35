-- Runs the sandbox as its own process (`csvup sandbox --port 0`) for a spec,
-- and reads back what it received.
local http = require "socket.http"
local ltn12 = require "ltn12"
local json = require "csvup.json"

local ENV = [[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;"]]

local support = {
  TOKEN = "sandbox-token",
  LUA = ENV .. " lua5.4", -- with the checkout's modules, for specs that run a child process
}

local COMMAND = "echo $$; " .. ENV .. " exec lua5.4 lua/bin/csvup sandbox --port 0"

local function control(url, method)
  local chunks = {}
  local ok, status = http.request { url = url, method = method, sink = ltn12.sink.table(chunks) }
  assert(ok and status == 200, "sandbox control request failed: " .. tostring(status))
  return json.decode(table.concat(chunks))
end

-- support.start{ ["process-delay"] = 0.2, ... } -> sandbox
function support.start(flags)
  local command = COMMAND
  for name, value in pairs(flags or {}) do
    command = command .. " --" .. name .. " " .. value
  end
  local pipe = assert(io.popen(command, "r"))
  local pid = pipe:read("l")
  local line = pipe:read("l") or ""
  local url = assert(line:match("listening on (%S+)"), "the sandbox did not start: " .. line)
  local sandbox = { url = url, pid = pid }

  function sandbox.requests()
    return control(url .. "/_sandbox/requests", "GET").requests
  end

  function sandbox.reset()
    control(url .. "/_sandbox/reset", "POST")
  end

  function sandbox.stop()
    os.execute("kill " .. pid)
    pipe:close()
  end

  return sandbox
end

return support
