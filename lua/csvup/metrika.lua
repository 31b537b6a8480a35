-- Yandex Metrica: offline conversions, calls, expenses, user parameters, CRM,
-- goals. The methods come from csvup.registry; what is Metrica's own is here:
-- its error body, the counter in every path, the answers' shapes, wait().
local client = require "csvup.client"
local core = require "csvup.core"
local csv = require "csvup.csv"
local errors = require "csvup.errors"
local json = require "csvup.json"
local registry = require "csvup.registry"

local type, error, tostring, ipairs, setmetatable, pcall = type, error, tostring, ipairs, setmetatable, pcall
local format, min = string.format, math.min

local metrika = {}

local Client = {}

-- Waiting: the first pause, its growth, the default ceiling and the smallest allowed (seconds).
-- From 1 s a short processing is seen soon; growing by half up to a minute, a
-- two-hour one costs 130 polls of the day's 5,000 requests (see the README).
local WAIT_FIRST, WAIT_GROWTH, WAIT_INTERVAL, WAIT_MIN_INTERVAL = 1, 1.5, 60, 0.05
local WAIT_TIMEOUT = 3 * 3600 -- processing may take 2 hours

-- {"errors":[{"error_type":..., "message":..., "location":...}], "code":..., "message":...}
function Client.read_error(status, body)
  if status >= 200 and status < 300 then
    return nil
  end
  local fields = {}
  if type(body) == "table" and type(body.errors) == "table" then
    local first = type(body.errors[1]) == "table" and body.errors[1] or {}
    fields.code = type(first.error_type) == "string" and first.error_type or nil
    fields.message = type(body.message) == "string" and body.message or type(first.message) == "string"
      and first.message or nil
    fields.errors = body.errors
  end
  return fields
end

--- Opens a Yandex Metrica client for one counter.
-- metrika.new{ token, counter, ulogin?, base_url?, ... } -> client | nil, err
-- (the connection and retry options are csvup.client's)
function metrika.new(opts)
  local self, err = client.new("metrika", opts, Client, { names = { "counter", "ulogin" } })
  if not self then
    return nil, err
  end
  self.counter, self.ulogin = opts.counter, opts.ulogin
  self.account = self.ulogin -- whom the journal says an upload was for
  -- what this client knows of the uploadings it made: their kind, and the
  -- content_id_type a user-parameter upload will be confirmed with
  self.kinds = setmetatable({}, { __mode = "k" })
  self.content_id_types = {}
  return self
end

-- The arguments every Metrica call carries.
function Client:complete(args)
  args.counter = self.counter
  args.query = args.query or {}
  args.query.ulogin = self.ulogin
  return args
end

Client.call = client.service_call

-- Answers --------------------------------------------------------------------------

local ANSWER, PREPARE = {}, {}

-- Every method of an upload kind answers {"uploading": {...}}: remembered with
-- its kind for wait(), and with the content_id_type its upload was given for
-- the confirmation.
function ANSWER.uploading(self, answer, values, m)
  local u, err = client.expect_uploading(answer)
  if u then
    self.kinds[u] = m.kind
    if m.shape == "upload" and values.content_id_type then
      self.content_id_types[tostring(u.id)] = values.content_id_type
    end
  end
  return u, err
end

-- The conversions list, its items filtered on the type asked for (the list
-- takes none); an item that shows no type is kept.
function ANSWER.uploadings_of_type(_, answer, values)
  local list, err = client.expect(answer, "uploadings", true)
  if not list or values.type == nil then
    return list, err
  end
  local kept = {}
  for _, u in ipairs(list) do
    if type(u) ~= "table" or u.type == nil or u.type == values.type then
      kept[#kept + 1] = u
    end
  end
  return kept
end

-- CRM answers UploadingMetaExternal: uploading_id (a string), api_validation_status PASSED or FAILED
-- (FAILED: the service refused the data; any other, or none, is not a refusal).
function ANSWER.crm_uploading(_, answer)
  local u, err = client.expect(answer, "uploading")
  if not u then
    return nil, err
  elseif type(u.uploading_id) ~= "string" and not json.is_count(u.uploading_id) then
    -- the one thing a success must carry: the id the uploadings list shows it by
    return errors.fail("api", "bad_response", "the CRM answer has no uploading_id")
  elseif u.api_validation_status == "FAILED" then
    return errors.fail("api", "api_validation_failed", format("the service refused the data of uploading %s",
      client.printable(u.uploading_id)), { uploading = u })
  end
  return u
end

function ANSWER.goal(_, answer)
  local goal, err = client.expect(answer, "goal")
  if goal and goal.id == nil then
    return errors.fail("api", "bad_response", "the created goal has no id")
  end
  return goal, err
end

-- Calls ----------------------------------------------------------------------------

-- CRM: the entity picks the endpoint, delimiter_type the file's delimiter.
function PREPARE.crm_entity(_, values, _, call, m)
  local entity, delimiter
  for _, o in ipairs(m.options) do
    entity = o.endpoints and o.endpoints[values.entity] or entity
    delimiter = o.delimiters and o.delimiters[values.delimiter_type] or delimiter
  end
  if values.columns_mapping and values.entity == "simple_orders" then
    return errors.invalid("%s: columns_mapping applies to contacts and orders only", m.name)
  end
  call.endpoint, call.delimiter = entity, delimiter
  return true
end

-- The uploading goes back whole, its id exact, with content_id_type: given,
-- or remembered from its upload{ content_id_type }.
function PREPARE.remembered_content_id_type(self, values, _, call, m)
  values.content_id_type = values.content_id_type or self.content_id_types[tostring(client.id(call.id))]
  if values.content_id_type == nil then
    return errors.invalid("%s: content_id_type (client_id or user_id) is required: give it here or to the upload",
      m.name)
  end
  return true
end

function PREPARE.goal_body(_, values, _, call)
  call.body = json.encode { goal = { name = values.name, type = "action",
    conditions = { { type = "exact", url = values.identifier } } } }
  return true
end

-- The identifiers offline conversions count for, as a set: those of the
-- counter's JavaScript-event goals (type action) with an exact condition,
-- the only ones that take offline conversions; and, for the identifiers of
-- other goals, why they do not count.
local function goal_identifiers(self)
  local goals, err = self:goals()
  if not goals then
    return nil, err
  end
  local ids, not_counted = {}, {}
  for _, g in ipairs(goals) do
    for _, c in ipairs(type(g) == "table" and type(g.conditions) == "table" and g.conditions or {}) do
      if type(c) == "table" and type(c.url) == "string" then
        if g.type ~= "action" then
          not_counted[c.url] = format("is a goal of type %s, not a JavaScript event", client.printable(g.type))
        elseif c.type ~= "exact" then
          not_counted[c.url] = format("is a JavaScript-event goal whose condition is %s, not exact (\"matches\")",
            client.printable(c.type))
        else
          ids[c.url] = true
        end
      end
    end
  end
  return ids, not_counted
end

-- check_targets = true: every Target names one of the counter's JavaScript-event
-- goals, since a wrong Target is why conversions most often never show up.
function PREPARE.check_targets(self, _, opts, call)
  if not opts.check_targets then
    return true
  end
  if opts.file then -- read twice, by this check and by the upload: a regular file only
    local ok, err = core.check_file(registry.endpoint[call.endpoint], opts.file)
    if not ok then
      return nil, err
    end
  end
  local ids, not_counted = goal_identifiers(self)
  if not ids then
    return nil, not_counted
  end
  local problems, total = {}, 0
  local function check(target, line)
    if target ~= nil and target ~= "" and not ids[target] then
      total = total + 1
      local why = not_counted[target] and format("%s of counter %s: offline conversions count only for a "
        .. "JavaScript-event goal with an exact condition (see create_goal{})", not_counted[target],
        tostring(self.counter)) or format("names no JavaScript-event goal of counter %s (see goals(), create_goal{})",
        tostring(self.counter))
      problems[#problems < 20 and #problems + 1 or 21] = { line = line, column = "Target",
        reason = format("%q %s", client.printable(target), why) }
    end
  end
  if opts.file then
    -- read as the upload will be: its delimiter and encoding
    local records, header = csv.rows(opts.file, { delimiter = opts.delimiter, encoding = opts.encoding })
    if not records then
      return nil, header
    end
    local read, failure = pcall(function()
      for record, line in records do
        check(record.Target, line)
      end
    end)
    if not read then -- a malformed record: the upload's own check names it
      return nil, errors.is(failure) and failure or errors.new("internal", "callback_error", errors.text(failure))
    end
  else
    local column = "Target"
    for i, name in ipairs(opts.columns or {}) do
      column = name == "Target" and i or column
    end
    for i, row in ipairs(opts.rows) do
      check(type(row) == "table" and row[column], i + 1)
    end
  end
  problems[21] = nil
  if total > 0 then
    return errors.fail("input", "unknown_target", format("%s: %s", opts.file or "rows", problems[1].reason),
      { file = opts.file, problems = problems, problem_count = total })
  end
  return true
end

client.install(Client, { name = "metrika", prepare = PREPARE, answer = ANSWER, kind_answer = "uploading" })

-- Waiting ----------------------------------------------------------------------

local positive = client.positive

--- Waits until an uploading is processed.
-- m:wait(uploading_or_id, { kind?, timeout?, interval?, progress? }) -> the final uploading | nil, err
-- Polls until one of the kind's final statuses (csvup.registry), the pause
-- growing from 1 s by half each time up to interval (60 s). kind is known
-- for uploadings this client made, else "offline-conversions". timeout
-- defaults to 3 hours; past it, err.code is "timeout" with err.last_status.
-- progress(uploading) is called after each poll.
function Client:wait(uploading_or_id, opts)
  if type(self) ~= "table" or self.conn == nil then
    error("wait: call it as client:wait(uploading)", 2)
  end
  opts = opts or {}
  local name = opts.kind or (type(uploading_or_id) == "table" and self.kinds[uploading_or_id]) or "offline-conversions"
  local kind = registry.kind[name]
  if not kind or kind.service ~= "metrika" or not kind.read then
    return errors.invalid("wait: kind %q is not one of: offline-conversions, calls, expenses, expenses-delete, "
      .. "user-params", tostring(name))
  elseif opts.interval ~= nil and not (positive(opts.interval) and opts.interval >= WAIT_MIN_INTERVAL) then
    return errors.invalid("wait: interval must be at least %g seconds", WAIT_MIN_INTERVAL)
  elseif opts.timeout ~= nil and not positive(opts.timeout) then
    return errors.invalid("wait: timeout must be a positive number of seconds")
  end
  local id, ceiling = client.id(uploading_or_id), opts.interval or WAIT_INTERVAL
  local interval = min(WAIT_FIRST, ceiling)
  local deadline = core.now() + (opts.timeout or WAIT_TIMEOUT)
  while true do
    local u, err = self[kind.read](self, id)
    if not u then
      return nil, err
    end
    if opts.progress then
      local ok, raised = pcall(opts.progress, u)
      if not ok then
        return errors.fail("internal", "callback_error", errors.text(raised), { cause = raised })
      end
    end
    if kind.is_final[u.status] then
      return u
    end
    local left = deadline - core.now()
    if left <= 0 then
      return errors.fail("network", "timeout", format("uploading %s is still %s", tostring(id),
        client.printable(u.status)), { id = id, last_status = u.status, uploading = u })
    end
    local signal = core.sleep(min(interval, left))
    if signal then
      return errors.interrupted(signal)
    end
    interval = min(interval * WAIT_GROWTH, ceiling)
  end
end

return metrika
