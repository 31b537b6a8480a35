-- What the service clients share: errors, argument checks, and turning an
-- endpoint's answer into a decoded value or an error.
local core = require "csvup.core"
local csv = require "csvup.csv"
local json = require "csvup.json"
local schemas = require "csvup.schema"
local validate = require "csvup.validate"

local format, type, tonumber, tostring, pairs, ipairs, error =
  string.format, type, tonumber, tostring, pairs, ipairs, error

local client = {}

function client.fail(code, message, fields)
  local err = fields or {}
  err.code, err.message = code, message
  return nil, core.error(err)
end

function client.invalid_error(fmt, ...)
  return core.error { code = "invalid_argument", message = format(fmt, ...) }
end

function client.invalid(fmt, ...)
  return nil, client.invalid_error(fmt, ...)
end

-- The connection of a service client from the options of its new(): token,
-- base_url, allow_http, timeout (60 s; calls without an upload), upload_timeout
-- (none), connect_timeout (10 s), low_speed_limit (1024 bytes/s) and
-- low_speed_time (120 s), parallel (Metrica: 3 requests at once per token),
-- user_agent, ca_file, insecure, verbose.
local CONNECTION_OPTIONS = { "token", "base_url", "allow_http", "timeout", "upload_timeout", "connect_timeout",
  "low_speed_limit", "low_speed_time", "parallel", "user_agent", "ca_file", "insecure", "verbose" }

function client.connect(service, opts)
  local options = { service = service }
  for _, name in ipairs(CONNECTION_OPTIONS) do
    options[name] = opts[name]
  end
  return core.connection(options)
end

function client.close(self)
  self.conn:close()
end

-- The checks below return an error, or nil when the value is fine.

function client.check_text(name, value, max_chars)
  if value ~= nil and (type(value) ~= "string" or validate.chars(value) > max_chars) then
    return client.invalid_error("%s must be a string of at most %d characters", name, max_chars)
  end
end

function client.check_enum(name, value, allowed, required)
  if value == nil and not required then
    return nil
  end
  if not allowed[value] then
    local names = {}
    for k in pairs(allowed) do
      names[#names + 1] = k
    end
    table.sort(names)
    return client.invalid_error("%s %s is not one of: %s", name,
      value == nil and "is missing and" or format("%q", tostring(value)), table.concat(names, ", "))
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
-- checked first unless opts.validate is false (see csvup.validate).
-- upload: { endpoint, schema?, delimiter?, merge_field? }.
function client.body(args, opts, upload)
  local check = opts.validate
  if (opts.file == nil) == (opts.rows == nil) then
    return client.invalid("give exactly one of file (a path) or rows (an array of records)")
  elseif check ~= nil and check ~= true and check ~= false and check ~= "full" then
    return client.invalid('validate must be true, false or "full"')
  end
  local ok, err
  if opts.file ~= nil then
    if type(opts.file) ~= "string" then
      error("file must be a path", 3)
    end
    ok, err = core.check_file(upload.endpoint, opts.file)
    if ok and check ~= false then
      if upload.schema then
        ok, err = validate.file(upload.schema, opts.file,
          { full = check == "full", delimiter = upload.delimiter, merge_field = upload.merge_field })
      else
        ok, err = core.utf8_check_file(opts.file)
      end
    end
    if not ok then
      return nil, err
    end
    args.file, args.filename = opts.file, opts.filename
    return args
  end
  if type(opts.rows) ~= "table" then
    error("rows must be an array of records", 3)
  end
  if upload.schema and check ~= false then
    ok, err = validate.rows(upload.schema, opts.rows, opts.columns, { merge_field = upload.merge_field })
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

-- An answer that is not JSON: its first line of text, without markup.
local function excerpt(body)
  local text = body:gsub("<[^>]*>", " "):gsub("[%c%s]+", " "):gsub("^ ", "")
  return #text > 160 and text:sub(1, 160) .. "..." or text
end

-- Retries ------------------------------------------------------------------------

-- Failures where the request surely was not processed: nothing reached the server.
local NOT_CONNECTED = { COULDNT_CONNECT = true, COULDNT_RESOLVE_HOST = true, COULDNT_RESOLVE_PROXY = true }
-- Failures that another attempt would only repeat: the TLS setup or the URL is wrong.
local HOPELESS = {
  PEER_FAILED_VERIFICATION = true, SSL_CACERT_BADFILE = true, SSL_CERTPROBLEM = true, SSL_CIPHER = true,
  SSL_ISSUER_ERROR = true, SSL_CRL_BADFILE = true, UNSUPPORTED_PROTOCOL = true, URL_MALFORMAT = true,
}

-- The retry policy of a client from its options: retries (3), backoff = { base
-- seconds (0.5), max seconds (30) }, retry_unsafe (false), rate (requests a
-- second, none unless the service asks for one).
function client.policy(opts, default_rate)
  local backoff = opts.backoff or {}
  if type(backoff) ~= "table" then
    error("backoff must be a table { base = seconds, max = seconds }", 3)
  end
  return {
    retries = opts.retries or 3,
    base = backoff.base or 0.5,
    max = backoff.max or 30,
    retry_unsafe = opts.retry_unsafe == true,
    rate = opts.rate == nil and default_rate or opts.rate or nil,
    next_start = 0,
  }
end

-- "retry" when the request surely was not processed (or may be repeated
-- safely), "unknown" when it may have been, nil when the error is final.
function client.classify(err, method)
  if err.status then
    return (err.status == 429 or (err.status == 503 and err.code == "backend_error")) and "retry" or nil
  elseif HOPELESS[err.code] or not err.code:find("^[%u%d_]+$") then
    return nil -- and csvup's own errors (arguments, files, callbacks, answers too large)
  elseif NOT_CONNECTED[err.code] or method == "GET" or err.request_sent == false then
    return "retry"
  end
  return "unknown"
end

local function wait_for_rate(policy)
  if policy.rate then
    local now = core.now()
    if policy.next_start > now then
      core.sleep(policy.next_start - now)
      now = policy.next_start
    end
    policy.next_start = now + 1 / policy.rate
  end
end

-- Seconds to wait before attempt n + 1, or nil when the wait would pass backoff.max.
local function delay(policy, attempt, err)
  if err.retry_after then
    return err.retry_after <= policy.max and err.retry_after or nil
  end
  return math.min(policy.max, policy.base * 2 ^ (attempt - 1)) * (0.5 + math.random() * 0.5)
end

function client.outcome_unknown(err, name)
  return core.error {
    code = "outcome_unknown", cause = err.code, sent = err.sent, attempts = err.attempts,
    message = format("%s was sent whole but no answer came (%s: %s). It may have been processed, so it was "
      .. "not sent again: look for it in the uploadings list first, or pass retry_unsafe = true", name, err.code,
      err.message),
  }
end

-- The decoded answer of a finished request, or nil, err. read_error(status,
-- decoded) gives the service's error fields, or nil when the answer is a success.
function client.interpret(status, body, headers, read_error)
  if not status then
    return nil, body
  end
  local decoded = json.decode(body)
  local fields = read_error(status, decoded)
  if not fields and decoded == nil then
    fields = { code = "bad_response", message = "the answer is not JSON: " .. excerpt(body) }
  elseif not fields then
    return decoded
  elseif not fields.code then
    fields.code = "http_" .. status
    fields.message = fields.message or excerpt(body)
  end
  fields.status = fields.status or status
  fields.retry_after = tonumber(headers["retry-after"])
  return nil, core.error(fields)
end

-- client.call(conn, name, args, read_error, policy) -> decoded answer | nil, err,
-- retrying as the policy allows; err.attempts counts the requests made.
function client.call(conn, name, args, read_error, policy)
  local attempt = 0
  while true do
    attempt = attempt + 1
    wait_for_rate(policy)
    local status, body, headers = core[name](conn, args)
    local answer, err = client.interpret(status, body, headers, read_error)
    if answer then
      return answer
    end
    err.attempts = attempt
    local verdict = client.classify(err, core.METHODS[name])
    if verdict == "unknown" and not policy.retry_unsafe then
      return nil, client.outcome_unknown(err, name)
    end
    local wait = verdict and attempt <= policy.retries and delay(policy, attempt, err)
    if not wait then
      return nil, err
    end
    core.sleep(wait)
  end
end

-- Client:call for both services: self:complete(args) adds what every call of
-- the service carries; post(answer) picks the result out of the answer.
function client.service_call(self, name, args, post)
  local answer, err = client.call(self.conn, name, self:complete(args), self.read_error, self.policy)
  if not answer then
    return nil, err
  end
  return post and post(answer) or answer
end

return client
