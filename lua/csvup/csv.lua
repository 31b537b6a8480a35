-- CSV for the APIs: RFC 4180 quoting, exact integers, shortest floats, and
-- every column of every row (never only the first row's keys).
local cjson = require "cjson.safe"
local core = require "csvup.core"

local concat, sort, format, rep = table.concat, table.sort, string.format, string.rep
local pairs, type, tostring, tonumber, setmetatable, error = pairs, type, tostring, tonumber, setmetatable, error
local math_type, huge = math.type, math.huge

local csv = {}

local function fail(fields)
  return core.error(fields)
end

-- The shortest decimal that reads back as the same double, never with an exponent.
local function format_float(v)
  local s
  for precision = 1, 17 do
    s = format("%." .. precision .. "g", v)
    if tonumber(s) == v then
      break
    end
  end
  local sign, int, frac, exp = s:match("^(-?)(%d+)%.?(%d*)e([-+]%d+)$")
  if not sign then
    return s
  end
  local digits, point = int .. frac, #int + tonumber(exp)
  if point <= 0 then
    return sign .. "0." .. rep("0", -point) .. digits
  elseif point >= #digits then
    return sign .. digits .. rep("0", point - #digits)
  end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

local function is_array(row)
  return row[1] ~= nil or next(row) == nil
end

-- The union of the records' keys, in first-seen order; keys new in one row are sorted.
function csv.columns(rows)
  local seen, columns = {}, {}
  for _, row in ipairs(rows) do
    if not is_array(row) then
      local fresh = {}
      for k in pairs(row) do
        if not seen[k] then
          seen[k] = true
          fresh[#fresh + 1] = k
        end
      end
      sort(fresh, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(fresh) do
        columns[#columns + 1] = k
      end
    end
  end
  return columns
end

local function field_text(v, null)
  local t = type(v)
  if t == "string" then
    return v
  elseif v == nil or v == cjson.null then
    return null
  elseif t == "number" then
    if math_type and math_type(v) == "integer" then
      return format("%d", v)
    elseif v ~= v or v == huge or v == -huge then
      return nil, "is not a finite number"
    end
    return format_float(v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return nil, "is a " .. t .. ", not a string, number or boolean"
end

local function options(opts)
  opts = opts or {}
  local delimiter = opts.delimiter or ","
  if type(delimiter) ~= "string" or #delimiter ~= 1 or delimiter:find('["\r\n]') then
    error("csv: delimiter must be one byte other than a quote or a line break", 3)
  end
  return {
    delimiter = delimiter,
    eol = opts.eol or "\n",
    null = opts.null or "",
    header = opts.header ~= false,
    bom = opts.bom,
    columns = opts.columns,
    special = "[" .. delimiter:gsub("%p", "%%%0") .. '"\r\n]',
  }
end

local function quote(text, o)
  if text:find(o.special) then
    return '"' .. text:gsub('"', '""') .. '"'
  end
  return text
end

-- Encodes one row; returns its line, or nil and an error naming row and column.
local function encode_row(row, index, columns, o)
  local out = {}
  local array = is_array(row)
  local count = columns and #columns or #row
  for i = 1, count do
    local key = array and i or columns[i]
    local text, why = field_text(row[key], o.null)
    if not text then
      return nil, fail { code = "invalid_value", row = index, column = key,
        message = format("row %d, column %s: the value %s", index, tostring(key), why) }
    end
    out[i] = quote(text, o)
  end
  return concat(out, o.delimiter) .. o.eol
end

-- csv.encode(rows, opts) -> text | nil, err
function csv.encode(rows, opts)
  local o = options(opts)
  local columns = o.columns or csv.columns(rows)
  local out = { o.bom and "\239\187\191" or "" }
  if o.header and #columns > 0 then
    local names = {}
    for i, c in ipairs(columns) do
      names[i] = quote(tostring(c), o)
    end
    out[2] = concat(names, o.delimiter) .. o.eol
  end
  for i, row in ipairs(rows) do
    local line, err = encode_row(row, i, #columns > 0 and columns or nil, o)
    if not line then
      return nil, err
    end
    out[#out + 1] = line
  end
  return concat(out)
end

-- Reading --------------------------------------------------------------------

local Reader = {}
Reader.__index = Reader

function Reader:malformed(line, column, message)
  error(fail { code = "malformed_csv", file = self.name, line = line, column = column, message = message }, 0)
end

-- The fields of the next record, which may span lines inside quotes.
function Reader:record()
  local line = self.fh:read("L")
  if not line then
    return nil
  end
  self.line = self.line + 1
  if self.line == 1 then
    line = line:gsub("^\239\187\191", "") -- a UTF-8 byte order mark
  end
  local first_line, fields, i, d = self.line, {}, 1, self.delimiter
  while true do
    if line:sub(i, i) == '"' then
      local parts, start = {}, i
      i = i + 1
      while true do
        local q = line:find('"', i, true)
        if not q then
          parts[#parts + 1] = line:sub(i)
          line, i = self.fh:read("L"), 1
          if not line then
            self:malformed(first_line, start, "a quoted field is not closed")
          end
          self.line = self.line + 1
        elseif line:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = line:sub(i, q)
          i = q + 2
        else
          parts[#parts + 1] = line:sub(i, q - 1)
          i = q + 1
          break
        end
      end
      fields[#fields + 1] = concat(parts)
      local after = line:sub(i, i)
      if after == d then
        i = i + 1
      elseif line:sub(i):find("^\r?\n?$") then
        return fields, first_line
      else
        self:malformed(self.line, i, "unexpected text after a closing quote")
      end
    else
      local j = line:find(d, i, true)
      local field = j and line:sub(i, j - 1) or line:sub(i):gsub("\r?\n$", "")
      local q = field:find('"', 1, true)
      if q then
        self:malformed(self.line, i + q - 1, "a quote inside an unquoted field")
      end
      fields[#fields + 1] = field
      if not j then
        return fields, first_line
      end
      i = j + 1
    end
  end
end

function Reader:next()
  local fields, line = self:record()
  if not fields then
    if self.owned then
      self.fh:close()
    end
    return nil
  end
  if #fields ~= #self.header then
    self:malformed(line, nil, format("%d fields where the header has %d", #fields, #self.header))
  end
  local record = {}
  for i, name in ipairs(self.header) do
    record[name] = fields[i]
  end
  return record
end

-- csv.rows(path_or_file, opts) -> iterator of records, header names | nil, err.
-- A malformed record raises an error value naming file, line and column.
function csv.rows(source, opts)
  opts = opts or {}
  local reader = setmetatable({ line = 0, delimiter = opts.delimiter or "," }, Reader)
  if type(source) == "string" then
    local fh, message = io.open(source, "rb")
    if not fh then
      return nil, fail { code = "file_unreadable", file = source, message = message }
    end
    reader.fh, reader.name, reader.owned = fh, source, true
  else
    reader.fh, reader.name = source, opts.name or "input"
  end
  local ok, header = pcall(reader.record, reader)
  if not ok then
    return nil, header
  end
  reader.header = header or {}
  return function()
    return reader:next()
  end, reader.header
end

return csv
