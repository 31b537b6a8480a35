-- A journal that is damaged, read-only or on a full disk, as the command line
-- meets it: a damaged one stops everything with a clear error; one that can
-- only be read still answers the uploads it lists as finished.
local json = require "csvup.json"
local support = require "support.sandbox"
local files = require "support.files"
local cli = require "support.cli"

local OK, USAGE, API_ERROR = 0, 2, 1
local EXPENSES = "spec/fixtures/expenses.csv"
local UPLOAD = "metrika upload-expenses --counter 1 "

describe("a journal", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  local state, path

  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    state = files.tmpdir()
    path = state .. "/csvup/journal.sqlite3"
  end)

  after_each(function()
    files.remove(state)
  end)

  local function run(args, prefix)
    return cli.run(sandbox, state, args, prefix)
  end

  -- Another valid expenses file: another upload.
  local function other()
    return files.write(sandbox.tmp .. "/other.csv", files.read(EXPENSES) .. "2026-11-03,google,autumn,5.00,RUB,1\n")
  end

  -- Writes bytes at offset of the journal file, or cuts it to size.
  local function damage(offset, bytes)
    local f = assert(io.open(path, "r+b"))
    if bytes then
      f:seek("set", offset)
      f:write(bytes)
      f:close()
    else
      f:close()
      assert(os.execute(("truncate -s %d %s"):format(offset, path)))
    end
  end

  for _, case in ipairs {
    { "an index page overwritten", 2 * 4096, ("\255"):rep(64) },
    { "cut short", 4096 },
  } do
    it("that is damaged (" .. case[1] .. ") stops the upload, naming the file and what to do", function()
      assert.are.equal(OK, select(3, run(UPLOAD .. EXPENSES)))
      assert.are.equal(OK, select(3, run(UPLOAD .. other())))
      damage(case[2], case[3])
      local _, err, code = run(UPLOAD .. EXPENSES)
      assert.are.equal(USAGE, code)
      assert.matches("journal " .. path .. " is damaged", err, 1, true)
      assert.matches("Move it aside", err, 1, true)
      assert.matches("csvup journal --check", err, 1, true)
      assert.are.equal(2, sandbox.posts()) -- nothing more was sent
      local out
      out, _, code = run("journal --check --journal " .. path)
      assert.are.equal(API_ERROR, code)
      assert.matches(": damaged", out)
    end)
  end

  it("that is sound passes csvup journal --check", function()
    assert.are.equal(OK, select(3, run(UPLOAD .. EXPENSES)))
    local out, _, code = run("journal --check --journal " .. path)
    assert.are.equal(OK, code)
    assert.matches(": sound", out)
  end)

  -- Mounts a small tmpfs on dir (root only, where mount works); false when it cannot.
  local function mount(size, dir)
    return os.execute(("mount -t tmpfs -o size=%s tmpfs %s 2>/dev/null"):format(size, dir or state)) == true
  end

  local function unmount(dir)
    os.execute("umount " .. (dir or state) .. " 2>/dev/null")
  end

  -- What a journal that can only be read still does: list, answer a finished upload; and refuse a new one.
  local function reads_only(prefix)
    local out, err, code = run("journal --json", prefix)
    assert.are.equal(OK, code, err)
    assert.are.equal("finished", json.decode(out)[1].state)
    out, err, code = run(UPLOAD .. EXPENSES, prefix)
    assert.are.equal(OK, code, err)
    assert.matches("uploading %d+", out)
    assert.matches("uploaded before", err)
    out, err, code = run(UPLOAD .. other(), prefix)
    assert.are.same({ USAGE, "" }, { code, out })
    assert.matches("can be read but not written", err)
    assert.are.equal(1, sandbox.posts())
  end

  -- The journal made read-only after its first upload (after older(), when given, which makes it an older one).
  local function read_only(older)
    local mounted = mount("1m")
    assert.are.equal(OK, select(3, run(UPLOAD .. EXPENSES)))
    if older then
      older()
    end
    local prefix
    if mounted then
      assert(os.execute("mount -o remount,ro " .. state))
    else -- no mount here: a file and folders that the user running csvup cannot write
      assert(os.execute(("chmod 0444 %s && chmod 0555 %s %s/csvup"):format(path, state, state)))
      local id = io.popen("id -u")
      if id:read("l") == "0" then -- root writes any file: csvup runs as nobody
        prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups env"
      end
      id:close()
      os.execute("chmod -R a+rX " .. sandbox.tmp .. " && chmod a+w " .. sandbox.tmp)
    end
    local ok, failure = pcall(reads_only, prefix)
    unmount()
    os.execute(("chmod -R u+w %s"):format(state))
    assert(ok, failure)
  end

  it("on a read-only file system answers what it lists as finished", function()
    read_only()
  end)

  it("written before entries kept their marker, on a read-only file system, answers what it lists as finished",
    function()
      read_only(function() -- the columns a journal of an earlier csvup lacks, which it cannot be given now
        assert(os.execute(("sqlite3 %s 'ALTER TABLE uploads DROP COLUMN marker'"):format(path)))
      end)
    end)

  local probe = files.tmpdir()
  local full_disk = mount("256k", probe) and it or pending -- a full disk needs a small file system of its own
  unmount(probe)
  files.remove(probe)
  full_disk("on a full disk answers what it lists as finished", function()
    assert(mount("256k"))
    assert.are.equal(OK, select(3, run(UPLOAD .. EXPENSES)))
    os.execute(("dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null"):format(state))
    local ok, failure = pcall(reads_only)
    unmount()
    assert(ok, failure)
  end)

  full_disk("that fills up during the answer: the result is reported unrecorded, exit 7", function()
    assert(mount("256k"))
    -- The answer waits long enough for the disk to fill first, under valgrind too.
    sandbox.fault { fault = "slow", delay = 3, path = "/expense/upload" }
    local pipe = io.popen(cli.command(sandbox, state, UPLOAD .. EXPENSES) .. " 2>&1; echo \"status $?\"")
    for _ = 1, 600 do -- until the upload has arrived, recorded as started
      if sandbox.posts() == 1 then
        break
      end
      os.execute("sleep 0.05")
    end
    assert.are.equal(1, sandbox.posts())
    os.execute(("dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null"):format(state))
    local text = pipe:read("a")
    pipe:close()
    unmount()
    assert.matches("could not be recorded in the journal", text)
    assert.matches("\nuploading %d+", text)
    assert.matches("status 7", text)
    assert.are.equal(1, sandbox.posts())
  end)
end)
