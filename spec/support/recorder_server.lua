-- A plain HTTP/1.1 server for wire specs: it records each request's raw bytes
-- in DIR/N.http and answers from DIR/answers.json: [{ method, path (a Lua
-- pattern), status, body }], the first that matches (404 when none does).
-- Usage: lua5.4 recorder_server.lua DIR; prints its port, then serves until killed.
local socket = require "socket"
local cjson = require "cjson"

local dir = assert(arg[1], "usage: recorder_server.lua DIR")
local server = assert(socket.bind("127.0.0.1", 0))
print((select(2, server:getsockname())))
io.stdout:flush()

local function answers()
  local f = io.open(dir .. "/answers.json")
  local list = f and cjson.decode(f:read("a")) or {}
  if f then
    f:close()
  end
  return list
end

local count, comment = 0, nil
while true do
  local conn = server:accept()
  conn:settimeout(10)
  local head, line = {}, conn:receive("*l")
  local length = 0
  while line and line ~= "" do
    head[#head + 1] = line
    length = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or length
    line = conn:receive("*l")
  end
  local body, partial = "", nil
  if length > 0 then
    local complete, _, got = conn:receive(length)
    body, partial = complete, got
  end
  if head[1] then
    count = count + 1
    local name = ("%s/%d.http"):format(dir, count)
    local f = assert(io.open(name .. ".part", "wb"))
    f:write(table.concat(head, "\r\n"), "\r\n\r\n", body or partial or "") -- what came before a client stopped
    f:close()
    assert(os.rename(name .. ".part", name)) -- whole, for a spec that reads it meanwhile
    local method, path = head[1]:match("^(%S+) (%S+)")
    comment = path:match("[?&]comment=([%w]*)") or comment
    local status, text = 404, '{"message":"no answer for this request"}'
    for _, a in ipairs(answers()) do
      if a.method == method and path:find(a.path) then
        status, text = a.status or 200, a.body
        break
      end
    end
    text = text:gsub("%$COMMENT", comment or "")
    if status ~= 0 then -- 0: the answer is lost, the connection closed unanswered
      conn:send(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
        :format(status, #text, text))
    end
  end
  conn:close()
end
