-- The meaning-level check of a method's options against its registry entry:
-- types, allowed values, ranges, required ones, unknown names. The wire-level
-- checks (one line, no NUL, sizes) are the C core's.
local cjson = require "cjson.safe"
local errors = require "csvup.errors"

local format, concat, sort = string.format, table.concat, table.sort
local type, tostring, tonumber, pairs, ipairs, select = type, tostring, tonumber, pairs, ipairs, select
local math_type = math.type

local options = {}

-- Characters, not bytes: UTF-8 continuation bytes are not counted.
function options.chars(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end

local function is_integer(v)
  if math_type then
    return math_type(v) == "integer"
  end
  return type(v) == "number" and v == math.floor(v)
end

local function valid_date(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 then
    return false
  end
  local leap = y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
  return d <= ({ 31, leap and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
end

-- Each type: function(value, option) -> the value as sent, or nil and why not.
local TYPES = {}

-- The first character of s that is a control character or lies outside the
-- Basic Multilingual Plane (an emoji; a byte that begins no UTF-8 character
-- counts as one), shown as text, and its place in characters; nil when there is none.
local function outside_plain_text(s)
  local i, at = 1, 0
  while i <= #s do
    local c = s:match("^[\194-\244][\128-\191]*", i) or s:sub(i, i)
    local b1 = c:byte()
    at, i = at + 1, i + #c
    if b1 < 0x20 or b1 == 0x7F or b1 >= 0xF0 or (b1 >= 0x80 and #c == 1) then
      return b1 >= 0x80 and #c == 1 and format("byte \\x%02X", b1) or format("%q", c), at
    end
  end
end

function TYPES.text(v, o)
  if type(v) ~= "string" then
    return nil, "must be a string"
  elseif o.max and options.chars(v) > o.max then
    return nil, format("must be at most %d characters", o.max)
  end
  local bad, at
  if o.plain then
    bad, at = outside_plain_text(v)
  end
  if bad then
    return nil, format("may hold no control character and no emoji (nothing beyond the Basic Multilingual "
      .. "Plane), not %s at character %d", bad, at)
  end
  return v
end

function TYPES.enum(v, o)
  local quoted = {}
  for i, allowed in ipairs(o.values) do
    if v == allowed then
      return v
    end
    quoted[i] = format("%q", allowed)
  end
  return nil, "must be one of: " .. concat(quoted, ", ")
end

function TYPES.integer(v, o)
  if not is_integer(v) then
    return nil, "must be an integer"
  elseif (o.min and v < o.min) or (o.max and v > o.max) then
    return nil, format("must be from %s to %s", tostring(o.min or "-"), tostring(o.max or "-"))
  end
  return v
end

function TYPES.date_or_range(v)
  local first, last = tostring(v):match("^([^/]+)/([^/]+)$")
  if type(v) ~= "string" then
    return nil, "must be a date YYYY-MM-DD or a range YYYY-MM-DD/YYYY-MM-DD"
  elseif first and valid_date(first) and valid_date(last) and first <= last then
    return v
  elseif not first and valid_date(v) then
    return v
  end
  return nil, "must be a date YYYY-MM-DD or a range YYYY-MM-DD/YYYY-MM-DD (its end not before its start)"
end

-- Tags travel as one form field holding a JSON array of names (Carrot quest's types page).
function TYPES.tags(v)
  local tags = type(v) == "string" and { v } or v
  local count = 0
  for _ in pairs(type(tags) == "table" and tags or {}) do
    count = count + 1
  end
  if type(tags) ~= "table" or count ~= #tags then
    return nil, "must be a tag name or an array of tag names"
  end
  local quoted = {}
  for i, tag in ipairs(tags) do
    if type(tag) ~= "string" or tag == "" or tag:find("[%z\r\n]") then
      return nil, format("[%d] must be a non-empty tag name of one line", i)
    end
    quoted[i] = cjson.encode(tag)
  end
  return "[" .. concat(quoted, ",") .. "]"
end

local function known_names(m, extra)
  local names = {}
  for _, o in ipairs(m.options) do
    names[#names + 1] = o.name
  end
  for name in pairs(extra or {}) do
    names[#names + 1] = name
  end
  sort(names)
  return concat(names, ", ")
end

-- options.check(method, opts, extra?) -> values (name -> the value to send,
-- defaults filled in) | nil, err. extra: other names the call takes (file, rows, ...).
function options.check(m, opts, extra)
  for name in pairs(opts) do
    local known = extra and extra[name]
    for _, o in ipairs(m.options) do
      known = known or o.name == name
    end
    if not known then
      return errors.invalid("%s: unknown option %s (known: %s)", m.name, tostring(name), known_names(m, extra))
    end
  end
  local values = {}
  for _, o in ipairs(m.options) do
    local v = opts[o.name]
    if v == nil then
      v = o.default
    end
    if v == nil and o.required then
      return errors.invalid("%s: %s is required (%s)", m.name, o.name, o.help)
    elseif v ~= nil then
      local value, why = TYPES[o.type](v, o)
      if value == nil then
        return errors.invalid("%s: %s %s, got %s", m.name, o.name, why,
          type(v) == "string" and format("%q", v:sub(1, 80)) or type(v))
      end
      values[o.name] = value
    end
  end
  return values
end

-- An option's help: its meaning, allowed values, bounds, default, and whether it is required.
function options.describe(o)
  local parts = { o.help }
  if o.values then
    parts[#parts + 1] = "one of: " .. concat(o.values, ", ")
  end
  if o.type == "text" and o.max then
    parts[#parts + 1] = format("at most %d characters", o.max)
      .. (o.plain and ", no control characters or emoji" or "")
  elseif o.min and o.max then
    parts[#parts + 1] = format("from %d to %d", o.min, o.max)
  elseif o.min then
    parts[#parts + 1] = format("at least %d", o.min)
  end
  if o.default ~= nil then
    parts[#parts + 1] = "default: " .. tostring(o.default)
  end
  if o.required then
    parts[#parts + 1] = "required"
  end
  return concat(parts, "; ")
end

-- The wire parameters of checked values: wire name -> value, for the options sent.
function options.wire(m, values)
  local out = {}
  for _, o in ipairs(m.options) do
    if o.send ~= false then
      out[o.wire] = values[o.name]
    end
  end
  return out
end

return options
