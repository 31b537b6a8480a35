-- Debian's nginx run from a temporary prefix, in the foreground, for specs
-- and benchmarks.
local socket = require "socket"
local files = require "support.files"

local nginx = {}

function nginx.free_port()
  local probe = assert(socket.bind("127.0.0.1", 0))
  local _, port = probe:getsockname()
  probe:close()
  return port
end

-- Whether something answers on port within 10 s.
function nginx.wait(port)
  for _ = 1, 200 do
    local client = socket.connect("127.0.0.1", port)
    if client then
      client:close()
      return true
    end
    socket.sleep(0.05)
  end
  return false
end

-- Runs a shell command that execs nginx and waits until port answers;
-- returns the function that stops it, and the process id nginx runs as.
function nginx.run(command, port)
  local pipe = assert(io.popen("echo $$; " .. command))
  local pid = pipe:read("l")
  nginx.wait(port)
  return function()
    os.execute("kill " .. pid)
    pipe:close()
  end, pid
end

-- Starts nginx with config (whose paths are under dir) and waits until port
-- answers; returns the function that stops it, and its process id (one
-- process, with master_process off).
function nginx.start(dir, port, config)
  files.write(dir .. "/nginx.conf", config)
  return nginx.run(("exec nginx -p %s -c %s/nginx.conf -e %s/error.log 2>&1"):format(dir, dir, dir), port)
end

return nginx
