-- What the sandbox remembers: per counter, the uploadings it made and the goals
-- it has; and every request it received (for specs to check what actually arrived).
local socket = require "socket"
local upload = require "csvup.sandbox.upload"

local setmetatable, ipairs, pairs, os_date, floor = setmetatable, ipairs, pairs, os.date, math.floor

local state = {}

local State = {}
State.__index = State

-- Ids start above 2^53, as real ones may: a client that reads them as doubles loses digits.
local FIRST_ID = 9007199254740993
-- A file part is kept whole in the log up to this size; beyond it, only its size and header.
local LOG_CONTENT_MAX = 1024 * 1024
local LOG_HEADER_MAX = 64 * 1024

function state.new(opts)
  local self = setmetatable({ process_delay = opts.process_delay, tokens = opts.tokens,
    known_counter = opts.counters, row_errors = opts.row_errors }, State)
  self:reset()
  return self
end

function State:reset()
  self.log = {}
  self.faults = {}
  self.lists = {} -- lag (seconds before a new uploading is listed), order (see metrika.lua)
  self.in_flight = self.in_flight or 0 -- requests being answered now (this reset among them)
  self.parallel = self.parallel or {} -- token -> its requests being answered now
  self.max_in_flight = 0
  self.counters = {} -- counter id -> { uploadings = { kind -> array, newest last }, goals = array }
  self.next_id = FIRST_ID
end

-- What the sandbox keeps for one counter.
function State:counter(id)
  local c = self.counters[id]
  if not c then
    c = { uploadings = {}, goals = {}, thresholds = {} }
    self.counters[id] = c
  end
  return c
end

function State:new_id()
  local id = self.next_id
  self.next_id = id + 1
  return id
end

function State.now()
  return socket.gettime()
end

function State.time_text(t)
  return os_date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

-- Requests being answered now, and the most there were at once; with a
-- token, also that token's requests in flight, which enter() returns.
function State:enter(token)
  self.in_flight = self.in_flight + 1
  if self.in_flight > self.max_in_flight then
    self.max_in_flight = self.in_flight
  end
  if token then
    self.parallel[token] = (self.parallel[token] or 0) + 1
    return self.parallel[token]
  end
end

function State:leave(token)
  self.in_flight = self.in_flight - 1
  if token then
    self.parallel[token] = self.parallel[token] > 1 and self.parallel[token] - 1 or nil
  end
end

function State:add_fault(fault)
  fault.count = fault.count or 1
  self.faults[#self.faults + 1] = fault
end

-- The first queued fault for this request's path, used up once.
function State:take_fault(req)
  for i, fault in ipairs(self.faults) do
    if not fault.path or req.path:find(fault.path, 1, true) then
      fault.count = fault.count - 1
      if fault.count <= 0 then
        table.remove(self.faults, i)
      end
      return fault
    end
  end
end

-- The headers as logged: credentials replaced by their scheme and "[hidden]",
-- since the log is served to anyone who asks.
local function logged_headers(headers)
  local copy = {}
  for name, value in pairs(headers) do
    copy[name] = value
  end
  if copy.authorization then
    local scheme = copy.authorization:match("^(%a+) ")
    copy.authorization = (scheme and scheme .. " " or "") .. "[hidden]"
  end
  return copy
end

-- Records a request as received: time, method, path, query, headers, connection number,
-- form fields and the file, and the fault it was given (req.fault).
function State:record(req, form)
  local entry = { method = req.method, path = req.path, query = req.query, headers = logged_headers(req.headers),
    connection = req.connection, fault = req.fault, time = self.now() }
  if form then
    entry.fields = form.fields
    local file = form.file
    if file then
      entry.file = {
        filename = file.filename,
        content_type = file.content_type,
        size = file.size,
        header = upload.head(file, LOG_HEADER_MAX):match("^[^\r\n]*"),
        content = file.size <= LOG_CONTENT_MAX and upload.head(file, file.size) or nil,
      }
    end
  elseif req.body and #req.body <= LOG_CONTENT_MAX then
    entry.body = req.body
  end
  self.log[#self.log + 1] = entry
end

return state
