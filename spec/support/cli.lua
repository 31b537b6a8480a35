-- Runs the csvup command line against a sandbox, with its journal under a
-- state folder (XDG_STATE_HOME), as a cron job would.
local files = require "support.files"
local support = require "support.sandbox"

local cli = {}

-- cli.command(sandbox, state, args) -> the shell command: the first two words
-- of args (service, command) get --base-url, except for `journal`.
function cli.command(sandbox, state, args)
  return ("XDG_STATE_HOME=%s CSVUP_METRIKA_TOKEN=%s CSVUP_CARROTQUEST_TOKEN=%s %s lua/bin/csvup %s"):format(
    state, support.TOKEN, support.TOKEN, support.LUA, (args:gsub("^((%a+) %S+)", function(head, service)
      return service == "journal" and head or head .. " --base-url " .. sandbox.url
    end)))
end

-- cli.run(sandbox, state, args, prefix?) -> stdout, stderr, exit status;
-- prefix goes before the command (another user, a limit).
function cli.run(sandbox, state, args, prefix)
  local out, err = sandbox.tmp .. "/out", sandbox.tmp .. "/err"
  local ok, _, code = os.execute(("%s %s >%s 2>%s"):format(prefix or "", cli.command(sandbox, state, args), out, err))
  return files.read(out), files.read(err), ok and 0 or code
end

-- cli.background(sandbox, state, args) -> the process id of the run started.
function cli.background(sandbox, state, args)
  local pipe = io.popen(cli.command(sandbox, state, args) .. " >/dev/null 2>&1 & echo $!")
  local pid = pipe:read("l")
  pipe:close()
  return pid
end

return cli
