-- Carrot quest (Dashly): user import from CSV. The method comes from
-- csvup.registry; what is Carrot quest's own is here: its error envelope,
-- the app form field, the import's answer.
local client = require "csvup.client"
local errors = require "csvup.errors"
local journal = require "csvup.journal"
local json = require "csvup.json"

local type, tonumber, tostring, pairs = type, tonumber, tostring, pairs

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

-- { row_errors = { [line] = message }, updates_planned = n } from the answer's data.
function ANSWER.import(_, answer)
  local data, err = client.expect(answer, "data")
  if not data then
    return nil, err
  elseif data.row_errors ~= nil and type(data.row_errors) ~= "table" then
    return errors.fail("api", "bad_response", "the answer's row_errors is not an object")
  end
  local row_errors, planned = {}, data.updates_planned
  for line, message in pairs(data.row_errors or {}) do
    line = tostring(line):find("^[1-9]%d?%d?%d?%d?%d?%d?%d?%d?$") and tonumber(line) -- a line number, as written
    if not line or type(message) ~= "string" then
      return errors.fail("api", "bad_response", "the answer's row_errors holds more than line numbers and messages")
    end
    row_errors[line] = client.printable(message)
  end
  if planned ~= nil and not json.is_count(planned) then
    return errors.fail("api", "bad_response", "the answer's updates_planned is not a count")
  end
  return { row_errors = row_errors, updates_planned = planned }
end

-- A result the journal kept: JSON gave row_errors' lines back as text.
local REVIVE = {}
function REVIVE.import(result)
  return ANSWER.import(nil, { data = result })
end

client.install(Client, { name = "carrotquest", prepare = PREPARE, answer = ANSWER, revive = REVIVE })

return carrotquest
