-- Carrot quest (Dashly): user import from CSV. The method comes from
-- csvup.registry; what is Carrot quest's own is here: its error envelope,
-- the app form field, the import's answer.
local client = require "csvup.client"
local journal = require "csvup.journal"
local json = require "csvup.json"

local type, tonumber, tostring, pairs, ipairs, next = type, tonumber, tostring, pairs, ipairs, next

local carrotquest = {}

local Client = {}

-- The docs advise 2-3 requests a second and warn that bursts get a token blocked.
local DEFAULT_RATE = 2

-- {"meta":{"status":400,"error":"BadRequest","error_message":...,"error_fields":...},"data":{}}
-- meta.status is checked even when the HTTP status says 200.
function Client.read_error(status, body)
  local meta = type(body) == "table" and type(body.meta) == "table" and body.meta or nil
  local meta_status = meta and tonumber(meta.status) or status
  if status >= 200 and status < 300 and meta_status >= 200 and meta_status < 300 then
    return nil
  end
  if not meta then
    return {}
  end
  return { code = type(meta.error) == "string" and meta.error or nil,
    message = type(meta.error_message) == "string" and meta.error_message or nil,
    errors = meta.error_fields, status = status < 300 and meta_status or status }
end

--- Opens a Carrot quest client.
-- carrotquest.new{ token, app = "$self_app", base_url?, ... } -> client | nil, err
-- (the connection and retry options are csvup.client's; rate defaults to 2 a second)
function carrotquest.new(opts)
  local self, err = client.new("carrotquest", opts, Client, { names = { "app" }, rate = DEFAULT_RATE })
  if not self then
    return nil, err
  end
  self.app = opts.app or "$self_app"
  if self.journal then -- whom the journal says an import was for: $self_app is the token's project
    self.account = self.app == "$self_app" and journal.account(opts.token) or self.app
  end
  return self
end

function Client.complete(_, args)
  return args
end

Client.call = client.service_call

local PREPARE, ANSWER = {}, {}

-- The app and the delimiter the file is read with.
function PREPARE.import_fields(self, values, _, call)
  call.delimiter = values.delimiter
  call.fields = { app = self.app }
  return true
end

-- A row_errors entry as line -> message, or nil when its shape is not one
-- known: "1": "message" (the documented one), "1": ["message", ...], or
-- { row | line, error | message } in an array.
local function row_error(key, value)
  local line = tostring(key):find("^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?$") and tonumber(key) -- a line number, as written
  if type(value) == "table" and type(key) == "number" then
    line, value = tonumber(value.row or value.line), value.error or value.message
    line = json.is_count(line) and line or nil
  end
  if type(value) == "table" then
    for _, part in ipairs(value) do
      if type(part) ~= "string" then
        return nil
      end
    end
    value = #value > 0 and table.concat(value, "; ") or nil
  end
  if line and type(value) == "string" then
    return line, client.printable(value)
  end
end

-- { row_errors = { [line] = message }, updates_planned = n } from the answer's
-- data. An accepted import is a success whatever it says beside: row_errors
-- of a shape not known stay as they came under row_errors_raw (row_errors
-- then empty), an updates_planned that is no count is nil, and an empty or
-- missing data plans nothing (updates_planned 0).
function ANSWER.import(_, answer)
  local data = type(answer.data) == "table" and answer.data or {}
  local row_errors, raw, planned = {}, nil, data.updates_planned
  if type(data.row_errors) == "table" then
    for key, value in pairs(data.row_errors) do
      local line, message = row_error(key, value)
      if not line then
        row_errors, raw = {}, data.row_errors
        break
      end
      row_errors[line] = message
    end
  elseif data.row_errors ~= nil and data.row_errors ~= "" and data.row_errors ~= json.null then
    raw = data.row_errors
  end
  if planned == nil and next(data) == nil then
    planned = 0
  end
  return { row_errors = row_errors, row_errors_raw = raw, updates_planned = json.is_count(planned) and planned or nil }
end

-- A result the journal kept: JSON gave row_errors' lines back as text.
local REVIVE = {}
function REVIVE.import(result)
  local revived = ANSWER.import(nil, { data = result })
  revived.row_errors_raw = result.row_errors_raw
  return revived
end

client.install(Client, { name = "carrotquest", prepare = PREPARE, answer = ANSWER, revive = REVIVE })

return carrotquest
