-- csvup inside OpenResty without blocking the event loop: the call runs in
-- ngx.run_worker_thread (lua-nginx-module 0.10.21+), in a LuaJIT VM of an
-- nginx thread pool, and only plain data crosses (strings, numbers, booleans,
-- tables; cjson.null becomes nil, callbacks cannot cross).
--
--   thread_pool csvup_pool threads=4;   # nginx.conf, main context
--   local res, err = require("csvup.ngx").call("csvup_pool", "metrika",
--     "upload_offline_conversions", { token = ..., counter = ... }, { file = path })
--
-- Collectors (csvup.ngx.collector) gather events into batch uploads through a
-- durable spool: collector(name, opts), add(name, row), flush(name), stats(name).
local errors = require "csvup.errors"

local ngx = rawget(_G, "ngx")
local pairs, type, tostring, require = pairs, type, tostring, require
local min = math.min

local csvup_ngx = {}

local SERVICES = { metrika = true, carrotquest = true }
local VM_WAIT = 60 -- seconds call waits for a free worker-thread VM, unless the client's timeout says otherwise

-- A deep copy holding only what a worker thread can pass back.
local function plain(value)
  local t = type(value)
  if t == "table" then
    local copy = {}
    for k, v in pairs(value) do
      if type(k) == "string" or type(k) == "number" then
        copy[k] = plain(v)
      end
    end
    return copy
  elseif t == "string" or t == "number" or t == "boolean" then
    return value
  end
  return nil
end

local function invalid(message)
  return nil, plain(errors.new("input", "invalid_argument", message))
end

-- Runs in the worker thread's VM: one client, one call, closed again.
function csvup_ngx.run(service, method, client_options, call_options)
  if not SERVICES[service] then
    return invalid("csvup.ngx: unknown service " .. tostring(service))
  end
  local client, err = require("csvup." .. service).new(client_options)
  if not client then
    return nil, plain(err)
  end
  if type(client[method]) ~= "function" or method:sub(1, 1) == "_" or method == "close" or method == "call" then
    client:close()
    return invalid("csvup.ngx: " .. service .. " has no method " .. tostring(method))
  end
  local result
  result, err = client[method](client, call_options)
  client:close()
  if result == nil then
    return nil, plain(err)
  end
  return plain(result)
end

--- Calls a client method in a worker thread of an nginx thread pool (OpenResty).
-- csvup_ngx.call(pool, service, method, client_options, call_options)
--   -> what the client method returns, or nil, err
function csvup_ngx.call(pool, service, method, client_options, call_options)
  if not (ngx and ngx.run_worker_thread) then
    return errors.fail("input", "not_openresty",
      "csvup.ngx needs OpenResty: ngx.run_worker_thread (lua-nginx-module 0.10.21 or newer)")
  end
  -- A burst may take every VM of lua_worker_thread_vm_pool_size: wait for one, bounded by the timeout.
  local timeout = type(client_options) == "table" and type(client_options.timeout) == "number"
    and client_options.timeout or VM_WAIT
  local deadline, pause = ngx.now() + timeout, 0.001
  local ok, result, err
  while true do
    ok, result, err = ngx.run_worker_thread(pool, "csvup.ngx", "run", service, method, client_options, call_options)
    if ok or not tostring(result):find("no available Lua vm", 1, true) or ngx.now() >= deadline then
      break
    end
    ngx.sleep(min(pause, deadline - ngx.now()))
    pause = min(pause * 2, 0.05)
  end
  if not ok then
    return errors.fail("internal", "worker_thread_failed", tostring(result))
  elseif result == nil then
    -- an error table lost its metatable crossing from the worker thread's VM
    return nil, err and errors.new(err.kind, err.code, err.message, err)
      or errors.new("internal", "worker_thread_failed", "no result")
  end
  return result
end

--- Starts a collector in this worker (call it in init_worker_by_lua_block).
-- csvup_ngx.collector(name, { pool, spool, service, method, client, args,
--   interval (60), max_rows (50000), max_spool_bytes (1 GB), uploads_per_day (1000),
--   fsync ("flush": "row", "flush" or "never") }) -> true | nil, err
function csvup_ngx.collector(name, opts)
  return require("csvup.ngx.collector").new(name, opts)
end

--- Checks a row and appends it to the spool: true once written, or nil, err
-- (kind input: a bad row; code spool_full: max_spool_bytes reached). Never waits on the network.
function csvup_ngx.add(name, row)
  return require("csvup.ngx.collector").add(name, row)
end

--- Sends what waits now, and waits for it: true, or nil, err.
function csvup_ngx.flush(name)
  return require("csvup.ngx.collector").flush(name)
end

--- { rows, bytes, batches, rejected, sent, uploads_today, uploads_per_day,
-- waiting_until, retry_at, last_error }: see the README.
function csvup_ngx.stats(name)
  return require("csvup.ngx.collector").stats(name)
end

return csvup_ngx
