-- The Carrot quest side of the sandbox: POST /users/import, with the
-- service's error bodies (meta.status, meta.error) and row_errors. Every error,
-- injected faults included, has the envelope
-- {"meta":{"status":..,"error":..,"error_message":..},"data":{}}.
local json = require "csvup.json"
local upload = require "csvup.sandbox.upload"

local ipairs, pairs, tostring, tonumber, type = ipairs, pairs, tostring, tonumber, type

local carrotquest = {}

local FILE_LIMIT = 30 * 1024 * 1024
local DELIMITERS = { [","] = true, ["|"] = true, [";"] = true, ["\t"] = true, [" "] = true }
local MAX_INTEGER = "9007199254740992" -- 2^53, compared as digits
local DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- The meta.error of the faults the sandbox injects: the docs name none for
-- 429 and 5xx, so these are the sandbox's own.
local FAULTS = {
  too_many_requests = { 429, "TooManyRequests", "Request was throttled" },
  backend_error = { 503, "ServiceUnavailable", "Service temporarily unavailable, try again later" },
}

-- The meta.error of requests refused before they reach the import (see
-- init.lua), by status: the docs name BadRequest for 400 and none for the rest.
local REFUSALS = { [400] = "BadRequest", [404] = "NotFound", [411] = "BadRequest", [413] = "BadRequest",
  [431] = "BadRequest", [503] = "ServiceUnavailable" }

local function answer(status, data)
  return status, json.encode { meta = { status = status }, data = data }
end

local function fail(status, error_name, message, fields)
  return status, json.encode { meta = { status = status, error = error_name, error_message = message,
    error_fields = fields }, data = {} }
end

function carrotquest.owns(path)
  return path == "/users/import"
end

function carrotquest.fault_answer(name)
  return fail(FAULTS[name][1], FAULTS[name][2], FAULTS[name][3])
end

function carrotquest.refusal(status, message)
  return fail(status, REFUSALS[status], message)
end

local function authorize(state, req)
  local token = (req.headers.authorization or ""):match("^Token (.+)$")
    or (req.headers.authorization or ""):match("^Bearer (.+)$")
  if not token then
    return fail(401, "NotAuthenticated", "Authentication credentials were not provided")
  elseif token ~= state.tokens.carrotquest then
    return fail(403, "PermissionDeniedError", "Invalid token")
  end
end

-- YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, naming a day and time that exist.
local function is_date(text)
  local y, m, d, time = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local leap = y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
  if m < 1 or m > 12 or d < 1 or d > DAYS[m] or (m == 2 and d == 29 and not leap) then
    return false
  elseif time == "" then
    return true
  end
  local hour, minute, second = time:match("^T(%d%d):(%d%d):(%d%d)$")
  return hour ~= nil and tonumber(hour) < 24 and tonumber(minute) < 60 and tonumber(second) < 60
end

-- `tags` is one field holding a JSON array of strings (arrays are JSON-encoded
-- before they are passed as a parameter); nil, message otherwise.
local function check_tags(values)
  if not values then
    return true
  elseif #values > 1 then
    return nil, "tags must be one field holding a JSON array, not one field per tag"
  end
  local tags = json.decode(values[1])
  if type(tags) ~= "table" or (next(tags) ~= nil and #tags == 0) or values[1]:match("^%s*(.)") ~= "[" then
    return nil, "tags must be a JSON array of tag names: " .. values[1]:sub(1, 80)
  end
  for _, tag in ipairs(tags) do
    if type(tag) ~= "string" then
      return nil, "each tag must be a string"
    end
  end
  return true
end

-- Property values: integers within 2^53 either way, strings of at most 255
-- characters, dates YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS. The documentation says
-- no more, so a value is read as plainly as it can be: only digits (an optional
-- '-', no leading zero) make an integer, and "+7 999 ...", "007" or "1.5" are
-- strings; a value that starts as YYYY-MM-DD is meant as a date and must be one.
-- The merge column holds identifiers, matched as text: never an integer.
local function value_problem(name, value, merge_field)
  local digits = name ~= merge_field and value:match("^%-?([1-9]%d*)$")
  if digits and (#digits > #MAX_INTEGER or #digits == #MAX_INTEGER and digits > MAX_INTEGER) then
    return "is an integer beyond 2^53 either way"
  elseif upload.longer_than(value, 255) then
    return "is longer than 255 characters"
  elseif value:find("^%d%d%d%d%-%d%d%-%d%d") and not is_date(value) then
    return "is not a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
  end
end

-- What keeps a row from being applied, if anything. A bad value is the row's
-- error, in row_errors under its line like an empty merge value, and the row
-- is not planned: the service's answer has no other place for it.
local function row_problem(header, row, merge_field)
  if row[merge_field] == "" then
    return "Empty value of " .. merge_field
  end
  for _, name in ipairs(header) do
    local problem = value_problem(name, row[name], merge_field)
    if problem then
      return ("Value of %s %s"):format(name, problem)
    end
  end
end

-- The answer page shows row_errors only by its example, {"line": "message"}.
-- The sandbox option row_errors answers the same errors in another shape an
-- accepted import may come with: "lists" ({"line": ["message"]}), "entries"
-- ([{"row": line, "error": "message"}]), "text" (the messages as one string),
-- "empty" (data: [], nothing said at all).
local function answer_import(shape, row_errors, planned)
  if shape == "empty" then
    return 200, '{"meta":{"status":200},"data":[]}'
  end
  local shaped, lines = row_errors, {}
  for line in pairs(row_errors) do
    lines[#lines + 1] = line
  end
  table.sort(lines, function(a, b) return tonumber(a) < tonumber(b) end)
  if shape == "lists" then
    shaped = {}
    for _, line in ipairs(lines) do
      shaped[line] = { row_errors[line] }
    end
  elseif shape == "entries" then
    shaped = {}
    for i, line in ipairs(lines) do
      shaped[i] = { row = tonumber(line), error = row_errors[line] }
    end
  elseif shape == "text" then
    shaped = {}
    for i, line in ipairs(lines) do
      shaped[i] = "line " .. line .. ": " .. row_errors[line]
    end
    shaped = table.concat(shaped, "; ")
  end
  return answer(200, { row_errors = shaped, updates_planned = planned })
end

local function import(state, req)
  local form, err = upload.form(req)
  if not form then
    return fail(400, "BadRequest", err)
  end
  state:record(req, form)
  local f = form.fields
  local merge_field = f.merge_field and f.merge_field[1] or "$user_id"
  local delimiter = f.delimiter and f.delimiter[1] or "\t" -- the API's own default
  local tags_ok, tags_problem = check_tags(f.tags)
  if not f.app then
    return fail(400, "ValidationError", "app is required", { app = "required" })
  elseif merge_field ~= "$user_id" and merge_field ~= "$email" then
    return fail(400, "ValidationError", "merge_field must be $user_id or $email", { merge_field = "invalid" })
  elseif not DELIMITERS[delimiter] then
    return fail(400, "ValidationError", "unknown delimiter", { delimiter = "invalid" })
  elseif not tags_ok then
    return fail(400, "ValidationError", tags_problem, { tags = "invalid" })
  elseif not form.file then
    return fail(400, "ValidationError", "file is required", { file = "required" })
  elseif form.file.size > FILE_LIMIT then
    return fail(400, "ValidationError", "the file is larger than 30 MB", { file = "too large" })
  end
  local parsed
  parsed, err = upload.read_csv(form.file, delimiter)
  if not parsed then
    return fail(400, "BadRequest", err)
  end
  local has_merge_column = false
  for _, name in ipairs(parsed.header) do
    has_merge_column = has_merge_column or name == merge_field
  end
  if not has_merge_column then
    return fail(400, "ValidationError", "the CSV has no " .. merge_field .. " column", { file = "invalid" })
  end
  local row_errors, failed = {}, 0
  for i, row in ipairs(parsed.rows) do
    local problem = row_problem(parsed.header, row, merge_field)
    if problem then
      row_errors[tostring(parsed.lines[i])] = problem
      failed = failed + 1
    end
  end
  return answer_import(state.row_errors, row_errors, parsed.count - failed)
end

-- Answers a request for Carrot quest (a path it owns).
function carrotquest.handle(state, req)
  local status, body = authorize(state, req)
  if status then
    state:record(req)
    return status, body
  end
  if req.method ~= "POST" then -- the docs have no 405: no such resource
    state:record(req)
    return fail(404, "NotFound", "Not found: " .. req.method .. " " .. req.path)
  end
  return import(state, req)
end

return carrotquest
