-- The Carrot quest side of the sandbox: POST /users/import, with the
-- service's error bodies (meta.status, meta.error) and row_errors. Every error,
-- injected faults included, has the envelope
-- {"meta":{"status":..,"error":..,"error_message":..},"data":{}}.
local json = require "csvup.json"
local upload = require "csvup.sandbox.upload"

local ipairs, tostring, type = ipairs, tostring, type

local carrotquest = {}

local FILE_LIMIT = 30 * 1024 * 1024
local DELIMITERS = { [","] = true, ["|"] = true, [";"] = true, ["\t"] = true, [" "] = true }

-- The meta.error of the faults the sandbox injects: the docs name none for
-- 429 and 5xx, so these are the sandbox's own.
local FAULTS = {
  too_many_requests = { 429, "TooManyRequests", "Request was throttled" },
  backend_error = { 503, "ServiceUnavailable", "Service temporarily unavailable, try again later" },
}

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

local function authorize(state, req)
  local token = (req.headers.authorization or ""):match("^Token (.+)$")
    or (req.headers.authorization or ""):match("^Bearer (.+)$")
  if not token then
    return fail(401, "NotAuthenticated", "Authentication credentials were not provided")
  elseif token ~= state.tokens.carrotquest then
    return fail(403, "PermissionDeniedError", "Invalid token")
  end
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
    if row[merge_field] == "" then
      row_errors[tostring(parsed.lines[i])] = "Empty value of " .. merge_field
      failed = failed + 1
    end
  end
  return answer(200, { row_errors = row_errors, updates_planned = parsed.count - failed })
end

-- Answers a request for Carrot quest (a path it owns).
function carrotquest.handle(state, req)
  local status, body = authorize(state, req)
  if status then
    state:record(req)
    return status, body
  end
  if req.method ~= "POST" then
    state:record(req)
    return fail(405, "BadRequest", "Method not allowed")
  end
  return import(state, req)
end

return carrotquest
