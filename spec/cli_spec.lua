-- The csvup command, run as a user runs it: a subprocess, its output and its exit status.
local json = require "csvup.json"
local support = require "support.sandbox"

local OK, API_ERROR, USAGE, INVALID, NETWORK, UPLOAD_FAILED = 0, 1, 2, 3, 4, 5

describe("csvup command", function()
  local sandbox, token_file

  setup(function()
    sandbox = support.start { ["process-delay"] = 0.2 }
    token_file = os.tmpname()
    local f = io.open(token_file, "w")
    f:write(support.TOKEN, "\n")
    f:close()
  end)

  teardown(function()
    sandbox.stop()
    os.remove(token_file)
  end)

  before_each(function()
    sandbox.reset()
  end)

  -- Runs `csvup ARGS` with the given environment; returns stdout, stderr, exit status.
  -- Each run has a journal of its own (XDG_STATE_HOME), so that no run answers another's upload.
  local function csvup(args, env)
    local out, err, state = os.tmpname(), os.tmpname(), os.tmpname()
    local ok, _, code = os.execute(("rm %s; XDG_STATE_HOME=%s %s %s lua/bin/csvup %s >%s 2>%s"):format(state, state,
      env or "", support.LUA, args, out, err))
    os.execute("rm -rf " .. state)
    local function slurp(path)
      local f = io.open(path)
      local text = f:read("a")
      f:close()
      os.remove(path)
      return text
    end
    return slurp(out), slurp(err), ok and 0 or code
  end

  local function metrika(args)
    return csvup(("metrika %s --counter 1 --base-url %s"):format(args, sandbox.url),
      "CSVUP_METRIKA_TOKEN=" .. support.TOKEN)
  end

  it("uploads offline conversions, waits for them, and says what happened", function()
    local out, _, code = metrika("upload-offline-conversions --comment crmsync --wait --interval 0.1 "
      .. "spec/fixtures/offline_conversions.csv")
    assert.are.equal(OK, code)
    assert.matches("uploading 9007199254740993: PROCESSED line_quantity=3", out)
    assert.matches("^crmsync csvup%x+$", sandbox.requests()[1].query.comment) -- the marker that finds a lost answer
  end)

  it("exits 5 when the awaited uploading ends in LINKAGE_FAILURE", function()
    local out, _, code = metrika("upload-offline-conversions --wait --interval 0.1 spec/fixtures/unmatched_conversions.csv")
    assert.are.equal(UPLOAD_FAILED, code)
    assert.matches("LINKAGE_FAILURE", out)
  end)

  it("exits 3 for a file that fails validation, and sends nothing", function()
    local _, err, code = metrika("upload-offline-conversions spec/fixtures/expenses.csv")
    assert.are.equal(INVALID, code)
    assert.matches("validation_failed", err)
    assert.are.same({}, sandbox.requests())
  end)

  it("exits 1 for an API error, 2 for usage, 4 for the network", function()
    local _, err, code = csvup(("metrika uploadings --counter 1 --base-url %s"):format(sandbox.url),
      "CSVUP_METRIKA_TOKEN=wrong")
    assert.are.same({ API_ERROR, true }, { code, err:find("invalid_token", 1, true) ~= nil })
    for _, args in ipairs { "upload-offline-conversions", "upload-offline-conversions --colour red x.csv",
      "frobnicate", "uploadings --kind leads", "uploadings --limit abc", "wait 1 --timeout 2h" } do
      assert.are.equal(USAGE, select(3, metrika(args)), args)
    end
    assert.are.equal(USAGE, select(3, csvup("metrika uploadings --counter 1"))) -- no token
    _, err, code = csvup("metrika uploadings --counter 1 --retries 0 --base-url http://127.0.0.1:1",
      "CSVUP_METRIKA_TOKEN=" .. support.TOKEN)
    assert.are.same({ NETWORK, true }, { code, err:find("COULDNT_CONNECT", 1, true) ~= nil })
    assert.are.equal(USAGE, select(3, csvup("launch")))
  end)

  it("takes the token from --token-file, and never shows it", function()
    local out, err, code = csvup(("metrika uploadings --counter 1 --kind expenses --json --base-url %s --token-file %s")
      :format(sandbox.url, token_file))
    assert.are.equal(OK, code)
    assert.are.same({}, json.decode(out))
    assert.is_nil((out .. err):find(support.TOKEN, 1, true))
  end)

  it("reads no more than a line's worth of a token file, and refuses one with no token on its first line", function()
    for _, path in ipairs { "/dev/zero", "/dev/null" } do
      local _, err, code = csvup(("metrika uploadings --counter 1 --base-url %s --token-file %s"):format(sandbox.url, path))
      assert.are.equal(USAGE, code, path)
      assert.matches("the token file " .. path, err, 1, true)
    end
  end)

  it("refuses a FIFO given as the file instead of waiting for it forever, with --check-targets or --encoding auto", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    for _, flag in ipairs { "--check-targets", "--encoding auto" } do
      local _, err, code = csvup(("metrika upload-offline-conversions %s --counter 1 --base-url %s %s"):format(flag,
        sandbox.url, fifo), "timeout 20 env CSVUP_METRIKA_TOKEN=" .. support.TOKEN)
      assert.are.equal(USAGE, code, flag)
      assert.matches("not a regular file", err, 1, true)
    end
    os.remove(fifo)
    assert.are.equal(0, #sandbox.requests())
  end)

  it("runs every Metrica upload subcommand", function()
    assert.are.equal(OK, select(3, metrika("upload-calls --new-goal-name Calls spec/fixtures/calls.csv")))
    assert.are.equal(OK, select(3, metrika("upload-expenses --provider fb spec/fixtures/expenses.csv")))
    assert.are.equal(OK, select(3, metrika("delete-expenses --provider fb spec/fixtures/expenses_delete.csv")))
    local out, _, code = metrika("upload-user-params --action update --content-id-type client_id --confirm --wait --interval 0.1 --json "
      .. "spec/fixtures/user_params.csv")
    assert.are.equal(OK, code)
    local values = {} -- one JSON value per result: the upload's answer at once, the final one after the wait
    for line in out:gmatch("[^\n]+") do
      values[#values + 1] = json.decode(line)
    end
    assert.are.same({ "is_processed", "processed" }, { values[1].status, values[2].status })
    local paths = {}
    for i, r in ipairs(sandbox.requests()) do
      paths[i] = r.method .. " " .. r.path:gsub("^/management/v1/counter/1", "")
    end
    assert.are.same({ "POST /offline_conversions/upload_calls", "POST /expense/upload", "POST /expense/delete",
      "POST /user_params/uploadings/upload", "POST /user_params/uploading/9007199254740996/confirm" },
      { paths[1], paths[2], paths[3], paths[4], paths[5] })
  end)

  it("lists each kind of uploading, and waits for one by id", function()
    assert.are.equal(OK, select(3, metrika("upload-expenses --provider fb spec/fixtures/expenses.csv")))
    for _, kind in ipairs { "offline-conversions", "calls", "expenses", "user-params", "crm" } do
      local out, _, code = metrika("uploadings --json --kind " .. kind)
      assert.are.equal(OK, code, kind)
      assert.are.equal(kind == "expenses" and 1 or 0, #json.decode(out), kind)
    end
    local out, _, code = metrika("wait 9007199254740993 --kind expenses --interval 0.1")
    assert.are.equal(OK, code)
    assert.matches("PROCESSED", out)
  end)

  it("imports users into Carrot quest with merge field, delimiter and tags", function()
    local out, _, code = csvup(("carrotquest import-users --merge-field '$email' --delimiter ';' --tag vip --tag imported "
      .. "--base-url %s spec/fixtures/carrotquest_users.csv"):format(sandbox.url), "CSVUP_CARROTQUEST_TOKEN=" .. support.TOKEN)
    assert.are.equal(OK, code)
    assert.matches("2 updates planned, 0 rows refused", out)
    assert.are.same({ '["vip","imported"]' }, sandbox.requests()[1].fields.tags)
    local _, err
    _, err, code = csvup(("carrotquest import-users --merge-field '$email' --delimiter ';' --base-url %s "
      .. "spec/fixtures/carrotquest_users.csv"):format(sandbox.url),
      "CSVUP_CARROTQUEST_TOKEN=nope")
    assert.are.same({ API_ERROR, true }, { code, err:find("PermissionDeniedError", 1, true) ~= nil })
  end)

  it("answers --help on every level", function()
    for _, args in ipairs { "--help", "metrika --help", "metrika upload-calls --help", "carrotquest --help",
      "validate --help", "sandbox --help" } do
      local out, _, code = csvup(args)
      assert.are.equal(OK, code, args)
      assert.matches("Usage: csvup", out, nil, false, args)
    end
  end)

  it("draws a progress bar that fits the terminal and names the file, and none when stderr is not one", function()
    local command = ("stty cols 60; CSVUP_METRIKA_TOKEN=%s %s lua/bin/csvup metrika upload-offline-conversions "
      .. "--no-journal --counter 1 --base-url %s --wait --interval 0.1 %s"):format(support.TOKEN, support.LUA, sandbox.url,
      support.big_csv())
    local pipe = io.popen("script -qec '" .. command .. "' /dev/null")
    local on_terminal = pipe:read("a")
    pipe:close()
    local name = support.big_csv():match("[^/]+$")
    assert.matches(name .. " %[[#.]+%] +%d+%% [%d.]+/([%d.]+) MB", on_terminal)
    assert.matches(name .. ": [%d.]+ MB sent, waiting for the answer", on_terminal)
    assert.matches("[\r\n]uploading 9007199254740993: UPLOADED", on_terminal) -- a status line per poll
    for drawn in on_terminal:gmatch("[^\r\n]+") do
      if drawn:find(name, 1, true) then -- the bar's lines; the result on stdout is whole
        assert.is_true(#drawn <= 60, drawn)
      end
    end
    local _, err, code = metrika("upload-offline-conversions " .. support.big_csv())
    assert.are.equal(OK, code)
    assert.is_nil(err:find("[", 1, true))
    assert.is_nil(err:find("\r", 1, true))
  end)
end)

-- The command as cron runs it (no terminal: stdout and stderr are files) and
-- as a user runs it on a terminal (through script), for what each reads.
describe("csvup command, from cron and on a terminal", function()
  local socket = require "socket"
  local files = require "support.files"
  local sandbox, slow, dir
  local STAMP = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ csvup: "
  -- "ClientId;Target;DateTime" and a Windows-1251 "Привет": an Excel export
  local EXCEL = "ClientId;Target;DateTime\r\n133591247640966458;\207\240\232\226\229\242;1481718166\r\n"

  setup(function()
    sandbox = support.start { ["process-delay"] = 0.2 }
    slow = support.start { ["process-delay"] = 1000 } -- an uploading that stays UPLOADED
    dir = files.tmpdir()
  end)

  teardown(function()
    sandbox.stop()
    slow.stop()
    files.remove(dir)
  end)

  before_each(function()
    sandbox.reset()
    slow.reset()
    os.execute("rm -rf " .. dir .. "/state")
  end)

  local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
  end

  -- The shell command that runs csvup ARGS against url, with a journal of the spec's own.
  local function command_line(args, url, env)
    return ("XDG_STATE_HOME=%s/state CSVUP_METRIKA_TOKEN=%s CSVUP_CARROTQUEST_TOKEN=%s %s %s lua/bin/csvup %s%s")
      :format(dir, support.TOKEN, support.TOKEN, env or "", support.LUA, args,
        url ~= false and " --base-url " .. (url or sandbox.url) or "")
  end

  -- Without a terminal: stdout, stderr, exit status.
  local function cron(args, url, env)
    local ok, _, code = os.execute(command_line(args, url, env) .. (" >%s/out 2>%s/err </dev/null"):format(dir, dir))
    return files.read(dir .. "/out"), files.read(dir .. "/err"), ok and 0 or code
  end

  -- On a terminal: what it showed (stdout and stderr, CRs dropped) and the exit status.
  local function terminal(shell)
    local pipe = io.popen("script -qec " .. quote("stty cols 100; " .. shell .. "; echo \"status $?\"") .. " /dev/null")
    local shown = pipe:read("a"):gsub("\r", "")
    pipe:close()
    local before, code = shown:match("^(.*)status (%d+)\n?$")
    return before or shown, tonumber(code)
  end

  local function lines(text)
    local list = {}
    for line in text:gmatch("[^\n]+") do
      list[#list + 1] = line
    end
    return list
  end

  it("logs each retry, the lost answer found by its marker and the journal's decision, time-stamped off a terminal",
    function()
    sandbox.fault { fault = "too_many_requests", count = 2, retry_after = 1 }
    sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
    local out, err, code = cron("metrika upload-expenses --counter 1 --provider fb spec/fixtures/expenses.csv")
    assert.are.equal(OK, code, err)
    assert.matches("^uploading %d+: UPLOADED", out)
    local log = lines(err)
    assert.matches("^" .. STAMP .. "attempt 2 of 4 after 429 quota_requests_by_ip, in 1%.0 s$", log[1])
    assert.matches("^" .. STAMP .. "attempt 3 of 4 after 429 quota_requests_by_ip, in 1%.0 s$", log[2])
    assert.matches("^" .. STAMP .. "the answer was lost after the request was sent whole", log[3])
    assert.matches("^" .. STAMP .. "the lost answer was found by its marker: uploading " .. out:match("%d+") .. "$",
      log[4])
    assert.matches("^" .. STAMP .. "the journal records spec/fixtures/expenses.csv as sent", log[5])
    assert.are.equal(5, #log)
    assert.are.equal(3, sandbox.posts()) -- two refused (429), one kept whose answer was lost: not sent again
    -- the rerun: the journal's decision
    err = select(2, cron("metrika upload-expenses --counter 1 --provider fb spec/fixtures/expenses.csv"))
    assert.matches("^" .. STAMP .. "spec/fixtures/expenses.csv was uploaded before %(the journal says so%): not sent "
      .. "again", err)
    -- --quiet: errors only
    sandbox.fault { fault = "too_many_requests", count = 1, retry_after = 1 }
    out, err, code = cron("metrika upload-expenses --counter 1 --provider quiet --quiet spec/fixtures/expenses.csv")
    assert.are.same({ OK, "" }, { code, err })
    assert.matches("^uploading %d+", out)
  end)

  it("logs the same lines on a terminal, without the time", function()
    sandbox.fault { fault = "too_many_requests", count = 1, retry_after = 1 }
    local shown, code = terminal(command_line("metrika upload-expenses --counter 1 --provider fb "
      .. "spec/fixtures/expenses.csv"))
    assert.are.equal(OK, code, shown)
    assert.matches("[\n ]csvup: attempt 2 of 4 after 429 quota_requests_by_ip, in 1%.0 s\n", shown)
    assert.is_nil(shown:find("%dZ csvup:"))
  end)

  it("gives every --json error the requests it took, and a usage error under --json as JSON on stderr", function()
    sandbox.fault { fault = "backend_error", count = 2 }
    local out, err, code = cron("metrika upload-expenses --counter 1 --json --retries 1 --resolve-timeout 0.5 "
      .. "--provider fb spec/fixtures/expenses.csv")
    assert.are.equal(NETWORK, code, err)
    local e = json.decode(out).error
    assert.are.same({ "outcome_unknown", 2 }, { e.code, e.attempts })
    out, err, code = cron("metrika upload-offline-conversions --counter 1 --json spec/fixtures/expenses.csv")
    assert.are.equal(INVALID, code, err)
    assert.are.same({ "validation_failed", 0 }, { json.decode(out).error.code, json.decode(out).error.attempts })
    for _, args in ipairs { "metrika upload-expenses --json --colour red x.csv", "metrika goals --json" } do
      out, err, code = cron(args, false)
      assert.are.same({ USAGE, "" }, { code, out }, args)
      e = json.decode(err).error
      assert.are.same({ "usage", "input", 0 }, { e.code, e.kind, e.attempts }, args)
    end
    local shown
    shown, code = terminal(command_line("metrika goals --json 2>&1 >/dev/null", false))
    assert.are.equal(USAGE, code)
    assert.are.equal("usage", json.decode(shown).error.code)
  end)

  it("prints one JSON value per result, a list always as an array; csvup validate --json lists the problems", function()
    local out, _, code = cron("metrika goals --counter 1 --json")
    assert.are.same({ OK, "[]\n" }, { code, out })
    out = cron("journal --json", false)
    assert.are.equal("[]\n", out)
    cron("metrika create-goal --counter 1 --name Paid --identifier paid")
    out = cron("metrika goals --counter 1 --json")
    assert.are.equal("paid", json.decode(out)[1].conditions[1].url)
    out, _, code = cron("validate offline-conversions --json spec/fixtures/calls.csv", false)
    assert.are.equal(INVALID, code)
    local report = json.decode(out)
    assert.are.same({ false, "Target", "the required column is missing" }, { report.valid,
      report.problems[4].column, report.problems[4].reason })
    assert.are.equal(report.problem_count, #report.problems)
    out, _, code = cron("validate offline-conversions --json spec/fixtures/offline_conversions.csv", false)
    assert.are.same({ OK, true }, { code, json.decode(out).valid })
    local shown
    shown, code = terminal(command_line("validate offline-conversions --json spec/fixtures/calls.csv", false))
    assert.are.same({ INVALID, 4 }, { code, json.decode(shown).problem_count })
  end)

  it("prints the uploading's id before waiting; SIGINT while polling names it and says only the wait stopped",
    function()
    os.remove(dir .. "/out")
    local pid = io.popen(("%s >%s/out 2>%s/err & echo $!; wait $!; echo $? >%s/status"):format(
      command_line("metrika upload-offline-conversions --counter 1 --wait spec/fixtures/offline_conversions.csv",
        slow.url), dir, dir, dir)):read("l")
    local out
    for _ = 1, 200 do
      out = files.peek(dir .. "/out")
      if out:find("\n") then
        break
      end
      os.execute("sleep 0.05")
    end
    local id = out:match("^uploading (%d+): UPLOADED")
    assert.is_not_nil(id, out)
    os.execute("kill -INT " .. pid)
    local status
    for _ = 1, 200 do
      status = files.peek(dir .. "/status")
      if status ~= "" then
        break
      end
      os.execute("sleep 0.05")
    end
    assert.are.equal("130", status:match("%d+"))
    assert.matches("\n" .. STAMP .. "stopped by SIGINT while waiting for uploading " .. id .. " to be processed: the "
      .. "upload was answered and stays; only the wait stopped %(csvup metrika wait " .. id .. " waits again%)\n$",
      files.read(dir .. "/err"))
    assert.are.equal(1, slow.posts())
  end)

  it("says how much of an interrupted body was sent, and that the service keeps nothing of it", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local url = "http://127.0.0.1:" .. port
    local go = dir .. "/go" -- made once part of the body has arrived
    server:settimeout(30)
    local function interrupted(shell)
      os.remove(go)
      local pipe = io.popen(shell)
      local client = assert(server:accept())
      client:settimeout(20)
      local got, problem = client:receive(200000) -- then it reads no more: the body stalls part way
      assert(got, tostring(problem) .. ": " .. tostring(files.read(dir .. "/err")))
      files.write(go, "")
      return pipe, client
    end
    -- without a terminal
    local pipe, client = interrupted(("%s >%s/out 2>%s/err & pid=$!; echo $pid; wait $pid; echo $? >%s/status"):format(
      command_line("metrika upload-offline-conversions --counter 1 --no-journal " .. support.big_csv(), url), dir, dir,
      dir))
    local pid = pipe:read("l")
    os.execute("kill -INT " .. pid)
    pipe:read("a")
    pipe:close()
    client:close()
    assert.are.equal("130", files.read(dir .. "/status"):match("%d+"))
    local err = files.read(dir .. "/err")
    local sent, total = err:match("stopped by SIGINT after (%d+) of (%d+) bytes of the request were sent: the service "
      .. "keeps nothing of an incomplete request, so nothing was uploaded\n$")
    assert.is_not_nil(sent, err)
    assert.is_true(tonumber(sent) > 0 and tonumber(sent) < tonumber(total))
    -- on a terminal: the bar part way, then the same words
    pipe, client = interrupted("script -qec " .. quote(command_line("metrika upload-offline-conversions --counter 1 "
      .. "--no-journal " .. support.big_csv(), url) .. " & pid=$!; timeout 30 sh -c 'until [ -e " .. go
      .. " ]; do sleep 0.05; done'; kill -INT $pid; wait $pid; echo status $?") .. " /dev/null")
    local shown = pipe:read("a")
    pipe:close()
    client:close()
    server:close()
    assert.matches("%[[#.]+%] +%d+%%", shown)
    assert.matches("\ncsvup: stopped by SIGINT after %d+ of %d+ bytes of the request were sent", shown:gsub("\r", "\n"))
    assert.matches("status 130", shown)
  end)

  it("polls from 1 s, the pause growing by half up to --interval (60 s); csvup metrika wait the same", function()
    local out = cron("metrika upload-offline-conversions --counter 1 --no-journal spec/fixtures/offline_conversions.csv",
      slow.url)
    local id = assert(out:match("^uploading (%d+)"))
    -- polls at 0, 1 and 2.5 s, then the last at 4.6 s when the timeout ends; the old 5 s pause made it 2
    local _, err, code = cron("metrika wait " .. id .. " --counter 1 --timeout 4.6", slow.url)
    assert.are.equal(NETWORK, code)
    assert.matches("still UPLOADED", err)
    local polls = 0
    for _, r in ipairs(slow.requests()) do
      polls = polls + (r.method == "GET" and 1 or 0)
    end
    assert.are.equal(4, polls)
    -- on a terminal, a status line per poll
    local shown
    shown, code = terminal(command_line("metrika wait " .. id .. " --counter 1 --timeout 4.6", slow.url))
    assert.are.equal(NETWORK, code)
    assert.are.equal(4, select(2, shown:gsub("uploading " .. id .. ": UPLOADED", "")))
  end)

  it("--dry-run prints the request as it would go out, the body converted, and sends nothing", function()
    local excel = files.write(dir .. "/export.csv", EXCEL)
    for _, env in ipairs { "", "env -u CSVUP_METRIKA_TOKEN" } do -- a dry run needs no token
      local out, err, code = cron("metrika upload-offline-conversions --counter 1 --comment crm --delimiter ';' "
        .. "--encoding cp1251 --dry-run " .. excel, nil, env)
      assert.are.equal(OK, code, err)
      assert.are.equal(table.concat({
        "POST " .. sandbox.url .. "/management/v1/counter/1/offline_conversions/upload?comment=crm",
        "Authorization: (the token, not shown)",
        "form file part: export.csv",
        "marker: csvup and 10 hex digits, added to the comment when sent",
        "body (its first 5 lines, as sent):",
        "ClientId,Target,DateTime",
        "133591247640966458,Привет,1481718166", "" }, "\n"), out)
    end
    local out, _, code = cron("carrotquest import-users --merge-field '$email' --delimiter ';' --dry-run --json "
      .. "spec/fixtures/carrotquest_users.csv")
    assert.are.equal(OK, code)
    local plan = json.decode(out)
    assert.are.same({ "POST", sandbox.url .. "/users/import", ";" }, { plan.method, plan.url, plan.fields.delimiter })
    out = cron("carrotquest import-users --merge-field '$email' --delimiter ';' --dry-run spec/fixtures/carrotquest_users.csv")
    assert.matches("\nform fields: app=$self_app delimiter=; merge_field=$email\n", out, 1, true) -- as sent: not URL-escaped
    out = cron("metrika create-goal --counter 1 --name Paid --identifier paid --dry-run")
    assert.matches('\nbody %(its first 5 lines, as sent%):\n{"goal":', out)
    local _, err
    _, err, code = cron("metrika upload-offline-conversions --counter 1 --dry-run spec/fixtures/expenses.csv")
    assert.are.equal(INVALID, code)
    assert.matches("validation_failed", err)
    local shown
    shown, code = terminal(command_line("metrika upload-expenses --counter 1 --provider fb --dry-run "
      .. "spec/fixtures/expenses.csv"))
    assert.are.equal(OK, code)
    assert.matches("POST " .. sandbox.url .. "/management/v1/counter/1/expense/upload?provider=fb\n", shown, 1, true)
    assert.is_nil(shown:find("[#", 1, true))
    assert.are.same({}, sandbox.requests())
  end)

  it("names the delimiter and the encoding of an Excel export in one message", function()
    local excel = files.write(dir .. "/export.csv", EXCEL)
    local hint = "this looks like an Excel export, ;-separated and in Windows-1251: pass --delimiter ';' --encoding "
      .. "cp1251 (or --delimiter auto --encoding auto)"
    local _, err, code = cron("metrika upload-offline-conversions --counter 1 " .. excel)
    assert.are.equal(INVALID, code)
    assert.matches(hint, err, 1, true)
    _, err, code = cron("validate offline-conversions " .. excel, false)
    assert.are.equal(INVALID, code)
    assert.matches(hint, err, 1, true)
    local shown = terminal(command_line("metrika upload-offline-conversions --counter 1 " .. excel))
    assert.matches(hint, shown, 1, true)
    assert.are.same({}, sandbox.requests())
  end)

  it("reads the base URL and the counter from CSVUP_BASE_URL and CSVUP_COUNTER", function()
    local out, err, code = cron("metrika goals", false, "CSVUP_BASE_URL=" .. sandbox.url .. " CSVUP_COUNTER=7")
    assert.are.same({ OK, "none\n" }, { code, out }, err)
    assert.are.equal("/management/v1/counter/7/goals", sandbox.requests()[1].path)
  end)

  it("prints a created goal, and an unknown option with the subcommand's usage", function()
    local out, _, code = cron("metrika create-goal --counter 1 --name Paid --identifier paid")
    assert.are.equal(OK, code)
    assert.matches("^goal %d+: Paid type=action identifier=paid\n$", out)
    local err
    _, err, code = cron("metrika upload-expenses --colour red x.csv", false)
    assert.are.equal(USAGE, code)
    assert.matches("^Usage: csvup metrika upload%-expenses ", err)
    assert.matches("unknown option '%-%-colour'", err)
    local shown = terminal(command_line("metrika upload-expenses --colour red x.csv", false))
    assert.matches("^Usage: csvup metrika upload%-expenses ", shown)
  end)

  it("lists a Carrot quest import in the journal by what it has", function()
    cron("carrotquest import-users --merge-field '$email' --delimiter ';' spec/fixtures/carrotquest_users.csv")
    local out = cron("journal", false)
    assert.matches("import_users .* updates_planned=2 rows_refused=0\n$", out)
    assert.is_nil(out:find("uploading nil", 1, true))
  end)
end)
