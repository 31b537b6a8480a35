-- The csvup command line.
local sandbox = require "csvup.sandbox"

local tonumber = tonumber

local cli = {}

local USAGE = [[
usage: csvup <command> [options]

commands:
  sandbox    run the local sandbox that emulates Metrica and Carrot quest
             --port N            port on 127.0.0.1 (default 8080; 0: any free one)
             --process-delay S   seconds until an uploading is final (default 0.5)
             --answer-delay S    seconds before every answer (default 0)

  csvup <command> --help shows this text.]]

local EXIT_OK, EXIT_USAGE = 0, 2

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

local COMMANDS = { sandbox = run_sandbox }

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
