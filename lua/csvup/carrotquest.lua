-- Carrot quest (Dashly): user import from CSV.
local cjson = require "cjson.safe"
local client = require "csvup.client"

local type, error, setmetatable, tonumber, pairs = type, error, setmetatable, tonumber, pairs

local carrotquest = {}

local Client = {}
Client.__index = Client

local MERGE_FIELDS = { ["$user_id"] = true, ["$email"] = true }
local DELIMITERS = { [","] = true, ["|"] = true, [";"] = true, ["\t"] = true, [" "] = true }
-- The API reads a tab when no delimiter is sent; csvup always sends one, and a
-- comma unless told otherwise, so that a CSV means comma-separated here too.
local DEFAULT_DELIMITER = ","
-- The docs advise 2-3 requests a second and warn that bursts get a token blocked.
local DEFAULT_RATE = 2

-- {"meta":{"status":400,"error":"BadRequest","error_message":...,"error_fields":...},"data":{}}
-- meta.status is checked even when the HTTP status says 200.
local function read_error(status, body)
  local meta = type(body) == "table" and type(body.meta) == "table" and body.meta or nil
  local meta_status = meta and tonumber(meta.status) or status
  if status >= 200 and status < 300 and meta_status >= 200 and meta_status < 300 then
    return nil
  end
  if not meta then
    return {}
  end
  return { code = meta.error, message = meta.error_message, errors = meta.error_fields,
    status = status < 300 and meta_status or status }
end

-- carrotquest.new{ token, app = "$self_app", base_url?, timeout?, ... } -> client | nil, err
function carrotquest.new(opts)
  if type(opts) ~= "table" then
    error("carrotquest.new expects a table of options", 2)
  end
  local conn, err = client.connect("carrotquest", opts)
  if not conn then
    return nil, err
  end
  return setmetatable({ conn = conn, app = opts.app or "$self_app", policy = client.policy(opts, DEFAULT_RATE),
    service = "carrotquest", options = opts, read_error = read_error }, Client)
end

function Client.complete(_, args)
  return args
end

Client.call = client.service_call

Client.close = client.close
Client.__close = client.close

-- Each tag is one "tags" part holding the JSON-encoded name (the docs ask for
-- JSON-encoded names and do not confirm the wire form of the array).
local function encode_tags(tags)
  if type(tags) == "string" then
    tags = { tags }
  end
  local encoded = {}
  for i, tag in ipairs(tags or {}) do
    if type(tag) ~= "string" or tag == "" or tag:find("[%z\r\n]") then
      return nil
    end
    encoded[i] = cjson.encode(tag)
  end
  return encoded
end

-- { row_errors = { [line] = message }, updates_planned = n } from the answer's data.
local function import_result(answer)
  local data = type(answer.data) == "table" and answer.data or {}
  local row_errors = {}
  for line, message in pairs(type(data.row_errors) == "table" and data.row_errors or {}) do
    row_errors[tonumber(line) or line] = message
  end
  return { row_errors = row_errors, updates_planned = data.updates_planned }
end

-- import_users{ file | rows, columns?, merge_field?, delimiter?, tags?, progress? }
--   -> { row_errors = { [line] = message }, updates_planned = n } | nil, err
function Client:import_users(opts)
  if type(opts) ~= "table" then
    error("carrotquest: import_users expects a table of options", 2)
  end
  local merge_field = opts.merge_field or "$user_id"
  local delimiter = opts.delimiter or DEFAULT_DELIMITER
  local err = client.check_enum("merge_field", merge_field, MERGE_FIELDS)
    or client.check_enum("delimiter", delimiter, DELIMITERS)
  if err then
    return nil, err
  end
  local tags = encode_tags(opts.tags)
  if not tags then
    return client.invalid("tags must be a tag name or an array of tag names, each one line of text")
  end
  local args
  args, err = client.body({
    fields = { app = self.app, merge_field = merge_field, delimiter = delimiter, tags = tags },
    progress = opts.progress,
  }, opts, { endpoint = "import_users", schema = "carrotquest_users", delimiter = delimiter, merge_field = merge_field })
  if not args then
    return nil, err
  end
  return self:call("import_users", args, import_result)
end

return carrotquest
