-- JSON for API answers and request bodies, exact for int64 ids: Debian's
-- lua-cjson reads and writes every number as a double.
local cjson = require "cjson.safe"
local core = require "csvup.core"

local concat, format, sort = table.concat, string.format, table.sort
local ipairs, pairs, type, tonumber, tostring, setmetatable, getmetatable = ipairs, pairs, type, tonumber, tostring, setmetatable, getmetatable
local math_type = math.type -- nil on LuaJIT, where ids above 2^53 stay strings

-- Integers to read exactly: all on Lua 5.4; on LuaJIT those a double cannot
-- hold (2^53 has 16 digits), which stay strings of digits there.
local MIN_MARKED_DIGITS = math_type and 1 or 16

local json = { null = cjson.null }

local RAW = {}

-- core.json_mark_integers wrote integers as "\0<digits>".
local function restore(value)
  for k, v in pairs(value) do
    if type(v) == "table" then
      restore(v)
    elseif type(v) == "string" and v:byte(1) == 0 then
      local digits = v:sub(2)
      local n = math_type and tonumber(digits)
      value[k] = n and math_type(n) == "integer" and n or digits
    end
  end
end

function json.decode(text)
  local marked, count = core.json_mark_integers(text, MIN_MARKED_DIGITS)
  local value, err = cjson.decode(marked)
  if value == nil then
    return nil, err
  end
  if count > 0 and type(value) == "table" then
    restore(value)
  end
  return value
end

-- A number written as it is: a string of digits keeps an id above 2^53 exact on LuaJIT.
function json.raw_number(digits)
  return setmetatable({ digits = digits }, RAW)
end

local encode_value

local function encode_table(t)
  if getmetatable(t) == RAW then
    return t.digits
  end
  local n, out = #t, {}
  if n > 0 then
    for i = 1, n do
      out[i] = encode_value(t[i])
    end
    return "[" .. concat(out, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys)
  for i, k in ipairs(keys) do
    out[i] = cjson.encode(tostring(k)) .. ":" .. encode_value(t[k])
  end
  return "{" .. concat(out, ",") .. "}"
end

function encode_value(v)
  if type(v) == "table" then
    return encode_table(v)
  elseif math_type and math_type(v) == "integer" then
    return format("%d", v)
  elseif type(v) == "number" then
    return format("%.17g", v)
  end
  return cjson.encode(v)
end

json.encode = encode_value

return json
