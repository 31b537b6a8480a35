-- The csvup command line: `csvup --help`.
local csvup = require "csvup"
local json = require "csvup.json"
local progress = require "csvup.progress"
local sandbox = require "csvup.sandbox"
local validate = require "csvup.validate"

local format, concat = string.format, table.concat
local ipairs, pairs, tonumber, tostring, setmetatable = ipairs, pairs, tonumber, tostring, setmetatable

local cli = {}

-- Exit statuses.
local OK, API_ERROR, USAGE, INVALID, NETWORK, UPLOAD_FAILED = 0, 1, 2, 3, 4, 5

local TOKEN_ENV = { metrika = "CSVUP_METRIKA_TOKEN", carrotquest = "CSVUP_CARROTQUEST_TOKEN" }
local SCHEMAS = {
  ["offline-conversions"] = "offline_conversions", calls = "calls", expenses = "expenses",
  ["expenses-delete"] = "expenses_delete", ["user-params"] = "user_params",
  ["crm-simple-orders"] = "crm_simple_orders", ["carrotquest-users"] = "carrotquest_users",
}
local CONTENT_ERRORS = { validation_failed = true, invalid_utf8 = true, malformed_csv = true, invalid_value = true }
local LISTS = {
  offline = "offline_conversion_uploadings", calls = "calls_uploadings", expense = "expense_uploadings",
  ["user-params"] = "user_params_uploadings", crm = "crm_uploadings",
}
local READS = {
  offline = "offline_conversion_uploading", calls = "calls_uploading", expense = "expense_uploading",
  ["user-params"] = "user_params_uploading",
}

-- Options every service command takes.
local COMMON = { ["token-file"] = "value", ["base-url"] = "value", retries = "value", json = "flag", help = "flag" }
local UPLOAD = { validate = "value", wait = "flag", timeout = "value", interval = "value", comment = "value" }

local function merge(...)
  local out = {}
  for _, t in ipairs { ... } do
    for k, v in pairs(t) do
      out[k] = v
    end
  end
  return out
end

-- The commands: options (name -> "value" | "flag" | "list"), the positional
-- arguments they need, a line of help, and what they do.
local COMMANDS = {
  metrika = {
    ["upload-offline-conversions"] = { options = merge(UPLOAD, { counter = "value", type = "value" }), args = { "FILE" },
      help = "upload offline conversions", method = "upload_offline_conversions", kind = "offline", pass = { "type" } },
    ["upload-calls"] = { options = merge(UPLOAD, { counter = "value", ["new-goal-name"] = "value" }), args = { "FILE" },
      help = "upload calls", method = "upload_calls", kind = "calls", pass = { "new-goal-name" } },
    ["upload-expenses"] = { options = merge(UPLOAD, { counter = "value", provider = "value" }), args = { "FILE" },
      help = "upload ad costs", method = "upload_expenses", kind = "expense", pass = { "provider" } },
    ["delete-expenses"] = { options = merge(UPLOAD, { counter = "value", provider = "value" }), args = { "FILE" },
      help = "delete the costs the file's rows match", method = "delete_expenses", kind = "expense",
      pass = { "provider" } },
    ["upload-user-params"] = { options = merge(UPLOAD, { counter = "value", action = "value",
      ["content-id-type"] = "value", confirm = "flag" }), args = { "FILE" },
      help = "upload user parameters (--confirm applies them)", method = "upload_user_params", kind = "user-params",
      pass = { "action", "content-id-type" } },
    uploadings = { options = { counter = "value", kind = "value", limit = "value", offset = "value" }, args = {},
      help = "list uploadings: --kind offline|calls|expense|user-params|crm" },
    wait = { options = { counter = "value", kind = "value", timeout = "value", interval = "value" }, args = { "ID" },
      help = "wait until an uploading is processed" },
  },
  carrotquest = {
    ["import-users"] = { options = { app = "value", ["merge-field"] = "value", delimiter = "value", tag = "list",
      validate = "value" }, args = { "FILE" }, help = "import users and their properties", method = "import_users",
      pass = { "merge-field", "delimiter" } },
  },
}

-- What each service subcommand runs (set below its runners): the uploads share one.
local RUNNERS

local USAGE_TEXT = [[
usage: csvup <command> [options]

  csvup metrika <subcommand> [options] FILE   Yandex Metrica (token: $CSVUP_METRIKA_TOKEN or --token-file)
  csvup carrotquest import-users [options] FILE   Carrot quest (token: $CSVUP_CARROTQUEST_TOKEN or --token-file)
  csvup validate KIND FILE                     check a file as an upload would, every row; send nothing
  csvup sandbox [--port N]                     run the local sandbox that emulates both APIs

`csvup metrika --help`, `csvup carrotquest --help`, `csvup validate --help` and
`csvup sandbox --help` say more. Exit status: 0 done, 1 API error, 2 usage,
3 validation failed, 4 network, 5 waited and the upload failed (LINKAGE_FAILURE).]]

local VALIDATE_USAGE = [[
usage: csvup validate KIND FILE [--delimiter D] [--merge-field F]

  KIND: offline-conversions, calls, expenses, expenses-delete, user-params,
        crm-simple-orders, carrotquest-users
  --delimiter D     the file's delimiter (default ","; "auto" to sniff)
  --merge-field F   carrotquest-users: $user_id (default) or $email
  Exit status 0: valid; 3: problems found, listed on stderr as file:line: column: reason.]]

local SANDBOX_USAGE = [[
usage: csvup sandbox [--port N] [--process-delay S] [--answer-delay S]

  --port N            port on 127.0.0.1 (default 8080; 0: any free one)
  --process-delay S   seconds until an uploading is final (default 0.5)
  --answer-delay S    seconds before every answer (default 0)
  Token: sandbox-token. Stops on SIGINT or SIGTERM.]]

local function service_usage(service)
  local lines = { format("usage: csvup %s <subcommand> [options]", service), "" }
  local names = {}
  for name in pairs(COMMANDS[service]) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local c = COMMANDS[service][name]
    local opts = {}
    for o, kind in pairs(c.options) do
      opts[#opts + 1] = "--" .. o .. (kind == "flag" and "" or kind == "list" and " V..." or " V")
    end
    table.sort(opts)
    lines[#lines + 1] = format("  %s %s\n      %s\n      %s", name, concat(c.args, " "), c.help, concat(opts, " "))
  end
  lines[#lines + 1] = "\n  every subcommand: --token-file F  --base-url URL  --json  --help"
  return concat(lines, "\n")
end

local function fail(status, message)
  io.stderr:write("csvup: ", message, "\n")
  return status
end

local function usage(problem, text)
  io.stderr:write("csvup: ", problem, "\n\n", text or USAGE_TEXT, "\n")
  return USAGE
end

-- Parses args[first..] by spec; returns options and positionals, or nil and a problem.
local function parse(args, first, spec)
  local opts, positional, i = {}, {}, first
  while args[i] do
    local name = args[i]:match("^%-%-([%w-]+)$")
    local kind = name and spec[name]
    if not name then
      positional[#positional + 1] = args[i]
    elseif not kind then
      return nil, "unknown option " .. args[i]
    elseif kind == "flag" then
      opts[name] = true
    elseif args[i + 1] == nil then
      return nil, "--" .. name .. " needs a value"
    else
      i = i + 1
      if kind == "list" then
        opts[name] = opts[name] or {}
        opts[name][#opts[name] + 1] = args[i]
      else
        opts[name] = args[i]
      end
    end
    i = i + 1
  end
  return opts, positional
end

-- The token from --token-file (first line) or the environment; never from a flag, which ps would show.
local function token(service, opts)
  if opts["token-file"] then
    local f, message = io.open(opts["token-file"])
    if not f then
      return nil, "cannot read the token file: " .. message
    end
    local t = f:read("l")
    f:close()
    return t
  end
  return os.getenv(TOKEN_ENV[service]) or nil, "no token: set " .. TOKEN_ENV[service] .. " or pass --token-file"
end

local function status_of(err)
  if CONTENT_ERRORS[err.code] then
    return INVALID
  elseif err.code == "invalid_argument" or err.code:find("^file_") then
    return USAGE
  elseif err.status == nil and (err.code:find("^[%u%d_]+$") or err.code == "outcome_unknown") then
    return NETWORK
  end
  return API_ERROR
end

local function report_error(err, as_json)
  if as_json then
    io.stdout:write(json.encode { error = { code = err.code, status = err.status, message = err.message,
      problems = err.problems } }, "\n")
  else
    io.stderr:write("csvup: ", tostring(err), "\n")
  end
  return status_of(err)
end

local function show(value, as_json, human)
  if as_json then
    io.stdout:write(json.encode(value), "\n")
  else
    io.stdout:write(human(value), "\n")
  end
end

local function describe_uploading(u)
  local parts = { format("uploading %s: %s", tostring(u.id), tostring(u.status)) }
  for _, k in ipairs { "line_quantity", "linked_quantity", "source_quantity", "provider", "type" } do
    if u[k] ~= nil then
      parts[#parts + 1] = format("%s=%s", k, tostring(u[k]))
    end
  end
  return concat(parts, " ")
end

local function describe_list(list)
  local lines = {}
  for i, u in ipairs(list) do
    lines[i] = describe_uploading(u)
  end
  return #lines > 0 and concat(lines, "\n") or "no uploadings"
end

local function number_option(opts, name)
  return opts[name] and tonumber(opts[name])
end

-- The upload arguments of a service command from its options: the file, the
-- check (--validate full|off), and the options the method takes as they are.
local function upload_args(command, opts, file)
  if opts.validate and opts.validate ~= "full" and opts.validate ~= "off" then
    return nil, "--validate takes full or off"
  end
  local args = { file = file, validate = opts.validate == "full" and "full" or opts.validate ~= "off",
    comment = opts.comment, tags = opts.tag }
  for _, name in ipairs(command.pass or {}) do
    args[(name:gsub("%-", "_"))] = opts[name]
  end
  return args
end

local function run_service(service, args)
  local name = args[2]
  local command = COMMANDS[service][name or ""]
  if name == nil or name == "--help" or name == "help" then
    print(service_usage(service))
    return name and OK or USAGE
  elseif not command then
    return usage("unknown " .. service .. " subcommand " .. name, service_usage(service))
  end
  local opts, positional = parse(args, 3, merge(COMMON, command.options))
  if not opts then
    return usage(positional, service_usage(service))
  elseif opts.help then
    print(service_usage(service))
    return OK
  elseif #positional ~= #command.args then
    return usage(format("%s %s takes %s", service, name, #command.args > 0 and concat(command.args, " ") or "no argument"),
      service_usage(service))
  end
  local secret, problem = token(service, opts)
  if not secret then
    return fail(USAGE, problem)
  end
  local client, err = csvup[service].new { token = secret, base_url = opts["base-url"], counter = opts.counter,
    app = opts.app, retries = number_option(opts, "retries") }
  if not client then
    return report_error(err, opts.json)
  end
  local status = RUNNERS[name](client, command, opts, positional)
  client:close()
  return status
end

local function run_upload(client, command, opts, positional)
  local args, problem = upload_args(command, opts, positional[1])
  if not args then
    return fail(USAGE, problem)
  end
  local bar = progress.new(command.method)
  args.progress = bar and bar.update
  local result, err = client[command.method](client, args)
  if bar then
    bar.finish()
  end
  if not result then
    return report_error(err, opts.json)
  end
  if opts.confirm then
    result, err = client:confirm_user_params(result)
    if not result then
      return report_error(err, opts.json)
    end
  end
  if opts.wait and command.kind then
    result, err = client:wait(result, { kind = command.kind, timeout = number_option(opts, "timeout"),
      interval = number_option(opts, "interval") })
    if not result then
      return report_error(err, opts.json)
    end
  end
  local human = command.method == "import_users" and function(r)
    local n = 0
    for _ in pairs(r.row_errors) do
      n = n + 1
    end
    return format("%s updates planned, %d rows refused", tostring(r.updates_planned), n)
  end or describe_uploading
  show(result, opts.json, human)
  return (result.status == "LINKAGE_FAILURE" or result.status == "linkage_failure") and UPLOAD_FAILED or OK
end

local function run_uploadings(client, _, opts)
  local kind = opts.kind or "offline"
  if not LISTS[kind] then
    return fail(USAGE, "--kind takes offline, calls, expense, user-params or crm")
  end
  local list, err = client[LISTS[kind]](client, { limit = number_option(opts, "limit"), offset = number_option(opts, "offset") })
  if not list then
    return report_error(err, opts.json)
  end
  show(list, opts.json, describe_list)
  return OK
end

local function run_wait(client, _, opts, positional)
  local kind = opts.kind or "offline"
  if not READS[kind] then
    return fail(USAGE, "--kind takes offline, calls, expense or user-params")
  end
  local u, err = client:wait(positional[1], { kind = kind, timeout = number_option(opts, "timeout"),
    interval = number_option(opts, "interval") })
  if not u then
    return report_error(err, opts.json)
  end
  show(u, opts.json, describe_uploading)
  return (u.status == "LINKAGE_FAILURE" or u.status == "linkage_failure") and UPLOAD_FAILED or OK
end

RUNNERS = setmetatable({ uploadings = run_uploadings, wait = run_wait }, {
  __index = function() return run_upload end,
})

local function run_validate(args)
  local opts, positional = parse(args, 2, { delimiter = "value", ["merge-field"] = "value", help = "flag" })
  if not opts then
    return usage(positional, VALIDATE_USAGE)
  elseif opts.help then
    print(VALIDATE_USAGE)
    return OK
  elseif #positional ~= 2 or not SCHEMAS[positional[1]] then
    return usage("validate takes a KIND and a FILE", VALIDATE_USAGE)
  end
  local kind, path = positional[1], positional[2]
  local ok, err = validate.file(SCHEMAS[kind], path,
    { full = true, delimiter = opts.delimiter, merge_field = opts["merge-field"] or "$user_id" })
  if ok then
    print(path .. ": valid for " .. kind)
    return OK
  end
  if err.problems then
    for _, p in ipairs(err.problems) do
      io.stderr:write(format("%s:%s: %s: %s\n", path, p.line, p.column, p.reason))
    end
    if err.problem_count > #err.problems then
      io.stderr:write(format("%s: %d more problems not listed\n", path, err.problem_count - #err.problems))
    end
    return INVALID
  end
  return report_error(err)
end

local function run_sandbox(args)
  local opts, problem = parse(args, 2, { port = "value", ["process-delay"] = "value", ["answer-delay"] = "value",
    help = "flag" })
  if not opts then
    return usage(problem, SANDBOX_USAGE)
  elseif opts.help then
    print(SANDBOX_USAGE)
    return OK
  end
  local port = tonumber(opts.port or "8080")
  local process_delay, answer_delay = tonumber(opts["process-delay"] or "0.5"), tonumber(opts["answer-delay"] or "0")
  if not port or not process_delay or not answer_delay then
    return usage("--port, --process-delay and --answer-delay take numbers", SANDBOX_USAGE)
  end
  local server, err = sandbox.new { port = port, process_delay = process_delay, answer_delay = answer_delay }
  if not server then
    return fail(API_ERROR, format("sandbox: cannot listen on port %d: %s", port, err))
  end
  io.stdout:write("csvup sandbox listening on ", server.url, "\n")
  io.stdout:flush()
  server:run()
  return OK
end

-- cli.main(args) -> exit status
function cli.main(args)
  local command = args[1]
  if command == "metrika" or command == "carrotquest" then
    return run_service(command, args)
  elseif command == "validate" then
    return run_validate(args)
  elseif command == "sandbox" then
    return run_sandbox(args)
  elseif command == "--help" or command == "help" then
    print(USAGE_TEXT)
    return OK
  end
  return usage(command and ("unknown command " .. command) or "no command")
end

return cli
