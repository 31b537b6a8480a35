-- Yandex Metrica: offline conversions, calls, expenses, user parameters, CRM.
local client = require "csvup.client"
local core = require "csvup.core"
local json = require "csvup.json"
local schemas = require "csvup.schema"

local type, error, setmetatable, tostring = type, error, setmetatable, tostring
local check_enum, check_text = client.check_enum, client.check_text

local metrika = {}

local Client = {}
Client.__index = Client

-- Allowed values, from the API reference; comments longer than this are refused.
local COMMENT_MAX = 255
local CONVERSION_TYPES = { BASIC = true, CALLS = true, CHATS = true }
local CLIENT_ID_TYPES = { USER_ID = true, CLIENT_ID = true, YCLID = true }
local USER_PARAMS_ACTIONS = { update = true, delete_keys = true }
local CONTENT_ID_TYPES = { client_id = true, user_id = true }
local MERGE_MODES = { SAVE = true, UPDATE = true, APPEND = true }
local DELIMITER_TYPES = { COMMA = ",", SEMICOLON = ";" }
local CRM_ENDPOINTS = {
  simple_orders = "upload_crm_simple_orders",
  contacts = "upload_crm_contacts",
  orders = "upload_crm_orders",
}
local TRAFFIC_SOURCES = schemas.TRAFFIC_SOURCES
-- delete_expense_line's options and the query parameters they become.
local EXPENSE_LINE_QUERY = {
  date = "date", utm_source = "UTMSource", utm_medium = "UTMMedium", utm_campaign = "UTMCampaign",
  utm_term = "UTMTerm", utm_content = "UTMContent", traffic_source = "trafficSource",
  traffic_source_detail = "trafficSourceDetail", provider = "provider", comment = "comment",
}

-- {"errors":[{"error_type":..., "message":...}], "code":..., "message":...}
local function read_error(status, body)
  if status >= 200 and status < 300 then
    return nil
  end
  local fields = {}
  if type(body) == "table" and type(body.errors) == "table" then
    local first = type(body.errors[1]) == "table" and body.errors[1] or {}
    fields.code = first.error_type
    fields.message = body.message or first.message
    fields.errors = body.errors
  end
  return fields
end

local function options(opts, method)
  if opts ~= nil and type(opts) ~= "table" then
    error(("metrika: %s expects a table of options"):format(method), 3)
  end
  return opts or {}
end

-- metrika.new{ token, counter, ulogin?, base_url?, ... } -> client | nil, err
-- The connection options are those of client.connect, the retry ones those of client.policy.
function metrika.new(opts)
  opts = options(opts, "new")
  local conn, err = client.connect("metrika", opts)
  if not conn then
    return nil, err
  end
  return setmetatable({ conn = conn, counter = opts.counter, ulogin = opts.ulogin, policy = client.policy(opts),
    service = "metrika", options = opts, read_error = read_error, kinds = setmetatable({}, { __mode = "k" }) }, Client)
end

Client.close = client.close
Client.__close = client.close

-- The arguments every Metrica call carries.
function Client:complete(args)
  args.counter = self.counter
  args.query = args.query or {}
  args.query.ulogin = self.ulogin
  return args
end

Client.call = client.service_call

local function uploading_of(answer)
  return answer.uploading
end

-- The kinds of uploading wait() can follow: the endpoint that reads one, and its final statuses.
local KINDS = {
  offline = { read = "offline_conversion_uploading", final = { PROCESSED = true, LINKAGE_FAILURE = true } },
  calls = { read = "calls_uploading", final = { PROCESSED = true, LINKAGE_FAILURE = true } },
  expense = { read = "expense_uploading", final = { PROCESSED = true } },
  ["user-params"] = { read = "user_params_uploading", final = { processed = true, linkage_failure = true } },
}

local function uploadings_of(answer)
  return answer.uploadings
end

-- post for an upload: the uploading, remembered with its kind for wait().
local function remember(self, kind)
  return function(answer)
    local u = answer.uploading
    if type(u) == "table" and kind then
      self.kinds[u] = kind
    end
    return u
  end
end

-- Uploads opts.file or opts.rows to the endpoint, checked against the schema.
local function upload(self, name, schema, opts, query, delimiter, kind)
  local err = check_text("comment", opts.comment, COMMENT_MAX)
  if err then
    return nil, err
  end
  local args
  args, err = client.body({ query = query, progress = opts.progress }, opts,
    { endpoint = name, schema = schema, delimiter = delimiter })
  if not args then
    return nil, err
  end
  return self:call(name, args, remember(self, kind))
end

local function getter(name)
  return function(self, id_or_uploading)
    return self:call(name, { id = client.id(id_or_uploading) }, uploading_of)
  end
end

local function lister(name, keys)
  return function(self, opts)
    opts = options(opts, name)
    local query = {}
    for _, k in ipairs(keys) do
      query[k] = opts[k]
    end
    return self:call(name, { query = query }, uploadings_of)
  end
end

local function plain(name)
  return function(self)
    return self:call(name, {})
  end
end

local PAGE = { "limit", "offset" }

-- Offline conversions ----------------------------------------------------------

function Client:upload_offline_conversions(opts)
  opts = options(opts, "upload_offline_conversions")
  local err = check_enum("type", opts.type, CONVERSION_TYPES)
    or check_enum("client_id_type", opts.client_id_type, CLIENT_ID_TYPES)
  if err then
    return nil, err
  end
  return upload(self, "upload_offline_conversions", "offline_conversions", opts,
    { comment = opts.comment, type = opts.type, client_id_type = opts.client_id_type }, nil, "offline")
end

function Client:upload_calls(opts)
  opts = options(opts, "upload_calls")
  local err = check_text("new_goal_name", opts.new_goal_name, COMMENT_MAX)
  if err then
    return nil, err
  end
  return upload(self, "upload_calls", "calls", opts, { comment = opts.comment, new_goal_name = opts.new_goal_name },
    nil, "calls")
end

Client.offline_conversion_uploadings = lister("offline_conversion_uploadings", PAGE)
Client.offline_conversion_uploading = getter("offline_conversion_uploading")
Client.calls_uploadings = lister("calls_uploadings", PAGE)
Client.calls_uploading = getter("calls_uploading")
Client.visit_join_threshold = plain("visit_join_threshold")
Client.calls_visit_join_threshold = plain("calls_visit_join_threshold")
Client.enable_extended_threshold = plain("enable_extended_threshold")
Client.disable_extended_threshold = plain("disable_extended_threshold")
Client.enable_calls_extended_threshold = plain("enable_calls_extended_threshold")
Client.disable_calls_extended_threshold = plain("disable_calls_extended_threshold")

-- Expenses ---------------------------------------------------------------------

function Client:upload_expenses(opts)
  opts = options(opts, "upload_expenses")
  return upload(self, "upload_expenses", "expenses", opts, { comment = opts.comment, provider = opts.provider }, nil,
    "expense")
end

function Client:delete_expenses(opts)
  opts = options(opts, "delete_expenses")
  return upload(self, "delete_expenses", "expenses_delete", opts, { comment = opts.comment, provider = opts.provider },
    nil, "expense")
end

function Client:delete_expense_line(opts)
  opts = options(opts, "delete_expense_line")
  if type(opts.date) ~= "string" or not opts.date:find("^%d%d%d%d%-%d%d%-%d%d$") then
    return client.invalid("delete_expense_line: date must be YYYY-MM-DD")
  end
  local err = check_text("comment", opts.comment, COMMENT_MAX)
    or check_enum("traffic_source", opts.traffic_source, TRAFFIC_SOURCES)
  if err then
    return nil, err
  end
  local query = {}
  for option, parameter in pairs(EXPENSE_LINE_QUERY) do
    query[parameter] = opts[option]
  end
  return self:call("delete_expense_line", { query = query }, remember(self, "expense"))
end

Client.expense_uploadings = lister("expense_uploadings", PAGE)
Client.expense_uploading = getter("expense_uploading")

-- User parameters: nothing is applied until the uploading is confirmed ---------

function Client:upload_user_params(opts)
  opts = options(opts, "upload_user_params")
  local err = check_enum("action", opts.action, USER_PARAMS_ACTIONS, true)
    or check_enum("content_id_type", opts.content_id_type, CONTENT_ID_TYPES)
  if err then
    return nil, err
  end
  return upload(self, "upload_user_params", "user_params", opts,
    { action = opts.action, content_id_type = opts.content_id_type, comment = opts.comment }, nil, "user-params")
end

-- Sends back the uploading (or just its id) as {"uploading": {...}}, the id exact.
function Client:confirm_user_params(id_or_uploading)
  local id = client.id(id_or_uploading)
  local uploading = {}
  if type(id_or_uploading) == "table" then
    for k, v in pairs(id_or_uploading) do
      uploading[k] = v
    end
  end
  uploading.id = type(id) == "string" and id:find("^%d+$") and json.raw_number(id) or id
  return self:call("confirm_user_params", { id = id, body = json.encode { uploading = uploading } }, uploading_of)
end

Client.user_params_uploadings = lister("user_params_uploadings", PAGE)
Client.user_params_uploading = getter("user_params_uploading")

-- CRM --------------------------------------------------------------------------

function Client:upload_crm(opts)
  opts = options(opts, "upload_crm")
  local err = check_enum("entity", opts.entity, CRM_ENDPOINTS, true)
    or check_enum("merge_mode", opts.merge_mode, MERGE_MODES, true)
    or check_enum("delimiter_type", opts.delimiter_type, DELIMITER_TYPES)
  if err then
    return nil, err
  end
  if opts.delimiter_type and opts.entity ~= "simple_orders" then
    return client.invalid("upload_crm: delimiter_type applies to simple_orders only")
  end
  -- contacts and orders take columns_mapping, so their columns are the user's own
  local schema = opts.entity == "simple_orders" and "crm_simple_orders" or nil
  return upload(self, CRM_ENDPOINTS[opts.entity], schema, opts, {
    merge_mode = opts.merge_mode, delimiter_type = opts.delimiter_type, columns_mapping = opts.columns_mapping,
  }, DELIMITER_TYPES[opts.delimiter_type])
end

Client.crm_uploadings = lister("crm_uploadings", { "limit" })

-- Waiting ----------------------------------------------------------------------

-- m:wait(uploading_or_id, { kind?, timeout?, interval? }) -> the final uploading | nil, err
-- Polls until a final status (offline and calls: PROCESSED or LINKAGE_FAILURE;
-- expense: PROCESSED; user-params: processed or linkage_failure), the pause
-- growing from interval (5 s) by half each time up to 60 s. kind is known for
-- uploadings this client made, else "offline". Processing may take 2 hours:
-- timeout defaults to 3; past it, err.code is "timeout" with err.last_status.
function Client:wait(uploading_or_id, opts)
  opts = options(opts, "wait")
  local kind = opts.kind or (type(uploading_or_id) == "table" and self.kinds[uploading_or_id]) or "offline"
  local err = check_enum("kind", kind, KINDS, true)
  if err then
    return nil, err
  end
  local id, interval = client.id(uploading_or_id), opts.interval or 5
  local deadline = core.now() + (opts.timeout or 3 * 3600)
  while true do
    local u
    u, err = self[KINDS[kind].read](self, id)
    if not u then
      return nil, err
    elseif KINDS[kind].final[u.status] then
      return u
    end
    local left = deadline - core.now()
    if left <= 0 then
      return client.fail("timeout", ("uploading %s is still %s"):format(tostring(id), tostring(u.status)),
        { last_status = u.status, uploading = u })
    end
    core.sleep(math.min(interval, left))
    interval = math.min(interval * 1.5, 60)
  end
end

return metrika
