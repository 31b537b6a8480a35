-- The sandbox: a local HTTP/1.1 server on 127.0.0.1 that emulates the Yandex
-- Metrica and Carrot quest endpoints csvup calls, so that a job can be
-- rehearsed end to end. Many connections at once, each in a coroutine.
--
--   local server = assert(require("csvup.sandbox").new{ port = 0 })
--   print(server.url); server:run()
--
-- Options: host ("127.0.0.1"), port (0: any free one), process_delay (seconds
-- until an uploading is final, 0.5), answer_delay (seconds before each answer,
-- 0), tokens ({ metrika = ..., carrotquest = ... }, both "sandbox-token").
-- Besides the APIs it answers GET /_sandbox/requests (what it received, as
-- JSON), GET /_sandbox/stats (the most requests it held at once), POST
-- /_sandbox/faults (see faults.lua) and POST /_sandbox/reset (forget
-- uploadings, requests and faults).
local socket = require "socket"
local json = require "csvup.json"
local http = require "csvup.sandbox.http"
local sandbox_state = require "csvup.sandbox.state"
local metrika = require "csvup.sandbox.metrika"
local carrotquest = require "csvup.sandbox.carrotquest"
local faults = require "csvup.sandbox.faults"

local create, resume, status, yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local gettime, select, huge = socket.gettime, socket.select, math.huge
local pairs, ipairs, setmetatable, tostring, type = pairs, ipairs, setmetatable, tostring, type

local sandbox = { TOKEN = "sandbox-token" }

local Server = {}
Server.__index = Server

local SERVICES = { metrika, carrotquest }

local function route(self, req)
  if req.reject then
    return req.reject[1], json.encode { message = req.reject[2] }
  end
  if req.path == "/_sandbox/requests" and req.method == "GET" then
    return 200, json.encode { requests = self.state.log }
  elseif req.path == "/_sandbox/stats" and req.method == "GET" then
    return 200, json.encode { max_in_flight = self.state.max_in_flight }
  elseif req.path == "/_sandbox/reset" and req.method == "POST" then
    self.state:reset()
    return 200, json.encode { reset = true }
  elseif req.path == "/_sandbox/faults" and req.method == "POST" then
    local fault = json.decode(req.body or "")
    if type(fault) ~= "table" or not faults.KNOWN[fault.fault] then
      return 400, json.encode { message = "unknown fault" }
    end
    faults.prepare(fault)
    self.state:add_fault(fault)
    return 200, json.encode { queued = fault.fault }
  end
  for _, service in ipairs(SERVICES) do
    local code, body, headers = service.handle(self.state, req)
    if code then
      return code, body, headers
    end
  end
  return 404, json.encode { message = "no such endpoint: " .. req.method .. " " .. req.path }
end

-- Closes with a TCP reset rather than an orderly shutdown.
local function reset(sock)
  sock:setoption("linger", { on = true, timeout = 0 })
  sock:close()
end

-- Answers one request; false when the connection is done.
local function answer(self, sock, req)
  local state = self.state
  local fault = req.path and not req.path:find("^/_sandbox/") and state:take_fault(req) or nil
  req.fault = fault and fault.fault
  if req.fault == "reset_mid_upload" then
    http.read_body(sock, req, math.min(req.length, 65536))
    state:record(req)
    reset(sock)
    return false
  end
  if not http.read_body(sock, req) then
    return false
  end
  if req.fault == "drop_after_body" then
    state:record(req)
    return false
  end
  local code, body, headers
  if fault and faults.answer(fault) then
    state:record(req)
    code, body, headers = faults.answer(fault)
  else
    code, body, headers = route(self, req)
  end
  if req.fault == "lost_answer" then -- processed, but the answer never arrives
    reset(sock)
    return false
  end
  headers = headers or {}
  headers["Content-Type"] = headers["Content-Type"] or "application/json; charset=utf-8"
  local delay = self.answer_delay + (req.fault == "slow" and (fault.delay or 1) or 0)
  if delay > 0 then
    yield("sleep", gettime() + delay)
  end
  local close = (req.headers.connection or ""):lower() == "close" or req.reject ~= nil
  if close then
    headers.Connection = "close"
  end
  return http.respond(sock, code, body, headers) and not close
end

local function serve(self, sock, connection)
  while true do
    local req = http.read_head(sock)
    if not req then
      break
    end
    req.connection = connection
    self.state:enter()
    local more = answer(self, sock, req)
    self.state:leave()
    if not more then
      break
    end
  end
  sock:close()
end

-- sandbox.new(opts) -> server | nil, err
function sandbox.new(opts)
  opts = opts or {}
  local listener, err = socket.bind(opts.host or "127.0.0.1", opts.port or 0)
  if not listener then
    return nil, err
  end
  listener:settimeout(0)
  local host, port = listener:getsockname()
  local tokens = opts.tokens or {}
  return setmetatable({
    listener = listener,
    url = ("http://%s:%d"):format(host, port),
    port = port,
    answer_delay = opts.answer_delay or 0,
    state = sandbox_state.new {
      process_delay = opts.process_delay or 0.5,
      tokens = { metrika = tokens.metrika or sandbox.TOKEN, carrotquest = tokens.carrotquest or sandbox.TOKEN },
    },
    waiting = {}, -- coroutine -> { kind = "read" | "write" | "sleep", sock = ..., at = ... }
    sockets = {}, -- coroutine -> its client socket
    accepted = 0, -- connections so far; requests are logged with theirs
  }, Server)
end

function Server:resume(co)
  local ok, kind, arg = resume(co)
  if not ok then
    io.stderr:write("csvup sandbox: ", tostring(kind), "\n")
    self.sockets[co]:close()
  end
  if status(co) == "dead" then
    self.waiting[co], self.sockets[co] = nil, nil
  elseif kind == "sleep" then
    self.waiting[co] = { kind = kind, at = arg }
  else
    self.waiting[co] = { kind = kind, sock = arg }
  end
end

-- One round: waits up to timeout seconds (nil: until something happens) and
-- serves whatever is ready.
function Server:step(timeout)
  local readers, writers, owner = { self.listener }, {}, {}
  local wake = huge
  for co, w in pairs(self.waiting) do
    if w.kind == "read" then
      readers[#readers + 1], owner[w.sock] = w.sock, co
    elseif w.kind == "write" then
      writers[#writers + 1], owner[w.sock] = w.sock, co
    elseif w.at < wake then
      wake = w.at
    end
  end
  if wake < huge then
    local until_wake = wake - gettime()
    timeout = until_wake < (timeout or huge) and until_wake or timeout
    timeout = timeout > 0 and timeout or 0
  end
  local ready_to_read, ready_to_write = select(readers, writers, timeout)
  for _, sock in ipairs(ready_to_read) do
    if sock == self.listener then
      local client = self.listener:accept()
      if client then
        client:settimeout(0)
        client:setoption("tcp-nodelay", true)
        self.accepted = self.accepted + 1
        local connection = self.accepted
        local co = create(function() serve(self, client, connection) end)
        self.sockets[co] = client
        self:resume(co)
      end
    elseif owner[sock] then
      self:resume(owner[sock])
    end
  end
  for _, sock in ipairs(ready_to_write) do
    if owner[sock] then
      self:resume(owner[sock])
    end
  end
  local now = gettime()
  for co, w in pairs(self.waiting) do
    if w.kind == "sleep" and w.at <= now then
      self:resume(co)
    end
  end
end

function Server:run()
  while not self.closed do
    self:step()
  end
end

function Server:close()
  self.closed = true
  self.listener:close()
  for co, sock in pairs(self.sockets) do
    sock:close()
    self.sockets[co] = nil
  end
end

return sandbox
