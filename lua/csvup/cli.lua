-- The csvup command line: `csvup --help`. Its subcommands, their options and
-- help come from csvup.registry; the parser is Debian's lua-argparse.
local argparse = require "argparse"
local csvup = require "csvup"
local core = require "csvup.core"
local csv = require "csvup.csv"
local errors = require "csvup.errors"
local journal = require "csvup.journal"
local json = require "csvup.json"
local once = require "csvup.once"
local options = require "csvup.options"
local progress = require "csvup.progress"
local registry = require "csvup.registry"
local validate = require "csvup.validate"

local format, concat = string.format, table.concat
local ipairs, pairs, tonumber, tostring, type, next, setmetatable =
  ipairs, pairs, tonumber, tostring, type, next, setmetatable
local math_type = math.type

local cli = {}

-- Exit statuses.
local OK, API_ERROR, USAGE, INVALID, NETWORK, UPLOAD_FAILED, PARTIAL, UNRECORDED = 0, 1, 2, 3, 4, 5, 6, 7
local TOKEN_FILE_READ = 4096 -- bytes read of a token file: a token is far shorter
local SIGNALLED = { SIGINT = 130, SIGTERM = 143 }
local STDERR = 2
-- The environment the command reads: the tokens (registry.services[].token_env),
-- and the defaults of --base-url and --counter. The examples and recipes use the same names.
local ENV_BASE_URL, ENV_COUNTER = "CSVUP_BASE_URL", "CSVUP_COUNTER"
local PREVIEW_LINES = 5 -- lines of the body a dry run shows
local CONTENT_ERRORS = { validation_failed = true, invalid_utf8 = true, malformed_csv = true, invalid_value = true,
  unknown_target = true }

local EXIT_TEXT = [[
Exit status: 0 done, 1 API error, 2 usage, 3 validation failed, 4 network,
5 waited and the upload failed (LINKAGE_FAILURE), 6 done but some rows were
refused (Carrot quest row_errors), 7 done but the journal could not record it
(a rerun looks it up before sending), 130 and 143 stopped by SIGINT and SIGTERM.

Environment: CSVUP_METRIKA_TOKEN, CSVUP_CARROTQUEST_TOKEN (the tokens, unless
--token-file), CSVUP_BASE_URL (--base-url), CSVUP_COUNTER (--counter),
XDG_STATE_HOME (the journal), XDG_RUNTIME_DIR (the parallel-request slots'
locks). See man csvup.]]

local printable = errors.printable

local function say(stream, ...)
  stream:write(...)
  stream:flush()
end

-- The log on stderr, one line per event: retries, a lost answer, the
-- journal's decisions, errors. Off a terminal (cron, a pipe) each line starts
-- with the time in ISO 8601 (UTC); --quiet keeps only the errors.
local quiet = false

local function log_line(text)
  if core.isatty(STDERR) then -- over a progress bar's line, which is drawn again at its next step
    say(io.stderr, "\r", string.rep(" ", (core.columns(STDERR) or 80) - 1), "\r", "csvup: ", text, "\n")
  else
    say(io.stderr, os.date("!%Y-%m-%dT%H:%M:%SZ "), "csvup: ", text, "\n")
  end
end

local function note(...)
  if not quiet then
    log_line(format(...))
  end
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

-- A value as help shows it: a tab or a space by name.
local function named(v)
  return v == "\t" and "tab" or v == " " and "space" or v
end

-- An option that takes one of values, a tab or a space also by name: help
-- shows no raw tab. Returns the option.
local function one_of(option, values)
  local names, accepted = {}, {}
  for i, v in ipairs(values) do
    names[i] = named(v)
    accepted[v], accepted[names[i]] = v, v
  end
  return option:argname("{" .. concat(names, ",") .. "}"):convert(function(text)
    if accepted[text] then
      return accepted[text]
    end
    return nil, format("'%s' is not one of: %s", text, concat(names, ", "))
  end)
end

local FILE_DELIMITERS = { ",", ";", "\t", "|", "auto" }
local ENCODINGS = { "utf-8", "cp1251", "windows-1251", "auto" }

local function add_connection_options(command, service)
  command:option("--token-file", format("a file whose first line is the token (else $%s)",
    registry.services[service].token_env))
  command:option("--base-url", "the API's address, e.g. a sandbox's http://127.0.0.1:8080; default: $" .. ENV_BASE_URL
    .. ", else the service's own")
  command:option("--ca-file", "verify the service's certificate with the CA certificates in this PEM file instead "
    .. "of the system's (a company proxy's, a sandbox behind TLS)")
  command:flag("--allow-http", "allow plain http to a host other than this machine (the token travels unencrypted)")
  command:option("--retries", "attempts after the first for what surely was not processed; default: 3")
    :convert(integer)
  command:flag("--verbose", "print libcurl's exchange on stderr (the token hidden)")
  command:flag("--json", "print each result, or the error, as one JSON value on stdout")
  command:flag("--quiet", "log only errors on stderr (no retries, journal decisions or progress bar)")
  if service == "metrika" then
    command:option("--counter", "the Metrica counter's id; required, default: $" .. ENV_COUNTER):convert(integer)
    command:option("--ulogin", "act for this delegated account")
  else
    command:option("--app", "the Carrot quest app id; default: $self_app")
  end
end

local function add_wait_options(command)
  command:option("--timeout", "seconds to wait at most; default: 10800"):convert(number(0.001))
  command:option("--interval", "the longest pause between polls, in seconds: from 1 s the pause grows by half up "
    .. "to it; default: 60"):convert(number(0.05))
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
    command:option("--resolve-timeout", "seconds to look in the uploadings list for an upload whose outcome is "
      .. "unknown (the list's lag allowance); default: 30"):convert(number(0))
    command:option("--validate", "check every row (full), the header (header) or nothing (off); default: full")
      :choices { "full", "header", "off" }
    command:option("--encoding", "the file's encoding (auto: UTF-8 unless it is not valid UTF-8); default: utf-8")
      :choices(ENCODINGS)
    local takes_delimiter = false
    for _, o in ipairs(m.options) do
      takes_delimiter = takes_delimiter or o.name == "delimiter" or o.name == "delimiter_type"
    end
    if not takes_delimiter then
      one_of(command:option("--delimiter", "the file's delimiter, sent as a comma (auto: the most frequent of , ; tab | "
        .. "in the header); default: ,"), FILE_DELIMITERS)
    end
    if registry.kind[m.kind].read then
      command:flag("--wait", "wait until the uploading is processed")
      add_wait_options(command)
    end
  elseif m.shape == "read" or m.id then
    command:argument("id", "the uploading's id")
  end
  command:flag("--dry-run", "check and print what would be sent (method, URL, query, form fields, the body's first "
    .. "lines as converted), send nothing; exit 0, or 3 when the file fails its check")
  for _, o in ipairs(m.options) do
    local flag = "--" .. registry.cli_name(o.type == "tags" and "tag" or o.name)
    local shown = o
    if o.values then
      shown = setmetatable({ values = {} }, { __index = o })
      for i, v in ipairs(o.values) do
        shown.values[i] = named(v)
      end
    end
    local option = command:option(flag, options.describe(shown))
    if o.type == "enum" then
      one_of(option, o.values)
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
  one_of(check:option("--delimiter", "the file's delimiter (auto: the most frequent of , ; tab | in the header); "
    .. "default: ,"), FILE_DELIMITERS)
  check:option("--encoding", "the file's encoding (auto: UTF-8 unless it is not valid UTF-8); default: utf-8")
    :choices(ENCODINGS)
  check:option("--merge-field", "carrotquest-users: the merge column; default: $user_id")
  check:option("--action", "user-params: update or delete_keys", "update"):choices { "update", "delete_keys" }
  check:option("--type", "offline-conversions: BASIC, CALLS or CHATS, whose columns it takes (BASIC when not given)")
    :choices { "BASIC", "CALLS", "CHATS" }
  check:option("--entity", "crm: what the file holds (only simple_orders has fixed columns)", "simple_orders")
    :choices { "simple_orders" }
  check:flag("--json", "print the result, or the problems as objects, as JSON on stdout")
  local entries = parser:command("journal", "list the latest uploads the journal keeps")
  entries:option("--journal", "the journal; default: $XDG_STATE_HOME/csvup/journal.sqlite3")
  entries:option("--limit", "how many", "20"):convert(function(text)
    local n = integer(text)
    if not n or n < 1 then
      return nil, format("'%s' is not a whole number of at least 1", text)
    end
    return n
  end)
  entries:flag("--json", "print the entries as JSON")
  entries:flag("--check", "check the journal file through (SQLite's integrity check); exit status 1 when damaged")
  local sandbox = parser:command("sandbox", "run the local sandbox that emulates both APIs (token: sandbox-token)")
  sandbox:option("--port", "the port on 127.0.0.1, 0 for any free one", "8080"):convert(integer)
  sandbox:option("--process-delay", "seconds until an uploading is final", "0.5"):convert(number(0))
  sandbox:option("--answer-delay", "seconds before every answer", "0"):convert(number(0))
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

-- What a signal left behind: an answered uploading whose wait stopped, a
-- body cut short (which the service keeps nothing of), or one sent whole with
-- the outcome unknown.
local function interruption(err)
  local signal = core.interrupted() or "a signal"
  if err.waiting_for then
    return format("stopped by %s while waiting for uploading %s to be processed: the upload was answered and "
      .. "stays; only the wait stopped (csvup metrika wait %s waits again)", signal, printable(err.waiting_for),
      printable(err.waiting_for))
  elseif err.signal then -- between requests: waiting for a slot or a retry
    return format("stopped by %s while waiting: nothing more was sent", signal)
  elseif err.request_sent == false and (err.sent or 0) > 0 then
    return format("stopped by %s after %.0f of %s bytes of the request were sent: the service keeps nothing of an "
      .. "incomplete request, so nothing was uploaded", signal, err.sent, err.body_size and format("%.0f",
      err.body_size) or "its")
  elseif err.request_sent == false then
    return format("stopped by %s: nothing was sent", signal)
  end
  return format("stopped by %s after the request was sent whole: whether the service kept it is unknown. "
    .. "Run the same command again: the journal looks for it in the uploadings list before sending%s", signal,
    err.marker and format(" (its marker: %s)", err.marker) or "")
end

-- Requests made for the command, as the retries reported them; an error's own count wins.
local attempts = 0

-- An error under --json: one object on stdout, with the requests it took.
local function json_error(err, stream)
  say(stream or io.stdout, json.encode { error = { code = err.code, kind = err.kind, status = err.status,
    message = err.message, problems = err.problems, problem_count = err.problem_count, id = err.id,
    last_status = err.last_status, hint = err.hint, attempts = err.attempts or attempts,
    waiting_for = err.waiting_for, marker = err.marker } }, "\n")
end

local function report_error(err, as_json)
  if as_json then
    json_error(err)
  elseif err.code == "interrupted" then
    log_line(interruption(err))
  else
    log_line(printable(tostring(err)))
  end
  return status_of(err)
end

local function usage_error(message, as_json)
  if as_json then
    json_error({ code = "usage", kind = "input", message = message, attempts = 0 }, io.stderr)
  else
    log_line(message)
  end
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

local function describe_goal(g)
  local identifier = type(g.conditions) == "table" and type(g.conditions[1]) == "table" and g.conditions[1].url
  return format("goal %s: %s type=%s%s", printable(g.id), printable(g.name), printable(g.type),
    identifier and " identifier=" .. printable(identifier) or "")
end

local function describe(result)
  if type(result) ~= "table" then
    return printable(result)
  elseif result.id ~= nil and result.conditions ~= nil then -- a goal (create-goal)
    return describe_goal(result)
  elseif result.id ~= nil or result.uploading_id ~= nil then
    return describe_uploading(result)
  elseif result[1] ~= nil then
    local lines = {}
    for i, item in ipairs(result) do
      lines[i] = type(item) == "table" and (item.status or item.uploading_id) and describe_uploading(item)
        or type(item) == "table" and item.id ~= nil and item.conditions ~= nil and describe_goal(item)
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
    note("%s: read as %s: %s", printable(args.file), encoding == "cp1251" and "windows-1251" or encoding, why)
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

-- A result as JSON: a list is an array even when it is empty.
local function json_result(result, list)
  return list and type(result) == "table" and next(result) == nil and "[]" or json.encode(result)
end

-- The warnings of a check that passed, on one line of the log.
local function warn(file, warnings)
  local shown = {}
  for i, w in ipairs(warnings) do
    shown[i] = format("line %s, %s: %s", w.line, printable(w.column), printable(w.reason))
  end
  note("%s: warning: %s", printable(file), concat(shown, "; "))
end

local function finish(result, err, args)
  if not result then
    return report_error(err, args.json)
  end
  local refused = type(result.row_errors) == "table" and next(result.row_errors) ~= nil
    or result.row_errors_raw ~= nil
  if args.json then
    say(io.stdout, json_result(result, args._list), "\n")
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

-- Waits for the uploading; on a terminal, one status line per poll. A signal
-- stops only the wait: the error names the uploading, which was answered.
local function wait_for(client, uploading, kind, args)
  local bar = not quiet and progress.new("") or nil
  local result, err = client:wait(uploading, { kind = kind, timeout = args.timeout, interval = args.interval,
    progress = bar and function(u) bar.status(describe_uploading(u)) end })
  if not result and err.code == "interrupted" then
    err.waiting_for = tostring(type(uploading) == "table" and uploading.id or uploading)
  end
  return result, err
end

-- The client's log of retries and lost answers (csvup.client's on_event).
local function on_event(events)
  return function(event, info)
    local err = info.err
    if event == "retry" then
      attempts = info.attempt
      note("attempt %d of %d after %s%s, in %.1f s", info.attempt, info.of, err.status and err.status .. " " or "",
        printable(err.code), info.wait)
    elseif event == "outcome_unknown" then
      events.lost = true
      note("the answer was lost after the request was sent whole (%s): looking for the upload in the uploadings list "
        .. "by its marker", printable(err.cause or err.code))
    end
  end
end

-- An Excel export read as UTF-8 with commas is off twice over: when both the
-- encoding and the delimiter are, one hint names both (err.hint).
local function excel_hint(args, path, err)
  if (args.encoding and args.encoding ~= "utf-8")
      or (args.delimiter and args.delimiter ~= ",") or not path or not (err.code == "invalid_utf8" or err.hint) then
    return
  end
  local f = io.open(path, "rb")
  local head = f and f:read(65536) or ""
  if f then
    f:close()
  end
  local header = head:match("^[^\r\n]*")
  local counts, best = {}, nil
  for _, d in ipairs { ";", "\t", "|" } do
    counts[d] = select(2, header:gsub(d == "|" and "%|" or d, ""))
    best = counts[d] > (best and counts[best] or 0) and d or best
  end
  if not best or header:find(",", 1, true) or csv.encoding("auto", path) ~= "cp1251" then
    return
  end
  err.hint = format("this looks like an Excel export, %s-separated and in Windows-1251: pass --delimiter '%s' "
    .. "--encoding cp1251 (or --delimiter auto --encoding auto)", named(best), named(best))
  return err.hint
end

-- Dry run ---------------------------------------------------------------------------

-- The form fields as name=value pairs, sorted by name, printable.
local function form_fields(fields)
  local items = {}
  for name, value in pairs(fields) do
    items[#items + 1] = printable(name) .. "=" .. printable(value)
  end
  table.sort(items)
  return concat(items, " ")
end

-- At most PREVIEW_LINES lines from read(n), a function that gives text or nil.
local function first_lines(read)
  local parts, lines, size = {}, 0, 0
  while lines < PREVIEW_LINES and size < 65536 do
    local chunk = read(4096)
    if not chunk then
      break
    end
    parts[#parts + 1], size = chunk, size + #chunk
    lines = lines + select(2, chunk:gsub("\n", ""))
  end
  local text = concat(parts)
  local cut, n = 0, 0
  while n < PREVIEW_LINES do
    local at = text:find("\n", cut + 1, true)
    if not at then
      cut = #text
      break
    end
    cut, n = at, n + 1
  end
  return text:sub(1, cut)
end

-- The body's first lines, as they would be sent: a file converted by
-- core.recoder where it would be, else as it is; a JSON body whole.
local function body_preview(call, opts)
  local args = call.args
  if args.body or args.data then
    local text = args.body or args.data
    return first_lines(function()
      local piece = text
      text = nil
      return piece
    end)
  elseif not args.file then
    return nil
  elseif not (args.stages and args.stages[1][1] == "recode") then
    local f, err = io.open(args.file, "rb")
    if not f then
      return nil, errors.new("input", "file_unreadable", err)
    end
    local text = first_lines(function(n) return f:read(n) end)
    f:close()
    return text
  end
  local encoding, err = csv.encoding(opts.encoding, args.file)
  local recoder = encoding and core.recoder(args.file, { encoding = encoding,
    delimiter = call.delimiter or opts.delimiter or ",", to = call.delimiter or "," })
  if not recoder then
    return nil, err
  end
  local text = first_lines(function(n) return recoder:read(n) end)
  recoder:close()
  return text
end

-- Checks the call as sending would and prints what would go out; sends nothing.
local function dry_run(client, m, args, opts)
  opts.check_targets = nil -- it reads the counter's goals: a request
  local plan = client.plans[m.name]
  local call, err
  if m.shape == "read" or m.id then
    call, err = plan(client, args.id, m.shape ~= "read" and opts or nil)
  else
    call, err = plan(client, opts)
  end
  if call and call.args.recheck then -- checked by the read that would send it: here, whole
    local ok
    ok, err = call.args.recheck()
    call = ok and call or nil
  end
  local body
  if call then
    body, err = body_preview(call, opts)
    call = (body or not err) and call or nil
  end
  if not call then
    excel_hint(args, opts.file, err)
    return report_error(err, args.json)
  end
  local endpoint = registry.endpoint[call.endpoint]
  -- the query URL-encoded as libcurl sends it (journal.query: names sorted, values escaped alike)
  local path = endpoint.path:gsub("{(%w+)}", function(name) return journal.escape(tostring(call.args[name])) end)
  local query = journal.query(call.args.query)
  local marker = m.kind and registry.kind[m.kind].mark
  local plan_shown = { dry_run = true, method = endpoint.method, url = client.conn:base_url() .. path
    .. (query ~= "" and "?" .. query or ""), query = call.args.query, fields = call.args.fields,
    file = call.args.file and (call.args.filename or call.args.file:match("[^/]*$")), body = body,
    marker = marker and format("csvup and 10 hex digits, added to the %s when sent", marker) or nil }
  if args.json then
    say(io.stdout, json.encode(plan_shown), "\n")
    return OK
  end
  local out = { format("%s %s", plan_shown.method, plan_shown.url), "Authorization: (the token, not shown)" }
  if call.args.fields then
    out[#out + 1] = "form fields: " .. form_fields(call.args.fields)
  end
  if plan_shown.file then
    out[#out + 1] = "form file part: " .. plan_shown.file
  end
  if marker then
    out[#out + 1] = "marker: " .. plan_shown.marker
  end
  if body then
    out[#out + 1] = format("body (its first %d lines, as sent):", PREVIEW_LINES)
    out[#out + 1] = printable(body):gsub("\\n", "\n"):gsub("\n$", "") -- escapes what a terminal would obey
  end
  say(io.stdout, concat(out, "\n"), "\n")
  return OK
end

local function run_method(client, m, args, events)
  local opts = {}
  for _, o in ipairs(m.options) do
    local v = args[(o.type == "tags" and "tag" or o.name)]
    if o.type == "tags" and #v == 0 then
      v = nil
    end
    opts[o.name] = v
  end
  args._list = m.result and m.result:find("s$") ~= nil
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
    opts.force = args.force or nil
    opts.encoding = encoding_of(args, opts.file)
    opts.delimiter = opts.delimiter or args.delimiter
  end
  if args.dry_run then
    local status = dry_run(client, m, args, opts)
    if temporary then
      os.remove(temporary)
    end
    return status
  end
  if m.shape == "upload" then
    local bar = not quiet and progress.new(args.file) or nil
    opts.progress = bar and bar.update
    local result, err, note_of, unrecorded = client[m.name](client, opts)
    if bar then
      bar.finish()
    end
    local journal_on, hint = client.journal ~= nil, nil
    if result and result.warnings and not args.json then
      warn(args.file, result.warnings)
    end
    if note_of == "unrecorded" then -- an error: --quiet keeps it
      log_line(format("uploading %s of %s could not be recorded in the journal: %s", printable(tostring(result.id
        or result.uploading_id)), printable(args.file), printable(tostring(unrecorded))))
    elseif note_of == "journal" then
      note("%s was uploaded before (the journal says so): not sent again; --force sends it again",
        printable(args.file))
    elseif result and events.lost then
      note("the lost answer was found by its marker: uploading %s", printable(result.id or result.uploading_id))
    end
    if result and journal_on and not note_of then
      note("the journal records %s as sent: a rerun answers from it", printable(args.file))
    elseif not result and journal_on and (err.code == "outcome_unknown" or (err.code == "interrupted"
        and err.request_sent ~= false)) then
      note("the journal keeps %s open: a rerun looks for it by its marker before sending", printable(args.file))
    elseif not result then
      hint = excel_hint(args, opts.file, err)
    end
    if temporary then
      os.remove(temporary)
    end
    if result and (args.confirm or args.wait) then -- the uploading's id at once, before what may take hours
      say(io.stdout, args.json and json.encode(result) or describe(result), "\n")
    end
    if result and args.confirm and once.steps(client, result).confirmed then
      note("uploading %s was confirmed by an earlier run (the journal says so): not confirmed again",
        printable(tostring(result.id)))
    elseif result and args.confirm then
      local upload = result
      result, err = client[m.confirm](client, result)
      if result and not once.step(client, upload, "confirmed", true) then
        note_of = "unrecorded"
      end
    end
    if result and args.wait then
      result, err = wait_for(client, result, m.kind, args)
    end
    args._kind = m.kind
    local status = finish(result, err, args)
    if hint and not args.json then
      log_line(hint)
    end
    return status == OK and note_of == "unrecorded" and UNRECORDED or status
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
  args.counter = args.counter or integer(os.getenv(ENV_COUNTER) or "")
  if service == "metrika" and not args.counter then
    return usage_error("--counter is required (or set " .. ENV_COUNTER .. ")", args.json)
  end
  local secret, problem = token(service, args)
  if not secret and args.dry_run then
    secret = "-" -- a dry run sends nothing: it needs no token
  elseif not secret then
    return usage_error(problem, args.json)
  end
  local base_url, events = args.base_url or os.getenv(ENV_BASE_URL), {}
  local client, err = csvup[service].new { token = secret, base_url = base_url ~= "" and base_url or nil,
    counter = args.counter, ulogin = args.ulogin, app = args.app, retries = args.retries, ca_file = args.ca_file,
    allow_http = args.allow_http or nil, verbose = args.verbose or nil, on_event = on_event(events),
    resolve_timeout = args.resolve_timeout,
    journal = args.file and not args.no_journal and not args.dry_run and (args.journal or true) or nil }
  if not client then
    return report_error(err, args.json)
  end
  local status, result
  if command == "uploadings" then
    local kind = registry.kind[args.kind or "offline-conversions"]
    args._list = true
    result, err = client[kind.list](client, { limit = args.limit, offset = args.offset })
    status = finish(result, err, args)
  elseif command == "wait" then
    args._kind = args.kind or "offline-conversions"
    result, err = wait_for(client, args.id, args._kind, args)
    status = finish(result, err, args)
  else
    status = run_method(client, registry.method[command:gsub("%-", "_")], args, events)
  end
  client:close()
  return status
end

local function run_validate(args)
  local schema = registry.schema(registry.kind[args.kind], args)
  local ok, err = validate.file(schema, args.file, { level = "full", delimiter = args.delimiter,
    encoding = encoding_of(args, args.file), merge_field = args.merge_field or "$user_id" })
  if ok and err then
    warn(args.file, err)
  end
  if ok then
    if args.json then
      say(io.stdout, json.encode { file = args.file, kind = args.kind, valid = true }, "\n")
    else
      say(io.stdout, args.file, ": valid for ", args.kind, "\n")
    end
    return OK
  end
  local hint = excel_hint(args, args.file, err)
  if args.json and err.problems then
    say(io.stdout, json.encode { file = args.file, kind = args.kind, valid = false, problems = err.problems,
      problem_count = err.problem_count, hint = err.hint }, "\n")
    return INVALID
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
  local status = report_error(err, args.json)
  if hint and not args.json then
    log_line(printable(args.file) .. ": " .. hint)
  end
  return status
end

-- csvup journal --check: every finding of SQLite's integrity check.
local function check_journal(path)
  local findings, err = journal.check(path)
  if not findings then
    return report_error(err)
  end
  for _, finding in ipairs(findings) do
    say(io.stdout, printable(finding), "\n")
  end
  say(io.stdout, printable(path or journal.path()), #findings == 0 and ": sound\n"
    or ": damaged: move it aside; the next run starts a new journal\n")
  return #findings == 0 and OK or API_ERROR
end

local function run_journal(args)
  if args.check then
    return check_journal(args.journal)
  end
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
    say(io.stdout, json_result(entries, true), "\n")
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
    log_line(format("sandbox: cannot listen on port %d: %s", args.port, printable(err)))
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
  local as_json = false
  for _, a in ipairs(argv) do
    if a == "--" then
      break
    end
    as_json = as_json or a == "--json"
  end
  -- a parse error is told by the (sub)command it is in: its usage, not the top one's
  parser.error = function(command, message)
    error({ usage = command:get_usage(), message = message }, 0)
  end
  local ok, args = pcall(parser.parse, parser, argv)
  if not ok and type(args) ~= "table" then
    error(args, 0)
  elseif not ok then
    if not as_json then
      say(io.stderr, args.usage, "\n\n")
    end
    return usage_error(args.message, as_json)
  end
  quiet, attempts = args.quiet or false, 0
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
