-- The Yandex Metrica side of the sandbox: management API uploads (offline
-- conversions, calls, expenses, user parameters) and CRM uploads, with the
-- service's error bodies and uploadings that become final after a delay.
local json = require "csvup.json"
local upload = require "csvup.sandbox.upload"

local ipairs, pairs, tonumber, tostring, type, concat = ipairs, pairs, tonumber, tostring, type, table.concat

local metrika = {}

local TRAFFIC_SOURCES = "internal direct referral organic ad saved undefined email social messenger qrcode recommend"

-- Columns per upload kind: required ones, a group of which one must be present,
-- and all that are known (anything else is refused).
local KINDS = {
  offline = {
    required = { "Target", "DateTime" }, one_of = { "UserId", "ClientId", "Yclid", "PurchaseId" },
    known = "UserId ClientId Yclid PurchaseId Target DateTime Price Currency",
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
    statuses = { "UPLOADED", "IN_PROGRESS", final = "PROCESSED" },
  },
  expense_delete = {
    required = { "Date" },
    known = "Date UTMSource UTMMedium UTMCampaign UTMTerm UTMContent TrafficSource TrafficSourceDetail",
  },
  user_params = {
    required = { "Key" }, one_of = { "UserId", "ClientId" }, known = "UserId ClientId Key Value",
    statuses = { "is_processed", final = "processed", failure = "linkage_failure" },
  },
  crm = { statuses = { "UPLOADED", final = "PROCESSED" } },
}
KINDS.expense_delete.statuses = KINDS.expense.statuses

local function answer(status, value)
  return status, json.encode(value)
end

local function fail(status, error_type, message)
  return answer(status, {
    errors = { { error_type = error_type, message = message } }, code = status, message = message,
  })
end

local function authorize(state, req)
  if req.query.oauth_token then
    return fail(400, "invalid_parameter", "Tokens in the URL are not accepted: use the Authorization header")
  end
  local token = (req.headers.authorization or ""):match("^OAuth (.+)$")
  if not token then
    return fail(401, "unauthorized", "Unauthorized")
  elseif token ~= state.tokens.metrika then
    return fail(403, "invalid_token", "Invalid oauth_token")
  end
end

-- The uploading as the API shows it, its status advanced by the time since upload
-- (user parameters: since confirmation).
local function view(state, u)
  local shown = {}
  for k, v in pairs(u.fields) do
    shown[k] = v
  end
  local statuses = KINDS[u.kind].statuses
  local since = u.created_at
  if u.kind == "user_params" then
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

local function check_columns(spec, header)
  local present = {}
  for _, name in ipairs(header) do
    if not (" " .. spec.known .. " "):find(" " .. name .. " ", 1, true) then
      return ("line 1: unknown column %q"):format(name)
    end
    present[name] = true
  end
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

-- Row checks: the rows' problems as "line N: ..." (first rows only, see upload.lua).
local function check_rows(kind, rows)
  local now = os.time()
  for i, row in ipairs(rows) do
    local line = i + 1
    if row.DateTime and not (row.DateTime:find("^%d+$") and tonumber(row.DateTime) <= now) then
      return ("line %d: DateTime must be Unix time in seconds, in the past: %q"):format(line, row.DateTime)
    end
    if row.Date and not (row.Date:find("^%d%d%d%d%-%d%d%-%d%d$") or row.Date:find("^%d%d%d%d%-%d%d%-%d%d/%d%d%d%d%-%d%d%-%d%d$")) then
      return ("line %d: Date must be YYYY-MM-DD or YYYY-MM-DD/YYYY-MM-DD: %q"):format(line, row.Date)
    end
    if row.Expenses and not row.Expenses:find("^%d+%.?%d*$") then
      return ("line %d: Expenses must be a number with '.' as the decimal separator: %q"):format(line, row.Expenses)
    end
    if row.TrafficSource and row.TrafficSource ~= "" and not (" " .. TRAFFIC_SOURCES .. " "):find(" " .. row.TrafficSource .. " ", 1, true) then
      return ("line %d: unknown TrafficSource %q"):format(line, row.TrafficSource)
    end
    if kind == "offline" and row.Target == "" then
      return ("line %d: Target is empty"):format(line)
    end
  end
end

-- How many rows name a visitor the sandbox "knows": any id other than empty or 0.
local function linked(rows)
  local n = 0
  for _, row in ipairs(rows) do
    for _, column in ipairs { "UserId", "ClientId", "Yclid", "PurchaseId" } do
      local id = row[column]
      if id and id ~= "" and id ~= "0" then
        n = n + 1
        break
      end
    end
  end
  return n
end

-- A new uploading of kind, listed with list_kind (expense deletions are expense uploadings).
local function add_uploading(state, list_kind, kind, fields)
  local list = state.uploadings[list_kind] or {}
  state.uploadings[list_kind] = list
  fields.id = state:new_id()
  fields.create_time = state.time_text(state.now())
  local u = { kind = kind, fields = fields, created_at = state.now() }
  list[#list + 1] = u
  return u
end

local function upload_csv(kind, list_kind, make_fields)
  return function(state, req)
    local form, err = upload.form(req)
    if not form then
      return fail(400, "invalid_parameter", err)
    end
    state:record(req, form)
    if not form.file then
      return fail(400, "missing_parameter", "The multipart part 'file' is required")
    end
    local comment = req.query.comment
    if comment and #comment:gsub("[\128-\191]", "") > 255 then
      return fail(400, "invalid_parameter", "comment is longer than 255 characters")
    end
    local delimiter = req.query.delimiter_type == "SEMICOLON" and ";" or ","
    local parsed
    parsed, err = upload.read_csv(form.file.content, delimiter)
    if not parsed then
      return fail(400, "invalid_uploading", err)
    end
    local spec = KINDS[kind]
    err = (spec.known and check_columns(spec, parsed.header)) or check_rows(kind, parsed.rows)
    if err then
      return fail(400, "invalid_uploading", err)
    end
    local fields, problem = make_fields(req, parsed)
    if not fields then
      return fail(400, "invalid_parameter", problem)
    end
    fields.source_quantity = parsed.count
    local u = add_uploading(state, list_kind or kind, kind, fields)
    if spec.statuses and spec.statuses.failure then
      local n = linked(parsed.rows)
      u.failed = n == 0
      fields.linked_quantity, fields.user_not_found_quantity = n, #parsed.rows - n
    end
    return answer(200, { uploading = view(state, u) })
  end
end

local function enum(value, allowed)
  return value == nil or (" " .. allowed .. " "):find(" " .. value .. " ", 1, true) ~= nil
end

local function conversion_fields(kind_type)
  return function(req, t)
    local q = req.query
    if not enum(q.type, "BASIC CALLS CHATS") then
      return nil, "type must be BASIC, CALLS or CHATS"
    end
    return { comment = q.comment, type = q.type or kind_type, client_id_type = q.client_id_type,
      line_quantity = t.count, goal_not_found_quantity = 0, new_goal_name = q.new_goal_name }
  end
end

local function expense_fields(type_)
  return function(req)
    return { comment = req.query.comment, provider = req.query.provider or "default", type = type_ }
  end
end

local function user_params_fields(req, t)
  if not enum(req.query.action, "update delete_keys") or not req.query.action then
    return nil, "action must be update or delete_keys"
  end
  return { action = req.query.action, content_id_type = req.query.content_id_type, comment = req.query.comment,
    line_quantity = t.count }
end

local function crm_fields(entity)
  return function(req)
    if not enum(req.query.merge_mode, "SAVE UPDATE APPEND") or not req.query.merge_mode then
      return nil, "merge_mode must be SAVE, UPDATE or APPEND"
    end
    return { entity = entity, merge_mode = req.query.merge_mode }
  end
end

local function find(state, kind, id)
  for _, u in ipairs(state.uploadings[kind] or {}) do
    if tostring(u.fields.id) == id then
      return u
    end
  end
end

local function one(kind)
  return function(state, req, id)
    state:record(req)
    local u = find(state, kind, id)
    if not u then
      return fail(404, "not_found", "No uploading with id " .. id)
    end
    return answer(200, { uploading = view(state, u) })
  end
end

-- Newest first, with limit and offset.
local function list(kind)
  return function(state, req)
    state:record(req)
    local all, shown = state.uploadings[kind] or {}, {}
    local limit, offset = tonumber(req.query.limit) or 10000, tonumber(req.query.offset) or 0
    for i = #all - offset, math.max(1, #all - offset - limit + 1), -1 do
      shown[#shown + 1] = view(state, all[i])
    end
    return answer(200, { uploadings = shown })
  end
end

local function delete_line(state, req)
  state:record(req)
  local date = req.query.date
  if not date then
    return fail(400, "missing_parameter", "date is required")
  elseif not date:find("^%d%d%d%d%-%d%d%-%d%d$") then
    return fail(400, "invalid_parameter", "date must be YYYY-MM-DD")
  end
  local u = add_uploading(state, "expense", "expense", { comment = req.query.comment, provider = req.query.provider or "default",
    type = "REMOVES", source_quantity = 1 })
  return answer(200, { uploading = view(state, u) })
end

local function confirm(state, req, id)
  state:record(req)
  local u = find(state, "user_params", id)
  if not u then
    return fail(404, "not_found", "No uploading with id " .. id)
  end
  local body = json.decode(req.body or "")
  if type(body) ~= "table" or type(body.uploading) ~= "table" or tostring(body.uploading.id) ~= id then
    return fail(400, "invalid_json", 'The body must be {"uploading": {...}} with the id of the uploading')
  end
  u.confirmed_at = u.confirmed_at or state.now()
  return answer(200, { uploading = view(state, u) })
end

local function threshold(key)
  return function(state, req)
    state:record(req)
    return answer(200, { visit_join_threshold = { extended = state.thresholds[key] == true } })
  end
end

local function set_threshold(key, on)
  return function(state, req)
    state:record(req)
    state.thresholds[key] = on
    return answer(200, { success = true })
  end
end

local function crm_list(state, req)
  local limit = tonumber(req.query.limit or "10")
  if not limit or limit < 1 or limit > 1000 then
    state:record(req)
    return fail(400, "invalid_parameter", "limit must be from 1 to 1000")
  end
  return list("crm")(state, req)
end

local MANAGEMENT = {
  { "POST", "/offline_conversions/upload", upload_csv("offline", nil, conversion_fields("BASIC")) },
  { "GET", "/offline_conversions/uploadings", list("offline") },
  { "GET", "/offline_conversions/uploading/(%d+)", one("offline") },
  { "POST", "/offline_conversions/upload_calls", upload_csv("calls", nil, conversion_fields("CALLS")) },
  { "GET", "/offline_conversions/calls_uploadings", list("calls") },
  { "GET", "/offline_conversions/calls_uploading/(%d+)", one("calls") },
  { "GET", "/offline_conversions/visit_join_threshold", threshold("visits") },
  { "GET", "/offline_conversions/calls_visit_join_threshold", threshold("calls") },
  { "POST", "/offline_conversions/extended_threshold", set_threshold("visits", true) },
  { "DELETE", "/offline_conversions/extended_threshold", set_threshold("visits", false) },
  { "POST", "/offline_conversions/calls_extended_threshold", set_threshold("calls", true) },
  { "DELETE", "/offline_conversions/calls_extended_threshold", set_threshold("calls", false) },
  { "POST", "/expense/upload", upload_csv("expense", nil, expense_fields("EXPENSES")) },
  { "POST", "/expense/delete", upload_csv("expense_delete", "expense", expense_fields("REMOVES")) },
  { "POST", "/expense/delete_single", delete_line },
  { "GET", "/expense/uploadings", list("expense") },
  { "GET", "/expense/uploading/(%d+)", one("expense") },
  { "POST", "/user_params/uploadings/upload", upload_csv("user_params", nil, user_params_fields) },
  { "POST", "/user_params/uploading/(%d+)/confirm", confirm },
  { "GET", "/user_params/uploadings", list("user_params") },
  { "GET", "/user_params/uploading/(%d+)", one("user_params") },
}

local CDP = {
  { "POST", "/data/simple_orders", upload_csv("crm", nil, crm_fields("simple_orders")) },
  { "POST", "/data/contacts/csv", upload_csv("crm", nil, crm_fields("contacts")) },
  { "POST", "/data/orders/csv", upload_csv("crm", nil, crm_fields("orders")) },
  { "GET", "/last_uploadings", crm_list },
}

-- Answers a request for Metrica, or returns nothing when the path is not Metrica's.
function metrika.handle(state, req)
  local routes, rest = MANAGEMENT, req.path:match("^/management/v1/counter/%d+(/.*)$")
  if not rest then
    routes, rest = CDP, req.path:match("^/cdp/api/v1/counter/%d+(/.*)$")
  end
  if not rest then
    return nil
  end
  local status, body = authorize(state, req)
  if status then
    state:record(req)
    return status, body
  end
  local path_known = false
  for _, route in ipairs(routes) do
    local captures = { rest:match("^" .. route[2] .. "$") }
    if captures[1] then
      path_known = true
      if route[1] == req.method then
        return route[3](state, req, captures[1] ~= rest and captures[1] or nil)
      end
    end
  end
  state:record(req)
  if path_known then
    return fail(405, "invalid_parameter", "Method not allowed: " .. req.method)
  end
  return fail(404, "not_found", "Not found: " .. req.path)
end

return metrika
