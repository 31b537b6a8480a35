-- An HTTPS front for the sandbox: Debian's nginx with a throwaway self-signed
-- certificate for 127.0.0.1, made by openssl for this run.
local socket = require "socket"

local tls = {}

local CONFIG = [[
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/cert.pem;
    ssl_certificate_key %s/key.pem;
    client_max_body_size 0;
    location / {
      proxy_pass %s;
      proxy_http_version 1.1;
      proxy_request_buffering off;
    }
  }
}
]]

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- tls.start(upstream_url) -> { url, ca_file, stop() }
function tls.start(upstream)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 "
    .. "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"):format(dir, dir)))
  local port = free_port()
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(CONFIG:format(dir, dir, dir, dir, dir, dir, dir, port, dir, dir, upstream))
  f:close()
  local pipe = assert(io.popen(("echo $$; exec nginx -p %s -c %s/nginx.conf -e %s/error.log 2>&1"):format(dir, dir, dir)))
  local pid = pipe:read("l")
  for _ = 1, 100 do
    local probe = socket.connect("127.0.0.1", port)
    if probe then
      probe:close()
      break
    end
    socket.sleep(0.05)
  end
  return {
    url = "https://127.0.0.1:" .. port,
    ca_file = dir .. "/cert.pem",
    stop = function()
      os.execute("kill " .. pid)
      pipe:close()
      os.execute("rm -rf " .. dir)
    end,
  }
end

return tls
