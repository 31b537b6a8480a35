-- CSV for the APIs: RFC 4180 quoting, exact integers, shortest floats, UTF-8
-- only, and every column of every row (never only the first row's keys).
-- The per-row loops are C (core.csv_encoder, core.csv_reader); this module
-- adds the options and the streaming writer.
local core = require "csvup.core"
local errors = require "csvup.errors"

local min = math.min
local ipairs, type, tostring, setmetatable, error, pcall, next =
  ipairs, type, tostring, setmetatable, error, pcall, next
local io_open, io_type = io.open, io.type

local csv = {}

local BOM = "\239\187\191"
local BATCH = 4096 -- rows encoded by one C call

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
  return core.csv_columns(rows, i or 1, j or #rows)
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
  if self.streaming then -- numbered on from here
    self.write = self.encoder:stream(self.fh, self.rows + 1)
  end
  return self:emit(text)
end

-- Once the columns are known and the target is a Lua file, w:write is the
-- encoder's own C writer: one row at a time, written out every 64 KB.
function Writer:flush()
  if self.streaming then
    local bytes, rows = self.encoder:drain(self.fh)
    if not bytes then
      return nil, rows
    end
    self.bytes, self.rows = self.bytes + bytes, self.rows + rows
    return true
  end
  local pending = self.pending
  if #pending == 0 then
    return true
  end
  self.pending = {}
  local ok, err = self:encode(pending, 1, #pending)
  if ok and io_type(self.fh) == "file" then
    self.write, self.streaming = self.encoder:stream(self.fh, self.rows + 1), true
  end
  return ok, err
end

--- Writes one record.
-- w:write(row) -> true | nil, err. Without columns, the first rows are kept
-- until BATCH of them name the columns.
function Writer:write(row)
  local pending = self.pending
  pending[#pending + 1] = row
  if #pending >= BATCH or self.opts.columns then
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
      return fail { code = "callback_error", message = errors.text(row), cause = row }
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

local ENCODINGS = { ["utf-8"] = "utf-8", utf8 = "utf-8", cp1251 = "cp1251", ["windows-1251"] = "cp1251" }

--- Names the encoding of a file.
-- csv.encoding(name, path) -> "utf-8" | "cp1251", and why when it was detected
-- | nil, err. name: "utf-8", "cp1251" (or "windows-1251"), or "auto": UTF-8
-- when the file starts with a byte order mark or is valid UTF-8, else
-- Windows-1251 (a Russian-locale Excel export).
function csv.encoding(name, path)
  if name == nil or ENCODINGS[name] then
    return ENCODINGS[name or "utf-8"]
  elseif name ~= "auto" then
    return fail { code = "invalid_argument", message = ("encoding %q is not one of: utf-8, cp1251, windows-1251, auto")
      :format(tostring(name)) }
  end
  -- it opens no FIFO, which the upload could not read again
  local ok, err = core.utf8_check_file(path, true)
  if not ok and err.code ~= "invalid_utf8" then
    return nil, err
  elseif ok == "bom" then
    return "utf-8", "it starts with a UTF-8 byte order mark"
  elseif ok then
    return "utf-8", "it is valid UTF-8"
  end
  return "cp1251", "it is not valid UTF-8"
end

--- Reads a CSV file record by record.
-- csv.rows(source, opts) -> iterator, header | nil, err
-- source: a path, an open file handle, or an object whose read(n) gives the
-- next piece of text (any length) or nil at the end.
-- The iterator gives each record (keyed by the header) and its line number
-- (line breaks inside quotes counted). opts.delimiter: one byte (","), or
-- "auto" to take the most frequent of , ; tab | in the header line;
-- opts.record_limit: the longest record in bytes (4 MB; the header: 64 KB);
-- opts.encoding: see csv.encoding (a path's only, for "auto").
-- A malformed record raises an error naming file, line and column.
function csv.rows(source, opts)
  opts = opts or {}
  if type(source) ~= "string" and io_type(source) ~= "file" and not (type(source) == "table" and source.read) then
    error("csv.rows expects a path, an open file handle or an object with a read method", 2)
  end
  local encoding, err = csv.encoding(opts.encoding, source)
  if not encoding then
    return nil, err
  end
  local reader, header = core.csv_reader(source,
    { delimiter = opts.delimiter, name = opts.name, record_limit = opts.record_limit, encoding = encoding })
  if not reader then
    return nil, header
  end
  local seen = {}
  for i, name in ipairs(header) do
    if seen[name] then
      reader:close()
      return fail { code = "malformed_csv", kind = "input", file = type(source) == "string" and source or opts.name,
        line = 1, column = i, message = ("the column %q appears twice in the header"):format(name) }
    end
    seen[name] = true
  end
  return reader:records(), header
end

return csv
