-- Checks rows and CSV files against csvup.schema before upload: every
-- problem gets its line (or row), column and reason; up to MAX_PROBLEMS are
-- listed in one error, and nothing is sent.
local core = require "csvup.core"
local csv = require "csvup.csv"
local schemas = require "csvup.schema"

local concat, format, floor, min = table.concat, string.format, math.floor, math.min
local ipairs, pairs, type, tostring, tonumber, pcall, select, setmetatable =
  ipairs, pairs, type, tostring, tonumber, pcall, select, setmetatable
local math_type, os_time = math.type, os.time

local validate = {}

local MAX_PROBLEMS = 20
local TEXT_MAX = 255
local EXACT = 2 ^ 53

local TRAFFIC_SOURCES = schemas.TRAFFIC_SOURCES

-- ISO 4217 currency codes in use.
local CURRENCIES = {}
for code in ([[AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
  BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
  GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
  LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
  PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
  TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL]]):gmatch("%u+") do
  CURRENCIES[code] = true
end

-- Characters that look like nothing, and that the Carrot quest docs warn about.
local INVISIBLE = {
  ["\194\160"] = "U+00A0 no-break space", ["\194\173"] = "U+00AD soft hyphen",
  ["\226\128\139"] = "U+200B zero-width space", ["\226\128\140"] = "U+200C zero-width non-joiner",
  ["\226\128\141"] = "U+200D zero-width joiner", ["\226\129\160"] = "U+2060 word joiner",
  ["\239\187\191"] = "U+FEFF byte order mark",
}

-- Characters, not bytes: UTF-8 continuation bytes are not counted.
local function chars(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end
validate.chars = chars

local function is_integer(v)
  if math_type then
    return math_type(v) == "integer"
  end
  return type(v) == "number" and v == floor(v) and v > -EXACT and v < EXACT
end

-- Why a name or key value would not match what the user meant, or nil.
local function untidy(s)
  if s:find("^%s") or s:find("%s$") then
    return "has a leading or trailing space"
  end
  for bytes, name in pairs(INVISIBLE) do
    if s:find(bytes, 1, true) then
      return "holds an invisible character (" .. name .. ")"
    end
  end
  if s:find("%c") then
    return "holds a control character"
  end
end

local function valid_date(y, m, d)
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 then
    return false
  end
  local days = ({ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then
    days = 29
  end
  return d <= days
end

local function date_reason(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not (y and valid_date(y, m, d)) then
    return "is not a date YYYY-MM-DD"
  end
end

-- The digits of a non-negative integer or string of digits, else nil.
local function digits_of(v)
  if is_integer(v) and v >= 0 then
    return format("%d", v)
  elseif type(v) == "string" and v:find("^%d+$") then
    return v
  end
end

-- Each type: function(value) -> nil when fine, or the reason it is not.
local TYPES = {}

function TYPES.text(v)
  if type(v) == "string" and chars(v) > TEXT_MAX then
    return format("is longer than %d characters", TEXT_MAX)
  end
end

function TYPES.id(v)
  if type(v) == "number" and not is_integer(v) then
    return "is a float, which cannot hold an id above 2^53 exactly: pass it as a string or an integer"
  elseif not digits_of(v) then
    return "is not an id (digits only)"
  end
end

function TYPES.unix_seconds(v)
  local digits = digits_of(v)
  if not digits then
    return "is not Unix time in whole seconds"
  elseif #digits >= 13 then
    return "looks like milliseconds (" .. #digits .. " digits): the API takes seconds, divide by 1000"
  elseif tonumber(digits) > os_time() + 300 then
    return "is in the future"
  end
end

function TYPES.decimal(v)
  if type(v) == "number" then
    return (v ~= v or v == 1 / 0 or v == -1 / 0) and "is not a finite number" or nil
  elseif type(v) ~= "string" then
    return "is not a number"
  elseif v:find("^%-?%d*,%d+$") then
    return "uses ',' as the decimal separator: the API takes '.'"
  elseif not (v:find("^%-?%d+%.?%d*$") or v:find("^%-?%.%d+$")) then
    return "is not a number"
  end
end

function TYPES.currency(v)
  if type(v) ~= "string" or not CURRENCIES[v] then
    return CURRENCIES[tostring(v):upper()] and "is not in upper case (ISO 4217)" or "is not an ISO 4217 currency code"
  end
end

function TYPES.flag(v)
  if not (v == true or v == false or v == 0 or v == 1 or v == "0" or v == "1") then
    return "is not 0 or 1"
  end
end

function TYPES.count(v)
  if not digits_of(v) then
    return "is not a whole number"
  end
end

function TYPES.date_or_range(v)
  if type(v) ~= "string" then
    return "is not a date YYYY-MM-DD or a range YYYY-MM-DD/YYYY-MM-DD"
  end
  local first, last = v:match("^([^/]+)/([^/]+)$")
  if not first then
    return date_reason(v)
  end
  local reason = date_reason(first) or date_reason(last)
  if reason then
    return "is not a range YYYY-MM-DD/YYYY-MM-DD"
  elseif last < first then
    return "is a range that ends before it starts"
  end
end

function TYPES.datetime(v)
  local date = type(v) == "string" and v:match("^(%d%d%d%d%-%d%d%-%d%d)") or ""
  local rest = type(v) == "string" and v:sub(11) or ""
  if date_reason(date) or not (rest == "" or rest:find("^[ T]%d%d:%d%d$") or rest:find("^[ T]%d%d:%d%d:%d%d$")) then
    return "is not a date and time YYYY-MM-DD HH:MM:SS"
  end
end

function TYPES.traffic_source(v)
  if not TRAFFIC_SOURCES[v] then
    return "is not a TrafficSource (internal, direct, referral, organic, ad, saved, undefined, email, social, "
      .. "messenger, qrcode, recommend)"
  end
end

function TYPES.property(v)
  if type(v) == "number" and (v ~= v or v >= EXACT or v <= -EXACT) then
    return "is outside ±2^53, the range of Carrot quest numbers"
  end
  return TYPES.text(v)
end

function TYPES.key(v)
  return type(v) == "string" and untidy(v) or TYPES.property(v)
end

function TYPES.property_date(v)
  local date, time = tostring(v):match("^(%d%d%d%d%-%d%d%-%d%d)(.*)$")
  if not date or date_reason(date) or not (time == "" or time:find("^T%d%d:%d%d:%d%d$")) then
    return "is not a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
  end
end

-- Problems -------------------------------------------------------------------------

local Problems = {}
Problems.__index = Problems

local function problems(where)
  return setmetatable({ list = {}, total = 0, where = where }, Problems)
end

function Problems:add(line, column, reason, row)
  self.total = self.total + 1
  if #self.list < MAX_PROBLEMS then
    self.list[#self.list + 1] = { line = line, row = row, column = column, reason = reason }
  end
end

local function describe(p)
  local place = p.row and ("row " .. p.row) or ("line " .. p.line)
  return format("%s, %s: %s", place, p.column or "header", p.reason)
end

-- nil when there was no problem, else the error listing them.
function Problems:error()
  if self.total == 0 then
    return nil
  end
  local shown = {}
  for i = 1, min(3, #self.list) do
    shown[i] = describe(self.list[i])
  end
  local more = self.total > #shown and format(" (and %d more)", self.total - #shown) or ""
  return core.error {
    kind = "input", code = "validation_failed", file = self.file, problems = self.list, problem_count = self.total,
    message = format("%d problem%s in %s: %s%s", self.total, self.total == 1 and "" or "s", self.where,
      concat(shown, "; "), more),
  }
end

-- Checks ---------------------------------------------------------------------------

local function lookup(name)
  local spec = schemas[name]
  if not spec then
    error("csvup.validate: no schema named " .. tostring(name), 3)
  end
  return spec
end

local function column_type(spec, name)
  return spec.columns[name] or (spec.unknown ~= "error" and spec.custom) or nil
end

local function check_header(spec, names, ctx, found)
  local present = {}
  for _, name in ipairs(names) do
    name = tostring(name)
    present[name] = true
    local reason = untidy(name)
    if reason then
      found:add(1, name, "the column name " .. reason)
    elseif not spec.columns[name] then
      if spec.unknown == "error" then
        local hint = ""
        for known in pairs(spec.columns) do
          if known:lower() == name:lower() then
            hint = " (did you mean " .. known .. "?)"
          end
        end
        found:add(1, name, "is not a column this endpoint knows" .. hint)
      elseif spec.unknown == "custom" and name:sub(1, 1) == "$" then
        found:add(1, name, "starts with $, which is for system properties; custom property names must not")
      end
    end
  end
  local required = {}
  for _, name in ipairs(spec.required or {}) do
    required[#required + 1] = name
  end
  if spec.merge_key then
    required[#required + 1] = ctx.merge_field
  end
  for _, name in ipairs(required) do
    if not present[name] then
      found:add(1, name, "the required column is missing")
    end
  end
  local any = not spec.one_of
  for _, name in ipairs(spec.one_of or {}) do
    any = any or present[name]
  end
  if not any then
    found:add(1, concat(spec.one_of, "|"), "one of these columns is required")
  end
  return required, any
end

-- Checks one record; one_of_present says whether the header has any of spec.one_of.
local function check_record(spec, names, required, one_of_present, record, line, row, found)
  for _, name in ipairs(names) do
    local v = record[name]
    if v == nil or v == "" then
      for _, r in ipairs(required) do
        if r == name then
          found:add(line, name, "is empty", row)
        end
      end
    else
      local t = column_type(spec, name)
      local reason = t and TYPES[t](v)
      if reason then
        found:add(line, name, ("%s %s"):format(type(v) == "string" and format("%q", v) or tostring(v), reason), row)
      end
    end
  end
  if spec.one_of and one_of_present then
    for _, name in ipairs(spec.one_of) do
      if record[name] ~= nil and record[name] ~= "" then
        return
      end
    end
    found:add(line, concat(spec.one_of, "|"), "none of these is filled", row)
  end
end

-- validate.rows(schema_name, rows, columns?, ctx?) -> true | nil, err
-- ctx.merge_field names the Carrot quest merge column.
function validate.rows(name, rows, columns, ctx)
  local spec = lookup(name)
  ctx = ctx or {}
  columns = columns or csv.columns(rows)
  local found = problems("the rows")
  local required, one_of_present = check_header(spec, columns, ctx, found)
  for i, row in ipairs(rows) do
    local record = row
    if type(row) == "table" and row[1] ~= nil then
      record = {}
      for c, column in ipairs(columns) do
        record[column] = row[c]
      end
    end
    if type(record) == "table" then
      check_record(spec, columns, required, one_of_present, record, i + 1, i, found)
    end
  end
  local err = found:error()
  if err then
    return nil, err
  end
  return true
end

-- validate.file(schema_name, path, { full?, delimiter?, merge_field? }) -> true | nil, err
-- Always: valid UTF-8 (scanned in C) and the header; with full, every row.
function validate.file(name, path, opts)
  local spec = lookup(name)
  opts = opts or {}
  local ok, err = core.utf8_check_file(path)
  if not ok then
    return nil, err
  end
  local records, header = csv.rows(path, { delimiter = opts.delimiter })
  if not records then
    return nil, header
  end
  local found = problems(path)
  found.file = path
  local required, one_of_present = check_header(spec, header, opts, found)
  if opts.full and found.total == 0 then
    local read, problem = pcall(function()
      for record, line in records do
        check_record(spec, header, required, one_of_present, record, line, nil, found)
      end
    end)
    if not read then
      return nil, problem
    end
  end
  err = found:error()
  if err then
    return nil, err
  end
  return true
end

return validate
