-- The sandbox: a local HTTP/1.1 server on 127.0.0.1 that emulates the Yandex
-- Metrica and Carrot quest endpoints csvup calls, so that a job can be
-- rehearsed end to end. Many connections at once, each in a coroutine.
--
--   local server = assert(require("csvup.sandbox").new{ port = 0 })
--   print(server.url); server:run()
--
-- Options: host ("127.0.0.1"), port (0: any free one), process_delay (seconds
-- until an uploading is final, 0.5), answer_delay (seconds before each answer,
-- 0), tokens ({ metrika = ..., carrotquest = ... }, both "sandbox-token"),
-- counters (the Metrica counters the token may use: see metrika.lua),
-- max_connections (256: more get 503 at once; at most 900, below select()'s
-- limit), idle_timeout (seconds a connection may stay silent, or a client not
-- read what it asked for, 30), row_errors (the shape of Carrot quest's
-- row_errors: see carrotquest.lua).
-- Besides the APIs it answers GET /_sandbox/requests (what it received, as
-- JSON, Authorization values hidden), GET /_sandbox/stats (the most requests it
-- held at once), POST /_sandbox/faults (see faults.lua), POST /_sandbox/lists
-- (how the uploadings lists behave: {"lag": seconds before a new uploading
-- is listed, "order": "newest_first" or "oldest_first", and "counter",
-- "kind", "older": that many older uploadings ahead of the rest; see
-- metrika.add_older}) and POST /_sandbox/reset (forget uploadings, goals,
-- requests, faults and the lists' behaviour).
local socket = require "socket"
local json = require "csvup.json"
local http = require "csvup.sandbox.http"
local sandbox_state = require "csvup.sandbox.state"
local metrika = require "csvup.sandbox.metrika"
local carrotquest = require "csvup.sandbox.carrotquest"
local faults = require "csvup.sandbox.faults"

local create, resume, status, yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local gettime, select, huge, min = socket.gettime, socket.select, math.huge, math.min
local pairs, ipairs, setmetatable, tostring, type, pcall = pairs, ipairs, setmetatable, tostring, type, pcall

local sandbox = { TOKEN = "sandbox-token" }

local MAX_CONNECTIONS = 256
local SELECT_LIMIT = 900 -- select() handles descriptors below 1024: keep well under, with room for files
local IDLE_TIMEOUT = 30
local ACCEPTS_PER_STEP = 64

local Server = {}
Server.__index = Server

local SERVICES = { metrika, carrotquest }

local function service_of(path)
  for _, service in ipairs(SERVICES) do
    if service.owns(path) then
      return service
    end
  end
end

-- The service whose error body a refusal takes: Metrica's API is under
-- /management and /cdp, Carrot quest's at the root. A request whose path was
-- never read gets Metrica's.
local function side_of(path)
  local top = path and path:match("^/([^/]*)")
  if not top or top == "management" or top == "cdp" then
    return metrika
  end
  return carrotquest
end

local function route(self, req)
  if req.reject then
    return side_of(req.path).refusal(req.reject[1], req.reject[2])
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
    if type(fault) == "table" and fault.clear == true then -- {"clear": true} forgets the faults queued
      self.state.faults = {}
      return 200, json.encode { cleared = true }
    elseif type(fault) ~= "table" or not faults.KNOWN[fault.fault] then
      return 400, json.encode { message = "unknown fault" }
    end
    faults.prepare(fault)
    self.state:add_fault(fault)
    return 200, json.encode { queued = fault.fault }
  elseif req.path == "/_sandbox/lists" and req.method == "POST" then
    local lists = json.decode(req.body or "")
    if type(lists) ~= "table" or (lists.lag ~= nil and type(lists.lag) ~= "number")
        or (lists.older ~= nil and not (math.type(lists.older) == "integer" and lists.older <= 50000)) then
      return 400, json.encode { message = "lists takes lag (seconds), order, counter, kind and older (a count)" }
    end
    self.state.lists.lag, self.state.lists.order = lists.lag or self.state.lists.lag, lists.order
      or self.state.lists.order
    if lists.older then
      metrika.add_older(self.state, lists.counter or 1, lists.kind or "offline", lists.older)
    end
    return 200, json.encode { lists = self.state.lists }
  end
  local service = service_of(req.path)
  if service then
    return service.handle(self.state, req)
  end
  return side_of(req.path).refusal(404, "no such endpoint: " .. req.method .. " " .. req.path)
end

-- Closes with a TCP reset rather than an orderly shutdown.
local function reset(sock)
  sock:setoption("linger", { on = true, timeout = 0 })
  sock:close()
end

-- Answers one request; false when the connection is done.
local function answer(self, conn, req)
  local state = self.state
  local fault = req.path and not req.path:find("^/_sandbox/") and state:take_fault(req) or nil
  req.fault = fault and fault.fault
  if req.fault == "reset_mid_upload" then
    http.read_body(conn, req, 65536)
    state:record(req)
    reset(conn.sock)
    return false
  end
  if not http.read_body(conn, req) then
    return false
  end
  if req.fault == "drop_after_body" then
    state:record(req)
    return false
  end
  local code, body, headers
  if req.over_quota then
    state:record(req)
    code, body = metrika.refusal(429, ("more than %d requests of this user at once"):format(metrika.PARALLEL_QUOTA))
  elseif fault and faults.answers(fault) then
    state:record(req)
    code, body, headers = faults.answer(fault, side_of(req.path))
  else
    code, body, headers = route(self, req)
  end
  if req.fault == "lost_answer" then -- processed, but the answer never arrives
    reset(conn.sock)
    return false
  elseif fault and faults.after_processing(fault) then -- processed, but a gateway answers
    code, body, headers = faults.answer_after(fault)
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
  return http.respond(conn, code, body, headers) and not close
end

local function serve(self, sock, connection)
  local conn = http.connection(sock)
  while true do
    local req = http.read_head(conn)
    if not req then
      break
    end
    req.connection = connection
    local token = req.path and metrika.owns(req.path) and req.headers.authorization or nil
    req.over_quota = (self.state:enter(token) or 0) > metrika.PARALLEL_QUOTA
    local ok, more = pcall(answer, self, conn, req)
    self.state:leave(token)
    if req.body_file then
      req.body_file:close() -- a temporary file: gone once closed
    end
    if not ok then
      io.stderr:write("csvup sandbox: ", tostring(more), "\n")
    end
    if not (ok and more) then
      break
    end
  end
  sock:close()
end

-- sandbox.new(opts) -> server | nil, err
function sandbox.new(opts)
  opts = opts or {}
  local max_connections = opts.max_connections or MAX_CONNECTIONS
  if type(max_connections) ~= "number" or max_connections < 1 or max_connections > SELECT_LIMIT then
    return nil, "max_connections must be from 1 to " .. SELECT_LIMIT
  end
  local counters, err = metrika.counters(opts.counters)
  if not counters then
    return nil, err
  end
  local listener
  listener, err = socket.bind(opts.host or "127.0.0.1", opts.port or 0)
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
    idle_timeout = opts.idle_timeout or IDLE_TIMEOUT,
    max_connections = max_connections,
    state = sandbox_state.new {
      process_delay = opts.process_delay or 0.5,
      tokens = { metrika = tokens.metrika or sandbox.TOKEN, carrotquest = tokens.carrotquest or sandbox.TOKEN },
      counters = counters,
      row_errors = opts.row_errors,
    },
    waiting = {}, -- coroutine -> { kind = "read" | "write" | "sleep", sock = ..., at = ... }
    sockets = {}, -- coroutine -> its client socket
    open = 0, -- connections open now
    accepted = 0, -- connections so far; requests are logged with theirs
  }, Server)
end

-- Resumes a connection's coroutine, with "timeout" when the server gave up on it.
function Server:resume(co, signal)
  local ok, kind, arg = resume(co, signal)
  if not ok then
    io.stderr:write("csvup sandbox: ", tostring(kind), "\n")
    self.sockets[co]:close()
  end
  if status(co) == "dead" then
    self.waiting[co], self.sockets[co] = nil, nil
    self.open = self.open - 1
  elseif kind == "sleep" then
    self.waiting[co] = { kind = kind, at = arg }
  else
    self.waiting[co] = { kind = kind, sock = arg, at = gettime() + self.idle_timeout }
  end
end

-- Turns away a connection over the limit with a 503, without waiting for it:
-- its request unread, in Metrica's body (backend_error, which says "try later").
local function refuse(client, max_connections)
  local _, body = metrika.refusal(503, ("the sandbox already serves %d connections: try again later")
    :format(max_connections))
  client:send(("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
    .. "Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"):format(#body, body))
  client:close()
end

function Server:accept()
  for _ = 1, ACCEPTS_PER_STEP do
    local client = self.listener:accept()
    if not client then
      return
    end
    client:settimeout(0)
    if self.open >= self.max_connections then
      refuse(client, self.max_connections)
    else
      client:setoption("tcp-nodelay", true)
      self.accepted, self.open = self.accepted + 1, self.open + 1
      local connection = self.accepted
      local co = create(function() serve(self, client, connection) end)
      self.sockets[co] = client
      self:resume(co)
    end
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
    end
    wake = min(wake, w.at)
  end
  if wake < huge then
    local until_wake = wake - gettime()
    timeout = until_wake < (timeout or huge) and until_wake or timeout
    timeout = timeout > 0 and timeout or 0
  end
  local ready_to_read, ready_to_write = select(readers, writers, timeout)
  local resumed = {}
  for _, sock in ipairs(ready_to_read) do
    if sock == self.listener then
      self:accept()
    elseif owner[sock] then
      resumed[owner[sock]] = true
      self:resume(owner[sock])
    end
  end
  for _, sock in ipairs(ready_to_write) do
    if owner[sock] and not resumed[owner[sock]] then
      resumed[owner[sock]] = true
      self:resume(owner[sock])
    end
  end
  local now, due = gettime(), {}
  for co, w in pairs(self.waiting) do
    if w.at <= now and not resumed[co] then
      due[#due + 1] = co
    end
  end
  for _, co in ipairs(due) do
    self:resume(co, self.waiting[co].kind ~= "sleep" and "timeout" or nil)
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
