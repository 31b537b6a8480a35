-- What the sandbox does with an uploaded CSV: take the multipart form apart,
-- read the header, check the first rows in full and count the rest.
local http = require "csvup.sandbox.http"
local csv = require "csvup.sandbox.csv"

local ipairs = ipairs

local upload = {}

-- Rows checked field by field; beyond them rows are only counted, so that a
-- 1 GB rehearsal does not take minutes.
local CHECKED_ROWS = 10000

-- The form of a multipart request: { fields = { name = { values } }, file = part }
-- (see http.multipart); nil, message when it is not one.
function upload.form(req)
  if not req.body_file then
    return nil, "the body must be multipart/form-data"
  end
  local parts, err = http.multipart(req.body_file, req.body_size, req.headers["content-type"])
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

-- The first bytes of the uploaded file, up to n.
function upload.head(part, n)
  return http.read_at(part.file, part.start, n < part.size and n or part.size)
end

-- Whether the UTF-8 text s has more than n characters.
function upload.longer_than(s, n)
  return #s:gsub("[\128-\191]", "") > n
end

-- { header = { names }, rows = { first records }, lines = { their line numbers },
-- count = all records } or nil, message.
function upload.read_csv(part, delimiter)
  return csv.read(part, delimiter, CHECKED_ROWS)
end

return upload
