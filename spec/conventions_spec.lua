-- The habits every command line and Lua library keeps, kept by csvup too.
local csvup = require "csvup"
local json = require "csvup.json"
local support = require "support.sandbox"
local files = require "support.files"

local USAGE = 2

describe("the command line", function()
  local sandbox = support.sandbox()

  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  -- Runs `csvup ARGS` (stdin from input, when given); returns stdout, stderr, exit status.
  local function csvup_cli(args, input)
    local out, err = sandbox.tmp .. "/out", sandbox.tmp .. "/err"
    local stdin = input and files.write(sandbox.tmp .. "/in", input) or "/dev/null"
    local ok, _, code = os.execute(("XDG_STATE_HOME=%s CSVUP_METRIKA_TOKEN=%s %s lua/bin/csvup %s <%s >%s 2>%s")
      :format(sandbox.tmp, support.TOKEN, support.LUA, args, stdin, out, err))
    return files.read(out), files.read(err), ok and 0 or code
  end

  it("says its version, the one csvup.VERSION has", function()
    local out, _, code = csvup_cli("--version")
    assert.are.same({ 0, "csvup " .. csvup.VERSION .. "\n" }, { code, out })
  end)

  it("shows one command's help: each option's meaning, allowed values, default, and what is required", function()
    local out, _, code = csvup_cli("metrika upload-user-params --help")
    assert.are.equal(0, code)
    assert.matches("Usage: csvup metrika upload%-user%-params", out)
    assert.matches("%-%-action[^\n]*\n?[^\n]*update: set the keys' values", out)
    assert.matches("one of: update, delete_keys; required", out)
    assert.matches("%-%-content%-id%-type", out)
    assert.is_nil(out:find("upload-calls", 1, true)) -- that command alone
    out = csvup_cli("metrika delete-expense-line --help")
    assert.matches("YYYY%-MM%-DD or YYYY%-MM%-DD/YYYY%-MM%-DD; required", out)
  end)

  it("takes --opt=value as well as --opt value, and reads the file from stdin for -", function()
    local out, _, code = csvup_cli(("metrika upload-expenses --counter=1 --provider=fb --base-url=%s --json -")
      :format(sandbox.url), files.read("spec/fixtures/expenses.csv"))
    assert.are.equal(0, code)
    assert.are.equal("fb", json.decode(out).provider)
    assert.matches("1520.75", sandbox.requests()[1].file.content, 1, true)
  end)

  it("refuses numbers that are not numbers, and says what is required", function()
    for _, args in ipairs { "wait 1 --counter 1 --timeout 2h", "uploadings --counter 1 --limit abc",
      "wait 1 --counter 1 --interval 0" } do
      local _, err, code = csvup_cli("metrika " .. args)
      assert.are.equal(USAGE, code, args)
      assert.matches("not a", err, nil, false, args)
    end
    local _, err, code = csvup_cli("metrika uploadings")
    assert.are.equal(USAGE, code)
    assert.matches("^[%dT:Z-]* ?csvup: %-%-counter is required %(or set CSVUP_COUNTER%)\n$", err)
  end)

  it("has a subcommand for every method", function()
    for _, m in ipairs(require("csvup.registry").methods) do
      local out, _, code = csvup_cli(m.service .. " " .. m.name:gsub("_", "-") .. " --help")
      assert.are.equal(0, code, m.name)
      assert.matches(m.help:gsub("%p", "%%%0"), out, nil, false, m.name)
    end
  end)

  it("names the delimiter a file seems to use when its header does not fit", function()
    local path = files.write(sandbox.tmp .. "/excel.csv", "ClientId;Target;DateTime\n1;G;1481718166\n")
    local _, err, code = csvup_cli("validate offline-conversions " .. path)
    assert.are.equal(3, code)
    assert.matches("this file looks ;%-separated: pass %-%-delimiter ';'", err)
  end)

  it("sends unchecked with --validate off, and takes odd values without a traceback", function()
    local bad = files.write(sandbox.tmp .. "/bad.csv", "ClientId,Target,DateTime\n1,G,1481718166000\n")
    local _, _, code = csvup_cli(("metrika upload-offline-conversions --counter 1 --base-url %s --validate off %s")
      :format(sandbox.url, bad))
    assert.are.equal(1, code) -- sent: the service refused the row, not csvup
    assert.are.equal(1, #sandbox.requests())
    local err
    for _, args in ipairs { "validate offline-conversions --delimiter tab " .. bad, "journal --limit 0",
      "validate offline-conversions --delimiter ab " .. bad } do
      _, err, code = csvup_cli(args)
      assert.is_nil(err:find("traceback", 1, true), args)
      assert.is_true(code == 2 or code == 3, args)
    end
  end)

  it("says what is wrong with a token file, and trims its line end", function()
    local empty = files.write(sandbox.tmp .. "/empty", "")
    local _, err, code = csvup_cli("metrika uploadings --counter 1 --token-file " .. empty)
    assert.are.same({ USAGE, true }, { code, err:find("holds no token on its first line", 1, true) ~= nil })
    _, err, code = csvup_cli("metrika uploadings --counter 1 --token-file " .. sandbox.tmp .. "/none")
    assert.are.same({ USAGE, true }, { code, err:find("cannot be read", 1, true) ~= nil })
    local crlf = files.write(sandbox.tmp .. "/crlf", support.TOKEN .. "\r\n")
    _, _, code = csvup_cli(("metrika uploadings --counter 1 --token-file %s --base-url %s"):format(crlf, sandbox.url))
    assert.are.equal(0, code)
  end)
end)

describe("the Lua API", function()
  it("refuses an option new() does not know, listing the known ones", function()
    local m, err = csvup.metrika.new { token = "t", countr = 1 }
    assert.is_nil(m)
    assert.matches("unknown option countr %(known: .*counter", err.message)
  end)

  it("says so when a method is called with . instead of :", function()
    local m = assert(csvup.metrika.new { token = "t", counter = 1 })
    local ok, raised = pcall(m.upload_expenses, { file = "x.csv" })
    m:close()
    assert.is_false(ok)
    assert.matches("call it as client:upload_expenses", raised)
  end)

  it("takes rows = {} as no rows", function()
    local m = assert(csvup.metrika.new { token = "t", counter = 1 })
    local _, err = m:upload_expenses { rows = {} }
    m:close()
    assert.are.same({ "input", "invalid_argument" }, { err.kind, err.code })
  end)

  it("checks time and rate options when the client is made", function()
    for _, opts in ipairs { { rate = 0 }, { rate = 1 / 0 }, { retries = -1 }, { backoff = { base = 0 } } } do
      opts.token = "t"
      local c, err = csvup.carrotquest.new(opts)
      assert.is_nil(c)
      assert.are.equal("input", err.kind)
    end
  end)
end)
