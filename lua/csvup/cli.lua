-- The csvup command line: `csvup --help`. Its subcommands, their options and
-- help come from csvup.registry; the parser is Debian's lua-argparse.
local argparse = require "argparse"
local csvup = require "csvup"
local core = require "csvup.core"
local csv = require "csvup.csv"
local errors = require "csvup.errors"
local journal = require "csvup.journal"
local json = require "csvup.json"
local options = require "csvup.options"
local progress = require "csvup.progress"
local registry = require "csvup.registry"
local validate = require "csvup.validate"

local format, concat = string.format, table.concat
local ipairs, pairs, tonumber, tostring, type, next = ipairs, pairs, tonumber, tostring, type, next
local math_type = math.type

local cli = {}

-- Exit statuses.
local OK, API_ERROR, USAGE, INVALID, NETWORK, UPLOAD_FAILED, PARTIAL = 0, 1, 2, 3, 4, 5, 6
local TOKEN_FILE_READ = 4096 -- bytes read of a token file: a token is far shorter
local SIGNALLED = { SIGINT = 130, SIGTERM = 143 }
local CONTENT_ERRORS = { validation_failed = true, invalid_utf8 = true, malformed_csv = true, invalid_value = true,
  unknown_target = true }

local EXIT_TEXT = [[
Exit status: 0 done, 1 API error, 2 usage, 3 validation failed, 4 network,
5 waited and the upload failed (LINKAGE_FAILURE), 6 done but some rows were
refused (Carrot quest row_errors), 130 and 143 stopped by SIGINT and SIGTERM.]]

local printable = errors.printable

local function say(stream, ...)
  stream:write(...)
  stream:flush()
end

-- Numbers: an option's converter that refuses what is not one.
local function number(min)
  return function(text)
    local n = tonumber(text)
    if not n or n ~= n or n == math.huge or n < min then
      return nil, format("'%s' is not a number of at least %g", text, min)
    end
    return n
  end
end

local function integer(text)
  local n = math_type(tonumber(text)) == "integer" and tonumber(text)
  if not n then
    return nil, format("'%s' is not a whole number", text)
  end
  return n
end


local function add_connection_options(command, service)
  command:option("--token-file", format("a file whose first line is the token (else $%s)",
    registry.services[service].token_env))
  command:option("--base-url", "the API's address, e.g. a sandbox's http://127.0.0.1:8080")
  command:flag("--allow-http", "allow plain http to a host other than this machine (the token travels unencrypted)")
  command:option("--retries", "attempts after the first for what surely was not processed; default: 3")
    :convert(integer)
  command:flag("--verbose", "print libcurl's exchange on stderr (the token hidden)")
  command:flag("--json", "print the result, or the error, as JSON on stdout")
  if service == "metrika" then
    command:option("--counter", "the Metrica counter's id; required"):convert(integer)
    command:option("--ulogin", "act for this delegated account")
  else
    command:option("--app", "the Carrot quest app id; default: $self_app")
  end
end

local function add_wait_options(command)
  command:option("--timeout", "seconds to wait at most; default: 10800"):convert(number(0.001))
  command:option("--interval", "seconds between polls at first (it grows by half up to 60); default: 5")
    :convert(number(0.05))
end

-- One subcommand per registry method, with its options.
local function add_method(parent, m)
  local command = parent:command(registry.cli_name(m.name), m.help)
  command._method = m
  add_connection_options(command, m.service)
  if m.shape == "upload" then
    command:argument("file", "the CSV file; - reads it from standard input")
    command:option("--journal", "the journal of uploads sent; default: $XDG_STATE_HOME/csvup/journal.sqlite3")
    command:flag("--no-journal", "neither consult nor keep the journal")
    command:flag("--force", "send even when the journal says this upload was sent")
    command:option("--validate", "check every row (full), the header (header) or nothing (off); default: full")
      :choices { "full", "header", "off" }
    command:option("--encoding", "the file's encoding (auto: UTF-8 unless it is not valid UTF-8); default: utf-8")
      :choices { "utf-8", "cp1251", "windows-1251", "auto" }
    local takes_delimiter = false
    for _, o in ipairs(m.options) do
      takes_delimiter = takes_delimiter or o.name == "delimiter" or o.name == "delimiter_type"
    end
    if not takes_delimiter then
      command:option("--delimiter", "the file's delimiter, sent as a comma (auto: the most frequent of , ; tab | in "
        .. "the header); default: ,"):choices { ",", ";", "\t", "|", "tab", "auto" }
    end
    if registry.kind[m.kind].read then
      command:flag("--wait", "wait until the uploading is processed")
      add_wait_options(command)
    end
  elseif m.shape == "read" or m.id then
    command:argument("id", "the uploading's id")
  end
  for _, o in ipairs(m.options) do
    local flag = "--" .. registry.cli_name(o.type == "tags" and "tag" or o.name)
    local option = command:option(flag, options.describe(o))
    if o.type == "enum" then
      option:choices(o.values)
    elseif o.type == "integer" then
      option:convert(integer)
    elseif o.type == "tags" then
      option:count("*")
    end
  end
  for name, help in pairs(m.flags or {}) do
    command:flag("--" .. registry.cli_name(name), help)
  end
  if m.confirm then
    command:flag("--confirm", "apply the uploading at once (" .. registry.cli_name(m.confirm) .. ")")
  end
end

local function kinds_with(field)
  local names = {}
  for _, k in ipairs(registry.kinds) do
    if k.service == "metrika" and k[field] then
      names[#names + 1] = k.name
    end
  end
  return names
end

local function build_parser()
  local parser = argparse("csvup", "Upload CSV data to Yandex Metrica and Carrot quest.", EXIT_TEXT)
  parser:command_target("command")
  parser:flag("--version", "print the version and exit"):action(function()
    print("csvup " .. csvup.VERSION)
    os.exit(OK)
  end)
  for _, service in ipairs { "metrika", "carrotquest" } do
    local command = parser:command(service, registry.services[service].help .. format(" (token: $%s or --token-file)",
      registry.services[service].token_env), EXIT_TEXT)
    command:command_target("subcommand")
    for _, m in ipairs(registry.methods) do
      if m.service == service then
        add_method(command, m)
      end
    end
    if service == "metrika" then
      local list = command:command("uploadings", "list uploadings of one kind")
      add_connection_options(list, service)
      list:option("--kind", "which uploadings; default: offline-conversions"):choices(kinds_with("list"))
      list:option("--limit", "how many"):convert(integer)
      list:option("--offset", "how many to skip"):convert(integer)
      local wait = command:command("wait", "wait until an uploading is processed")
      add_connection_options(wait, service)
      wait:argument("id", "the uploading's id")
      wait:option("--kind", "the uploading's kind; default: offline-conversions"):choices(kinds_with("read"))
      add_wait_options(wait)
    end
  end
  local kinds = {}
  for _, k in ipairs(registry.kinds) do
    if k.schema then
      kinds[#kinds + 1] = k.name
    end
  end
  local check = parser:command("validate", "check a file as its upload would, every row; send nothing",
    "Exit status 0: valid; 3: problems found, listed on stderr as file:line: column: reason.")
  check:argument("kind", "the upload kind"):choices(kinds)
  check:argument("file", "the CSV file")
  check:option("--delimiter", "the file's delimiter (auto: the most frequent of , ; tab | in the header); default: ,")
    :choices { ",", ";", "\t", "|", "tab", "auto" }
  check:option("--encoding", "the file's encoding (auto: UTF-8 unless it is not valid UTF-8); default: utf-8")
    :choices { "utf-8", "cp1251", "windows-1251", "auto" }
  check:option("--merge-field", "carrotquest-users: the merge column; default: $user_id")
  check:option("--action", "user-params: update or delete_keys; default: update", "update")
    :choices { "update", "delete_keys" }
  check:option("--type", "offline-conversions: BASIC, CALLS or CHATS (whose columns it takes); default: BASIC")
    :choices { "BASIC", "CALLS", "CHATS" }
  check:option("--entity", "crm: what the file holds (only simple_orders has fixed columns); default: simple_orders",
    "simple_orders"):choices { "simple_orders" }
  local entries = parser:command("journal", "list the latest uploads the journal keeps")
  entries:option("--journal", "the journal; default: $XDG_STATE_HOME/csvup/journal.sqlite3")
  entries:option("--limit", "how many; default: 20", "20"):convert(function(text)
    local n = integer(text)
    if not n or n < 1 then
      return nil, format("'%s' is not a whole number of at least 1", text)
    end
    return n
  end)
  entries:flag("--json", "print the entries as JSON")
  local sandbox = parser:command("sandbox", "run the local sandbox that emulates both APIs (token: sandbox-token)")
  sandbox:option("--port", "the port on 127.0.0.1, 0 for any free one; default: 8080", "8080"):convert(integer)
  sandbox:option("--process-delay", "seconds until an uploading is final; default: 0.5", "0.5"):convert(number(0))
  sandbox:option("--answer-delay", "seconds before every answer; default: 0", "0"):convert(number(0))
  sandbox:option("--counters", "the Metrica counters the token may use, comma-separated; default: all but 403")
  sandbox:option("--max-connections", "connections at once, more get 503; default: 256, at most 900")
    :convert(integer)
  sandbox:option("--idle-timeout", "seconds a connection may stay silent; default: 30"):convert(number(0.1))
  return parser
end

local function status_of(err)
  if err.code == "interrupted" then
    return SIGNALLED[core.interrupted() or "SIGINT"]
  elseif err.kind == "input" then
    return CONTENT_ERRORS[err.code] and INVALID or USAGE
  elseif err.kind == "network" then
    return NETWORK
  end
  return API_ERROR
end

-- What a signal left behind: nothing sent, or sent whole with the outcome unknown.
local function interruption(err)
  local signal = core.interrupted() or "a signal"
  if err.signal then -- between requests: waiting for a slot, a retry or processing
    return format("csvup: stopped by %s while waiting: nothing more was sent\n", signal)
  elseif err.request_sent == false then
    return format("csvup: stopped by %s: nothing was sent\n", signal)
  end
  return format("csvup: stopped by %s after the request was sent whole: whether the service kept it is unknown. "
    .. "Run the same command again: the journal looks for it in the uploadings list before sending%s\n", signal,
    err.marker and format(" (its marker: %s)", err.marker) or "")
end

local function report_error(err, as_json)
  if err.code == "interrupted" and not as_json then
    say(io.stderr, interruption(err))
  elseif as_json then
    say(io.stdout, json.encode { error = { code = err.code, kind = err.kind, status = err.status,
      message = err.message, problems = err.problems, id = err.id, last_status = err.last_status } }, "\n")
  else
    say(io.stderr, "csvup: ", printable(tostring(err)), "\n")
  end
  return status_of(err)
end

local function usage_error(message)
  say(io.stderr, "csvup: ", message, "\n")
  return USAGE
end

local function describe_uploading(u)
  local parts = { format("uploading %s: %s", printable(u.id or u.uploading_id),
    printable(u.status or u.api_validation_status)) }
  for _, k in ipairs { "line_quantity", "linked_quantity", "source_quantity", "elements_count", "provider", "type" } do
    if u[k] ~= nil then
      parts[#parts + 1] = format("%s=%s", k, printable(u[k]))
    end
  end
  return concat(parts, " ")
end

local function describe(result)
  if type(result) ~= "table" then
    return printable(result)
  elseif result.id ~= nil or result.uploading_id ~= nil then
    return describe_uploading(result)
  elseif result[1] ~= nil then
    local lines = {}
    for i, item in ipairs(result) do
      lines[i] = type(item) == "table" and (item.status or item.uploading_id) and describe_uploading(item)
        or printable(json.encode(item))
    end
    return concat(lines, "\n")
  elseif next(result) == nil then
    return "none"
  end
  return printable(json.encode(result))
end

-- The token from --token-file (its first line, without CR or LF) or the
-- environment; never from a flag, which ps would show.
local function token(service, args)
  if args.token_file then
    local f, message = io.open(args.token_file)
    local t = f and f:read(TOKEN_FILE_READ) -- bounded: /dev/zero has no first line
    if f then
      f:close()
    end
    t = t and t:match("^[^\r\n]*")
    if not t or not t:find("^[!-~]+$") then
      return nil, format("the token file %s %s", args.token_file, message and ("cannot be read: " .. message)
        or "holds no token on its first line")
    end
    return t
  end
  local env = registry.services[service].token_env
  local t = os.getenv(env)
  if not t or t == "" then
    return nil, "no token: set " .. env .. " or pass --token-file"
  end
  return t
end

-- The file's encoding from --encoding; what auto found is said on stderr.
local function encoding_of(args, path)
  if args.encoding ~= "auto" then
    return args.encoding
  end
  local encoding, why = csv.encoding("auto", path)
  if encoding then
    say(io.stderr, format("csvup: %s: read as %s: %s\n", printable(args.file), encoding == "cp1251" and "windows-1251"
      or encoding, why))
    return encoding
  end
  return "auto" -- the upload says what is wrong with the file
end

-- A file named "-" is standard input, copied to a temporary file so that it
-- can be checked and sent with its length.
local function input_file(path)
  if path ~= "-" then
    return path
  end
  local name = os.tmpname()
  local out, err = io.open(name, "wb")
  while out do
    local chunk
    chunk, err = io.stdin:read(1 << 16)
    if not chunk then
      break
    end
    local written, why = out:write(chunk)
    if not written then
      err = why
      break
    end
  end
  local closed, why = false, nil
  if out then
    closed, why = out:close()
  end
  if err or not closed then
    os.remove(name)
    return nil, errors.new("input", "file_unreadable", "standard input could not be copied to " .. name .. ": "
      .. tostring(err or why))
  end
  return name, name
end

-- The warnings of a check that passed, on one line of stderr.
local function warn(file, warnings)
  local shown = {}
  for i, w in ipairs(warnings) do
    shown[i] = format("line %s, %s: %s", w.line, printable(w.column), printable(w.reason))
  end
  say(io.stderr, "csvup: ", printable(file), ": warning: ", table.concat(shown, "; "), "\n")
end

local function finish(result, err, args)
  if not result then
    return report_error(err, args.json)
  end
  local refused = type(result.row_errors) == "table" and next(result.row_errors) ~= nil
    or result.row_errors_raw ~= nil
  if args.json then
    say(io.stdout, json.encode(result), "\n")
  elseif type(result.row_errors) == "table" then
    local lines, count = {}, 0
    for line, message in pairs(result.row_errors) do
      count = count + 1
      lines[#lines + 1] = { line = tonumber(line) or 0, text = format("  line %s: %s", printable(line), printable(message)) }
    end
    table.sort(lines, function(a, b) return a.line < b.line end)
    say(io.stdout, format("%s updates planned, %d rows refused\n", printable(result.updates_planned), count))
    for i = 1, math.min(20, #lines) do
      say(io.stdout, lines[i].text, "\n")
    end
    if result.row_errors_raw ~= nil then
      say(io.stdout, "  row errors, as the service wrote them: ", printable(json.encode(result.row_errors_raw)), "\n")
    end
  else
    say(io.stdout, describe(result), "\n")
  end
  if refused then
    return PARTIAL
  end
  local kind = registry.kind[args._kind or ""]
  return kind and kind.is_failed and kind.is_failed[result.status] and UPLOAD_FAILED or OK
end

-- Waits for the uploading; on a terminal, one status line per poll.
local function wait_for(client, uploading, kind, args)
  local bar = progress.new("")
  return client:wait(uploading, { kind = kind, timeout = args.timeout, interval = args.interval,
    progress = bar and function(u) bar.status(describe_uploading(u)) end })
end

local function run_method(client, m, args)
  local opts = {}
  for _, o in ipairs(m.options) do
    local v = args[(o.type == "tags" and "tag" or o.name)]
    if o.type == "tags" and #v == 0 then
      v = nil
    end
    opts[o.name] = v
  end
  local temporary
  if m.shape == "upload" then
    opts.file, temporary = input_file(args.file)
    if not opts.file then
      return report_error(temporary, args.json)
    end
    if args.validate == "off" then
      opts.validate = false
    else
      opts.validate = args.validate
    end
    for name in pairs(m.flags or {}) do
      opts[name] = args[name] or nil
    end
    local bar = progress.new(args.file)
    opts.progress = bar and bar.update
    opts.force = args.force or nil
    opts.encoding = encoding_of(args, opts.file)
    opts.delimiter = opts.delimiter or (args.delimiter == "tab" and "\t" or args.delimiter)
    local result, err, note = client[m.name](client, opts)
    if bar then
      bar.finish()
    end
    if result and result.warnings and not args.json then
      warn(args.file, result.warnings)
    end
    if note == "journal" and not args.json then
      say(io.stderr, "csvup: ", printable(args.file), " was uploaded before (the journal says so): not sent again; ",
        "--force sends it again\n")
    end
    if temporary then
      os.remove(temporary)
    end
    if result and args.confirm then
      result, err = client[m.confirm](client, result)
    end
    if result and args.wait then
      result, err = wait_for(client, result, m.kind, args)
    end
    args._kind = m.kind
    return finish(result, err, args)
  end
  local result, err
  if m.shape == "read" or m.id then
    result, err = client[m.name](client, args.id, m.shape ~= "read" and opts or nil)
  else
    result, err = client[m.name](client, opts)
  end
  return finish(result, err, args)
end

local function run_service(service, args, command)
  core.signals() -- SIGINT and SIGTERM stop a transfer or a wait at once, and are reported
  if service == "metrika" and not args.counter then
    return usage_error("--counter is required")
  end
  local secret, problem = token(service, args)
  if not secret then
    return usage_error(problem)
  end
  local client, err = csvup[service].new { token = secret, base_url = args.base_url, counter = args.counter,
    ulogin = args.ulogin, app = args.app, retries = args.retries, allow_http = args.allow_http or nil,
    verbose = args.verbose or nil, journal = args.file and not args.no_journal and (args.journal or true) or nil }
  if not client then
    return report_error(err, args.json)
  end
  local status, result
  if command == "uploadings" then
    local kind = registry.kind[args.kind or "offline-conversions"]
    result, err = client[kind.list](client, { limit = args.limit, offset = args.offset })
    status = finish(result, err, args)
  elseif command == "wait" then
    args._kind = args.kind or "offline-conversions"
    result, err = wait_for(client, args.id, args._kind, args)
    status = finish(result, err, args)
  else
    status = run_method(client, registry.method[command:gsub("%-", "_")], args)
  end
  client:close()
  return status
end

local function run_validate(args)
  local schema = registry.schema(registry.kind[args.kind], args)
  local ok, err = validate.file(schema, args.file, { level = "full",
    delimiter = args.delimiter == "tab" and "\t" or args.delimiter,
    encoding = encoding_of(args, args.file), merge_field = args.merge_field or "$user_id" })
  if ok and err then
    warn(args.file, err)
  end
  if ok then
    say(io.stdout, args.file, ": valid for ", args.kind, "\n")
    return OK
  elseif err.problems then
    for _, p in ipairs(err.problems) do
      say(io.stderr, format("%s:%s: %s: %s\n", printable(args.file), p.line or p.row, printable(p.column),
        printable(p.reason)))
    end
    if err.problem_count > #err.problems then
      say(io.stderr, format("%s: %d more problems not listed\n", printable(args.file), err.problem_count - #err.problems))
    end
    if err.hint then
      say(io.stderr, printable(args.file), ": ", err.hint, "\n")
    end
    return INVALID
  end
  return report_error(err)
end

local function run_journal(args)
  local j, err = journal.open(args.journal)
  if not j then
    return report_error(err, args.json)
  end
  local entries
  entries, err = j:list { limit = args.limit }
  j:close()
  if not entries then
    return report_error(err, args.json)
  elseif args.json then
    say(io.stdout, json.encode(entries), "\n")
  else
    for _, entry in ipairs(entries) do
      say(io.stdout, journal.describe(entry), "\n")
    end
  end
  return OK
end

local function run_sandbox(args)
  local sandbox = require "csvup.sandbox" -- only this command needs luasocket
  local counters
  for id in (args.counters or ""):gmatch("[^,]+") do
    counters = counters or {}
    counters[#counters + 1] = integer(id)
    if not counters[#counters] then
      return usage_error("--counters takes counter ids separated by commas")
    end
  end
  local server, err = sandbox.new { port = args.port, process_delay = args.process_delay,
    answer_delay = args.answer_delay, counters = counters, max_connections = args.max_connections,
    idle_timeout = args.idle_timeout }
  if not server then
    say(io.stderr, format("csvup: sandbox: cannot listen on port %d: %s\n", args.port, printable(err)))
    return API_ERROR
  end
  say(io.stdout, "csvup sandbox listening on ", server.url, "\n")
  server:run()
  return OK
end

-- cli.parser() -> the command line's lua-argparse parser (for csvup.docs' man page)
cli.parser = build_parser

-- cli.main(args) -> exit status
function cli.main(argv)
  local parser = build_parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    say(io.stderr, parser:get_usage(), "\n\ncsvup: ", args, "\n")
    return USAGE
  end
  if args.command == "validate" then
    return run_validate(args)
  elseif args.command == "sandbox" then
    return run_sandbox(args)
  elseif args.command == "journal" then
    return run_journal(args)
  end
  return run_service(args.command, args, args.subcommand)
end

return cli
