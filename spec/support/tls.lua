-- An HTTPS front for the sandbox: Debian's nginx with a throwaway self-signed
-- certificate for 127.0.0.1, made by openssl for this run.
local files = require "support.files"
local nginx = require "support.nginx"

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
    listen 127.0.0.1:%d ssl%s;
    ssl_certificate %s/cert.pem;
    ssl_certificate_key %s/key.pem;
    client_max_body_size 0;
    location / {
      %s
    }
  }
}
]]

-- tls.start(upstream_url, { http2 = true, answer = "nginx directives" }?) -> { url, ca_file, pid, stop() }:
-- requests go to the upstream, or get the answer (`return 200 "..."`, say) without it.
function tls.start(upstream, opts)
  local dir = files.tmpdir()
  assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 "
    .. "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1"):format(dir, dir)))
  local port = nginx.free_port()
  local stop, pid = nginx.start(dir, port, CONFIG:format(dir, dir, dir, dir, dir, dir, dir, port,
    opts and opts.http2 and " http2" or "", dir, dir,
    opts and opts.answer or ("proxy_pass %s; proxy_http_version 1.1; proxy_request_buffering off;"):format(upstream)))
  return {
    url = "https://127.0.0.1:" .. port,
    ca_file = dir .. "/cert.pem",
    pid = pid,
    stop = function()
      stop()
      files.remove(dir)
    end,
  }
end

return tls
