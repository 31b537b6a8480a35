-- The Carrot quest side of the sandbox: POST /users/import, with the
-- service's error bodies (meta.status, meta.error) and row_errors.
local json = require "csvup.json"
local upload = require "csvup.sandbox.upload"

local ipairs, tostring, type = ipairs, tostring, type

local carrotquest = {}

local FILE_LIMIT = 30 * 1024 * 1024
local DELIMITERS = { [","] = true, ["|"] = true, [";"] = true, ["\t"] = true, [" "] = true }

local function answer(status, data)
  return status, json.encode { meta = { status = status }, data = data }
end

local function fail(status, error_name, message)
  return status, json.encode { meta = { status = status, error = error_name, error_message = message }, data = {} }
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

local function import(state, req)
  local form, err = upload.form(req)
  if not form then
    return fail(400, "BadRequest", err)
  end
  state:record(req, form)
  local f = form.fields
  local merge_field = f.merge_field and f.merge_field[1] or "$user_id"
  local delimiter = f.delimiter and f.delimiter[1] or "\t" -- the API's own default
  if not f.app then
    return fail(400, "ValidationError", "app is required")
  elseif merge_field ~= "$user_id" and merge_field ~= "$email" then
    return fail(400, "ValidationError", "merge_field must be $user_id or $email")
  elseif not DELIMITERS[delimiter] then
    return fail(400, "ValidationError", "unknown delimiter")
  elseif not form.file then
    return fail(400, "ValidationError", "file is required")
  elseif #form.file.content > FILE_LIMIT then
    return fail(400, "ValidationError", "the file is larger than 30 MB")
  end
  for _, tag in ipairs(f.tags or {}) do
    if type(json.decode(tag)) ~= "string" then
      return fail(400, "ValidationError", "each tag must be a JSON-encoded string: " .. tag)
    end
  end
  local parsed
  parsed, err = upload.read_csv(form.file.content, delimiter)
  if not parsed then
    return fail(400, "BadRequest", err)
  end
  local has_merge_column = false
  for _, name in ipairs(parsed.header) do
    has_merge_column = has_merge_column or name == merge_field
  end
  if not has_merge_column then
    return fail(400, "ValidationError", "the CSV has no " .. merge_field .. " column")
  end
  local row_errors, failed = {}, 0
  for i, row in ipairs(parsed.rows) do
    if row[merge_field] == "" then
      row_errors[tostring(i + 1)] = "Empty value of " .. merge_field
      failed = failed + 1
    end
  end
  return answer(200, { row_errors = row_errors, updates_planned = parsed.count - failed })
end

-- Answers a request for Carrot quest, or returns nothing when the path is not its.
function carrotquest.handle(state, req)
  if req.path ~= "/users/import" then
    return nil
  end
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
