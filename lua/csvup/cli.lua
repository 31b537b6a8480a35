-- The csvup command line.
local sandbox = require "csvup.sandbox"
local validate = require "csvup.validate"

local tonumber, tostring, ipairs = tonumber, tostring, ipairs

local cli = {}

local USAGE = [[
usage: csvup <command> [options]

commands:
  validate KIND FILE   check a CSV file as an upload would, every row, and send nothing
             KIND: offline-conversions, calls, expenses, expenses-delete, user-params,
                   crm-simple-orders, carrotquest-users
             --delimiter D       the file's delimiter (default ","; "auto" to sniff)
             --merge-field F     carrotquest-users: $user_id (default) or $email
             exit status 0: valid, 3: problems found (listed on stderr), 2: usage

  sandbox    run the local sandbox that emulates Metrica and Carrot quest
             --port N            port on 127.0.0.1 (default 8080; 0: any free one)
             --process-delay S   seconds until an uploading is final (default 0.5)
             --answer-delay S    seconds before every answer (default 0)

  csvup <command> --help shows this text.]]

local EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3

local SCHEMAS = {
  ["offline-conversions"] = "offline_conversions", calls = "calls", expenses = "expenses",
  ["expenses-delete"] = "expenses_delete", ["user-params"] = "user_params",
  ["crm-simple-orders"] = "crm_simple_orders", ["carrotquest-users"] = "carrotquest_users",
}
-- Errors that describe the file's content rather than the command.
local CONTENT_ERRORS = { validation_failed = true, invalid_utf8 = true, malformed_csv = true }

local function usage(problem)
  io.stderr:write("csvup: ", problem, "\n\n", USAGE, "\n")
  return EXIT_USAGE
end

-- "--name value" pairs into a table; nil and a message on anything else.
local function parse_options(args, first, known)
  local opts = {}
  local i = first
  while args[i] do
    local name = args[i]:match("^%-%-([%w-]+)$")
    if name == "help" then
      return { help = true }
    elseif not name or not known[name] then
      return nil, "unknown option " .. args[i]
    elseif args[i + 1] == nil then
      return nil, "--" .. name .. " needs a value"
    end
    opts[name] = args[i + 1]
    i = i + 2
  end
  return opts
end

local function run_sandbox(args)
  local opts, problem = parse_options(args, 2, { port = true, ["process-delay"] = true, ["answer-delay"] = true })
  if not opts then
    return usage(problem)
  elseif opts.help then
    print(USAGE)
    return EXIT_OK
  end
  local port = tonumber(opts.port or "8080")
  local process_delay, answer_delay = tonumber(opts["process-delay"] or "0.5"), tonumber(opts["answer-delay"] or "0")
  if not port or not process_delay or not answer_delay then
    return usage("--port, --process-delay and --answer-delay take numbers")
  end
  local server, err = sandbox.new { port = port, process_delay = process_delay, answer_delay = answer_delay }
  if not server then
    io.stderr:write("csvup sandbox: cannot listen on port ", port, ": ", err, "\n")
    return 1
  end
  io.stdout:write("csvup sandbox listening on ", server.url, "\n")
  io.stdout:flush()
  server:run()
  return EXIT_OK
end

local function run_validate(args)
  local kind, path = args[2], args[3]
  if kind == "--help" then
    print(USAGE)
    return EXIT_OK
  end
  local opts, problem = parse_options(args, 4, { delimiter = true, ["merge-field"] = true })
  if not opts then
    return usage(problem)
  elseif not SCHEMAS[kind] or not path then
    return usage("validate takes a KIND and a FILE")
  end
  local ok, err = validate.file(SCHEMAS[kind], path,
    { full = true, delimiter = opts.delimiter, merge_field = opts["merge-field"] or "$user_id" })
  if ok then
    print(path .. ": valid for " .. kind)
    return EXIT_OK
  end
  if err.problems then
    for _, p in ipairs(err.problems) do
      io.stderr:write(("%s:%s: %s: %s\n"):format(path, p.line, p.column, p.reason))
    end
    if err.problem_count > #err.problems then
      io.stderr:write(("%s: %d more problems not listed\n"):format(path, err.problem_count - #err.problems))
    end
  else
    io.stderr:write(tostring(err), "\n")
  end
  return CONTENT_ERRORS[err.code] and EXIT_INVALID or err.code:find("^file_") and EXIT_USAGE or EXIT_FAILED
end

local COMMANDS = { sandbox = run_sandbox, validate = run_validate }

function cli.main(args)
  local command = args[1]
  if command == nil or command == "--help" or command == "help" then
    print(USAGE)
    return command and EXIT_OK or EXIT_USAGE
  end
  local run = COMMANDS[command]
  if not run then
    return usage("unknown command " .. command)
  end
  return run(args)
end

return cli
