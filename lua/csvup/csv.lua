-- CSV for the APIs: RFC 4180 quoting, exact integers, shortest floats, UTF-8
-- only, and every column of every row (never only the first row's keys).
-- The per-row loop is C (core.csv_encoder); this module adds the options,
-- the streaming writer and the reader.
local core = require "csvup.core"

local concat, sort, min = table.concat, table.sort, math.min
local pairs, ipairs, type, tostring, setmetatable, error, pcall, next =
  pairs, ipairs, type, tostring, setmetatable, error, pcall, next
local io_open = io.open

local csv = {}

local BOM = "\239\187\191"
local BATCH = 4096 -- rows encoded by one C call
local SNIFFED = { ",", ";", "\t", "|" }

local function fail(fields)
  fields.kind = "input"
  return nil, core.error(fields)
end

local function is_array(row)
  return type(row) == "table" and (row[1] ~= nil or next(row) == nil)
end

-- The union of the records' keys in rows[i..j], in first-seen order; the keys
-- a row adds are sorted, since a table's own order is not its insertion order.
function csv.columns(rows, i, j)
  local seen, columns = {}, {}
  for r = i or 1, j or #rows do
    local row = rows[r]
    if type(row) == "table" and not is_array(row) then
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

-- columns: given, or the union of rows[i..j]'s keys (then a later key is an error, not dropped).
local function new_encoder(opts, rows, i, j)
  local columns, strict = opts.columns, false
  if not columns and rows[i] and not is_array(rows[i]) then
    columns, strict = csv.columns(rows, i, j), true
  end
  local encoder = core.csv_encoder {
    delimiter = opts.delimiter, eol = opts.eol, null = opts.null,
    true_text = opts.true_text, false_text = opts.false_text, columns = columns, strict = strict,
  }
  local head = opts.bom and BOM or ""
  if opts.header ~= false and columns and #columns > 0 then
    local names, err = encoder:rows({ columns }, 1, 1, 0)
    if not names then
      err.message = "header: " .. err.message
      return nil, err
    end
    head = head .. names
  end
  return encoder, head
end

--- Encodes records as CSV text.
-- csv.encode(rows, opts) -> text | nil, err
-- opts: columns, header (true), delimiter (","), eol ("\n" or "\r\n"), null (""),
-- bom (false), true_text/false_text ("true"/"false").
function csv.encode(rows, opts)
  if type(rows) ~= "table" then
    error("csv.encode expects an array of rows", 2)
  end
  opts = opts or {}
  local encoder, head = new_encoder(opts, rows, 1, #rows)
  if not encoder then
    return nil, head
  end
  local body, err = encoder:rows(rows, 1, #rows, 1)
  if not body then
    return nil, err
  end
  return head .. body
end

-- Writing ------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer

function Writer:emit(text)
  local ok, message = self.fh:write(text)
  if not ok then
    return fail { code = "write_error", file = self.name, message = tostring(message) }
  end
  self.bytes = self.bytes + #text
  return true
end

function Writer:encode(rows, i, j)
  local err
  if not self.encoder then
    local head
    self.encoder, head = new_encoder(self.opts, rows, i, j)
    if not self.encoder then
      return nil, head
    end
    local ok
    ok, err = self:emit(head)
    if not ok then
      return nil, err
    end
  end
  local text
  text, err = self.encoder:rows(rows, i, j, self.rows + 1)
  if not text then
    return nil, err
  end
  self.rows = self.rows + (j - i + 1)
  return self:emit(text)
end

function Writer:flush()
  local pending = self.pending
  if #pending == 0 then
    return true
  end
  self.pending = {}
  return self:encode(pending, 1, #pending)
end

--- Writes one record.
-- w:write(row) -> true | nil, err. Rows are encoded in batches.
function Writer:write(row)
  local pending = self.pending
  pending[#pending + 1] = row
  if #pending >= BATCH then
    return self:flush()
  end
  return true
end

--- Writes every record of an array, or that an iterator gives.
-- w:write_all(rows_or_iterator) -> true | nil, err. An iterator that raises
-- stops the writing with err.code "callback_error".
function Writer:write_all(source)
  local ok, err = self:flush()
  if not ok then
    return nil, err
  end
  if type(source) == "table" then
    for i = 1, #source, BATCH do
      ok, err = self:encode(source, i, min(i + BATCH - 1, #source))
      if not ok then
        return nil, err
      end
    end
    return true
  end
  while true do
    local called, row = pcall(source)
    if not called then
      return fail { code = "callback_error", message = tostring(row), cause = row }
    elseif row == nil then
      return self:flush()
    end
    ok, err = self:write(row)
    if not ok then
      return nil, err
    end
  end
end

--- Writes what is buffered and closes the file.
-- w:close() -> bytes, rows | nil, err
function Writer:close()
  if self.closed then
    return self.bytes, self.rows
  end
  self.closed = true
  local ok, err = self:flush()
  if ok and not self.encoder and self.opts.columns then
    ok, err = self:encode({}, 1, 0) -- the header alone
  end
  if self.owned then
    local closed, message = self.fh:close()
    if ok and not closed then
      ok, err = fail { code = "write_error", file = self.name, message = tostring(message) }
    end
  end
  if not ok then
    return nil, err
  end
  return self.bytes, self.rows
end
Writer.__close = Writer.close

--- Opens a streaming CSV writer on a file.
-- csv.writer(path_or_file, opts) -> writer | nil, err; opts as for csv.encode.
-- Without opts.columns, the columns are those of the first rows written (up to
-- 4096); a later row with another key is an error rather than a dropped value.
function csv.writer(target, opts)
  local fh, owned, name = target, false, "output"
  if type(target) == "string" then
    local message
    fh, message = io_open(target, "wb")
    if not fh then
      return fail { code = "file_unreadable", file = target, message = message }
    end
    owned, name = true, target
  elseif type(target) ~= "userdata" and type(target) ~= "table" then
    error("csv.writer expects a path or a file handle", 2)
  end
  return setmetatable({ fh = fh, owned = owned, name = name, opts = opts or {}, pending = {}, bytes = 0, rows = 0 },
    Writer)
end

-- Reading ------------------------------------------------------------------------

local Reader = {}
Reader.__index = Reader

function Reader:malformed(line, column, message)
  error(core.error { kind = "input", code = "malformed_csv", file = self.name, line = line, column = column, message = message }, 0)
end

function Reader:read_line()
  local line = self.peeked or self.fh:read("L")
  self.peeked = nil
  if line then
    self.line = self.line + 1
    if self.line == 1 then
      line = line:gsub("^\239\187\191", "") -- a UTF-8 byte order mark
    end
  end
  return line
end

-- The delimiter of the first line: the candidate seen most often outside quotes.
function Reader:sniff()
  local line = self.fh:read("L") or ""
  self.peeked = line
  local unquoted = line:gsub('"[^"]*"', "")
  local best, count = ",", 0
  for _, d in ipairs(SNIFFED) do
    local n = select(2, unquoted:gsub(d == "|" and "%|" or d, ""))
    if n > count then
      best, count = d, n
    end
  end
  return best
end

-- The fields of the next record, which may span lines inside quotes; and its first line.
function Reader:record()
  local line = self:read_line()
  if not line then
    return nil
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
          line, i = self:read_line(), 1
          if not line then
            self:malformed(first_line, start, "a quoted field is not closed")
          end
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
      elseif line:find("^\r?\n?$", i) then
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
  while fields and #fields == 1 and fields[1] == "" and #self.header > 1 do
    fields, line = self:record() -- a blank line
  end
  if not fields then
    if self.owned then
      self.fh:close()
    end
    return nil
  end
  if #fields ~= #self.header then
    self:malformed(line, nil, ("%d fields where the header has %d"):format(#fields, #self.header))
  end
  local record = {}
  for i, name in ipairs(self.header) do
    record[name] = fields[i]
  end
  return record, line
end

--- Reads a CSV file record by record.
-- csv.rows(path_or_file, opts) -> iterator, header | nil, err
-- The iterator gives each record (keyed by the header) and its line number.
-- opts.delimiter: one byte (","), or "auto" to take the most frequent of , ; tab |
-- in the header line. A malformed record raises an error naming file, line and column.
function csv.rows(source, opts)
  opts = opts or {}
  local reader = setmetatable({ line = 0, name = opts.name or "input" }, Reader)
  if type(source) == "string" then
    local fh, message = io_open(source, "rb")
    if not fh then
      return fail { code = "file_unreadable", file = source, message = message }
    end
    reader.fh, reader.name, reader.owned = fh, source, true
  else
    reader.fh = source
  end
  reader.delimiter = opts.delimiter == "auto" and reader:sniff() or opts.delimiter or ","
  local ok, header = pcall(reader.record, reader)
  if not ok then
    return nil, header
  end
  reader.header = header or {}
  local seen = {}
  for i, name in ipairs(reader.header) do
    if seen[name] then
      return fail { code = "malformed_csv", file = reader.name, line = 1, column = i,
        message = ("the column %q appears twice in the header"):format(name) }
    end
    seen[name] = true
  end
  return function()
    return reader:next()
  end, reader.header
end

return csv
