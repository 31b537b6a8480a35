-- What the service clients share: errors, argument checks, and turning an
-- endpoint's answer into a decoded value or an error.
local core = require "csvup.core"
local csv = require "csvup.csv"
local json = require "csvup.json"
local schemas = require "csvup.schema"
local validate = require "csvup.validate"

local format, type, tonumber, tostring, select, pairs, error = string.format, type, tonumber, tostring, select, pairs, error

local client = {}

function client.fail(code, message, fields)
  local err = fields or {}
  err.code, err.message = code, message
  return nil, core.error(err)
end

function client.invalid(fmt, ...)
  return client.fail("invalid_argument", format(fmt, ...))
end

-- Characters, not bytes: UTF-8 continuation bytes are not counted.
function client.length(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end

-- The connection of a service client: opts are the options of its new().
function client.connect(service, opts)
  return core.connection {
    service = service, token = opts.token, base_url = opts.base_url, timeout = opts.timeout,
    connect_timeout = opts.connect_timeout, user_agent = opts.user_agent, ca_file = opts.ca_file,
    insecure = opts.insecure, verbose = opts.verbose,
  }
end

function client.close(self)
  self.conn:close()
end

-- The checks below return an error, or nil when the value is fine.

function client.check_text(name, value, max_chars)
  if value ~= nil and (type(value) ~= "string" or client.length(value) > max_chars) then
    return select(2, client.invalid("%s must be a string of at most %d characters", name, max_chars))
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
    return select(2, client.invalid("%s %s is not one of: %s", name,
      value == nil and "is missing and" or string.format("%q", tostring(value)), table.concat(names, ", ")))
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

-- Calls core[name]; returns the decoded answer or nil, err. read_error(status,
-- decoded) gives the service's error fields, or nil when the answer is a success.
function client.call(conn, name, args, read_error)
  local status, body, headers = core[name](conn, args)
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

return client
