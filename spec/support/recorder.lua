-- Starts spec/support/recorder_server.lua for a spec: what a client sent, byte
-- for byte, and answers the spec chooses.
local cjson = require "cjson"
local files = require "support.files"
local sandbox_support = require "support.sandbox"

local recorder = {}

-- recorder.start() -> { url, answer(list), requests(), stop() }
function recorder.start()
  local dir = files.tmpdir()
  local pipe = io.popen(("echo $$; %s spec/support/recorder_server.lua %s"):format(sandbox_support.EXEC_LUA, dir))
  local pid, port = pipe:read("l"), pipe:read("l")
  local self = { url = "http://127.0.0.1:" .. assert(port, "the recorder did not start") }

  -- answers: { { method, path = Lua pattern, status?, body } }, the first that matches;
  -- status 0: no answer, the connection is closed; $COMMENT in a body: the
  -- latest comment a request's query held, when it was letters and digits
  function self.answer(answers)
    local f = assert(io.open(dir .. "/answers.json.part", "w"))
    f:write(cjson.encode(answers))
    f:close()
    -- whole, for the server that may be reading it for a request of the spec before
    assert(os.rename(dir .. "/answers.json.part", dir .. "/answers.json"))
  end

  -- The requests received so far, oldest first: { line, head, body, raw }.
  function self.requests()
    local list = {}
    for n = 1, math.huge do
      local f = io.open(("%s/%d.http"):format(dir, n))
      if not f then
        break
      end
      local raw = f:read("a")
      f:close()
      local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
      list[n] = { line = head:match("^[^\r]*"), head = head, body = body, raw = raw }
    end
    return list
  end

  function self.stop()
    os.execute("kill " .. pid)
    pipe:close()
    files.remove(dir)
  end

  return self
end

return recorder
