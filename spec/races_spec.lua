-- A file that changes while it is uploaded is never sent as a success: the
-- upload reads one descriptor, and an attempt whose file moved (renamed
-- over, a link retargeted, grown, shrunk, rewritten in place) ends in
-- file_changed, on the plain path (checked as it is sent) and on the
-- converting one (a ";" file sent with commas).
local csvup = require "csvup"
local support = require "support.sandbox"
local files = require "support.files"

local ROWS = 300000

local function csv(delimiter, id)
  return ("ClientId%sTarget%sDateTime\n"):format(delimiter, delimiter)
    .. (("%s%sGOAL1%s1481718166\n"):format(id, delimiter, delimiter)):rep(ROWS)
end

local RACES = {
  ["renamed over"] = function(path, text)
    files.write(path .. ".new", text)
    assert(os.rename(path .. ".new", path))
  end,
  ["a link retargeted"] = function(path, text, target)
    files.write(target .. ".other", text)
    assert(os.execute(("ln -sfn %s %s"):format(target .. ".other", path)))
  end,
  grown = function(path)
    local f = assert(io.open(path, "ab"))
    f:write("1,GOAL1,1481718166\n")
    f:close()
  end,
  shrunk = function(path)
    assert(os.execute("truncate -s 1M " .. path))
  end,
  ["rewritten in place"] = function(path, text)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", #text - 100)
    f:write(("9"):rep(10))
    f:close()
  end,
}

describe("an upload's file", function()
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)
  local dir

  before_each(function()
    sandbox.reset()
    dir = files.tmpdir()
  end)

  after_each(function()
    files.remove(dir)
  end)

  describe("changed while it is sent", function()
    for _, way in ipairs { { "plain", ",", {} }, { "converting", ";", { delimiter = ";" } } } do
      for name, race in pairs(RACES) do
        it(("ends in file_changed when it is %s (%s)"):format(name, way[1]), function()
          local path, target = dir .. "/a.csv", nil
          local text = csv(way[2], "133591247640966458")
          if name == "a link retargeted" then
            target = dir .. "/target.csv"
            files.write(target, text)
            assert(os.execute(("ln -s %s %s"):format(target, path)))
          else
            files.write(path, text)
          end
          local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
          local changed = false
          local opts = { file = path, progress = function(sent, total)
            if not changed and sent > 0 and sent < total / 2 then
              changed = true
              race(path, csv(way[2], "233591247640966458"), target)
            end
          end }
          for k, v in pairs(way[3]) do
            opts[k] = v
          end
          local u, err = m:upload_offline_conversions(opts)
          m:close()
          assert.is_true(changed)
          assert.is_nil(u)
          assert.are.same({ "input", "file_changed" }, { err.kind, err.code })
          local list = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
          assert.are.same({}, assert(list:offline_conversion_uploadings()))
          list:close()
        end)
      end
    end
  end)

  -- How many times a child process opens path while it runs script (strace -f -e trace=openat).
  local function opens(path, command)
    local log = dir .. "/strace.log"
    local ok = os.execute(("strace -f -qq -e trace=openat -o %s %s >%s.out 2>&1"):format(log, command, log))
    assert(ok, files.read(log .. ".out"))
    local n = 0
    for line in io.lines(log) do
      if line:find('"' .. path .. '"', 1, true) then
        n = n + 1
      end
    end
    return n
  end

  it("is opened once by a default library upload, checked as it is sent", function()
    local path = files.write(dir .. "/a.csv", csv(",", "133591247640966458"))
    local script = files.write(dir .. "/upload.lua", ([[
      local csvup = require "csvup"
      local m = assert(csvup.metrika.new { token = %q, counter = 1, base_url = %q })
      assert(m:upload_offline_conversions { file = %q })
    ]]):format(support.TOKEN, sandbox.url, path))
    assert.are.equal(1, opens(path, "env " .. support.LUA .. " " .. script))
  end)

  it("is opened once by the command line's default upload, checked and hashed for the journal", function()
    local path = files.write(dir .. "/a.csv", csv(",", "133591247640966458"))
    local command = ("env -u XDG_STATE_HOME HOME=%s CSVUP_METRIKA_TOKEN=%s env %s lua/bin/csvup metrika "
      .. "upload-offline-conversions --base-url %s --counter 1 %s"):format(dir, support.TOKEN, support.LUA, sandbox.url, path)
    assert.are.equal(1, opens(path, command))
  end)

  it("planned in a batch and changed before its turn is not sent", function()
    local first = files.write(dir .. "/first.csv", csv(",", "133591247640966458"))
    local second = files.write(dir .. "/second.csv", csv(",", "233591247640966458"))
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
    local changed = false
    local results = assert(csvup.batch({
      { client = m, method = "upload_offline_conversions", args = { file = first } },
      { client = m, method = "upload_offline_conversions", args = { file = second } },
    }, { concurrency = 1, progress = function()
      if not changed then
        changed = true
        local f = assert(io.open(second, "ab"))
        f:write("1,GOAL1,1481718166\n")
        f:close()
      end
    end }))
    m:close()
    assert.is_true(changed)
    assert.is_table(results[1][1], tostring(results[1][2]))
    assert.is_nil(results[2][1])
    assert.are.same({ "input", "file_changed" }, { results[2][2].kind, results[2][2].code })
    assert.are.equal(1, sandbox.posts())
  end)

  it("that says it has 0 bytes is read to its end (/proc)", function()
    local f = assert(io.open("/proc/version"))
    local text = f:read("a")
    f:close()
    assert.is_true(#text > 0)
    local server = require("support.recorder").start()
    server.answer { { method = "POST", path = "/offline_conversions/upload", body = '{"uploading":{"id":1}}' } }
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = server.url })
    m:upload_offline_conversions { file = "/proc/version", validate = false }
    m:close()
    local requests = server.requests()
    server.stop()
    assert.are.equal(1, #requests)
    assert.truthy(requests[1].body:find(text, 1, true))
  end)
end)
