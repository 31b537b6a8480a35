-- The journal's gate: a file no live entry could hold is hashed as it is
-- sent and recorded in the journal before its last bytes go out; a body the
-- journal came to hold meanwhile stops there, and is answered from it.
local core = require "csvup.core"
local csvup = require "csvup"
local support = require "support.sandbox"
local files = require "support.files"
local journal_lock = require "support.journal_lock"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

-- A child process that uploads file with the journal at journal_path, as
-- another cron job would.
local CHILD = [[
local csvup = require "csvup"
local m = assert(csvup.metrika.new { token = arg[1], counter = 1, base_url = arg[2], journal = arg[3] })
assert(m:upload_offline_conversions { file = arg[4], comment = "crm" })
m:close()
]]

-- The same, with resolve_timeout 1 and no assert: a job whose outcome stays unknown, as it exits.
local UNKNOWN_CHILD = [[
local csvup = require "csvup"
local m = assert(csvup.metrika.new { token = arg[1], counter = 1, base_url = arg[2], journal = arg[3],
  resolve_timeout = 1 })
local _, err = m:upload_offline_conversions { file = arg[4], comment = "crm" }
m:close()
os.exit(err and err.code == "outcome_unknown")
]]

-- Rows enough that libcurl asks for the body in several reads.
local function big_file(path)
  local rows = { "ClientId,Target,DateTime" }
  for i = 1, 40000 do
    rows[#rows + 1] = ("%d,GOAL%d,%d"):format(133591247640966458 + i, i % 5, 1481718166 + i)
  end
  return files.write(path, table.concat(rows, "\n") .. "\n")
end

describe("the journal's gate", function()
  local sandbox = support.sandbox {}
  local dir, m

  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    dir = files.tmpdir()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url,
      journal = dir .. "/journal.sqlite3", resolve_timeout = 1 })
  end)

  after_each(function()
    m:close()
    files.remove(dir)
  end)

  it("records a new file under the hash of the bytes sent and the marker its uploading carries", function()
    local u = assert(m:upload_offline_conversions { file = CONVERSIONS, comment = "crm" })
    assert.are.equal(1, sandbox.posts())
    local entry = assert(m.journal:list())[1]
    assert.are.same({ "finished", core.sha256(files.read(CONVERSIONS)), #files.read(CONVERSIONS) },
      { entry.state, entry.hash, entry.size })
    assert.are.equal("crm " .. entry.marker, u.comment)
    local again, err, note = m:upload_offline_conversions { file = CONVERSIONS, comment = "crm" }
    assert.is_nil(err)
    assert.are.same({ u.id, "journal" }, { again.id, note }) -- a rerun: answered from the journal
    assert.are.equal(1, sandbox.posts())
  end)

  it("hashes a file of a size the journal holds before sending it: a copy of a sent one is not sent", function()
    assert(m:upload_offline_conversions { file = CONVERSIONS, comment = "crm" })
    local copy = files.write(dir .. "/copy.csv", files.read(CONVERSIONS))
    local u, err, note = m:upload_offline_conversions { file = copy, comment = "crm" }
    assert.is_nil(err)
    assert.are.same({ "journal", 1 }, { note, sandbox.posts() })
    assert.are.equal(1, #assert(m.journal:list()))
    assert.is_not_nil(u.id)
  end)

  -- Uploads a file big enough to be sent in several reads; once its body is
  -- on its way, a child process (child_source) uploads the same rows from
  -- another file, run by around(run_child). The upload's results, and the
  -- other file's path.
  local function race(child_source, around)
    local mine, theirs = big_file(dir .. "/mine.csv"), dir .. "/theirs.csv"
    files.write(theirs, files.read(mine))
    files.write(dir .. "/child.lua", child_source)
    local child = ("%s %s/child.lua %s %s %s %s"):format(support.LUA, dir, support.TOKEN, sandbox.url,
      dir .. "/journal.sqlite3", theirs)
    local ran
    local u, err, note = m:upload_offline_conversions { file = mine, comment = "crm", progress = function()
      if ran == nil then
        ran = around(function()
          return os.execute(child)
        end)
      end
    end }
    assert.is_true(ran)
    return u, err, note, theirs
  end

  it("stops a body another process recorded meanwhile before its end, and answers from the journal", function()
    local u, err, note, theirs = race(CHILD, function(run)
      return run()
    end)
    assert.is_nil(err)
    assert.are.equal("journal", note)
    assert.are.equal(1, sandbox.posts()) -- the other job's: this body never ended
    local entries = assert(m.journal:list())
    assert.are.same({ 1, "finished", theirs, u.id }, { #entries, entries[1].state, entries[1].file,
      tonumber(entries[1].uploading_id) })
  end)

  it("stops a body whose upload another job left unknown meanwhile, and looks it up by that job's marker", function()
    local u, err, note = race(UNKNOWN_CHILD, function(run)
      -- the other job's answer is lost and the list fails it: it exits, its entry released
      sandbox.fault { fault = "lost_answer", path = "offline_conversions/upload" }
      sandbox.fault { fault = "html_500", count = 100, path = "uploadings" }
      local ran = run()
      sandbox.fault { clear = true }
      return ran
    end)
    assert.is_nil(err)
    assert.are.equal("journal", note) -- found in the list by the other job's marker, not sent again
    assert.are.equal(1, sandbox.posts())
    local entries = assert(m.journal:list())
    assert.are.same({ 1, "finished", u.id }, { #entries, entries[1].state, tonumber(entries[1].uploading_id) })
  end)

  it("hashes a file converted as it is sent before sending it: a rerun sends nothing", function()
    local path = files.write(dir .. "/semicolons.csv", (files.read(CONVERSIONS):gsub(",", ";")))
    local args = { file = path, comment = "crm", delimiter = ";", validate = false }
    local u = assert(m:upload_offline_conversions(args))
    local entry = assert(m.journal:list())[1]
    assert.are.equal(core.sha256(files.read(path)), entry.hash) -- the file's bytes, as every rerun hashes them
    local again, err, note = m:upload_offline_conversions(args)
    assert.is_nil(err)
    assert.are.same({ u.id, "journal", 1 }, { again.id, note, sandbox.posts() })
  end)

  it("stops a body whose journal another process keeps locked at its end: journal_busy, nothing recorded", function()
    local path, release = big_file(dir .. "/big.csv"), nil
    local u, err = m:upload_offline_conversions { file = path, comment = "crm", progress = function()
      release = release or journal_lock.hold(dir .. "/journal.sqlite3", "BEGIN IMMEDIATE;") -- past the 10 s waited
    end }
    release()
    assert.is_nil(u)
    assert.are.same({ "journal_busy", false }, { err.code, err.request_sent })
    assert.are.equal(0, sandbox.posts())
  end)

  it("records nothing for a body that stops at a bad record, and a rerun of the fixed file sends it", function()
    local path = files.write(dir .. "/bad.csv", files.read(CONVERSIONS) .. "\nnot-an-id,GOAL1,1481718166,1.00,RUB\n")
    local u, err = m:upload_offline_conversions { file = path, comment = "crm" }
    assert.is_nil(u)
    assert.are.equal("validation_failed", err.code)
    assert.are.same({}, assert(m.journal:list()))
    files.write(path, files.read(CONVERSIONS))
    assert(m:upload_offline_conversions { file = path, comment = "crm" })
    assert.are.equal(1, sandbox.posts())
  end)
end)
