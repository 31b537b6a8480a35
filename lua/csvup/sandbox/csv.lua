-- The sandbox's own CSV reading (RFC 4180: quotes, doubled quotes, line breaks
-- inside quotes), over a part of a file and with every line bounded, so that a
-- rehearsal upload of any size takes little memory.
local setmetatable, ipairs, pcall, select, error, min = setmetatable, ipairs, pcall, select, error, math.min
local concat = table.concat

local csv = {}

local CHUNK = 64 * 1024
local LINE_MAX = 1024 * 1024

-- Lines of the bytes [start, start + size) of file, each with its "\n".
local Lines = {}
Lines.__index = Lines

local function lines(file, start, size)
  return setmetatable({ file = file, at = start, stop = start + size, buffer = "", number = 0 }, Lines)
end

function Lines:fill()
  if self.at >= self.stop then
    return false
  end
  self.file:seek("set", self.at)
  local chunk = self.file:read(min(CHUNK, self.stop - self.at)) or ""
  self.at = self.at + #chunk
  self.buffer = self.buffer .. chunk
  return #chunk > 0
end

-- The next line; nil at the end; error (a string) for a line over LINE_MAX.
function Lines:next()
  while true do
    local eol = self.buffer:find("\n", 1, true)
    if eol or not self:fill() then
      eol = eol or #self.buffer
      if eol == 0 then
        return nil
      elseif eol > LINE_MAX then
        error(("line %d is longer than %d bytes"):format(self.number + 1, LINE_MAX), 0)
      end
      local line = self.buffer:sub(1, eol)
      self.buffer = self.buffer:sub(eol + 1)
      self.number = self.number + 1
      return line
    elseif #self.buffer > LINE_MAX then
      error(("line %d is longer than %d bytes"):format(self.number + 1, LINE_MAX), 0)
    end
  end
end

-- How many more lines there are (a last one without "\n" included), counted without keeping them.
function Lines:count()
  local n, last = 0, "\n"
  repeat
    if #self.buffer > 0 then
      n = n + select(2, self.buffer:gsub("\n", ""))
      last = self.buffer:sub(-1)
    end
    self.buffer = ""
  until not self:fill()
  return n + (last ~= "\n" and 1 or 0)
end

-- The fields of the next record; nil at the end. Raises "line N: ..." when malformed.
local function record(source, d)
  local line = source:next()
  if not line then
    return nil
  end
  local first, fields, i = source.number, {}, 1
  while true do
    if line:sub(i, i) == '"' then
      local parts = {}
      i = i + 1
      while true do
        local q = line:find('"', i, true)
        if not q then
          parts[#parts + 1] = line:sub(i)
          line, i = source:next(), 1
          if not line then
            error(("line %d: a quoted field is not closed"):format(first), 0)
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
        return fields, first
      else
        error(("line %d: text after a closing quote"):format(source.number), 0)
      end
    else
      local j = line:find(d, i, true)
      local field = j and line:sub(i, j - 1) or line:sub(i):gsub("\r?\n$", "")
      if field:find('"', 1, true) then
        error(("line %d: a quote inside an unquoted field"):format(source.number), 0)
      end
      fields[#fields + 1] = field
      if not j then
        return fields, first
      end
      i = j + 1
    end
  end
end

-- Reads a CSV kept in part = { file, start, size }: its header, its first
-- `checked` records (keyed by column name) and the line each starts on, and the
-- number of all records (beyond the checked ones: of lines). nil, message when malformed.
function csv.read(part, delimiter, checked)
  local source = lines(part.file, part.start, part.size)
  local ok, result = pcall(function()
    local header = record(source, delimiter)
    if not header then
      error("line 1: the file is empty", 0)
    end
    header[1] = header[1]:gsub("^\239\187\191", "") -- a UTF-8 byte order mark
    local seen = {}
    for column, name in ipairs(header) do
      if seen[name] then
        error(("line 1, column %d: the column %q appears twice"):format(column, name), 0)
      end
      seen[name] = true
    end
    local rows, starts, count = {}, {}, 0
    while count < checked do
      local fields, line = record(source, delimiter)
      if not fields then
        return { header = header, rows = rows, lines = starts, count = count }
      end
      if not (#fields == 1 and fields[1] == "" and #header > 1) then -- a blank line
        if #fields ~= #header then
          error(("line %d: %d fields where the header has %d"):format(line, #fields, #header), 0)
        end
        local row = {}
        for column, name in ipairs(header) do
          row[name] = fields[column]
        end
        count = count + 1
        rows[count], starts[count] = row, line
      end
    end
    return { header = header, rows = rows, lines = starts, count = count + source:count() }
  end)
  if not ok then
    return nil, result
  end
  return result
end

return csv
