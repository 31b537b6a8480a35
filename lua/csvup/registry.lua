-- Everything csvup knows about each API method and upload kind, in one place,
-- from the services' public documentation. The client methods, wait(), csvup.batch,
-- the csvup subcommands and their help, `csvup validate KIND` and the README's
-- endpoint table are all derived from these tables, and so is every request
-- on the wire: the C core knows HTTP, not the endpoints. Adding an endpoint is
-- one entry here (plus its schema, for an upload), with no rebuild.
--
-- A method:
--   name      the Lua method, and the endpoint it calls
--   service   "metrika" or "carrotquest"
--   http, path  the endpoint: its HTTP method and path, where "{counter}" and
--             "{id}" are path parameters (see registry.endpoint); a method
--             whose option picks one of several endpoints (CRM's entity) has none;
--             body = "form" sends the options URL-encoded in the body rather
--             than the query; max_file_size overrides the service's limit
--   help      one line, for --help, the man page and the README
--   shape     "upload" (file or rows, options in the query or form fields),
--             "read" (an uploading by id), "query" (options in the query),
--             "body" (options in a JSON body under `wrap`, after an id when `id`)
--   options   { name, type, values?, default?, required?, min?, max?, plain?, wire?, help }
--             type: text, enum, integer, date_or_range, tags (see csvup.options);
--             plain: a text with no control character and no emoji;
--             wire: the parameter's name on the wire (default: name); send = false:
--             the option shapes the call but is not sent as is
--   result    the answer's field that is the result ("uploading", "goals", ...)
--   kind      the upload kind the result belongs to, for wait()
--   prepare, answer  the names of the service's own steps before the call and
--             for its answer (see the service's module)
--   flags     further upload options that shape the call: name -> help
--   confirm   the method that applies an upload (the command line's --confirm)
-- An upload kind: name (the command line's), service, schema (csvup.schema),
-- upload/list/read (method names), final and failed statuses (for wait()),
-- mark: where an upload carries the marker that finds it in the list again
-- ("comment"; "filename" where the upload takes no comment and the service
-- keeps the file's name as its comment; see csvup.once).
local schema = require "csvup.schema"

local registry = {}

local TRAFFIC_SOURCES = schema.TRAFFIC_SOURCES

local COUNTER = "/management/v1/counter/{counter}"
local CDP = "/cdp/api/v1/counter/{counter}"
-- The documented limits ("1 Гб", "30 Мбайт") are read as binary units. No
-- limit is documented for expenses and user parameters; Metrica's 1 GB upload
-- limit is applied to them too, so that an oversized file fails before sending.
local MIB, GIB = 1048576, 1073741824

-- Comments are at most 255 characters. The offline-conversion upload's
-- reference says "digits, Latin and Cyrillic letters", but the service's own
-- negative test refuses only an emoji (NOT_ALLOWED_SYMBOLS_IN_COMMENT), comments
-- with spaces, "№" and commas pass the same check, and R's rym sends "Upload by
-- rym at <time>" to conversions and calls: no control character and nothing
-- beyond the Basic Multilingual Plane. Calls are taken to share the rule.
local COMMENT = { name = "comment", type = "text", max = 255, help = "a note kept with the uploading" }
local CONVERSION_COMMENT = { name = "comment", type = "text", max = 255, plain = true,
  help = "a note kept with the uploading" }
local LIMIT = { name = "limit", type = "integer", min = 1, help = "how many uploadings to list" }
local OFFSET = { name = "offset", type = "integer", min = 0, help = "how many to skip" }
local PROVIDER = { name = "provider", type = "text", max = 255,
  help = "the expenses' source name (the service's default: default)" }
local CONVERSION_TYPE = { name = "type", type = "enum", values = { "BASIC", "CALLS", "CHATS" },
  help = "the conversions' channel (the service's default: BASIC)" }
-- The conversions list's reference documents only limit and offset: the
-- items carry their type, and csvup filters on it.
local LISTED_TYPE = { name = "type", type = "enum", values = CONVERSION_TYPE.values, send = false,
  help = "only the uploadings of this type (filtered here: the list takes no type)" }
local CONTENT_ID_TYPE = { name = "content_id_type", type = "enum", values = { "client_id", "user_id" },
  help = "what the file's visitor column holds; set when confirming" }

local function list_options(...)
  return { LIMIT, OFFSET, ... }
end

local METHODS = {
  -- offline conversions
  { name = "upload_offline_conversions", service = "metrika", shape = "upload", kind = "offline-conversions",
    http = "POST", path = COUNTER .. "/offline_conversions/upload",
    help = "upload offline conversions (Target, DateTime and a visitor id per row)", prepare = "check_targets",
    flags = { check_targets = "check first that every Target names a JavaScript-event goal of the counter "
      .. "with an exact condition" },
    options = { CONVERSION_COMMENT, CONVERSION_TYPE,
      { name = "client_id_type", type = "enum", values = { "USER_ID", "CLIENT_ID", "YCLID" },
        help = "legacy: the visitor id column's kind, sent only when given" } } },
  { name = "offline_conversion_uploadings", service = "metrika", shape = "query", result = "uploadings",
    http = "GET", path = COUNTER .. "/offline_conversions/uploadings",
    answer = "uploadings_of_type", help = "list offline-conversion uploadings", options = list_options(LISTED_TYPE) },
  { name = "offline_conversion_uploading", service = "metrika", shape = "read", kind = "offline-conversions",
    http = "GET", path = COUNTER .. "/offline_conversions/uploading/{id}",
    help = "read one offline-conversion uploading" },
  { name = "upload_calls", service = "metrika", shape = "upload", kind = "calls",
    http = "POST", path = COUNTER .. "/offline_conversions/upload_calls",
    help = "upload calls (DateTime and a visitor id per row)",
    options = { CONVERSION_COMMENT, { name = "new_goal_name", type = "text", max = 255,
      help = "the name of a goal the service creates for these calls" } } },
  { name = "calls_uploadings", service = "metrika", shape = "query", result = "uploadings",
    http = "GET", path = COUNTER .. "/offline_conversions/calls_uploadings",
    help = "list calls uploadings", options = list_options() },
  { name = "calls_uploading", service = "metrika", shape = "read", kind = "calls", help = "read one calls uploading",
    http = "GET", path = COUNTER .. "/offline_conversions/calls_uploading/{id}" },
  { name = "visit_join_threshold", service = "metrika", shape = "query",
    http = "GET", path = COUNTER .. "/offline_conversions/visit_join_threshold",
    help = "the visit join threshold of offline conversions" },
  { name = "calls_visit_join_threshold", service = "metrika", shape = "query",
    http = "GET", path = COUNTER .. "/offline_conversions/calls_visit_join_threshold",
    help = "the visit join threshold of calls" },
  { name = "enable_extended_threshold", service = "metrika", shape = "query",
    http = "POST", path = COUNTER .. "/offline_conversions/extended_threshold",
    help = "extend the offline conversions' threshold" },
  { name = "disable_extended_threshold", service = "metrika", shape = "query",
    http = "DELETE", path = COUNTER .. "/offline_conversions/extended_threshold",
    help = "return the offline conversions' threshold to normal" },
  { name = "enable_calls_extended_threshold", service = "metrika", shape = "query",
    http = "POST", path = COUNTER .. "/offline_conversions/calls_extended_threshold",
    help = "extend the calls' threshold" },
  { name = "disable_calls_extended_threshold", service = "metrika", shape = "query",
    http = "DELETE", path = COUNTER .. "/offline_conversions/calls_extended_threshold",
    help = "return the calls' threshold to normal" },
  -- expenses
  { name = "upload_expenses", service = "metrika", shape = "upload", kind = "expenses",
    http = "POST", path = COUNTER .. "/expense/upload",
    help = "upload ad expenses (Date, Expenses and UTMSource or TrafficSource per row)",
    options = { COMMENT, PROVIDER } },
  { name = "delete_expenses", service = "metrika", shape = "upload", kind = "expenses-delete",
    http = "POST", path = COUNTER .. "/expense/delete",
    help = "delete the expenses the file's rows match (every provider's unless --provider)",
    options = { COMMENT, PROVIDER } },
  { name = "delete_expense_line", service = "metrika", shape = "query", kind = "expenses",
    http = "POST", path = COUNTER .. "/expense/delete_single",
    help = "delete the expenses of one day or range and one set of UTM tags",
    options = {
      { name = "date", type = "date_or_range", required = true, help = "YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD" },
      { name = "utm_source", wire = "UTMSource", type = "text", help = "UTMSource to match" },
      { name = "utm_medium", wire = "UTMMedium", type = "text", help = "UTMMedium to match" },
      { name = "utm_campaign", wire = "UTMCampaign", type = "text", help = "UTMCampaign to match" },
      { name = "utm_term", wire = "UTMTerm", type = "text", help = "UTMTerm to match" },
      { name = "utm_content", wire = "UTMContent", type = "text", help = "UTMContent to match" },
      { name = "traffic_source", wire = "trafficSource", type = "enum", values = TRAFFIC_SOURCES,
        help = "TrafficSource to match" },
      { name = "traffic_source_detail", wire = "trafficSourceDetail", type = "text",
        help = "TrafficSourceDetail to match" },
      PROVIDER, COMMENT } },
  { name = "expense_uploadings", service = "metrika", shape = "query", result = "uploadings",
    http = "GET", path = COUNTER .. "/expense/uploadings",
    help = "list expense uploadings", options = list_options() },
  { name = "expense_uploading", service = "metrika", shape = "read", kind = "expenses",
    http = "GET", path = COUNTER .. "/expense/uploading/{id}",
    help = "read one expense uploading" },
  -- user parameters: nothing is applied until the uploading is confirmed
  { name = "upload_user_params", service = "metrika", shape = "upload", kind = "user-params",
    http = "POST", path = COUNTER .. "/user_params/uploadings/upload",
    help = "upload user parameters (confirm them to apply them)", confirm = "confirm_user_params",
    options = {
      { name = "action", type = "enum", values = { "update", "delete_keys" }, required = true,
        help = "update: set the keys' values; delete_keys: remove the keys" },
      -- the upload takes only action: content_id_type travels with the confirmation
      { name = "content_id_type", type = "enum", values = CONTENT_ID_TYPE.values, send = false,
        help = "what the file's visitor column holds, remembered for the confirmation" } } },
  { name = "confirm_user_params", service = "metrika", shape = "body", id = true, wrap = "uploading",
    http = "POST", path = COUNTER .. "/user_params/uploading/{id}/confirm",
    kind = "user-params", help = "confirm an uploading of user parameters: apply it",
    prepare = "remembered_content_id_type", options = { CONTENT_ID_TYPE, COMMENT } },
  { name = "edit_user_params_uploading", service = "metrika", shape = "body", id = true, wrap = "uploading",
    http = "PUT", path = COUNTER .. "/user_params/uploading/{id}",
    kind = "user-params", help = "change an uploading of user parameters",
    options = { CONTENT_ID_TYPE, COMMENT } },
  { name = "user_params_uploadings", service = "metrika", shape = "query", result = "uploadings",
    http = "GET", path = COUNTER .. "/user_params/uploadings",
    help = "list user-parameter uploadings", options = list_options() },
  { name = "user_params_uploading", service = "metrika", shape = "read", kind = "user-params",
    http = "GET", path = COUNTER .. "/user_params/uploading/{id}",
    help = "read one user-parameter uploading" },
  -- CRM
  { name = "upload_crm", service = "metrika", shape = "upload", kind = "crm", prepare = "crm_entity",
    answer = "crm_uploading", help = "upload CRM data: simple orders, contacts or orders",
    options = {
      { name = "entity", type = "enum", required = true, send = false,
        values = { "simple_orders", "contacts", "orders" },
        endpoints = { simple_orders = "upload_crm_simple_orders", contacts = "upload_crm_contacts",
          orders = "upload_crm_orders" },
        help = "what the file holds" },
      { name = "merge_mode", type = "enum", values = { "SAVE", "UPDATE", "APPEND" }, required = true,
        help = "how rows merge with what the counter has" },
      -- sent always, as the reference's sample requests send it: what the service reads without it is not documented
      { name = "delimiter_type", type = "enum", values = { "COMMA", "SEMICOLON" }, default = "COMMA",
        delimiters = { COMMA = ",", SEMICOLON = ";" }, help = "the file's delimiter" },
      { name = "columns_mapping", type = "text", max = 4096,
        help = "contacts and orders: how the file's columns map to fields" } } },
  { name = "crm_uploadings", service = "metrika", shape = "query", result = "uploadings",
    http = "GET", path = CDP .. "/last_uploadings",
    help = "list the latest CRM uploadings",
    options = { { name = "limit", type = "integer", min = 1, max = 1000, help = "how many (the service's default: 10)" },
      { name = "datetime_offset", type = "text", help = "list those before this time" },
      { name = "source", type = "text", help = "only those from this source, e.g. API" } } },
  -- goals: a JavaScript-event goal's identifier is what an offline conversion's Target names
  { name = "goals", service = "metrika", shape = "query", result = "goals", help = "list the counter's goals",
    http = "GET", path = COUNTER .. "/goals" },
  { name = "create_goal", service = "metrika", shape = "body", prepare = "goal_body", answer = "goal",
    http = "POST", path = COUNTER .. "/goals",
    help = "create a JavaScript-event goal whose identifier offline conversions name in Target",
    options = { { name = "name", type = "text", max = 255, required = true, help = "the goal's name" },
      { name = "identifier", type = "text", max = 255, required = true, send = false,
        help = "the JavaScript event's identifier: what Target holds" } } },
  -- Carrot quest
  { name = "import_users", service = "carrotquest", shape = "upload", kind = "carrotquest-users",
    http = "POST", path = "/users/import",
    help = "import users and their properties", prepare = "import_fields", answer = "import",
    options = {
      { name = "merge_field", type = "enum", values = { "$user_id", "$email" }, default = "$user_id",
        help = "the column that says which user a row is" },
      -- The API reads a tab when no delimiter is sent; csvup always sends one,
      -- a comma unless told otherwise, so that a CSV means comma-separated here too.
      { name = "delimiter", type = "enum", values = { ",", ";", "|", "\t", " " }, default = ",",
        help = "the file's delimiter" },
      { name = "tags", type = "tags", help = "tag names given to every imported user" } } },
}

registry.kinds = {
  -- the guides of calls and chats uploaded as offline conversions of type CALLS and CHATS
  { name = "offline-conversions", service = "metrika", upload = "upload_offline_conversions",
    schema = { by = "type", BASIC = "offline_conversions", CALLS = "offline_conversions_calls",
      CHATS = "offline_conversions_chats", default = "BASIC" },
    list = "offline_conversion_uploadings",
    read = "offline_conversion_uploading", final = { "PROCESSED", "LINKAGE_FAILURE" }, failed = { "LINKAGE_FAILURE" },
    mark = "comment" },
  { name = "calls", service = "metrika", schema = "calls", upload = "upload_calls", list = "calls_uploadings",
    read = "calls_uploading", final = { "PROCESSED", "LINKAGE_FAILURE" }, failed = { "LINKAGE_FAILURE" },
    mark = "comment" },
  { name = "expenses", service = "metrika", schema = "expenses", upload = "upload_expenses",
    list = "expense_uploadings", read = "expense_uploading", final = { "PROCESSED" }, failed = {}, mark = "comment" },
  { name = "expenses-delete", service = "metrika", schema = "expenses_delete", upload = "delete_expenses",
    list = "expense_uploadings", read = "expense_uploading", final = { "PROCESSED" }, failed = {}, mark = "comment" },
  { name = "user-params", service = "metrika", upload = "upload_user_params",
    schema = { by = "action", update = "user_params", delete_keys = "user_params_delete" },
    list = "user_params_uploadings", read = "user_params_uploading", final = { "processed", "linkage_failure" },
    failed = { "linkage_failure" }, mark = "filename" },
  -- contacts and orders take columns_mapping, so their columns are the user's own
  { name = "crm", service = "metrika", schema = { by = "entity", simple_orders = "crm_simple_orders" },
    upload = "upload_crm",
    list = "crm_uploadings" },
  { name = "carrotquest-users", service = "carrotquest", schema = "carrotquest_users", upload = "import_users" },
}

-- common_query: what every call of the service may carry in its URL;
-- max_file_size: the upload limit in bytes, unless an endpoint says otherwise.
registry.services = {
  metrika = { token_env = "CSVUP_METRIKA_TOKEN", help = "Yandex Metrica", common_query = { "ulogin" },
    max_file_size = GIB },
  -- Carrot quest takes an upload's options as form fields beside the file
  carrotquest = { token_env = "CSVUP_CARROTQUEST_TOKEN", help = "Carrot quest", options_in = "fields",
    max_file_size = 30 * MIB },
}

-- The wire: every endpoint by name, as core.request takes it: { name, service,
-- method (HTTP), path ("{name}": a path parameter, a positive integer from
-- args[name]), query (the names the URL may carry, in URL order), body
-- ("multipart": the CSV and args.fields; "json": args.body; "form":
-- args.fields URL-encoded, in the order of `fields`; nil: no body),
-- max_file_size (bytes, of a multipart body's CSV) }.
registry.endpoint = {}
local BODIES = { upload = "multipart", body = "json" }

-- registry.add_endpoint { name, service, http, path, query?, body?, fields?, max_file_size? }
function registry.add_endpoint(e)
  local service = assert(registry.services[e.service], "no such service")
  local query = {}
  for _, list in ipairs { e.query or {}, service.common_query or {} } do
    for _, name in ipairs(list) do
      query[#query + 1] = name
    end
  end
  registry.endpoint[e.name] = { name = e.name, service = e.service, method = e.http, path = e.path, query = query,
    body = e.body, fields = e.fields,
    max_file_size = e.body == "multipart" and (e.max_file_size or service.max_file_size) or nil }
end

-- registry.add(method): a method, looked up by name, and its endpoint where it
-- has a path: its options travel in the URL (query and upload shapes, unless
-- the service takes them as fields), in the body (body = "form", or a JSON
-- body under `wrap`) or as multipart fields. A method added before a client
-- module is loaded is one of that client's methods.
registry.methods, registry.method = {}, {}
function registry.add(m)
  local sent = {}
  m.options = m.options or {}
  for _, o in ipairs(m.options) do
    o.wire = o.wire or o.name
    if o.send ~= false then
      sent[#sent + 1] = o.wire
    end
  end
  local at = #registry.methods + 1
  for i, known in ipairs(registry.methods) do
    at = known.name == m.name and i or at
  end
  registry.methods[at], registry.method[m.name] = m, m
  if m.path then
    local body = m.body or BODIES[m.shape]
    local in_url = body ~= "form" and (m.shape == "query" or m.shape == "upload")
      and registry.services[m.service].options_in ~= "fields"
    registry.add_endpoint { name = m.name, service = m.service, http = m.http, path = m.path, body = body,
      query = in_url and sent or nil, fields = body == "form" and sent or nil, max_file_size = m.max_file_size }
  end
end

for _, m in ipairs(METHODS) do
  registry.add(m)
end
-- Endpoints a method reaches through an option rather than by its name: CRM's entity picks one.
for _, e in ipairs {
  { name = "upload_crm_simple_orders", path = CDP .. "/data/simple_orders", query = { "merge_mode", "delimiter_type" } },
  { name = "upload_crm_contacts", path = CDP .. "/data/contacts/csv",
    query = { "merge_mode", "columns_mapping", "delimiter_type" } },
  { name = "upload_crm_orders", path = CDP .. "/data/orders/csv",
    query = { "merge_mode", "columns_mapping", "delimiter_type" } },
} do
  e.service, e.http, e.body = "metrika", "POST", "multipart"
  registry.add_endpoint(e)
end

-- Lookups by name, and each kind's statuses as sets.
registry.kind = {}
for _, k in ipairs(registry.kinds) do
  registry.kind[k.name] = k
  k.is_final, k.is_failed = {}, {}
  for _, s in ipairs(k.final or {}) do
    k.is_final[s] = true
  end
  for _, s in ipairs(k.failed or {}) do
    k.is_failed[s] = true
  end
end

-- The schema name of an upload kind for these options (where it depends on
-- one, schema.by names it: CRM's entity, user parameters' action, offline
-- conversions' type, whose schema.default applies when it is not given), or nil.
function registry.schema(kind, opts)
  if type(kind.schema) == "table" then
    return kind.schema[opts and opts[kind.schema.by] or kind.schema.default]
  end
  return kind.schema
end

-- The command-line name of a method or option: dashes for underscores.
function registry.cli_name(name)
  return (name:gsub("_", "-"))
end

return registry
