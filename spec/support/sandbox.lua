-- Runs the sandbox as its own process (`csvup sandbox --port 0`) for a spec,
-- reads back what it received, and talks to it in plain HTTP (not through the
-- clients, so that the sandbox is checked against the reference on its own).
local http = require "socket.http"
local ltn12 = require "ltn12"
local json = require "csvup.json"
local files = require "support.files"

-- the module under test: build/lua5.4, or the sanitizer build of `make check-asan`
local BUILD = os.getenv("CSVUP_BUILD") or "build/lua5.4"
local ENV = [[LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="]] .. BUILD .. [[/?.so;;"]]

local support = {
  TOKEN = "sandbox-token",
  -- under AddressSanitizer or valgrind, memory figures measure the checker, not csvup
  UNDER_CHECKER = os.getenv("ASAN_OPTIONS") ~= nil or (os.getenv("LD_PRELOAD") or ""):find("vgpreload") ~= nil,
  LUA = ENV .. " lua5.4", -- with the checkout's modules, for specs that run a child process
  EXEC_LUA = ENV .. " exec lua5.4", -- the same, replacing the shell
}

local COMMAND = "echo $$; " .. support.EXEC_LUA .. " lua/bin/csvup sandbox"

-- Options of require("csvup.sandbox").new that the command line does not take,
-- written as a Lua literal: numbers, words and arrays of them (in single
-- quotes: the command line holds the literal in double quotes).
local function literal(value)
  if type(value) == "table" then
    local items = {}
    for k, v in pairs(value) do
      items[#items + 1] = (type(k) == "string" and k .. " = " or "") .. literal(v)
    end
    return "{ " .. table.concat(items, ", ") .. " }"
  end
  return type(value) == "string" and "'" .. value .. "'" or tostring(value)
end

local function module_command(options)
  local script = ("local s = assert(require('csvup.sandbox').new(%s)) "
    .. "io.stdout:write('csvup sandbox listening on ', s.url, '\\n') io.stdout:flush() s:run()")
    :format(literal(options))
  return "echo $$; " .. support.EXEC_LUA .. ' -e "' .. script .. '"'
end

local function control(url, method, body)
  local chunks = {}
  local ok, status = http.request {
    url = url, method = method, sink = ltn12.sink.table(chunks),
    source = body and ltn12.source.string(body),
    headers = body and { ["content-length"] = #body, ["content-type"] = "application/json" },
  }
  assert(ok and status == 200, "sandbox control request failed: " .. tostring(status))
  return json.decode(table.concat(chunks))
end

-- The number of open file descriptors of this process, or of those open on
-- path (after a collection, so that only what is really held counts). The
-- listing goes to a file, not through io.popen: popen closes its pipe's write
-- end in this process only after the child started, so `ls` could list it,
-- or not, at random.
function support.open_fds(path)
  collectgarbage()
  collectgarbage()
  local stat = io.open("/proc/self/stat")
  local pid = stat:read("n")
  stat:close()
  local target, listing, n = nil, os.tmpname(), 0
  if path then
    local real = assert(io.popen("realpath " .. path))
    target = " -> " .. real:read("l")
    real:close()
  end
  assert(os.execute("ls -l /proc/" .. pid .. "/fd > " .. listing))
  for line in io.lines(listing) do
    if line:find(" -> ", 1, true) and (not target or line:sub(-#target) == target) then
      n = n + 1
    end
  end
  os.remove(listing)
  return n
end

-- A valid 24 MB offline-conversions file, made once per run: larger than the
-- socket buffers, so that a reset lands while the body is still being sent.
local big_csv
function support.big_csv()
  if not big_csv then
    big_csv = os.tmpname()
    local f = assert(io.open(big_csv, "w"))
    f:write("ClientId,Target,DateTime\n", ("1,G,1481718166\n"):rep(1600000))
    f:close()
  end
  return big_csv
end

-- support.start{ ["process-delay"] = 0.2, port = 8080, ... } -> sandbox
-- support.start{ options = { counters = { 1 }, idle_timeout = 1 } }: the sandbox
-- made with these options of csvup.sandbox.new (port 0) rather than by the command.
function support.start(flags)
  local command = COMMAND
  flags = flags or {}
  if flags.options then
    flags.options.port = 0
    command = module_command(flags.options)
  else
    flags.port = flags.port or 0
    for name, value in pairs(flags) do
      command = command .. " --" .. name .. " " .. value
    end
  end
  local pipe = assert(io.popen(command, "r"))
  local pid = pipe:read("l")
  local line = pipe:read("l") or ""
  local url = assert(line:match("listening on (%S+)"), "the sandbox did not start: " .. line)
  local sandbox = { url = url, pid = pid }

  function sandbox.requests()
    return control(url .. "/_sandbox/requests", "GET").requests
  end

  -- How many POSTs (uploads and other changes) the sandbox received.
  function sandbox.posts()
    local n = 0
    for _, r in ipairs(sandbox.requests()) do
      n = n + (r.method == "POST" and 1 or 0)
    end
    return n
  end

  function sandbox.reset()
    control(url .. "/_sandbox/reset", "POST")
  end

  -- sandbox.fault{ fault = "html_500", count = 2, path = "/upload" }: see csvup/sandbox/faults.lua
  function sandbox.fault(fault)
    control(url .. "/_sandbox/faults", "POST", json.encode(fault))
  end

  function sandbox.stats()
    return control(url .. "/_sandbox/stats", "GET")
  end

  -- The most memory the process has held (VmHWM of /proc/<pid>/status), in kB.
  function sandbox.peak_kb()
    local status = assert(io.open("/proc/" .. pid .. "/status"))
    local kb = status:read("a"):match("VmHWM:%s*(%d+)")
    status:close()
    return tonumber(kb)
  end

  function sandbox.stop()
    os.execute("kill " .. pid)
    pipe:close()
  end

  return sandbox
end

-- The sandbox of a describe block:
--   local sandbox = support.sandbox { ... }  -- flags as for support.start
--   setup(sandbox.start) teardown(sandbox.stop) before_each(sandbox.reset)
-- Its url, requests() and the rest are there once it has started.
function support.sandbox(flags)
  local handle, running = {}, nil
  function handle.start()
    running = support.start(flags)
    for k, v in pairs(running) do
      if k ~= "stop" and k ~= "reset" then
        handle[k] = v
      end
    end
    handle.tmp = files.tmpdir()
  end
  function handle.stop()
    running.stop()
    files.remove(handle.tmp)
  end
  function handle.reset()
    running.reset()
  end
  return handle
end

-- A multipart/form-data body of parts { name, content, filename? }, and its Content-Type.
local BOUNDARY = "sandbox-spec-boundary-7MA4YWxkTrZu0gW"
function support.multipart(parts)
  local chunks = {}
  for _, part in ipairs(parts) do
    chunks[#chunks + 1] = "--" .. BOUNDARY .. "\r\nContent-Disposition: form-data; name=\"" .. part.name .. "\""
      .. (part.filename and "; filename=\"" .. part.filename .. "\"\r\nContent-Type: text/csv" or "")
      .. "\r\n\r\n" .. part.content .. "\r\n"
  end
  chunks[#chunks + 1] = "--" .. BOUNDARY .. "--\r\n"
  return table.concat(chunks), "multipart/form-data; boundary=" .. BOUNDARY
end

-- One plain HTTP request: support.call(url, { method, path, query = { k = v } | "text",
-- token = "OAuth sandbox-token" | false, body = "...", content_type = "...",
-- form = { parts } }) -> status, decoded JSON body (or the text), headers.
function support.call(url, r)
  local query = r.query or ""
  if type(query) == "table" then
    local pairs_ = {}
    for k, v in pairs(query) do
      pairs_[#pairs_ + 1] = k .. "=" .. tostring(v):gsub("[^%w%-_.~]", function(c) return ("%%%02X"):format(c:byte()) end)
    end
    table.sort(pairs_)
    query = table.concat(pairs_, "&")
  end
  local body, content_type = r.body, r.content_type
  if r.form then
    body, content_type = support.multipart(r.form)
  end
  local headers = { ["content-length"] = body and #body or nil, ["content-type"] = content_type }
  if r.token ~= false then
    headers.authorization = r.token or (r.path:find("^/users/") and "Token " or "OAuth ") .. support.TOKEN
  end
  local chunks = {}
  local _, status, answer_headers = http.request {
    url = url .. r.path .. (query ~= "" and "?" .. query or ""), method = r.method or (body and "POST" or "GET"),
    headers = headers, source = body and ltn12.source.string(body), sink = ltn12.sink.table(chunks),
  }
  local text = table.concat(chunks)
  local decoded = json.decode(text)
  return status, decoded == nil and text or decoded, answer_headers
end

return support
