-- Exactly once when the world misbehaves: a lookup whose list fails, lags or
-- spans pages, a gateway page after the body went out, a journal that cannot
-- record, and a multi-step upload run again. Each case counts the uploads the
-- server received.
local csvup = require "csvup"
local json = require "csvup.json"
local support = require "support.sandbox"
local files = require "support.files"
local journal_lock = require "support.journal_lock"
local cli = require "support.cli"

local OK, NETWORK, UNRECORDED = 0, 4, 7
local EXPENSES = "spec/fixtures/expenses.csv"

describe("an unknown outcome", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  local state

  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    state = files.tmpdir()
  end)

  after_each(function()
    files.remove(state)
  end)

  -- How many requests the sandbox received whose path ends with suffix, by method.
  local function received(method, suffix)
    local n = 0
    for _, r in ipairs(sandbox.requests()) do
      n = n + ((r.method == method and r.path:sub(-#suffix) == suffix) and 1 or 0)
    end
    return n
  end

  local function lists(behaviour)
    local status = support.call(sandbox.url, { method = "POST", path = "/_sandbox/lists", token = false,
      body = json.encode(behaviour), content_type = "application/json" })
    assert.are.equal(200, status)
  end

  local function metrika(opts)
    opts.token, opts.counter, opts.base_url = support.TOKEN, 1, sandbox.url
    opts.journal = opts.journal == nil and state .. "/journal.sqlite3" or opts.journal
    return assert(csvup.metrika.new(opts))
  end

  local function run(args, prefix)
    return cli.run(sandbox, state, args, prefix)
  end

  describe("with a list that fails", function()
    it("stays outcome_unknown on every rerun until the list answers, sending once", function()
      sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
      sandbox.fault { fault = "html_500", path = "/expense/uploadings", count = 1000 }
      local args = "metrika upload-expenses --counter 1 --retries 1 --resolve-timeout 0.5 " .. EXPENSES
      local _, err, code = run(args)
      assert.are.equal(NETWORK, code)
      assert.matches("outcome_unknown", err)
      assert.matches("its marker: csvup%x+", err)
      _, err, code = run(args) -- a cron rerun while the list still fails
      assert.are.equal(NETWORK, code)
      assert.matches("outcome_unknown", err)
      assert.are.equal(1, received("POST", "/expense/upload"))
      sandbox.fault { clear = true } -- the list answers again: the rerun finds the upload
      local out
      out, _, code = run(args)
      assert.are.equal(OK, code)
      assert.matches("uploading %d+", out)
      assert.are.equal(1, received("POST", "/expense/upload"))
    end)

    for _, fault in ipairs {
      { fault = "too_many_requests", count = 1000 },
      { fault = "slow", delay = 2, count = 1000 },
      { fault = "backend_error", count = 1000 },
    } do
      it("keeps the upload unknown while the list answers " .. fault.fault .. ", then finds it", function()
        sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
        fault.path = "/expense/uploadings"
        sandbox.fault(fault)
        for _ = 1, 2 do -- the first run, and a rerun
          local m = metrika { retries = 1, backoff = { base = 0.01, max = 0.05 }, timeout = 0.5, resolve_timeout = 0.3 }
          local u, err = m:upload_expenses { file = EXPENSES }
          m:close()
          assert.is_nil(u)
          assert.are.same({ "network", "outcome_unknown", "unknown" }, { err.kind, err.code, err.lookup })
          assert.matches("^csvup%x+$", err.marker)
        end
        assert.are.equal(1, received("POST", "/expense/upload"))
      end)
    end
  end)

  describe("with a list that lags", function()
    it("is found by a rerun after kill -9, which waits out the lag instead of sending again", function()
      lists { lag = 2 }
      sandbox.fault { fault = "slow", delay = 30, path = "/expense/upload" }
      local pid = cli.background(sandbox, state, "metrika upload-expenses --counter 1 " .. EXPENSES)
      for _ = 1, 200 do -- until the upload has arrived
        if received("POST", "/expense/upload") == 1 then
          break
        end
        os.execute("sleep 0.05")
      end
      os.execute("kill -9 " .. pid)
      local out, _, code = run("metrika upload-expenses --counter 1 " .. EXPENSES)
      assert.are.equal(OK, code)
      assert.matches("uploading %d+", out)
      assert.are.equal(1, received("POST", "/expense/upload"))
    end)

    it("is found by the run that lost the answer", function()
      lists { lag = 1 }
      sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
      local m = metrika { resolve_timeout = 5 }
      local u, err = m:upload_expenses { file = EXPENSES }
      m:close()
      assert.is_nil(err)
      assert.is_number(u.id)
      assert.are.equal(1, received("POST", "/expense/upload"))
    end)
  end)

  describe("with more than a page of uploadings", function()
    for _, order in ipairs { "oldest_first", "newest_first" } do
      it("reads the list page by page until it finds the upload (" .. order .. ")", function()
        lists { counter = 1, kind = "expense", older = 10050, order = order }
        sandbox.fault { fault = "lost_answer", path = "/expense/upload" }
        local m = metrika { journal = false, resolve_timeout = 0 }
        local u, err = m:upload_expenses { file = EXPENSES }
        m:close()
        assert.is_nil(err)
        assert.matches("^csvup%x+$", u.comment)
        assert.are.equal(1, received("POST", "/expense/upload"))
      end)
    end

    it("stops at a page that holds only older uploadings, newest first: not listed", function()
      lists { counter = 1, kind = "expense", older = 20050, order = "newest_first" }
      sandbox.fault { fault = "drop_after_body", path = "/expense/upload" }
      local m = metrika { journal = false, resolve_timeout = 0 }
      local _, err = m:upload_expenses { file = EXPENSES }
      m:close()
      assert.are.same({ "outcome_unknown", "absent" }, { err.code, err.lookup })
      assert.are.equal(1, received("GET", "/expense/uploadings"))
    end)
  end)

  describe("with a gateway page after the body went out", function()
    for _, fault in ipairs { "gateway_504", "gateway_502" } do
      it("finds the Metrica upload (" .. fault .. ") and answers the rerun from the journal", function()
        sandbox.fault { fault = fault, path = "/expense/upload" }
        local args = "metrika upload-expenses --counter 1 --json " .. EXPENSES
        local out, _, code = run(args)
        assert.are.equal(OK, code)
        local first = json.decode(out)
        out, _, code = run(args)
        assert.are.equal(OK, code)
        assert.are.equal(first.id, json.decode(out).id)
        assert.are.equal(1, received("POST", "/expense/upload"))
        assert.are.equal("finished", json.decode((run("journal --json")))[1].state)
      end)
    end

    it("leaves a Carrot quest import outcome_unknown, and the rerun does not import again", function()
      sandbox.fault { fault = "gateway_504", path = "/users/import" }
      local args = "carrotquest import-users --merge-field '$email' --delimiter ';' spec/fixtures/carrotquest_users.csv"
      local _, err, code = run(args)
      assert.are.equal(NETWORK, code)
      assert.matches("outcome_unknown", err)
      _, err, code = run(args)
      assert.are.equal(NETWORK, code)
      assert.matches("check it by hand", err)
      assert.are.equal(1, received("POST", "/users/import"))
    end)

    it("takes the service's own 4xx as a refusal, which a rerun sends again", function()
      local m = metrika { resolve_timeout = 0 }
      sandbox.fault { fault = "too_many_requests", path = "/expense/upload", retry_after = 3600 }
      local _, err = m:upload_expenses { file = EXPENSES }
      assert.are.same({ "api", 429 }, { err.kind, err.status })
      assert(m:upload_expenses { file = EXPENSES })
      m:close()
      assert.are.equal(2, received("POST", "/expense/upload"))
    end)
  end)

  describe("and a progress callback that fails once the body went out", function()
    it("reports the callback's error, and the rerun finds the upload instead of sending it again", function()
      sandbox.fault { fault = "slow", delay = 1, path = "/expense/upload" }
      local m = metrika {}
      local _, err = m:upload_expenses { file = EXPENSES, progress = function(sent, total)
        if sent == total then
          error("the progress bar broke")
        end
      end }
      assert.are.same({ "internal", "callback_error", true }, { err.kind, err.code, err.request_sent })
      assert.matches("the progress bar broke", tostring(err))
      local result = assert(m:upload_expenses { file = EXPENSES })
      m:close()
      assert.are.equal(1, received("POST", "/expense/upload"))
      local entries = json.decode((run("journal --json --journal " .. state .. "/journal.sqlite3")))
      assert.are.equal("finished", entries[1].state)
      assert.is_number(result.id)
    end)
  end)

  describe("and a journal that cannot record it", function()
    it("is reported with its own exit status, and the rerun finds the upload", function()
      local path = state .. "/csvup/journal.sqlite3"
      sandbox.fault { fault = "slow", delay = 2, path = "/expense/upload" }
      local pipe = io.popen(cli.command(sandbox, state, "metrika upload-expenses --counter 1 " .. EXPENSES)
        .. " 2>&1")
      for _ = 1, 200 do -- until the upload has arrived (and so is recorded as started)
        if received("POST", "/expense/upload") == 1 then
          break
        end
        os.execute("sleep 0.05")
      end
      -- another process holds the journal from before the answer until the 10 s a write waits are over
      local release = journal_lock.hold(path, "BEGIN IMMEDIATE;")
      local text = pipe:read("a")
      local _, _, code = pipe:close()
      release()
      assert.are.equal(UNRECORDED, code)
      assert.matches("uploading %d+ of " .. EXPENSES .. " could not be recorded in the journal", text)
      assert.matches(path, text, 1, true)
      assert.matches("\nuploading %d+", text) -- the result itself, still printed
      local out
      out, _, code = run("metrika upload-expenses --counter 1 --resolve-timeout 1 " .. EXPENSES)
      assert.are.equal(OK, code)
      assert.matches("uploading %d+", out)
      assert.are.equal(1, received("POST", "/expense/upload"))
    end)
  end)

  describe("of a user-parameter upload with --confirm", function()
    local args = "metrika upload-user-params --counter 1 --action update --content-id-type client_id --confirm --json "
      .. "spec/fixtures/user_params.csv"

    it("is not confirmed again by a rerun", function()
      assert.are.equal(OK, select(3, run(args)))
      local out, err, code = run(args)
      assert.are.equal(OK, code, err)
      assert.is_table(json.decode(out:match("[^\n]+"))) -- one JSON value a line: the uploading, then the result
      assert.matches("confirmed by an earlier run", err)
      assert.are.same({ 1, 1 }, { received("POST", "/upload"), received("POST", "/confirm") })
    end)

    it("is confirmed by a rerun, with the content_id_type the journal kept, when the first run could not", function()
      sandbox.fault { fault = "too_many_requests", path = "/confirm", retry_after = 3600 }
      assert.are_not.equal(OK, select(3, run(args)))
      local _, err, code = run(args)
      assert.are.equal(OK, code, err)
      assert.are.same({ 1, 2 }, { received("POST", "/upload"), received("POST", "/confirm") })
      local confirmed = sandbox.requests()
      assert.are.equal("client_id", json.decode(confirmed[#confirmed].body).uploading.content_id_type)
    end)
  end)
end)
