-- What the service clients share: new(), the methods derived from the
-- registry, the upload body, and one call with its retries.
local core = require "csvup.core"
local csv = require "csvup.csv"
local errors = require "csvup.errors"
local journal = require "csvup.journal"
local json = require "csvup.json"
local once = require "csvup.once"
local options = require "csvup.options"
local registry = require "csvup.registry"
local schemas = require "csvup.schema"
local validate = require "csvup.validate"

local format, concat, sort = string.format, table.concat, table.sort
local type, tostring, pairs, ipairs, error, setmetatable, next =
  type, tostring, pairs, ipairs, error, setmetatable, next

local client = {}

-- The options of every client's new(). Connection: token, base_url,
-- allow_http, timeout (60 s; calls without an upload), upload_timeout,
-- connect_timeout (10 s), low_speed_limit (1024 bytes/s), low_speed_time
-- (120 s), parallel (Metrica: 3 requests at once per token), user_agent,
-- ca_file, insecure, verbose. Retries: retries (3), backoff = { base seconds
-- (0.5), max seconds (30) }, retry_unsafe (false), rate (requests a second),
-- on_event(event, info): told of each retry ("retry": attempt, of, err, wait)
-- and each answer lost after a whole body ("outcome_unknown": err), e.g. for a log.
local CONNECTION = { "token", "base_url", "allow_http", "timeout", "upload_timeout", "connect_timeout",
  "low_speed_limit", "low_speed_time", "parallel", "user_agent", "ca_file", "insecure", "verbose" }
local POLICY = { "retries", "backoff", "retry_unsafe", "rate", "on_event" }
-- journal: a path, or true for csvup.journal's default path; resolve_timeout:
-- seconds to look for a lost answer in the uploadings list (30; see csvup.once).
local OWN = { "journal", "resolve_timeout" }
local RESOLVE_TIMEOUT = 30

-- What an upload method takes besides its registry options.
local UPLOAD_KEYS = { file = true, rows = true, columns = true, validate = true, progress = true, filename = true,
  journal = true, force = true, delimiter = true, encoding = true }
-- A file's delimiter, where the service takes no delimiter of its own: what it has is converted to a comma.
local FILE_DELIMITERS = { [","] = true, [";"] = true, ["\t"] = true, ["|"] = true, auto = true }
local VALIDATE_LEVELS = { [true] = "full", full = "full", header = "header", [false] = false }

-- Failures where the request surely was not processed: nothing reached the server.
local NOT_CONNECTED = { COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true }
-- Failures that another attempt would only repeat: the TLS setup or the URL is wrong.
local HOPELESS = {
  PEER_FAILED_VERIFICATION = true, SSL_CACERT_BADFILE = true, SSL_CERTPROBLEM = true, SSL_CIPHER = true,
  SSL_ISSUER_ERROR = true, SSL_CRL_BADFILE = true, UNSUPPORTED_PROTOCOL = true, URL_MALFORMAT = true,
}
local MESSAGE_MAX = 300 -- characters of a server's text kept in an error
local BATCH = 4096 -- records of a rows iterator checked and encoded at a time

-- Server text made safe to print: control characters escaped, length bounded.
function client.printable(s)
  return errors.printable(s, MESSAGE_MAX)
end

-- Whether v is a positive finite number (of seconds, of requests per second).
function client.positive(v)
  return type(v) == "number" and v > 0 and v < math.huge
end
local positive = client.positive

-- The retry policy from new()'s options; nil, err for a value out of range.
local function policy(opts, default_rate)
  local backoff, retries = opts.backoff or {}, opts.retries or 3
  local rate = opts.rate == nil and default_rate or opts.rate
  if type(backoff) ~= "table" then
    error("backoff must be a table { base = seconds, max = seconds }", 4)
  elseif type(retries) ~= "number" or retries ~= math.floor(retries) or retries < 0 or retries > 100 then
    return errors.invalid("retries must be a whole number from 0 to 100")
  elseif rate ~= nil and not (positive(rate) and rate <= 1000) then
    return errors.invalid("rate must be a number of requests a second above 0 and at most 1000")
  elseif (backoff.base ~= nil and not positive(backoff.base)) or (backoff.max ~= nil and not positive(backoff.max)) then
    return errors.invalid("backoff.base and backoff.max must be positive numbers of seconds")
  elseif opts.on_event ~= nil and type(opts.on_event) ~= "function" then
    error("on_event must be a function(event, info)", 4)
  end
  return { retries = retries, base = backoff.base or 0.5, max = backoff.max or 30,
    retry_unsafe = opts.retry_unsafe == true, rate = rate, next_start = 0, on_event = opts.on_event }
end

-- client.new(service, opts, Client, own) -> a client | nil, err: opts are
-- checked (an unknown name is an error listing the known ones), the
-- connection opened; own lists the service's options, kept in client.options.
-- The token stays in the connection (and in client.connect, for a batch's
-- further connections), never in a readable field.
function client.new(service, opts, Client, own)
  if type(opts) ~= "table" then
    error(format("%s.new expects a table of options", service), 3)
  end
  local known, names = {}, {}
  for _, list in ipairs { CONNECTION, POLICY, OWN, own.names } do
    for _, name in ipairs(list) do
      known[name] = true
      names[#names + 1] = name
    end
  end
  for name in pairs(opts) do
    if not known[name] then
      sort(names)
      return errors.invalid("%s.new: unknown option %s (known: %s)", service, tostring(name), concat(names, ", "))
    end
  end
  local p, err = policy(opts, own.rate)
  if not p then
    return nil, err
  elseif opts.resolve_timeout ~= nil and not (type(opts.resolve_timeout) == "number"
      and opts.resolve_timeout >= 0 and opts.resolve_timeout <= 3600) then
    return errors.invalid("resolve_timeout must be a number of seconds from 0 to 3600")
  end
  local settings, kept = { service = service }, {}
  for _, name in ipairs(CONNECTION) do
    settings[name] = opts[name]
  end
  local function connect()
    return core.connection(settings)
  end
  local conn
  conn, err = connect()
  if not conn then
    return nil, err
  end
  local j
  if opts.journal then
    j, err = journal.open(opts.journal ~= true and opts.journal or nil)
    if not j then
      conn:close()
      return nil, err
    end
  end
  for name, value in pairs(opts) do
    kept[name] = name ~= "token" and value or nil
  end
  return setmetatable({ conn = conn, connect = connect, service = service, policy = p, options = kept,
    journal = j, resolve_timeout = opts.resolve_timeout or RESOLVE_TIMEOUT }, Client)
end

function client.close(self)
  self.conn:close()
  if self.journal then
    self.journal:close()
  end
end

-- The id of an uploading, given the uploading itself or its id.
function client.id(id_or_uploading)
  if type(id_or_uploading) == "table" then
    return id_or_uploading.id
  end
  return id_or_uploading
end

-- The CSV of an upload: opts.file (a path, streamed) or opts.rows (records),
-- checked as opts.validate says: every row (true, "full", the default), the
-- header only ("header"), nothing (false). The file is opened once
-- (args.source, a csvup.file): every check, the hash and every attempt of the
-- upload read that descriptor, and an attempt that finds the file changed
-- since (another size or time, or the path naming another file) sends nothing
-- or stops before the end of its body (file_changed). A UTF-8 file in the
-- service's delimiter is checked as it is sent (hashed too where the digest
-- wanted is the journal's gate's, digest.gate: see once.before):
-- every record by the plan or, under "header" or with no schema, its UTF-8;
-- anything else is checked (and hashed) before it is sent, and then sent
-- with no second check, converted where it is not in the service's form.
-- The body C sends is the source (args.source, a csvup.file, or args.data)
-- through args.stages, in order, each { name, options } (see request.c's
-- add_stages): { "recode", encoding =, delimiter =, to =, size = },
-- { "check", plan = }, { "utf8" }, { "journal", journal =, key =, marker = }.
-- upload: { endpoint, schema?, delimiter?, merge_field?, digest? (a table for
-- the file's sha256 and size, when the check reads it; { gate = true } when
-- the journal's gate may hash it as it is sent), warnings? (a list the
-- check's warnings are appended to) }.
function client.body(args, opts, upload)
  local level = VALIDATE_LEVELS[opts.validate == nil and true or opts.validate]
  if level == nil then
    return errors.invalid('validate must be true, "full", "header" or false')
  elseif (opts.file == nil) == (opts.rows == nil) or (type(opts.rows) == "table" and #opts.rows == 0
    and next(opts.rows) == nil) then
    return errors.invalid("give exactly one of file (a path) or rows (a non-empty array of records)")
  end
  local ctx = { delimiter = upload.delimiter, merge_field = upload.merge_field, digest = upload.digest,
    warnings = upload.warnings }
  local ok, err
  if opts.file ~= nil then
    if type(opts.file) ~= "string" then
      error("file must be a path", 3)
    end
    local file
    file, err = core.open_file(opts.file)
    ok = file ~= nil
    if ok then
      ok, err = core.check_file(registry.endpoint[upload.endpoint], file)
    end
    ctx.source = file
    if ok then
      ok, err = client.input_form(ctx, opts, upload)
    end
    local plain = ok and ctx.encoding == "utf-8" and ctx.delimiter == (upload.delimiter or ",")
    if ctx.digest and not plain then -- converted as it is sent: hashed as it is, never by the journal's gate
      ctx.digest.gate = nil
    end
    if ok and level and plain and (not ctx.digest or ctx.digest.gate) then
      -- sent as it is, in one pass over the file: the header now, the rest by the read that sends it
      local plan
      if upload.schema then
        plan, err = validate.plan(upload.schema, opts.file, ctx)
        ok = plan ~= nil
      end
      if plan and level == "full" then
        plan.delimiter = ctx.delimiter
        args.stages = { { "check", plan = plan } }
      else
        args.stages = { { "utf8" } }
      end
      function args.recheck()
        if not upload.schema then
          return core.utf8_check_file(file)
        end
        return validate.file(upload.schema, opts.file,
          { level = level, delimiter = ctx.delimiter, merge_field = ctx.merge_field, source = file })
      end
    elseif ok then
      -- read before it is sent (checked, hashed): each attempt sends it only as it was then
      if level and upload.schema then
        ctx.level = level
        ctx.measure = not plain and (upload.delimiter or ",") or nil -- the converted size, from the same pass
        ok, err = validate.file(upload.schema, opts.file, ctx)
      elseif level and ctx.encoding == "utf-8" then
        ok, err = core.utf8_check_file(file)
      end
    end
    if ok and not plain then
      -- sent as the service documents it: UTF-8, in its delimiter; converted while it is sent
      args.stages = { { "recode", encoding = ctx.encoding, delimiter = ctx.delimiter, to = upload.delimiter or ",",
        size = ctx.measured } }
    end
    if not ok then
      if file then
        file:close()
      end
      return nil, err
    end
    args.source, args.file, args.filename = file, opts.file, opts.filename
    return args
  end
  if type(opts.rows) == "function" then
    return client.rows_file(args, opts, upload, level)
  elseif type(opts.rows) ~= "table" then
    error("rows must be an array of records or an iterator of them", 3)
  end
  if upload.schema and level then
    ok, err = validate.rows(upload.schema, opts.rows, opts.columns, ctx)
    if not ok then
      return nil, err
    end
  end
  local booleans = upload.schema and schemas[upload.schema].booleans or {}
  local data
  data, err = csv.encode(opts.rows, {
    columns = opts.columns, delimiter = upload.delimiter, true_text = booleans[1], false_text = booleans[2],
  })
  if not data then
    return nil, err
  end
  args.data, args.filename = data, opts.filename or "rows.csv"
  return args
end

-- The body of rows = an iterator (one record a call, nil at the end): the
-- records checked and encoded a batch at a time into an unlinked temporary
-- file, hashed as it is written (upload.digest), then sent like a file: a
-- Content-Length, the same bytes again on a retry, nothing sent when a
-- record fails its check. An iterator that raises stops it (callback_error).
function client.rows_file(args, opts, upload, level)
  local file, err = core.temp_file()
  if not file then
    return nil, err
  end
  local booleans = upload.schema and schemas[upload.schema].booleans or {}
  local writer = csv.writer(file, { columns = opts.columns, delimiter = upload.delimiter, true_text = booleans[1],
    false_text = booleans[2] })
  local ctx = { merge_field = upload.merge_field }
  local check, batch, ok = nil, {}, true
  local function flush()
    if upload.schema and level then
      check = check or validate.batches(upload.schema, opts.columns or csv.columns(batch), ctx)
      check(batch)
    end
    ok, err = writer:encode(batch, 1, #batch)
    batch = {}
    return ok
  end
  while ok do
    local called, row = pcall(opts.rows)
    if not called then
      ok, err = errors.fail("input", "callback_error", "the rows iterator failed: " .. errors.text(row))
    elseif row == nil then
      ok = #batch == 0 or flush()
      break
    else
      batch[#batch + 1] = row
      ok = #batch < BATCH or flush()
    end
  end
  if ok and check then
    ok, err = check()
  end
  if ok and writer.rows == 0 then
    ok, err = errors.invalid("the rows iterator gave no record")
  end
  if not ok then
    file:close()
    return nil, err
  end
  local sha256, size = file:finish()
  if upload.digest then
    upload.digest.sha256, upload.digest.size = sha256, size
  end
  args.source, args.filename = file, opts.filename or "rows.csv"
  return args
end

-- How the file is written: ctx.encoding ("utf-8" or "cp1251") and
-- ctx.delimiter, from opts.encoding (auto: read from ctx.source, the file as
-- opened, or opts.file) and, where the service takes no delimiter
-- of its own (upload.delimiter), opts.delimiter. true | nil, err.
function client.input_form(ctx, opts, upload)
  local encoding, err = csv.encoding(opts.encoding, ctx.source or opts.file)
  if not encoding then
    return nil, err
  end
  ctx.encoding = encoding
  if upload.delimiter == nil and opts.delimiter ~= nil then
    if not FILE_DELIMITERS[opts.delimiter] then
      return errors.invalid('delimiter must be one of ",", ";", "\\t", "|" or "auto"')
    end
    ctx.delimiter = opts.delimiter
  end
  ctx.delimiter = ctx.delimiter or ","
  return true
end

-- The error of an upload stopped by a record that failed its check as it
-- was sent: the file's whole report, from a pass that lists every problem.
function client.checked_report(args, err)
  local ok, report = nil, nil
  if args.recheck then
    ok, report = args.recheck()
  end
  return not ok and report or err
end

-- Retries ------------------------------------------------------------------------

-- Whether an answer is a 5xx, or not in the service's own error shape (a
-- gateway's HTML page, whose code read_error left as http_NNN), other than
-- the service's 503 backend_error and any quota (a limit: not processed).
local function unanswered(err)
  return err.kind == "api" and err.status ~= nil and err.status ~= 429 and err.status ~= 420
    and err.code ~= "backend_error" and (err.status >= 500 or err.code:find("^http_%d+$") ~= nil)
end

-- Metrica's quotas that a retry cannot help, and the period each lifts at the
-- end of (seconds of Unix time: the next 00:00 GMT for the daily ones, the next
-- hour for the hourly ones): retrying would only spend more of the day's
-- requests. quota_requests_by_ip (lifted within a second) and
-- quota_parallel_requests (when a request ends), and any other, are retried.
local LASTING_QUOTAS = { quota_requests_by_uid = 86400, quota_requests_by_counter_id = 86400,
  quota_delegate_requests = 3600, quota_grants_requests = 3600 }

-- "retry" when the request surely was not processed (or may be repeated
-- safely), "unknown" when it may have been, nil when the error is final.
-- After a request that changes data went out, only a 4xx in the service's
-- own error shape is a refusal: a 5xx, or an answer in another shape, may
-- come after the service kept it. A read answered so is tried again. A quota
-- (429, or 420 as the English quotas page gives it) that lasts is final, with
-- err.retry_after the seconds until it lifts.
function client.classify(err, method)
  local quota = err.status == 429 or err.status == 420
  if unanswered(err) then
    if method ~= "GET" then
      return "unknown"
    end
    return err.status >= 500 and "retry" or nil
  elseif err.kind == "api" and quota and LASTING_QUOTAS[err.code] then
    local period = LASTING_QUOTAS[err.code]
    err.retry_after = period - os.time() % period
    err.message = format("%s (this quota lifts at %s GMT, in %d s: not retried)", err.message or err.code,
      os.date("!%H:%M", os.time() + err.retry_after), err.retry_after)
    return nil
  elseif err.kind == "api" then
    return (quota or (err.status == 503 and err.code == "backend_error")) and "retry" or nil
  elseif err.kind ~= "network" or HOPELESS[err.code] or err.code == "outcome_unknown" then
    return nil
  elseif NOT_CONNECTED[err.code] or method == "GET" or err.request_sent == false then
    return "retry"
  end
  return "unknown"
end

local function wait_for_rate(p)
  if p.rate then
    local now = core.now()
    if p.next_start > now then
      local signal = core.sleep(p.next_start - now)
      if signal then
        return errors.interrupted(signal)
      end
      now = p.next_start
    end
    p.next_start = now + 1 / p.rate
  end
  return true
end

-- Seconds to wait before attempt n + 1, or nil when the wait would pass backoff.max.
local function delay(p, attempt, err)
  if err.retry_after then
    return err.retry_after <= p.max and err.retry_after or nil
  end
  return math.min(p.max, p.base * 2 ^ (attempt - 1)) * (0.5 + math.random() * 0.5)
end

function client.outcome_unknown(err, name)
  return errors.new("network", "outcome_unknown", format("%s was sent whole but no answer of the service came "
    .. "(%s: %s). It may have been processed, so it was not sent again: look for it in the uploadings list first, or pass "
    .. "retry_unsafe = true", name, err.code, err.message),
    { cause = err.code, sent = err.sent, attempts = err.attempts, request_sent = err.request_sent,
      status = err.status })
end

-- An answer that is not JSON: its first line of text, without markup.
local function excerpt(body)
  local text = body:gsub("<[^>]*>", " "):gsub("[%c%s]+", " "):gsub("^ ", "")
  return client.printable(#text > 160 and text:sub(1, 160) .. "..." or text)
end

-- The decoded answer of a finished request, or nil, err. retry_after: the
-- answer's Retry-After in seconds, as libcurl reads it (seconds or an HTTP
-- date), or nil. read_error(status, decoded) gives the service's error
-- fields, or nil when the answer is a success.
function client.interpret(status, body, retry_after, read_error)
  if not status then
    return nil, body
  end
  local decoded = json.decode(body)
  local fields = read_error(status, decoded)
  if not fields and type(decoded) ~= "table" then
    fields = { code = "bad_response", message = "the answer is not a JSON object: " .. excerpt(body) }
  elseif not fields then
    return decoded
  elseif type(fields.code) ~= "string" then
    fields.code = "http_" .. status
    fields.message = fields.message or excerpt(body)
  end
  fields.code = client.printable(fields.code)
  fields.message = fields.message ~= nil and client.printable(fields.message) or nil
  fields.status = fields.status or status
  fields.retry_after = retry_after
  return nil, errors.new("api", fields.code, fields.message, fields)
end

-- An answer of the right shape has a table at answer[field] (an array when
-- array), else the error is bad_response.
function client.expect(answer, field, array)
  local value = answer[field]
  if type(value) ~= "table" or (array and value[1] == nil and next(value) ~= nil) then
    return errors.fail("api", "bad_response", format("the answer has no %s %s", field, array and "array" or "object"))
  end
  return value
end

-- An uploading must carry its id, a whole number from 0.
function client.expect_uploading(answer)
  local u, err = client.expect(answer, "uploading")
  if u and not json.is_count(u.id) then
    return errors.fail("api", "bad_response", "the answer's uploading has no id")
  end
  return u, err
end

-- client.call(conn, name, args, read_error, policy) -> decoded answer | nil, err,
-- retrying as the policy allows; err.attempts counts the requests made.
function client.call(conn, name, args, read_error, p)
  local endpoint, attempt = assert(registry.endpoint[name], "no such endpoint"), 0
  while true do
    attempt = attempt + 1
    local ready, interrupted = wait_for_rate(p)
    if not ready then
      return nil, interrupted
    end
    local status, body, retry_after = core.request(conn, endpoint, args)
    local answer, err = client.interpret(status, body, retry_after, read_error)
    if answer then
      return answer
    elseif err.code == "validation_failed" then
      return nil, client.checked_report(args, err)
    end
    err.attempts = attempt
    local verdict = client.classify(err, endpoint.method)
    if verdict == "unknown" and not p.retry_unsafe then
      err = client.outcome_unknown(err, name)
      if p.on_event then -- what it raises is not the call's concern
        pcall(p.on_event, "outcome_unknown", { err = err })
      end
      return nil, err
    end
    local wait = verdict and attempt <= p.retries and delay(p, attempt, err)
    if not wait then
      return nil, err
    end
    if p.on_event then
      pcall(p.on_event, "retry", { attempt = attempt + 1, of = p.retries + 1, err = err, wait = wait })
    end
    local signal = core.sleep(wait)
    if signal then
      return errors.interrupted(signal)
    end
  end
end

-- Methods from the registry ------------------------------------------------------

-- The body of a "body" method: the options under m.wrap, the id exact.
local function json_body(m, id, values, base)
  local inner = {}
  for k, v in pairs(base or {}) do
    inner[k] = v
  end
  for name, v in pairs(options.wire(m, values)) do
    inner[name] = v
  end
  id = client.id(id)
  if id ~= nil then
    inner.id = type(id) == "string" and id:find("^%d+$") and json.raw_number(id) or id
  end
  return json.encode { [m.wrap] = inner }
end

-- A method's plan: checks the options and builds the call without sending
-- it: { endpoint, args, finish = function(answer) -> result | nil, err }, or
-- nil, err. The service's own steps, named by the registry: prepare[m.prepare]
-- (self, values, opts, call) -> true | nil, err may change the checked values
-- and the call (endpoint, delimiter, body, fields) first; answer[m.answer, or
-- service.kind_answer for a method of an upload kind](self, answer, values, m)
-- picks the result (default: the answer's m.result field, or the answer).
local function planner(service, m)
  local in_fields = registry.services[m.service].options_in == "fields" or m.body == "form"
  local prepare = m.prepare and assert(service.prepare[m.prepare], m.prepare)
  local result = service.answer[m.answer or (m.kind and service.kind_answer) or ""]
  local revive = service.revive and service.revive[m.answer or ""]
  local keys = nil
  if m.shape == "upload" then
    keys = {}
    for k in pairs(UPLOAD_KEYS) do
      keys[k] = true
    end
    for k in pairs(m.flags or {}) do
      keys[k] = true
    end
  end
  return function(self, a, b, single)
    local id, opts = nil, a
    if m.id or m.shape == "read" then
      id, opts = a, b
    end
    opts = opts == nil and {} or opts
    if type(self) ~= "table" or self.conn == nil or type(opts) ~= "table" then
      error(format("%s: call it as client:%s(%s)", m.name, m.name,
        m.shape == "read" and "id" or m.id and "id, { options }" or "{ options }"), 3)
    end
    local values, err = options.check(m, opts, keys)
    if not values then
      return nil, err
    end
    local call = { endpoint = m.name, args = {}, id = id }
    if prepare then
      local ok
      ok, err = prepare(self, values, opts, call, m)
      if not ok then
        return nil, err
      end
    end
    local wire = options.wire(m, values)
    if m.shape == "read" then
      call.args.id = client.id(id)
    elseif m.shape == "body" then
      call.args.id = client.id(id)
      call.args.body = call.body or json_body(m, id, values, type(id) == "table" and id or nil)
    elseif in_fields then
      for name, v in pairs(call.fields or {}) do
        wire[name] = v
      end
      call.args.fields = wire
    else
      call.args.query = wire
    end
    if m.shape == "upload" then
      local kind = registry.kind[m.kind]
      call.args.progress = opts.progress
      -- the file's SHA-256 for the journal, from the pass that checks it
      -- (or, for a single call, by the journal's gate as it is sent)
      call.digest = self.journal and opts.journal ~= false and { gate = single } or nil
      call.warnings = {}
      call.args, err = client.body(call.args, opts, { endpoint = call.endpoint, delimiter = call.delimiter,
        schema = registry.schema(kind, values), merge_field = values.merge_field, digest = call.digest,
        warnings = call.warnings })
      if not call.args then
        return nil, err
      end
    end
    call.args = self:complete(call.args)
    call.revive = revive
    -- the result, with the warnings of the upload's check (a list under `warnings`) when there are any
    local function finish(answer)
      if result then
        return result(self, answer, values, m)
      elseif m.result then
        return client.expect(answer, m.result, m.result:find("s$") ~= nil)
      end
      return answer
    end
    function call.finish(answer)
      local r, e = finish(answer)
      if r and call.warnings and call.warnings[1] then
        r.warnings = call.warnings
      end
      return r, e
    end
    return call
  end
end

-- client.install(Client, service): one method per registry entry of the
-- service, and its plan in Client.plans (for csvup.batch); service = { name,
-- prepare = {}, answer = {}, kind_answer?, revive? (answer name -> a function
-- that makes a result read back from the journal's JSON what it was) }.
function client.install(Client, service)
  Client.plans = {}
  for _, m in ipairs(registry.methods) do
    if m.service == service.name then
      local plan = planner(service, m)
      Client.plans[m.name] = plan
      Client[m.name] = function(self, a, b)
        local call, err = plan(self, a, b, true)
        if not call then
          return nil, err
        elseif m.shape == "upload" then
          local result, failure, note, unrecorded = once.send(self, call, m, a)
          if call.args.source then -- the file opened for it, closed now rather than by the collector
            call.args.source:close()
          end
          return result, failure, note, unrecorded
        end
        local answer
        answer, err = self:call(call.endpoint, call.args)
        if not answer then
          return nil, err
        end
        return call.finish(answer)
      end
    end
  end
  Client.close, Client.__close = client.close, client.close
  Client.__index = Client
end

-- Client:call for both services, its args complete (self:complete(args) adds
-- what every call of the service carries).
function client.service_call(self, name, args)
  return client.call(self.conn, name, args, self.read_error, self.policy)
end

return client
