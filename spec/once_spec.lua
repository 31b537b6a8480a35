-- Exactly once: a lost answer is found in the uploadings list instead of
-- sending the file again, and a rerun of the same upload (cron, a killed job)
-- is answered from the journal.
local core = require "csvup.core"
local csvup = require "csvup"
local journal = require "csvup.journal"
local json = require "csvup.json"
local support = require "support.sandbox"
local files = require "support.files"
local recorder = require "support.recorder"
local cli = require "support.cli"

local OK = 0

describe("exactly once", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }

  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)


  describe("a lost answer", function()
    local m

    before_each(function()
      m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url, resolve_timeout = 1 })
    end)

    after_each(function()
      m:close()
    end)

    it("is resolved from the offline-conversion uploadings, with one POST", function()
      sandbox.fault { fault = "lost_answer", path = "/upload" }
      local u, err = m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv", comment = "crm" }
      assert.is_nil(err)
      assert.are.equal(3, u.line_quantity)
      assert.matches("^crm csvup%x+$", u.comment)
      assert.are.equal(1, sandbox.posts())
      assert.are.equal("lost_answer", sandbox.requests()[1].fault)
    end)

    it("is resolved from the uploadings of its own type, CALLS or CHATS, with one POST", function()
      for kind, path in pairs { CALLS = "spec/fixtures/calls.csv", CHATS = "spec/fixtures/offline_conversions.csv" } do
        sandbox.reset()
        sandbox.fault { fault = "lost_answer", path = "/upload" }
        local u, err = m:upload_offline_conversions { file = path, type = kind }
        assert.is_nil(err)
        assert.are.equal(kind, u.type)
        assert.are.equal(1, sandbox.posts())
        local listed = sandbox.requests()[2]
        assert.are.same({ "GET" }, { listed.method, listed.query.type }) -- the list takes no type: its items say it
      end
    end)

    it("is resolved from the expense uploadings, with one POST", function()
      sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
      local u = assert(m:upload_expenses { file = "spec/fixtures/expenses.csv", provider = "fb" })
      assert.are.equal("fb", u.provider)
      assert.are.equal(1, sandbox.posts())
      assert.are.equal("PROCESSED", assert(m:wait(u, { interval = 0.05 })).status) -- its kind is known
    end)

    it("stays outcome_unknown when the upload is not listed, naming its marker", function()
      sandbox.fault { fault = "drop_after_body", path = "/expense/upload" }
      local _, err = m:upload_expenses { file = "spec/fixtures/expenses.csv" }
      assert.are.same({ "network", "outcome_unknown" }, { err.kind, err.code })
      assert.matches("^csvup%x+$", err.marker)
      assert.are.equal(1, sandbox.posts())
    end)
  end)

  describe("the journal, from the command line", function()
    local state

    before_each(function()
      state = files.tmpdir()
    end)

    after_each(function()
      files.remove(state)
    end)

    -- Runs csvup with its journal under state; returns stdout, stderr, exit status.
    local function csvup_cli(args, background)
      if background then
        return cli.background(sandbox, state, args)
      end
      return cli.run(sandbox, state, args)
    end

    local function upload(file, more)
      return csvup_cli(("metrika upload-expenses --counter 1 --json %s %s"):format(more or "", file))
    end

    it("answers a rerun of the same file from the journal, sending nothing", function()
      local out, _, code = upload("spec/fixtures/expenses.csv")
      assert.are.equal(OK, code)
      local first = json.decode(out)
      local err
      out, err, code = csvup_cli("metrika upload-expenses --counter 1 spec/fixtures/expenses.csv")
      assert.are.equal(OK, code)
      assert.matches("uploading " .. first.id, out)
      assert.matches("uploaded before", err)
      assert.are.equal(1, sandbox.posts())
      out = csvup_cli("journal --json")
      local entries = json.decode(out)
      assert.are.same({ "finished", tostring(first.id), "upload_expenses" },
        { entries[1].state, entries[1].uploading_id, entries[1].endpoint })
    end)

    it("sends a changed file, and the same file again with --force", function()
      local path = files.write(sandbox.tmp .. "/costs.csv", files.read("spec/fixtures/expenses.csv"))
      assert.are.equal(OK, select(3, upload(path)))
      files.write(path, files.read("spec/fixtures/expenses.csv") .. "2026-11-03,google,autumn,5.00,RUB,1\n")
      assert.are.equal(OK, select(3, upload(path)))
      assert.are.equal(2, sandbox.posts())
      assert.are.equal(OK, select(3, upload(path, "--force")))
      assert.are.equal(3, sandbox.posts())
      assert.are.equal(OK, select(3, upload(path, "--no-journal")))
      assert.are.equal(4, sandbox.posts())
    end)

    it("after kill -9 during the answer, finds the upload instead of sending it again", function()
      sandbox.fault { fault = "slow", delay = 30, path = "/expense/upload" }
      local pid = csvup_cli("metrika upload-expenses --counter 1 spec/fixtures/expenses.csv", true)
      for _ = 1, 100 do -- until the upload has arrived
        if sandbox.posts() == 1 then
          break
        end
        os.execute("sleep 0.05")
      end
      assert.are.equal(1, sandbox.posts())
      os.execute("kill -9 " .. pid)
      local out, _, code = csvup_cli("metrika upload-expenses --counter 1 spec/fixtures/expenses.csv")
      assert.are.equal(OK, code)
      assert.matches("uploading %d+", out)
      assert.are.equal(1, sandbox.posts())
    end)

    it("sends the file once when two runs start at once", function()
      sandbox.fault { fault = "slow", delay = 0.5, path = "/expense/upload" }
      local pipes = {}
      for i = 1, 2 do
        pipes[i] = io.popen(("XDG_STATE_HOME=%s CSVUP_METRIKA_TOKEN=%s %s lua/bin/csvup metrika upload-expenses "
          .. "--counter 1 --base-url %s spec/fixtures/expenses.csv 2>&1; echo status $?"):format(state, support.TOKEN,
          support.LUA, sandbox.url))
      end
      for i = 1, 2 do
        local text = pipes[i]:read("a")
        pipes[i]:close()
        assert.matches("status 0", text)
        assert.matches("uploading %d+", text)
      end
      assert.are.equal(1, sandbox.posts())
    end)

    it("keeps a batch from sending again what the journal says was sent", function()
      local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url,
        journal = state .. "/journal.sqlite3" })
      local jobs = { { client = m, method = "upload_expenses", args = { file = "spec/fixtures/expenses.csv" } } }
      local first = csvup.batch(jobs)[1][1]
      assert.matches("^csvup%x+$", sandbox.requests()[1].query.comment) -- marked, as a single call is
      assert.are.equal(first.id, csvup.batch(jobs)[1][1].id)
      m:close()
      assert.are.equal(1, sandbox.posts())
    end)

    it("keeps Carrot quest from importing the same file twice", function()
      local args = "carrotquest import-users --merge-field '$email' --delimiter ';' spec/fixtures/carrotquest_users.csv"
      assert.are.equal(OK, select(3, csvup_cli(args)))
      local out, _, code = csvup_cli(args)
      assert.are.equal(OK, code)
      assert.matches("updates planned", out)
      assert.are.equal(1, sandbox.posts())
    end)
  end)

  describe("the journal, from Lua", function()
    local state, path

    before_each(function()
      state = files.tmpdir()
      path = state .. "/journal.sqlite3"
    end)

    after_each(function()
      files.remove(state)
    end)

    local function metrika(opts)
      opts.token, opts.counter, opts.journal = support.TOKEN, 1, path
      opts.base_url = opts.base_url or sandbox.url
      return assert(csvup.metrika.new(opts))
    end

    local function entries()
      local j = assert(journal.open(path))
      local list = assert(j:list())
      j:close()
      return list
    end

    it("sends the real upload after a rehearsal against the sandbox, and lists where each went", function()
      local rehearsal = metrika {}
      assert(rehearsal:upload_expenses { file = "spec/fixtures/expenses.csv" })
      rehearsal:close()
      local server = recorder.start()
      server.answer { { method = "POST", path = "/expense/upload", body = '{"uploading":{"id":77,"status":"UPLOADED"}}' } }
      local live = metrika { base_url = server.url }
      local u, err, note = live:upload_expenses { file = "spec/fixtures/expenses.csv" }
      live:close()
      local sent = #server.requests()
      server.stop()
      assert.is_nil(err)
      assert.are.same({ 77, nil, 1 }, { u.id, note, sent })
      local list = entries()
      assert.are.same({ server.url, sandbox.url }, { list[1].base_url, list[2].base_url })
    end)

    -- Imports the users' fixture with token through a journaled client: result, note.
    local function import(token, url)
      local c = assert(csvup.carrotquest.new { token = token, base_url = url, journal = path })
      local r, err, note = c:import_users { file = "spec/fixtures/carrotquest_users.csv", merge_field = "$email",
        delimiter = ";" }
      c:close()
      assert.is_nil(err)
      return r, note
    end

    it("answers a rerun of a Carrot quest import from the journal in the shape the service's answer had", function()
      local server = recorder.start()
      server.answer { { method = "POST", path = "/users/import",
        body = '{"meta":{"status":200},"data":{"row_errors":{"2":"bad date","7":"no email"},"updates_planned":3}}' } }
      local results = {}
      for i = 1, 2 do
        results[i] = { import("t", server.url) }
      end
      server.stop()
      assert.are.same({ row_errors = { [2] = "bad date", [7] = "no email" }, updates_planned = 3 }, results[1][1])
      assert.are.same(results[1][1], results[2][1])
      assert.are.equal("journal", results[2][2])
    end)

    it("records a Carrot quest import with no uploading id, and what its answer says", function()
      local server = recorder.start()
      server.answer { { method = "POST", path = "/users/import",
        body = '{"meta":{"status":200},"data":{"row_errors":{},"updates_planned":3}}' } }
      import("t", server.url)
      server.stop()
      local entry = entries()[1]
      assert.are.same({ "finished", nil }, { entry.state, entry.uploading_id })
      assert.matches("updates_planned=3 rows_refused=0$", journal.describe(entry))
    end)

    it("imports the same file into two Carrot quest projects, keeping no token", function()
      local server = recorder.start()
      server.answer { { method = "POST", path = "/users/import",
        body = '{"meta":{"status":200},"data":{"row_errors":{},"updates_planned":3}}' } }
      local notes = {}
      for i, token in ipairs { "project-a-token", "project-b-token", "project-a-token" } do
        local r, note = import(token, server.url)
        assert.are.equal(3, r.updates_planned)
        notes[i] = note or "sent"
      end
      local sent = #server.requests()
      server.stop()
      assert.are.same({ "sent", "sent", "journal" }, notes)
      assert.are.equal(2, sent)
      local list = entries()
      assert.matches("^token %x+$", list[1].account)
      assert.are_not.equal(list[1].account, list[2].account)
      for _, file in ipairs { path, path .. "-wal" } do
        local f = io.open(file, "rb")
        local bytes = f and f:read("a") or ""
        if f then
          f:close()
        end
        assert.is_nil(bytes:find("project-", 1, true))
      end
    end)

    it("fails the second of two identical jobs in a batch at once, sending one, whichever client has it", function()
      local m, other = metrika {}, metrika {} -- two clients, one journal file
      for _, clients in ipairs { { m, m }, { m, other } } do
        sandbox.reset()
        local args = { file = "spec/fixtures/expenses.csv", provider = clients[2] == m and "same" or "other" }
        local started = core.now()
        local results = csvup.batch { { client = clients[1], method = "upload_expenses", args = args },
          { client = clients[2], method = "upload_expenses", args = args } }
        local took = core.now() - started
        assert.is_number(results[1][1].id)
        assert.is_nil(results[2][1])
        assert.are.equal("in_progress", results[2][2].code)
        assert.is_true(took < 60)
        assert.are.equal(1, sandbox.posts())
      end
      m:close()
      other:close()
    end)

    it("looks up an upload whose outcome was unknown when the same process sends it again", function()
      local m = metrika { retries = 0, resolve_timeout = 0 }
      sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
      sandbox.fault { fault = "backend_error", path = "/expense/uploadings" }
      local _, err = m:upload_expenses { file = "spec/fixtures/expenses.csv" }
      assert.are.equal("outcome_unknown", err.code)
      local started = core.now()
      local u, again, note = m:upload_expenses { file = "spec/fixtures/expenses.csv" }
      local took = core.now() - started
      m:close()
      assert.is_nil(again)
      assert.are.same({ "journal", 1 }, { note, sandbox.posts() })
      assert.is_number(u.id)
      assert.is_true(took < 60)
      assert.are.equal("finished", entries()[1].state)
    end)
  end)
end)
