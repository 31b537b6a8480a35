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

-- Whether a decoded value is a whole number from 0: an integer (on LuaJIT a
-- whole double below 2^53), or digits where it passed 2^53 on LuaJIT.
function json.is_count(v)
  if type(v) == "string" then
    return not math_type and #v >= MIN_MARKED_DIGITS and v:find("^%d+$") ~= nil
  elseif math_type then
    return math_type(v) == "integer" and v >= 0
  end
  return type(v) == "number" and v >= 0 and v < 2 ^ 53 and v == math.floor(v)
end

-- A number written as it is: a string of digits keeps an id above 2^53 exact on LuaJIT.
function json.raw_number(digits)
  return setmetatable({ digits = digits }, RAW)
end

local encode_value

-- The order of an object's keys: numbers (row_errors' lines) in their order, then the rest by their text.
local function before(a, b)
  local na, nb = type(a) == "number", type(b) == "number"
  if na ~= nb then
    return na
  end
  return na and a < b or (not na and tostring(a) < tostring(b))
end

local function encode_table(t)
  if getmetatable(t) == RAW then
    return t.digits
  end
  local n, out, keys = #t, {}, {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  if n > 0 and #keys == n then -- keys 1..n and no other: an array
    for i = 1, n do
      out[i] = encode_value(t[i])
    end
    return "[" .. concat(out, ",") .. "]"
  end
  sort(keys, before)
  for i, k in ipairs(keys) do
    out[i] = cjson.encode(type(k) == "number" and encode_value(k) or tostring(k)) .. ":" .. encode_value(t[k])
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
