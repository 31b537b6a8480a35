-- HTTP/1.1 for the sandbox: reading requests from a non-blocking socket inside
-- a coroutine (it yields "read" or "write" until the socket is ready, and gets
-- "timeout" back when the server gives up waiting), writing answers, and taking
-- apart queries and multipart bodies. Heads are parsed strictly and bounded;
-- multipart bodies go to a temporary file, never whole into memory.
local yield = coroutine.yield
local concat, min, max = table.concat, math.min, math.max
local setmetatable, tonumber, tostring, char, pairs, ipairs = setmetatable, tonumber, tostring, string.char, pairs, ipairs
local io_tmpfile = io.tmpfile

local http = {}

local LIMITS = {
  line = 8 * 1024, -- the request line, and each header line
  head = 64 * 1024, -- all header lines together
  headers = 100, -- header lines
  body = 2 * 1024 * 1024 * 1024, -- Content-Length
  memory_body = 1024 * 1024, -- a body that is not multipart is kept in memory up to this
  part_head = 8 * 1024, -- the headers of one multipart part
  field = 64 * 1024, -- a form field other than the file
  parts = 100,
}
http.LIMITS = LIMITS

local CHUNK = 64 * 1024
local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

local REASONS = {
  [100] = "Continue", [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [411] = "Length Required", [413] = "Payload Too Large",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
}

-- Waits until sock is ready; false when the server gave up waiting.
local function wait(kind, sock)
  return yield(kind, sock) ~= "timeout"
end

-- A connection: the socket and the bytes read from it but not yet used.
local Connection = {}
Connection.__index = Connection

function http.connection(sock)
  return setmetatable({ sock = sock, buffer = "" }, Connection)
end

-- Reads more bytes into the buffer; nil, err at the end of the connection.
function Connection:fill()
  while true do
    local data, err, partial = self.sock:receive(CHUNK)
    data = data or partial
    if data and #data > 0 then
      self.buffer = self.buffer .. data
      return true
    elseif err ~= "timeout" then
      return nil, err
    elseif not wait("read", self.sock) then
      return nil, "timeout"
    end
  end
end

-- The next line without its CR LF; nil, "too long" beyond limit bytes.
function Connection:line(limit)
  local from = 1
  while true do
    local eol = self.buffer:find("\n", from, true)
    if eol then
      if eol > limit + 1 then
        return nil, "too long"
      end
      local line = self.buffer:sub(1, eol - 1):gsub("\r$", "")
      self.buffer = self.buffer:sub(eol + 1)
      return line
    elseif #self.buffer > limit + 1 then
      return nil, "too long"
    end
    from = #self.buffer + 1
    local ok, err = self:fill()
    if not ok then
      return nil, err
    end
  end
end

-- Passes the next n bytes to sink(chunk) as they arrive.
function Connection:stream(n, sink)
  while n > 0 do
    if #self.buffer == 0 then
      local ok, err = self:fill()
      if not ok then
        return nil, err
      end
    end
    local take = min(n, #self.buffer)
    sink(self.buffer:sub(1, take))
    self.buffer, n = self.buffer:sub(take + 1), n - take
  end
  return true
end

function Connection:write(data)
  local sock, i = self.sock, 1
  while i <= #data do
    local last, err, partial = sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      if not wait("write", sock) then
        return nil, "timeout"
      end
    else
      return nil, err
    end
  end
  return true
end

function http.unescape(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- The query as { name = value }, and its names in order.
function http.parse_query(text)
  local query, names = {}, {}
  for pair in (text or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = http.unescape(k)
    names[#names + 1] = k
    query[k] = http.unescape(v)
  end
  return query, names
end

-- A request refused with status: req as far as it was read (its path names the
-- service whose error body the refusal takes), or a new one.
local function rejected(status, message, req)
  req = req or { headers = {}, query = {}, query_names = {} }
  req.reject, req.length = { status, message }, 0
  return req
end

-- The value of Content-Length: digits only, and the same in every copy.
local function content_length(values)
  local n
  for _, value in ipairs(values) do
    if not value:find("^%d+$") or #value > 15 then
      return nil, "Content-Length must be a number of bytes: " .. value:sub(1, 40)
    elseif n and tonumber(value) ~= n then
      return nil, "the request has Content-Length headers that disagree"
    end
    n = tonumber(value)
  end
  return n or 0
end

-- Reads a request line and headers; nil at the end of the connection. A request
-- the sandbox cannot take comes back with req.reject = { status, message }, and
-- the connection is closed after the answer.
function http.read_head(conn)
  local line, err = conn:line(LIMITS.line)
  while line == "" do -- an empty line before a request is allowed
    line, err = conn:line(LIMITS.line)
  end
  if err == "too long" then
    return rejected(431, "the request line is longer than " .. LIMITS.line .. " bytes")
  elseif not line then
    return nil, err
  end
  local method, target = line:match("^(%u+) (/%S*) HTTP/1%.[01]$")
  if not method then
    return rejected(400, "bad request line")
  end
  local req = { method = method, headers = {} }
  req.path, req.query_text = target:match("^([^?]*)%??(.*)$")
  req.query, req.query_names = http.parse_query(req.query_text)
  local lengths, total, count = {}, 0, 0
  while true do
    line, err = conn:line(LIMITS.line)
    if err == "too long" then
      return rejected(431, "a header line is longer than " .. LIMITS.line .. " bytes", req)
    elseif not line then
      return nil, err
    elseif line == "" then
      break
    end
    total, count = total + #line, count + 1
    if total > LIMITS.head or count > LIMITS.headers then
      return rejected(431, "the request headers are larger than " .. LIMITS.head .. " bytes or "
        .. LIMITS.headers .. " lines", req)
    end
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if not name or not name:find(TOKEN) then
      return rejected(400, "malformed header line", req)
    end
    name = name:lower()
    if name == "content-length" then
      lengths[#lengths + 1] = value
    end
    local previous = req.headers[name]
    req.headers[name] = previous and previous .. ", " .. value or value
  end
  local length, problem = content_length(lengths)
  req.length = length or 0
  if not length then
    req.reject = { 400, problem }
  elseif req.headers["transfer-encoding"] then
    req.reject = { 411, "chunked request bodies are not supported: send a Content-Length" }
  elseif length > LIMITS.body then
    req.reject, req.length = { 413, "the body is too large" }, 0
  end
  return req
end

function http.is_multipart(req)
  return (req.headers["content-type"] or ""):lower():find("^multipart/form%-data") ~= nil
end

-- Answers "Expect: 100-continue", then reads the body: a multipart one into a
-- temporary file (req.body_file, req.body_size), any other into req.body.
-- With n, reads only the first n bytes and keeps none.
function http.read_body(conn, req, n)
  if req.reject or req.length == 0 then
    return true
  end
  if (req.headers["expect"] or ""):lower() == "100-continue" then
    local ok, err = conn:write("HTTP/1.1 100 Continue\r\n\r\n")
    if not ok then
      return nil, err
    end
  end
  if n then
    return conn:stream(min(n, req.length), function() end)
  elseif http.is_multipart(req) then
    local file, err = io_tmpfile()
    if not file then
      return nil, err
    end
    req.body_file, req.body_size = file, req.length
    return conn:stream(req.length, function(chunk) file:write(chunk) end)
  elseif req.length > LIMITS.memory_body then
    req.reject = { 413, "only a multipart/form-data body may be larger than " .. LIMITS.memory_body .. " bytes" }
    return true
  end
  local chunks = {}
  local ok, err = conn:stream(req.length, function(chunk) chunks[#chunks + 1] = chunk end)
  req.body = concat(chunks)
  return ok, err
end

-- Writes an answer: status line, headers, and the body (not copied: it may be large).
function http.respond(conn, status, body, headers)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for name, value in pairs(headers or {}) do
    lines[#lines + 1] = name .. ": " .. value
  end
  lines[#lines + 1] = "Content-Length: " .. #body
  return conn:write(concat(lines, "\r\n") .. "\r\n\r\n") and conn:write(body)
end

-- A part of a file: { file, start (0-based), size }, read by the CSV reader and the log.
local function read_at(file, at, n)
  file:seek("set", at)
  return file:read(n) or ""
end
http.read_at = read_at

-- The 0-based offsets of every needle in the first size bytes of file.
local function offsets(file, size, needle)
  local found, carry, at = {}, "", 0
  file:seek("set", 0)
  while at < size do
    local chunk = file:read(min(CHUNK, size - at))
    if not chunk then
      break
    end
    local text, base = carry .. chunk, at - #carry
    local i = 1
    while true do
      local s = text:find(needle, i, true)
      if not s then
        break
      end
      found[#found + 1] = base + s - 1
      i = s + #needle
    end
    carry = text:sub(max(i, #text - #needle + 2))
    at = at + #chunk
  end
  return found
end

local function disposition(head, key)
  return head:match(';%s*' .. key .. '="([^"]*)"') or head:match(';%s*' .. key .. '=([^;\r\n]*)')
end

-- The parts of a multipart/form-data body kept in file: { name, filename?,
-- content_type?, start, size, content (fields other than "file" only) }.
function http.multipart(file, size, content_type)
  local boundary = (content_type or ""):match('boundary="?([^";]+)"?')
  if not boundary or not file then
    return nil, "not a multipart/form-data body"
  end
  local delimiter = "\r\n--" .. boundary
  local ends = offsets(file, size, delimiter) -- where each part ends
  local starts = {} -- where the text after each delimiter starts
  if read_at(file, 0, #delimiter - 2) == delimiter:sub(3) then
    starts[1] = #delimiter - 2
  end
  for _, at in ipairs(ends) do
    starts[#starts + 1] = at + #delimiter
  end
  if #starts == 0 then
    return nil, "no multipart boundary in the body"
  end
  local parts = {}
  for i, at in ipairs(starts) do
    local head = read_at(file, at, LIMITS.part_head)
    if head:sub(1, 2) == "--" then
      return parts
    end
    local head_end = head:find("\r\n\r\n", 1, true)
    local stop = ends[i + 1 - (#starts - #ends)]
    if not head_end or not stop or #parts == LIMITS.parts then
      return nil, "a multipart part is not closed, or its headers are too long"
    end
    head = head:sub(1, head_end - 1)
    local part = {
      name = disposition(head, "name"),
      filename = disposition(head, "filename"),
      content_type = head:match("[Cc]ontent%-[Tt]ype:%s*([^\r\n]+)"),
      file = file,
      start = at + head_end + 3,
    }
    part.size = stop - part.start
    if part.name ~= "file" then
      if part.size > LIMITS.field then
        return nil, "the form field " .. tostring(part.name) .. " is larger than " .. LIMITS.field .. " bytes"
      end
      part.content = read_at(file, part.start, part.size)
    end
    parts[#parts + 1] = part
  end
  return nil, "the multipart body has no closing boundary"
end

return http
