-- The Yandex Metrica side of the sandbox: management API uploads (offline
-- conversions, calls, expenses, user parameters), goals and CRM uploads, with
-- the service's error bodies and uploadings that become final after a delay.
-- Its own reading of the API reference, kept apart from the clients' code.
--
-- Counters: the token may use every counter except FOREIGN_COUNTER (403), or,
-- with the sandbox option `counters` (an array of ids), exactly those. Any
-- other counter is refused as Metrica refuses a counter the token has no access
-- to: 403 access_denied. Uploadings and goals are kept per counter.
--
-- Query parameters: each endpoint takes those the reference lists for it (see
-- ROUTES) and `ulogin`; any other is refused with 400 invalid_parameter whose
-- location names it. (The reference says so of the user-parameter upload; for
-- the rest it is the sandbox's choice, so that a stray parameter shows up.)
local json = require "csvup.json"
local upload = require "csvup.sandbox.upload"

local ipairs, pairs, tonumber, tostring, type, concat = ipairs, pairs, tonumber, tostring, type, table.concat
local math_type, os_time, huge = math.type, os.time, math.huge

local metrika = { FOREIGN_COUNTER = 403 }

local TRAFFIC_SOURCES = "internal direct referral organic ad saved undefined email social messenger qrcode recommend"

-- Columns per upload kind: required ones, a group of which one must be present,
-- and all that are known; anything else is refused, or dropped where `others`
-- says "drop" (expenses: Yandex's tests pass a Trash column and OWOX's ym:*
-- columns) or kept where it says "keep". Names compare as column_key reads them.
local KINDS = {
  offline = {
    required = { "Target", "DateTime" }, one_of = { "UserId", "ClientId", "Yclid", "PurchaseId" },
    known = "UserId ClientId Yclid PurchaseId Target DateTime Price Currency",
    statuses = { "UPLOADED", "MATCHED", final = "PROCESSED", failure = "LINKAGE_FAILURE" },
  },
  -- type CHATS: the chats guide takes a row with no id as an unattributed event
  chats = {
    required = { "DateTime" }, known = "UserId ClientId Yclid PurchaseId DateTime Price Currency", others = "keep",
    statuses = { "UPLOADED", "MATCHED", final = "PROCESSED", failure = "LINKAGE_FAILURE" },
  },
  calls = {
    required = { "DateTime" }, one_of = { "UserId", "ClientId", "Yclid" },
    known = "UserId ClientId Yclid DateTime StaticCall Price Currency PhoneNumber TalkDuration HoldDuration "
      .. "CallMissed Tag FirstTimeCaller URL CallTrackerURL",
    statuses = { "UPLOADED", "MATCHED", final = "PROCESSED", failure = "LINKAGE_FAILURE" },
  },
  expense = {
    required = { "Date", "Expenses" }, one_of = { "UTMSource", "TrafficSource" },
    known = "Date Expenses UTMSource UTMMedium UTMCampaign UTMTerm UTMContent TrafficSource "
      .. "TrafficSourceDetail Currency Clicks",
    others = "drop", statuses = { "UPLOADED", "IN_PROGRESS", final = "PROCESSED" },
  },
  expense_delete = {
    required = { "Date" },
    known = "Date UTMSource UTMMedium UTMCampaign UTMTerm UTMContent TrafficSource TrafficSourceDetail",
    others = "drop",
  },
  user_params = {
    required = { "key", "value" }, one_of = { "userid", "clientid" }, known = "userid clientid key value",
    letters = true, statuses = { "is_processed", final = "processed", failure = "linkage_failure" },
  },
  user_params_delete = { required = { "key" }, known = "userid clientid key", letters = true },
  crm = {},
}

-- How the service reads a column name. Yandex's offline-conversion API tests
-- pass ` ClientId `, `'Price'`, `[Target]` and `Date Time`: case, the blanks,
-- quotes and brackets around a name and the blanks inside it do not count.
-- Its user-parameter tests read "\tClie  --__ntid " as ClientId: only letters count.
local function column_key(spec, name)
  if spec.letters then
    return (name:gsub("[^A-Za-z]", ""):lower())
  end
  name = name:match("^[%s\"'`%(%)%[%]{}]*(.-)[%s\"'`%(%)%[%]{}]*$")
  return (name:gsub("%s", ""):lower())
end

-- Values are read trimmed of the spaces and tabs around them (the API tests pass padded values).
local function trimmed(value)
  return (value:match("^[ \t]*(.-)[ \t]*$"))
end
KINDS.expense_delete.statuses = KINDS.expense.statuses
KINDS.user_params_delete.statuses = KINDS.user_params.statuses

-- CRM upload answers (UploadingMetaExternal): entity_type per endpoint is not
-- shown in the reference; these are the sandbox's.
local CRM_ENTITY_TYPES = { simple_orders = "SIMPLE_ORDER", contacts = "CONTACT", orders = "ORDER" }
-- simple_orders dates: dd.MM.yyyy, dd.MM.yy, yyyy-MM-dd, each optionally with " HH:mm" or " HH:mm:ss".
local CRM_DATES = { "^%d%d%.%d%d%.%d%d%d%d", "^%d%d%.%d%d%.%d%d", "^%d%d%d%d%-%d%d%-%d%d" }
local CRM_TIMES = { "", " %d%d:%d%d", " %d%d:%d%d:%d%d" }
local DECIMAL = "^%d+%.?%d*$"

local function answer(status, value)
  return status, json.encode(value)
end

-- An error as Metrica writes it; location names the parameter or field at fault.
local function fail(status, error_type, message, location)
  return answer(status, {
    errors = { { error_type = error_type, message = message, location = location } }, code = status, message = message,
  })
end

local FAULTS = {
  too_many_requests = { 429, "quota_requests_by_ip", "Too many requests" },
  backend_error = { 503, "backend_error", "Try later" },
}

-- The quota answers: HTTP 429 (or 420, as the English quotas page gives it),
-- the error_type naming the quota: quota_requests_by_uid (5000 a day per user),
-- quota_requests_by_ip (30 a second), quota_parallel_requests (3 at once),
-- quota_requests_by_counter_id, quota_delegate_requests, quota_grants_requests.
function metrika.fault_answer(name, f)
  local quota = name == "too_many_requests" and f or {}
  return fail(quota.status == 420 and 420 or FAULTS[name][1], quota.quota or FAULTS[name][2], FAULTS[name][3])
end

-- Requests refused before they reach an endpoint (see init.lua), by status.
-- The documentation gives no error_type for 411, 413 and 431: these are the
-- nearest of those it gives.
local REFUSALS = { [400] = "invalid_parameter", [404] = "not_found", [411] = "missing_parameter",
  [413] = "limit_exceeded", [429] = "quota_parallel_requests", [431] = "limit_exceeded", [503] = "backend_error" }

-- Requests of one user at once; one more is refused with 429 (the quotas of the documentation).
metrika.PARALLEL_QUOTA = 3

function metrika.refusal(status, message)
  return fail(status, REFUSALS[status], message)
end

function metrika.owns(path)
  return path:find("^/management/v1/counter/") ~= nil or path:find("^/cdp/api/v1/counter/") ~= nil
end

-- The known-counter test for the option `counters`; nil, message when it is not an array of ids.
function metrika.counters(list)
  if list == nil then
    return function(id) return id ~= metrika.FOREIGN_COUNTER end
  elseif type(list) ~= "table" then
    return nil, "counters must be an array of counter ids"
  end
  local known = {}
  for _, id in ipairs(list) do
    if math_type(id) ~= "integer" then
      return nil, "counters must be an array of counter ids"
    end
    known[id] = true
  end
  return function(id) return known[id] == true end
end

local function authorize(state, req)
  if req.query.oauth_token then
    return fail(400, "invalid_parameter", "Tokens in the URL are not accepted: use the Authorization header",
      "oauth_token")
  end
  local token = (req.headers.authorization or ""):match("^OAuth (.+)$")
  if not token then
    return fail(401, "unauthorized", "Unauthorized")
  elseif token ~= state.tokens.metrika then
    return fail(403, "invalid_token", "Invalid oauth_token")
  end
end

local function words(text)
  local set = {}
  for word in text:gmatch("%S+") do
    set[word] = true
  end
  return set
end

local function enum(value, allowed)
  return value == nil or words(allowed)[value] == true
end

local function too_long(comment)
  return comment ~= nil and upload.longer_than(comment, 255)
end

-- Offline conversions and calls: the reference says digits and Latin and
-- Cyrillic letters, but the service's negative test (NOT_ALLOWED_SYMBOLS_IN_COMMENT)
-- refuses only an emoji, and spaces, "№" and commas pass. So: no control
-- character, nothing beyond the Basic Multilingual Plane (a 4-byte UTF-8 sequence).
local function plain_comment(comment)
  return comment == nil or not comment:find("[%c\240-\247]")
end

-- The uploading as the API shows it, its status advanced by the time since upload
-- (user parameters: since confirmation).
local function view(state, u)
  local shown = {}
  for k, v in pairs(u.fields) do
    shown[k] = v
  end
  local statuses = KINDS[u.kind].statuses
  if not statuses then
    return shown
  end
  local since = u.created_at
  if u.kind == "user_params" or u.kind == "user_params_delete" then
    since = u.confirmed_at -- nothing is processed before confirmation
  end
  local elapsed = since and state.now() - since or -1
  if elapsed >= state.process_delay then
    shown.status = u.failed and statuses.failure or statuses.final
  else
    shown.status = statuses[(#statuses > 1 and elapsed >= state.process_delay / 2) and 2 or 1]
  end
  return shown
end

-- The header's problem, if any; else nil and parsed's header and rows made
-- the service's reading of them: names as the service knows them, values
-- trimmed, the columns it drops gone.
local function check_columns(spec, parsed)
  local present, known, header, names = {}, {}, {}, {}
  for name in pairs(words(spec.known or "")) do
    known[column_key(spec, name)] = name
  end
  for column, name in ipairs(parsed.header) do
    local key = known[column_key(spec, name)]
    if not key and spec.others == "keep" then
      key = name
    elseif not key and spec.others ~= "drop" then
      return ("line 1, column %d: unknown column %q"):format(column, name)
    end
    names[column] = key
    if key then
      header[#header + 1] = key
      present[key] = true
    end
  end
  for i, row in ipairs(parsed.rows) do
    local read = {}
    for column, name in ipairs(parsed.header) do
      if names[column] then
        read[names[column]] = trimmed(row[name])
      end
    end
    parsed.rows[i] = read
  end
  parsed.header = header
  for _, name in ipairs(spec.required or {}) do
    if not present[name] then
      return ("line 1: the required column %s is missing"):format(name)
    end
  end
  if spec.one_of then
    for _, name in ipairs(spec.one_of) do
      if present[name] then
        return nil
      end
    end
    return "line 1: one of the columns " .. concat(spec.one_of, ", ") .. " is required"
  end
end

local function crm_date(text)
  local year = text:match("^%d%d%d%d") or text:match("^%d%d%.%d%d%.(%d%d%d%d)")
  if year and tonumber(year) < 1970 then
    return false
  end
  for _, date in ipairs(CRM_DATES) do
    for _, time in ipairs(CRM_TIMES) do
      if text:find(date .. time .. "$") then
        return true
      end
    end
  end
  return false
end

-- Amounts and currencies: Expenses (required) and Price are numbers with '.' as
-- the decimal separator, Currency an ISO 4217 code (three upper-case letters).
-- An empty Price or Currency is one not given: both are optional.
local function check_money(row)
  if row.Expenses and not row.Expenses:find(DECIMAL) then
    return ("Expenses must be a number with '.' as the decimal separator: %q"):format(row.Expenses)
  elseif row.Price and row.Price ~= "" and not row.Price:find(DECIMAL) then
    return ("Price must be a number with '.' as the decimal separator: %q"):format(row.Price)
  elseif row.Currency and row.Currency ~= "" and not row.Currency:find("^%u%u%u$") then
    return ("Currency must be an ISO 4217 code, three upper-case letters: %q"):format(row.Currency)
  end
end

-- Row checks: the rows' problems as "line N: ..." (first rows only, see upload.lua).
local function check_rows(kind, parsed)
  local now = os_time()
  for i, row in ipairs(parsed.rows) do
    local line = parsed.lines[i]
    if row.DateTime and not (row.DateTime:find("^%d+%.?%d*$") and tonumber(row.DateTime) <= now) then
      return ("line %d: DateTime must be Unix time in seconds, in the past: %q"):format(line, row.DateTime)
    end
    if row.Date and not (row.Date:find("^%d%d%d%d%-%d%d%-%d%d$") or row.Date:find("^%d%d%d%d%-%d%d%-%d%d/%d%d%d%d%-%d%d%-%d%d$")) then
      return ("line %d: Date must be YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD: %q"):format(line, row.Date)
    end
    local money = kind ~= "crm" and check_money(row)
    if money then
      return ("line %d: %s"):format(line, money)
    end
    if row.TrafficSource and row.TrafficSource ~= "" and not words(TRAFFIC_SOURCES)[row.TrafficSource] then
      return ("line %d: unknown TrafficSource %q"):format(line, row.TrafficSource)
    end
    if kind == "offline" and row.Target == "" then
      return ("line %d: Target is empty"):format(line)
    end
    if kind == "crm" and row.create_date_time and row.create_date_time ~= "" and not crm_date(row.create_date_time) then
      return ("line %d: create_date_time must be dd.MM.yyyy, dd.MM.yy or yyyy-MM-dd, optionally with"
        .. " HH:mm or HH:mm:ss, from 1970: %q"):format(line, row.create_date_time)
    end
    -- SimpleOrderValidationTest: emails in lower case only
    if kind == "crm" and row.emails and row.emails:find("%u") then
      return ("line %d: emails must be in lower case: %q"):format(line, row.emails)
    end
    for _, name in ipairs { "TalkDuration", "HoldDuration" } do -- an unsigned 32-bit number of seconds
      local v = row[name]
      if v and v ~= "" and not (v:find("^%d+$") and tonumber(v) <= 4294967295) then
        return ("line %d: %s must be whole seconds from 0 to 4294967295: %q"):format(line, name, v)
      end
    end
  end
end

local ID_COLUMNS = words("userid clientid yclid purchaseid")

-- How many rows name a visitor the sandbox "knows": any id other than empty or 0.
local function linked(parsed)
  local n = 0
  for _, row in ipairs(parsed.rows) do
    for _, column in ipairs(parsed.header) do
      local id = ID_COLUMNS[column:lower()] and row[column]
      if id and id ~= "" and id ~= "0" then
        n = n + 1
        break
      end
    end
  end
  return n
end

-- The identifiers a Target may name: the urls of the counter's JavaScript-event goals.
local function goal_identifiers(counter)
  local ids = {}
  for _, goal in ipairs(counter.goals) do
    if goal.type == "action" then
      for _, condition in ipairs(goal.conditions) do
        ids[condition.url] = true
      end
    end
  end
  return ids
end

-- A new uploading of kind, listed with list_kind (expense deletions are expense uploadings).
local function add_uploading(state, counter, list_kind, kind, fields)
  local list = counter.uploadings[list_kind] or {}
  counter.uploadings[list_kind] = list
  fields.id = state:new_id()
  fields.create_time = state.time_text(state.now())
  local u = { kind = kind, fields = fields, created_at = state.now() }
  list[#list + 1] = u
  return u
end

local function read_form(req)
  local form, err = upload.form(req)
  if not form then
    return nil, fail(400, "invalid_parameter", err, "file")
  end
  return form
end

-- An upload endpoint: make_fields(req, parsed, form) -> fields | nil, answer...
local function upload_csv(kind, list_kind, make_fields)
  return function(state, req, counter)
    local form, status, body = read_form(req)
    if not form then
      return status, body
    end
    state:record(req, form)
    if not form.file then
      return fail(400, "missing_parameter", "The multipart part 'file' is required", "file")
    end
    local comment = req.query.comment
    if too_long(comment) then
      return fail(400, "invalid_parameter", "comment is longer than 255 characters", "comment")
    elseif (kind == "offline" or kind == "calls") and not plain_comment(comment) then
      return fail(400, "invalid_parameter", "comment may hold only digits and Latin and Cyrillic letters", "comment")
    end
    local parsed, err = upload.read_csv(form.file, ",")
    if not parsed then
      return fail(400, "invalid_uploading", err, "file")
    end
    local this_kind = kind
    if kind == "user_params" and req.query.action == "delete_keys" then
      this_kind = "user_params_delete"
    elseif kind == "offline" and req.query.type == "CALLS" then -- the calls guide's columns
      this_kind = "calls"
    elseif kind == "offline" and req.query.type == "CHATS" then
      this_kind = "chats"
    end
    local spec = KINDS[this_kind]
    err = check_columns(spec, parsed) or check_rows(this_kind, parsed)
    if err then
      return fail(400, "invalid_uploading", err, "file")
    end
    local fields = make_fields(req, parsed, form, counter)
    fields.source_quantity = parsed.count
    local u = add_uploading(state, counter, list_kind or kind, this_kind, fields)
    if spec.statuses and spec.statuses.failure then
      local n = linked(parsed)
      u.failed = n == 0 and this_kind ~= "user_params_delete" -- a file of keys alone names no visitor
      if kind ~= "user_params" then
        fields.linked_quantity, fields.user_not_found_quantity = n, #parsed.rows - n
      end
    end
    return answer(200, { uploading = view(state, u) })
  end
end

local function conversion_fields(req, parsed, _, counter)
  local q = req.query
  local goals, missing = goal_identifiers(counter), 0
  for _, row in ipairs(parsed.rows) do
    missing = missing + (goals[row.Target] and 0 or 1)
  end
  return { comment = q.comment, type = q.type or "BASIC", client_id_type = q.client_id_type,
    line_quantity = parsed.count, goal_not_found_quantity = missing }
end

local function calls_fields(req, parsed)
  local static = 0
  for _, row in ipairs(parsed.rows) do
    static = static + (row.StaticCall == "1" and 1 or 0)
  end
  return { comment = req.query.comment, client_id_type = req.query.client_id_type, line_quantity = parsed.count,
    static_calls_quantity = static, dynamic_calls_quantity = #parsed.rows - static }
end

-- Without provider, a deletion applies to every provider's rows: it shows
-- provider null rather than "default". An upload's provider defaults to "default".
local function expense_fields(type_)
  return function(req)
    local provider = req.query.provider
    if not provider then
      provider = type_ == "EXPENSES" and "default" or json.null
    end
    return { comment = req.query.comment, provider = provider, type = type_ }
  end
end

local function user_params_fields(req, parsed, form)
  return { action = req.query.action, content_id_type = json.null, comment = form.file.filename or json.null,
    line_quantity = parsed.count }
end

local function crm_answer(state, counter, entity, fields)
  fields.uploading_id = tostring(state:new_id())
  fields.datetime = state.time_text(state.now())
  fields.entity_type, fields.uploading_format, fields.uploading_source = CRM_ENTITY_TYPES[entity], "CSV", "API"
  local list = counter.uploadings.crm or {}
  counter.uploadings.crm = list
  list[#list + 1] = { kind = "crm", fields = fields, created_at = state.now() }
  return answer(200, { uploading = fields })
end

-- A CRM upload: data the service refuses still gets an answer, with api_validation_status FAILED.
local function crm_upload(entity)
  return function(state, req, counter)
    local form, status, body = read_form(req)
    if not form then
      return status, body
    end
    state:record(req, form)
    local q = req.query
    if not q.merge_mode then
      return fail(400, "missing_parameter", "merge_mode is required", "merge_mode")
    elseif not enum(q.merge_mode, "SAVE UPDATE APPEND") then
      return fail(400, "invalid_parameter", "merge_mode must be SAVE, UPDATE or APPEND", "merge_mode")
    elseif not enum(q.delimiter_type, "COMMA SEMICOLON") then
      return fail(400, "invalid_parameter", "delimiter_type must be COMMA or SEMICOLON", "delimiter_type")
    elseif not form.file then
      return fail(400, "missing_parameter", "The multipart part 'file' is required", "file")
    end
    local parsed = upload.read_csv(form.file, q.delimiter_type == "SEMICOLON" and ";" or ",")
    local ok = parsed and not check_rows("crm", parsed)
    return crm_answer(state, counter, entity, { api_validation_status = ok and "PASSED" or "FAILED",
      elements_count = ok and parsed.count or 0 })
  end
end

local function find(counter, kind, id)
  for _, u in ipairs(counter.uploadings[kind] or {}) do
    if tostring(u.fields.id) == id then
      return u
    end
  end
end

local function one(kind)
  return function(state, req, counter, id)
    state:record(req)
    local u = find(counter, kind, id)
    if not u then
      return fail(404, "not_found", "No uploading with id " .. id)
    end
    return answer(200, { uploading = view(state, u) })
  end
end

-- A count given in the query: digits only; default when it is not given.
local function count(text, default)
  if text == nil then
    return default
  end
  return text:find("^%d+$") and tonumber(text) or nil
end

-- Newest first (oldest first after POST /_sandbox/lists {"order":
-- "oldest_first"}: the service's order is not documented), each shown only
-- once the lists' lag (state.lists.lag seconds) has passed since it was made.
-- With paged, from offset and at most limit of them: 10000 by default, which
-- is documented for offline conversions and user parameters and is the
-- sandbox's choice for the other paged lists. The conversions list takes no
-- type: it shows every type, each item saying its own.
local function list(kind, paged)
  return function(state, req, counter)
    state:record(req)
    local q = req.query
    local limit, offset = huge, 0
    if paged then
      limit, offset = count(q.limit, 10000), count(q.offset, 0)
      if not limit or limit < 1 then
        return fail(400, "invalid_parameter", "limit must be a whole number from 1", "limit")
      elseif not offset then
        return fail(400, "invalid_parameter", "offset must be a whole number from 0", "offset")
      end
    end
    local all, shown, skipped = counter.uploadings[kind] or {}, {}, 0
    local first, last, step = #all, 1, -1
    if state.lists.order == "oldest_first" then
      first, last, step = 1, #all, 1
    end
    local shown_before = state.now() - (state.lists.lag or 0)
    for i = first, last, step do
      local u = all[i]
      if u.created_at <= shown_before then
        skipped = skipped + 1
        if skipped > offset and #shown < limit then
          shown[#shown + 1] = view(state, u)
        end
      end
    end
    return answer(200, { uploadings = shown })
  end
end

local function delete_line(state, req, counter)
  state:record(req)
  local date = req.query.date
  if not date then
    return fail(400, "missing_parameter", "date is required", "date")
  elseif not (date:find("^%d%d%d%d%-%d%d%-%d%d$") or date:find("^%d%d%d%d%-%d%d%-%d%d/%d%d%d%d%-%d%d%-%d%d$")) then
    return fail(400, "invalid_parameter", "date must be YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD", "date")
  elseif too_long(req.query.comment) then
    return fail(400, "invalid_parameter", "comment is longer than 255 characters", "comment")
  end
  local u = add_uploading(state, counter, "expense", "expense_delete", expense_fields("REMOVES")(req))
  u.fields.source_quantity = 1
  return answer(200, { uploading = view(state, u) })
end

-- The body's {"uploading": {...}}, or nil and the error answer.
local function uploading_body(req, id)
  local body = json.decode(req.body or "")
  if type(body) ~= "table" or type(body.uploading) ~= "table" then
    return nil, fail(400, "invalid_json", 'The body must be {"uploading": {...}}', "uploading")
  end
  local u = body.uploading
  for k, v in pairs(u) do
    if v == json.null then
      u[k] = nil -- a field sent back as null is not given
    end
  end
  if u.id ~= nil and tostring(u.id) ~= id then
    return nil, fail(400, "invalid_parameter", "uploading.id is not the id in the path", "uploading.id")
  elseif u.content_id_type ~= nil and not enum(u.content_id_type, "client_id user_id") then
    return nil, fail(400, "invalid_parameter", "content_id_type must be client_id or user_id",
      "uploading.content_id_type")
  elseif u.comment ~= nil and (type(u.comment) ~= "string" or too_long(u.comment)) then
    return nil, fail(400, "invalid_parameter", "comment must be text of at most 255 characters", "uploading.comment")
  end
  return u
end

-- The user-parameter uploading a confirm or an edit names, and the changes
-- its body asks for; else nil and the answer (404, or the body's error).
local function user_params_change(state, req, counter, id)
  state:record(req)
  local u = find(counter, "user_params", id)
  if not u then
    return nil, fail(404, "not_found", "No uploading with id " .. id)
  end
  local changes, status, body = uploading_body(req, id)
  if not changes then
    return nil, status, body
  end
  return u, changes
end

local function edit(state, req, counter, id)
  local u, changes, body = user_params_change(state, req, counter, id)
  if not u then
    return changes, body
  end
  u.fields.content_id_type = changes.content_id_type or u.fields.content_id_type
  u.fields.comment = changes.comment or u.fields.comment
  return answer(200, { uploading = view(state, u) })
end

-- Confirming applies the uploading; its content_id_type is set here (or was, by an edit).
local function confirm(state, req, counter, id)
  local u, changes, body = user_params_change(state, req, counter, id)
  if not u then
    return changes, body
  end
  local content_id_type = changes.content_id_type or u.fields.content_id_type
  if content_id_type == json.null then
    return fail(400, "missing_parameter", "uploading.content_id_type (client_id or user_id) is required",
      "uploading.content_id_type")
  end
  u.fields.content_id_type, u.fields.comment = content_id_type, changes.comment or u.fields.comment
  u.confirmed_at = u.confirmed_at or state.now()
  return answer(200, { uploading = view(state, u) })
end

local function goals(state, req, counter)
  state:record(req)
  return answer(200, { goals = counter.goals })
end

-- The goal of a POST /goals body, or nil, message, location. Only JavaScript-event
-- goals ("action", conditions "exact") are emulated.
local function new_goal(body)
  local goal = type(body) == "table" and body.goal
  if type(goal) ~= "table" then
    return nil, 'The body must be {"goal": {...}}', "goal"
  elseif type(goal.name) ~= "string" or goal.name == "" then
    return nil, "goal.name is required", "goal.name"
  elseif goal.type ~= "action" then
    return nil, 'goal.type must be "action" (the sandbox emulates JavaScript-event goals only)', "goal.type"
  elseif type(goal.conditions) ~= "table" or #goal.conditions == 0 then
    return nil, "goal.conditions must be a non-empty array", "goal.conditions"
  end
  local conditions = {}
  for i, c in ipairs(goal.conditions) do
    if type(c) ~= "table" or c.type ~= "exact" or type(c.url) ~= "string" or c.url == "" then
      return nil, 'each condition must be {"type": "exact", "url": "<identifier>"}', "goal.conditions[" .. i .. "]"
    end
    conditions[i] = { type = "exact", url = c.url }
  end
  return { name = goal.name, type = "action", is_retargeting = 0, conditions = conditions }
end

local function create_goal(state, req, counter)
  state:record(req)
  local goal, message, location = new_goal(json.decode(req.body or ""))
  if not goal then
    return fail(400, "invalid_parameter", message, location)
  end
  goal.id = state:new_id()
  counter.goals[#counter.goals + 1] = goal
  return answer(200, { goal = goal })
end

local function threshold(key)
  return function(state, req, counter)
    state:record(req)
    return answer(200, { visit_join_threshold = { extended = counter.thresholds[key] == true } })
  end
end

local function set_threshold(key, on)
  return function(state, req, counter)
    state:record(req)
    counter.thresholds[key] = on
    return answer(200, { success = true })
  end
end

local function crm_list(state, req, counter)
  state:record(req)
  local q = req.query
  local limit = count(q.limit, 10)
  if not limit or limit < 1 or limit > 1000 then
    return fail(400, "invalid_parameter", "limit must be from 1 to 1000", "limit")
  elseif q.datetime_offset and not q.datetime_offset:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ?$") then
    return fail(400, "invalid_parameter", "datetime_offset must be a date and time like 2026-11-20T09:12:45Z",
      "datetime_offset")
  end
  -- datetime_offset: uploadings made before it (paging back from the newest), an unconfirmed reading
  local before = q.datetime_offset and q.datetime_offset:gsub("Z?$", "Z")
  local all, shown = counter.uploadings.crm or {}, {}
  for i = #all, 1, -1 do
    local u = all[i].fields
    if #shown < limit and (not before or u.datetime < before) and (not q.source or u.uploading_source == q.source) then
      shown[#shown + 1] = u
    end
  end
  return answer(200, { uploadings = shown })
end

-- method, path under the counter, handler, the query parameters it takes (besides ulogin).
local MANAGEMENT = {
  { "POST", "/offline_conversions/upload", upload_csv("offline", nil, conversion_fields), "comment type client_id_type" },
  { "GET", "/offline_conversions/uploadings", list("offline", true), "limit offset" },
  { "GET", "/offline_conversions/uploading/(%d+)", one("offline"), "" },
  { "POST", "/offline_conversions/upload_calls", upload_csv("calls", nil, calls_fields), "comment new_goal_name" },
  { "GET", "/offline_conversions/calls_uploadings", list("calls", true), "limit offset" },
  { "GET", "/offline_conversions/calls_uploading/(%d+)", one("calls"), "" },
  { "GET", "/offline_conversions/visit_join_threshold", threshold("visits"), "" },
  { "GET", "/offline_conversions/calls_visit_join_threshold", threshold("calls"), "" },
  { "POST", "/offline_conversions/extended_threshold", set_threshold("visits", true), "" },
  { "DELETE", "/offline_conversions/extended_threshold", set_threshold("visits", false), "" },
  { "POST", "/offline_conversions/calls_extended_threshold", set_threshold("calls", true), "" },
  { "DELETE", "/offline_conversions/calls_extended_threshold", set_threshold("calls", false), "" },
  { "POST", "/expense/upload", upload_csv("expense", nil, expense_fields("EXPENSES")), "comment provider" },
  { "POST", "/expense/delete", upload_csv("expense_delete", "expense", expense_fields("REMOVES")), "comment provider" },
  { "POST", "/expense/delete_single", delete_line, "date UTMSource UTMMedium UTMCampaign UTMTerm UTMContent "
    .. "trafficSource trafficSourceDetail comment provider" },
  { "GET", "/expense/uploadings", list("expense", true), "limit offset" },
  { "GET", "/expense/uploading/(%d+)", one("expense"), "" },
  { "POST", "/user_params/uploadings/upload", upload_csv("user_params", nil, user_params_fields), "action" },
  { "POST", "/user_params/uploading/(%d+)/confirm", confirm, "" },
  { "PUT", "/user_params/uploading/(%d+)", edit, "" },
  { "GET", "/user_params/uploadings", list("user_params", true), "limit offset" },
  { "GET", "/user_params/uploading/(%d+)", one("user_params"), "" },
  { "GET", "/goals", goals, "" },
  { "POST", "/goals", create_goal, "" },
}

local CDP = {
  { "POST", "/data/simple_orders", crm_upload("simple_orders"), "merge_mode delimiter_type" },
  { "POST", "/data/contacts/csv", crm_upload("contacts"), "merge_mode columns_mapping delimiter_type" },
  { "POST", "/data/orders/csv", crm_upload("orders"), "merge_mode columns_mapping delimiter_type" },
  { "GET", "/last_uploadings", crm_list, "limit datetime_offset source" },
}

-- The first query parameter the endpoint does not take, if any.
local function stray_parameter(req, taken)
  local allowed = words(taken .. " ulogin")
  for _, name in ipairs(req.query_names) do
    if not allowed[name] then
      return name
    end
  end
end

-- Checks that apply before the endpoint's own: the action of a user-parameter upload.
local function precheck(req, rest)
  if rest == "/user_params/uploadings/upload" and not enum(req.query.action or "", "update delete_keys") then
    return fail(400, req.query.action and "invalid_parameter" or "missing_parameter",
      "action must be update or delete_keys", "action")
  elseif rest == "/offline_conversions/upload" and not enum(req.query.type, "BASIC CALLS CHATS") then
    return fail(400, "invalid_parameter", "type must be BASIC, CALLS or CHATS", "type")
  end
end

-- POST /_sandbox/lists {"counter": 1, "kind": "expense", "older": n}: n
-- processed uploadings of the kind, a second apart from a day ago, before
-- any other (kinds: offline, calls, expense, user_params; n at most 50000).
function metrika.add_older(state, counter_id, kind, n)
  local older = {}
  for i = 1, n do
    local made = state.now() - 86400 + i
    older[i] = { kind = kind, created_at = made, confirmed_at = made, fields = { id = state:new_id(),
      create_time = state.time_text(made), comment = "older" .. i, type = kind == "offline" and "BASIC" or nil,
      source_quantity = 1, line_quantity = 1 } }
  end
  local counter = state:counter(counter_id)
  for _, u in ipairs(counter.uploadings[kind] or {}) do
    older[#older + 1] = u
  end
  counter.uploadings[kind] = older
end

-- Answers a request for Metrica (a path it owns).
function metrika.handle(state, req)
  local routes, id, rest = MANAGEMENT, req.path:match("^/management/v1/counter/(%d+)(/.*)$")
  if not rest then
    routes, id, rest = CDP, req.path:match("^/cdp/api/v1/counter/(%d+)(/.*)$")
  end
  local status, body = authorize(state, req)
  if status then
    state:record(req)
    return status, body
  end
  if not rest then
    state:record(req)
    return fail(404, "not_found", "Not found: " .. req.path)
  end
  local counter_id = #id <= 18 and tonumber(id)
  if not counter_id or not state.known_counter(counter_id) then
    state:record(req)
    return fail(403, "access_denied", "Access is denied: no access to counter " .. id)
  end
  for _, route in ipairs(routes) do
    local captures = { rest:match("^" .. route[2] .. "$") }
    if captures[1] and route[1] == req.method then
      local stray = stray_parameter(req, route[4])
      status, body = precheck(req, rest)
      if stray then
        state:record(req)
        return fail(400, "invalid_parameter", "Unknown parameter: " .. stray, stray)
      elseif status then
        state:record(req)
        return status, body
      end
      return route[3](state, req, state:counter(counter_id), captures[1] ~= rest and captures[1] or nil)
    end
  end
  state:record(req)
  -- a known path with another method too: the documentation has no 405, and
  -- an endpoint that method does not reach is a resource that is not there
  return fail(404, "not_found", "Not found: " .. req.method .. " " .. req.path)
end

return metrika
