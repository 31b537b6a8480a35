-- The upload journal on a real SQLite file, shared by real processes.
local core = require "csvup.core"
local files = require "support.files"
local journal_lock = require "support.journal_lock"
local journal = require "csvup.journal"
local support = require "support.sandbox"

-- A child process: opens the journal when dir/go appears, begins the upload,
-- prints the state, and stays alive until dir/done appears (at most 10 s).
local CHILD = [[
local core = require "csvup.core"
local dir, mode = arg[1], arg[2]
local deadline = core.now() + 10
local function wait_for(name)
  while core.now() < deadline do
    local f = io.open(dir .. "/" .. name)
    if f then
      f:close()
      return
    end
    core.sleep(0.005)
  end
end
if mode == "race" then
  wait_for("go")
end
local j = assert(core.journal_open(dir .. "/journal.sqlite3"))
local entry = assert(j:begin { service = "metrika", base_url = "https://api-metrika.yandex.net", counter = "42",
  endpoint = "upload_expenses", hash = "cafe" })
if mode == "release" then -- its outcome unknown, this process no longer sends it
  assert(j:release(entry.id))
end
io.write(entry.state, "\n")
io.stdout:flush()
if mode ~= "die" then
  wait_for("done")
end
os.exit(0) -- no finish: a process that dies leaves its entry started
]]

local function stat_mode(path)
  local p = io.popen("stat -c %a " .. path)
  local mode = p:read("l")
  p:close()
  return mode
end

describe("csvup.journal", function()
  local dir, j

  before_each(function()
    dir = files.tmpdir()
    j = assert(journal.open(dir .. "/state/csvup/journal.sqlite3"))
    files.write(dir .. "/child.lua", CHILD)
  end)

  after_each(function()
    j:close()
    files.remove(dir)
  end)

  local function upload(hash, extra)
    local args = journal.key("metrika", 42, "upload_offline_conversions", { comment = "daily", type = "BASIC" },
      "https://api-metrika.yandex.net")
    args.hash, args.file, args.size = hash or "0123abcd", "conversions.csv", 1234
    for k, v in pairs(extra or {}) do
      args[k] = v
    end
    return args
  end

  -- The key of the upload a child begins.
  local function child_key()
    return { service = "metrika", base_url = "https://api-metrika.yandex.net", counter = "42",
      endpoint = "upload_expenses", hash = "cafe" }
  end

  -- a child on the journal in folder (the one j has open, by default)
  local function child(mode, folder)
    return io.popen(support.LUA .. " " .. dir .. "/child.lua " .. (folder or dir .. "/state/csvup") .. " " .. mode)
  end

  it("keeps what a further step needs beside a finished entry, and checks sound", function()
    local entry = assert(j:begin(upload()))
    assert(j:finish(entry.id, { uploading = '{"id":5}', uploading_id = "5", steps = '{"content_id_type":"user_id"}' }))
    assert(j:finish(entry.id, { steps = '{"confirmed":true,"content_id_type":"user_id"}' }))
    local again = assert(j:begin(upload()))
    assert.are.same({ "finished", '{"id":5}', '{"confirmed":true,"content_id_type":"user_id"}' },
      { again.state, again.uploading, again.steps })
    assert.are.same({}, assert(journal.check(dir .. "/state/csvup/journal.sqlite3")))
  end)

  it("creates the file (0600) and its folders (0700)", function()
    assert.are.equal("700", stat_mode(dir .. "/state"))
    assert.are.equal("700", stat_mode(dir .. "/state/csvup"))
    assert.are.equal("600", stat_mode(dir .. "/state/csvup/journal.sqlite3"))
  end)

  it("records an upload when it begins and its uploading when it finishes", function()
    local entry = assert(j:begin(upload()))
    assert.are.equal("new", entry.state)
    assert.are.equal("42", entry.counter)
    assert.are.equal("comment=daily&type=BASIC", entry.query)
    assert(j:finish(entry.id, { uploading = '{"id":9007199254740993,"status":"UPLOADED"}',
      uploading_id = "9007199254740993", status = "UPLOADED" }))

    local again = assert(j:begin(upload()))
    assert.are.equal("finished", again.state)
    assert.are.equal(entry.id, again.id)
    assert.are.equal('{"id":9007199254740993,"status":"UPLOADED"}', again.uploading)
    assert.are.equal("9007199254740993", again.uploading_id)

    local list = assert(j:list())
    assert.are.equal(1, #list)
    local e = list[1]
    assert.are.same({ "metrika", "42", "upload_offline_conversions", "conversions.csv", 1234, "0123abcd", "finished",
      "UPLOADED" }, { e.service, e.counter, e.endpoint, e.file, e.size, e.hash, e.state, e.status })
    assert.is_true(math.abs(os.time() - e.created) < 60)
  end)

  it("keeps the state in the file: another handle sees the finished upload", function()
    local entry = assert(j:begin(upload()))
    assert(j:finish(entry.id, { uploading_id = "7" }))
    local other = assert(journal.open(dir .. "/state/csvup/journal.sqlite3"))
    assert.are.equal("finished", assert(other:begin(upload())).state)
    other:close()
  end)

  it("sends changed bytes, another query or another counter again", function()
    local first = assert(j:begin(upload("aaaa")))
    assert(j:finish(first.id, { uploading_id = "1" }))
    assert.are.equal("new", assert(j:begin(upload("bbbb"))).state)
    local other_query = upload("aaaa", { query = "comment=other&type=BASIC" })
    assert.are.equal("new", assert(j:begin(other_query)).state)
    local other_counter = upload("aaaa", { counter = "43" })
    assert.are.equal("new", assert(j:begin(other_counter)).state)
  end)

  it("sends again to another base URL or for another account", function()
    local first = assert(j:begin(upload()))
    assert(j:finish(first.id, { uploading_id = "1" }))
    local real = assert(j:begin(upload(nil, { base_url = "http://127.0.0.1:9" })))
    assert.are.equal("new", real.state)
    assert.are.equal("new", assert(j:begin(upload(nil, { account = "agency-client" }))).state)
    local list = assert(j:list())
    assert.are.same({ "agency-client", "https://api-metrika.yandex.net" }, { list[1].account, list[1].base_url })
    assert.are.same({ "http://127.0.0.1:9" }, { list[2].base_url, list[2].account })
  end)

  it("takes the entries of a journal older than base_url as sent to the service's own address", function()
    local old = dir .. "/old.sqlite3"
    local sql = io.popen("sqlite3 " .. old, "w")
    sql:write([[
CREATE TABLE uploads (id INTEGER PRIMARY KEY, service TEXT NOT NULL, counter TEXT NOT NULL,
  endpoint TEXT NOT NULL, query TEXT NOT NULL, hash TEXT NOT NULL, file TEXT, size INTEGER,
  state TEXT NOT NULL CHECK (state IN ('started', 'finished', 'failed', 'replaced')),
  uploading TEXT, uploading_id TEXT, status TEXT, error TEXT, pid INTEGER, host TEXT, pid_start INTEGER,
  created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE UNIQUE INDEX uploads_live ON uploads (service, counter, endpoint, query, hash)
  WHERE state IN ('started', 'finished');
INSERT INTO uploads (service, counter, endpoint, query, hash, state, uploading_id, created, updated)
  VALUES ('metrika', '42', 'upload_offline_conversions', 'comment=daily&type=BASIC', '0123abcd', 'finished', '3', 1, 1);
]])
    assert(sql:close())
    local oj = assert(journal.open(old))
    local sent = assert(oj:begin(upload())) -- https://api-metrika.yandex.net: not sent again
    assert.are.same({ "finished", "3" }, { sent.state, sent.uploading_id })
    local rehearsal = upload()
    rehearsal.base_url = "http://127.0.0.1:9"
    local entry = assert(oj:begin(rehearsal))
    assert.are.equal("new", entry.state)
    assert(oj:finish(entry.id, { uploading_id = "4" }))
    assert.are.equal("4", assert(oj:begin(rehearsal)).uploading_id)
    local list = assert(oj:list())
    assert.are.same({ 2, "3", "https://api-metrika.yandex.net" }, { #list, list[2].uploading_id, list[2].base_url })
    oj:close()
  end)

  it("knows what this process sends through another journal object on the same file", function()
    local other = assert(journal.open(dir .. "/state/csvup/journal.sqlite3"))
    local entry = assert(j:begin(upload()))
    local again = assert(other:begin(upload()))
    assert.are.same({ "running", true, entry.id }, { again.state, again.this_process, again.id })
    assert(j:release(entry.id))
    assert.are.same({ "started", entry.id }, { assert(other:begin(upload())).state, entry.id })
    assert.are.same({ "running", true }, { assert(j:begin(upload())).state, assert(j:begin(upload())).this_process })
    other:close()
  end)

  it("tells an upload this process is sending from one it no longer sends", function()
    local entry = assert(j:begin(upload()))
    local again = assert(j:begin(upload()))
    assert.are.same({ "running", true, entry.id }, { again.state, again.this_process, again.id })
    assert(j:release(entry.id)) -- its outcome is unknown: look for it, as for a process that died
    local taken = assert(j:begin(upload()))
    assert.are.same({ "started", entry.id }, { taken.state, taken.id })
    assert.is_nil(taken.this_process)
    assert.are.equal("running", assert(j:begin(upload())).state)
    assert(j:finish(taken.id, { uploading_id = "8" }))
    assert.are.equal("finished", assert(j:begin(upload())).state)
  end)

  it("gives journal_busy, without waiting for as long as another process holds the lock", function()
    local path = dir .. "/state/csvup/journal.sqlite3"
    local release = journal_lock.hold(path, "BEGIN EXCLUSIVE;\nUPDATE uploads SET updated = updated;")
    local started = core.now()
    local none, err = journal.open(path)
    local open_took = core.now() - started
    started = core.now()
    local entry, begin_err = j:begin(upload())
    local begin_took = core.now() - started
    release()
    assert.is_nil(none)
    assert.are.same({ "journal_busy", "internal" }, { err.code, err.kind })
    assert.is_true(open_took < 30)
    assert.is_nil(entry)
    assert.are.equal("journal_busy", begin_err.code)
    assert.is_true(begin_took < 30)
    assert.are.equal("new", assert(j:begin(upload())).state)
  end)

  it("sends again when forced, keeping the earlier entry as replaced", function()
    local first = assert(j:begin(upload()))
    assert(j:finish(first.id, { uploading_id = "1" }))
    local forced = assert(j:begin(upload(nil, { force = true })))
    assert.are.equal("new", forced.state)
    assert.are_not.equal(first.id, forced.id)
    assert(j:finish(forced.id, { uploading_id = "2" }))
    local list = assert(j:list())
    assert.are.same({ "finished", "replaced" }, { list[1].state, list[2].state })
    assert.are.same({ "2", "1" }, { list[1].uploading_id, list[2].uploading_id })
    assert.are.equal("2", assert(j:begin(upload())).uploading_id)
  end)

  it("sends again after an upload failed, keeping the failure", function()
    local first = assert(j:begin(upload()))
    assert(j:fail(first.id, "network_error"))
    local second = assert(j:begin(upload()))
    assert.are.equal("new", second.state)
    local list = assert(j:list())
    assert.are.same({ "started", "failed" }, { list[1].state, list[2].state })
    assert.are.equal("network_error", list[2].error)
    -- a finished upload stays finished
    assert(j:finish(second.id, { uploading_id = "5" }))
    assert(j:fail(second.id, "late"))
    assert.are.equal("finished", assert(j:begin(upload())).state)
  end)

  it("lists the newest first, up to the limit", function()
    for i = 1, 5 do
      assert(j:begin(upload("hash" .. i)))
    end
    local list = assert(j:list { limit = 3 })
    assert.are.same({ "hash5", "hash4", "hash3" }, { list[1].hash, list[2].hash, list[3].hash })
    assert.are.equal(5, #assert(j:list()))
  end)

  it("lets exactly one of several processes starting at once send, on a journal they create", function()
    local folder = dir .. "/race"
    local pipes, states = {}, {}
    assert(os.execute("mkdir " .. folder))
    for i = 1, 4 do
      pipes[i] = child("race", folder)
    end
    files.write(folder .. "/go", "")
    for i, p in ipairs(pipes) do
      states[i] = p:read("l") or "failed"
    end
    files.write(folder .. "/done", "")
    for _, p in ipairs(pipes) do
      p:close()
    end
    table.sort(states)
    assert.are.same({ "new", "running", "running", "running" }, states)
  end)

  it("tells a started upload whose process is alive from one whose process died", function()
    local p = child("wait")
    assert.are.equal("new", p:read("l"))
    local key = child_key()
    local seen = assert(j:begin(key))
    assert.are.equal("running", seen.state)
    assert.is_number(seen.pid)
    files.write(dir .. "/state/csvup/done", "")
    p:close()

    local taken = assert(j:begin(key))
    assert.are.equal("started", taken.state) -- its process died: now ours, to look for before sending
    assert.are.equal(seen.id, taken.id)
    assert.are.equal("running", assert(j:begin(key)).state) -- and ours is alive
    assert(j:finish(taken.id, { uploading_id = "11" }))
    assert.are.equal("11", assert(j:begin(key)).uploading_id)
  end)

  it("gives an upload that a live process released to another process, to look for before sending", function()
    local p = child("release")
    assert.are.equal("new", p:read("l"))
    local key = child_key()
    local taken = assert(j:begin(key))
    local again = assert(j:begin(key))
    files.write(dir .. "/state/csvup/done", "")
    p:close()
    assert.are.same({ "started", "running", true }, { taken.state, again.state, again.this_process })
  end)

  it("gives an upload whose process was killed to one of the processes that rerun it", function()
    local p = child("die")
    assert.are.equal("new", p:read("l"))
    p:close()
    local folder = dir .. "/state/csvup"
    local pipes, states = {}, {}
    for i = 1, 3 do
      pipes[i] = child("race")
    end
    files.write(folder .. "/go", "")
    for i, pipe in ipairs(pipes) do
      states[i] = pipe:read("l") or "failed"
    end
    files.write(folder .. "/done", "")
    for _, pipe in ipairs(pipes) do
      pipe:close()
    end
    table.sort(states)
    assert.are.same({ "running", "running", "started" }, states)
  end)

  it("gives nil, err for a path that cannot hold a journal", function()
    files.write(dir .. "/plain", "a file, not a folder")
    local none, err = journal.open(dir .. "/plain/csvup/journal.sqlite3")
    assert.is_nil(none)
    assert.are.equal("journal_unusable", err.code)
    assert.are.equal("input", err.kind)
    assert.matches(dir .. "/plain", tostring(err), 1, true)

    files.write(dir .. "/other.sqlite3", ("not a database\n"):rep(100))
    none, err = journal.open(dir .. "/other.sqlite3")
    assert.is_nil(none)
    assert.are.same({ "journal_unusable", "input" }, { err.code, err.kind })

    none, err = core.journal_open("")
    assert.is_nil(none)
    assert.are.equal("input", err.kind)
  end)

  it("closes once, and answers nil, err when closed", function()
    local entry = assert(j:begin(upload()))
    j:close()
    j:close()
    assert.are.equal("csvup.journal (closed)", tostring(j))
    for _, call in ipairs {
      function() return j:begin(upload()) end,
      function() return j:finish(entry.id, {}) end,
      function() return j:fail(entry.id) end,
      function() return j:list() end,
    } do
      local none, err = call()
      assert.is_nil(none)
      assert.are.same({ "closed", "internal" }, { err.code, err.kind })
    end
  end)

  it("has no entry to finish that was never begun", function()
    local none, err = j:finish(12345, { uploading_id = "1" })
    assert.is_nil(none)
    assert.are.same({ "journal_no_entry", "internal" }, { err.code, err.kind })
  end)

  it("raises on misuse", function()
    assert.has_error(function() j:begin { service = "metrika", endpoint = "upload_calls" } end)
    assert.has_error(function() j:begin(upload(nil, { base_url = "" })) end)
    assert.has_error(function() j:begin(upload(nil, { size = "big" })) end)
    assert.has_error(function() j:finish("1", {}) end)
    assert.has_error(function() j:list { limit = 0 } end)
  end)
end)

describe("csvup.journal keys and listing", function()
  it("builds one query text whatever the order of the fields", function()
    local a, b = {}, {}
    a.type, a.comment, a.n = "BASIC", "daily upload", 5
    b.n, b.comment, b.type = 5.0, "daily upload", "BASIC"
    assert.are.equal(journal.query(a), journal.query(b))
    assert.are.equal("comment=daily%20upload&n=5&type=BASIC", journal.query(a))
  end)

  it("keeps values apart that would read the same unescaped", function()
    assert.are_not.equal(journal.query { a = "1&b=2" }, journal.query { a = "1", b = "2" })
    assert.are.equal("f=x&f=y", journal.query { f = { "x", "y" } })
    assert.are.equal("", journal.query {})
  end)

  it("keys an upload by service, counter, endpoint, query, base URL and account", function()
    assert.are.same({ service = "carrotquest", endpoint = "import_users", query = "", base_url = "https://a.example",
      account = "token 0123456789abcdef" },
      journal.key("carrotquest", nil, "import_users", nil, "https://a.example", "token 0123456789abcdef"))
    assert.are.equal("42", journal.key("metrika", 42, "upload_calls", {}).counter)
  end)

  it("tells accounts apart by a digest of the token, never the token", function()
    local a, b = journal.account("secret-token-a"), journal.account("secret-token-b")
    assert.matches("^token %x+$", a)
    assert.are_not.equal(a, b)
    assert.are.equal(a, journal.account("secret-token-a"))
    assert.is_nil(a:find("secret", 1, true))
  end)

  it("describes an entry on one line, control characters escaped", function()
    local line = journal.describe { created = 0, updated = 0, state = "finished", service = "metrika",
      base_url = "https://api-metrika.yandex.net", account = "agency", counter = "42",
      endpoint = "upload_expenses", file = "costs\n\27[31m.csv", hash = ("ab"):rep(32), uploading_id = "77",
      status = "PROCESSED" }
    assert.is_nil(line:find("[%c]"))
    assert.matches("costs\\n\\x1B[31m.csv", line, 1, true)
    assert.matches("finished  metrika  https://api-metrika.yandex.net as agency  42  upload_expenses", line, 1, true)
    assert.matches("abababababab  uploading 77  PROCESSED$", line)
  end)

  it("lives under XDG_STATE_HOME, or ~/.local/state", function()
    local function path(env)
      local p = io.popen("env -u XDG_STATE_HOME " .. env .. " " .. support.LUA
        .. [[ -e 'io.write(require("csvup.journal").path() or "nil")']])
      local out = p:read("a")
      p:close()
      return out
    end
    assert.are.equal("/srv/state/csvup/journal.sqlite3", path("XDG_STATE_HOME=/srv/state HOME=/home/u"))
    assert.are.equal("/home/u/.local/state/csvup/journal.sqlite3", path("XDG_STATE_HOME=relative HOME=/home/u"))
    assert.are.equal("/home/u/.local/state/csvup/journal.sqlite3", path("HOME=/home/u"))
    assert.are.equal("nil", path("HOME="))
  end)
end)
