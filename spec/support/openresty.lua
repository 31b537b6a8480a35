-- Debian's nginx with lua-nginx-module, from a temporary prefix, serving:
--   /ping           "pong", straight from the event loop
--   /upload         an offline-conversions upload of ?file= through csvup.ngx (a worker thread)
--   /upload-direct  the same upload called directly in the handler (blocking the loop)
--   /sink           reads a request's whole body, discards it, answers an uploading (for benchmarks)
local files = require "support.files"
local nginx = require "support.nginx"

local openresty = {}

local CONFIG = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process off;
worker_processes 1;
thread_pool csvup_pool threads=4;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  lua_package_path "{root}/lua/?.lua;{root}/lua/?/init.lua;;";
  lua_package_cpath "{root}/build/luajit/?.so;;";
  init_by_lua_block {
    CLIENT = { token = "{token}", counter = 1, base_url = "{sandbox}" }
  }
  server {
    listen 127.0.0.1:{port};
    location = /ping {
      content_by_lua_block { ngx.say("pong") }
    }
    location = /upload {
      content_by_lua_block {
        local res, err = require("csvup.ngx").call("csvup_pool", "metrika", "upload_offline_conversions",
          CLIENT, { file = ngx.var.arg_file })
        ngx.say(res and ("uploading " .. res.id .. " " .. res.status) or ("failed: " .. tostring(err)))
      }
    }
    location /sink {
      client_max_body_size 0;
      client_body_buffer_size 1m;
      client_body_temp_path {shm};
      content_by_lua_block {
        ngx.req.read_body() -- the whole body, by nginx's own C code, into memory-backed files
        ngx.header["Content-Type"] = "application/json"
        ngx.say('{"uploading":{"id":1,"status":"UPLOADED"}}')
      }
    }
    location = /upload-direct {
      content_by_lua_block {
        local m = require("csvup").metrika.new(CLIENT)
        local res, err = m:upload_offline_conversions { file = ngx.var.arg_file }
        m:close()
        ngx.say(res and ("uploading " .. res.id .. " " .. res.status) or ("failed: " .. tostring(err)))
      }
    }
  }
}
]]

-- openresty.start(sandbox_url, token) -> { url, stop(), log() }
function openresty.start(sandbox_url, token)
  local dir = files.tmpdir()
  local port = nginx.free_port()
  local root = io.popen("pwd"):read("l")
  local shm = (os.execute("test -d /dev/shm") and "/dev/shm" or dir) .. "/csvup-sink-" .. port
  local values = { dir = dir, shm = shm, root = root, port = port, sandbox = sandbox_url, token = token }
  local stop = nginx.start(dir, port, (CONFIG:gsub("{(%w+)}", function(k) return tostring(values[k]) end)))
  return {
    url = "http://127.0.0.1:" .. port,
    port = port,
    log = function()
      local ok, text = pcall(files.read, dir .. "/error.log")
      return ok and text or ""
    end,
    stop = function()
      stop()
      files.remove(dir)
      files.remove(shm)
    end,
  }
end

return openresty
