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
    assert.are.equal("processed", json.decode(out).status)
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
    assert.are.equal("", err)
  end)
end)
