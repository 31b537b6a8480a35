-- What the sandbox does with an uploaded CSV: take the multipart form apart,
-- read the header, check the first rows in full and count the rest.
local csv = require "csvup.csv"
local http = require "csvup.sandbox.http"

local pcall, find, tostring = pcall, string.find, tostring

local upload = {}

-- Rows checked field by field; beyond them rows are only counted, so that a
-- 1 GB rehearsal does not take minutes.
local CHECKED_ROWS = 10000

-- The form of a multipart request: { fields = { name = { values } }, file = part }.
function upload.form(req)
  local parts, err = http.multipart(req.body, req.headers["content-type"])
  if not parts then
    return nil, err
  end
  local form = { fields = {} }
  for _, part in ipairs(parts) do
    if part.name == "file" then
      form.file = part
    elseif part.name then
      local values = form.fields[part.name] or {}
      values[#values + 1] = part.content
      form.fields[part.name] = values
    end
  end
  return form
end

-- A file-like object over a string, for csv.rows.
local function string_file(s)
  local pos = 1
  return {
    read = function()
      if pos > #s then
        return nil
      end
      local eol = find(s, "\n", pos, true) or #s
      local line = s:sub(pos, eol)
      pos = eol + 1
      return line
    end,
    rest = function()
      return s, pos
    end,
  }
end

-- { header = { names }, rows = { first records }, count = all records } or nil, message.
function upload.read_csv(content, delimiter)
  local file = string_file(content)
  local records, header = csv.rows(file, { delimiter = delimiter, name = "file" })
  if not records then
    return nil, tostring(header)
  end
  local result = { header = header, rows = {}, count = 0 }
  local ok, problem = pcall(function()
    for record in records do
      result.count = result.count + 1
      result.rows[result.count] = record
      if result.count == CHECKED_ROWS then
        break
      end
    end
  end)
  if not ok then
    return nil, tostring(problem)
  end
  if result.count == CHECKED_ROWS then
    local s, pos = file.rest()
    while pos <= #s do
      local eol = find(s, "\n", pos, true) or #s
      result.count = result.count + 1
      pos = eol + 1
    end
  end
  return result
end

return upload
