-- HTTP/1.1 for the sandbox: reading requests from a non-blocking socket inside
-- a coroutine (it yields "read" or "write" until the socket is ready),
-- writing answers, and taking apart queries and multipart bodies.
local yield = coroutine.yield
local concat, min = table.concat, math.min
local tonumber, char = tonumber, string.char

local http = {}

local MAX_BODY = 2 * 1024 * 1024 * 1024
local REASONS = {
  [100] = "Continue", [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [411] = "Length Required", [413] = "Payload Too Large",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
}

local function read_line(sock)
  local partial = ""
  while true do
    local line, err, part = sock:receive("*l", partial)
    if line then
      return line
    elseif err ~= "timeout" then
      return nil, err
    end
    partial = part
    yield("read", sock)
  end
end

local function read_bytes(sock, n)
  local chunks, got = {}, 0
  while got < n do
    local data, err, part = sock:receive(min(n - got, 1024 * 1024))
    data = data or part
    if data and #data > 0 then
      chunks[#chunks + 1] = data
      got = got + #data
    end
    if err == "timeout" then
      yield("read", sock)
    elseif err then
      return nil, err
    end
  end
  return concat(chunks)
end

function http.write(sock, data)
  local i = 1
  while i <= #data do
    local last, err, partial = sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      yield("write", sock)
    else
      return nil, err
    end
  end
  return true
end

function http.unescape(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

function http.parse_query(text)
  local query = {}
  for pair in (text or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    query[http.unescape(k)] = http.unescape(v)
  end
  return query
end

-- Reads a request line and headers; nil at the end of the connection. A request
-- the sandbox cannot take comes back with req.reject = { status, message }.
function http.read_head(sock)
  local line, err = read_line(sock)
  if not line then
    return nil, err
  end
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.[01]$")
  if not method then
    return { reject = { 400, "bad request line" }, headers = {}, query = {}, length = 0 }
  end
  local req = { method = method, headers = {} }
  req.path, req.query_text = target:match("^([^?]*)%??(.*)$")
  req.query = http.parse_query(req.query_text)
  while true do
    line, err = read_line(sock)
    if not line then
      return nil, err
    elseif line == "" then
      break
    end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      req.headers[name:lower()] = value
    end
  end
  req.length = tonumber(req.headers["content-length"] or "0")
  if req.headers["transfer-encoding"] then
    req.reject = { 411, "chunked request bodies are not supported: send a Content-Length" }
  elseif not req.length or req.length > MAX_BODY then
    req.reject, req.length = { 413, "the body is too large" }, 0
  end
  return req
end

-- Answers "Expect: 100-continue", then reads up to n bytes of the body (all by default).
function http.read_body(sock, req, n)
  if req.reject or req.length == 0 then
    return true
  end
  if (req.headers["expect"] or ""):lower() == "100-continue" then
    http.write(sock, "HTTP/1.1 100 Continue\r\n\r\n")
  end
  local err
  req.body, err = read_bytes(sock, n or req.length)
  return req.body ~= nil, err
end

-- Writes an answer: status line, headers, and the body (not copied: it may be large).
function http.respond(sock, status, body, headers)
  local lines = { ("HTTP/1.1 %d %s"):format(status, REASONS[status] or "Status") }
  for name, value in pairs(headers or {}) do
    lines[#lines + 1] = name .. ": " .. value
  end
  lines[#lines + 1] = "Content-Length: " .. #body
  return http.write(sock, concat(lines, "\r\n") .. "\r\n\r\n") and http.write(sock, body)
end

local function disposition(head, key)
  return head:match(';%s*' .. key .. '="([^"]*)"') or head:match(';%s*' .. key .. '=([^;\r\n]*)')
end

-- The parts of a multipart/form-data body: { name, filename?, content_type?, content }.
function http.multipart(body, content_type)
  local boundary = (content_type or ""):match('boundary="?([^";]+)"?')
  if not boundary or not body then
    return nil, "not a multipart/form-data body"
  end
  local delimiter = "--" .. boundary
  local parts = {}
  local pos = body:find(delimiter, 1, true)
  if not pos then
    return nil, "no multipart boundary in the body"
  end
  pos = pos + #delimiter
  while body:sub(pos, pos + 1) ~= "--" do
    local head_end = body:find("\r\n\r\n", pos, true)
    local next_part = head_end and body:find("\r\n" .. delimiter, head_end + 4, true)
    if not next_part then
      return nil, "a multipart part is not closed"
    end
    local head = body:sub(pos, head_end - 1)
    parts[#parts + 1] = {
      name = disposition(head, "name"),
      filename = disposition(head, "filename"),
      content_type = head:match("[Cc]ontent%-[Tt]ype:%s*([^\r\n]+)"),
      content = body:sub(head_end + 4, next_part - 1),
    }
    pos = next_part + 2 + #delimiter
  end
  return parts
end

return http
