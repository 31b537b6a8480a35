-- A large file is streamed from disk: the uploading process never holds it in memory.
local support = require "support.sandbox"
local files = require "support.files"

local ROWS = 5825000 -- 36 bytes each: 200 MB

describe("streaming a 200 MB file", function()
  local sandbox, dir, path

  setup(function()
    sandbox = support.start()
    dir = files.tmpdir()
    path = dir .. "/conversions.csv"
    assert(os.execute(("{ echo ClientId,Target,DateTime; yes 133591247640966458,GOAL1,1481718166 2>/dev/null | head -n %d; } > %s")
      :format(ROWS, path)))
  end)

  teardown(function()
    sandbox.stop()
    files.remove(dir)
  end)

  it("uploads it whole while the Lua process' peak RSS stays under 30 MB", function()
    local script = ([[
      local m = require("csvup").metrika.new { token = %q, counter = 1, base_url = %q }
      local u = assert(m:upload_offline_conversions { file = %q })
      local status = io.open("/proc/self/status"):read("a")
      print(u.source_quantity, status:match("VmHWM:%%s*(%%d+) kB"))]]):format(support.TOKEN, sandbox.url, path)
    local pipe = io.popen(support.LUA .. " -e '" .. script .. "' 2>&1")
    local output = pipe:read("a")
    pipe:close()
    local rows, peak_kb = output:match("^(%d+)%s+(%d+)\n$")
    assert(rows, output)
    print(("\n  peak RSS uploading 200 MB: %.1f MB"):format(tonumber(peak_kb) / 1024))
    assert.are.equal(ROWS, tonumber(rows))
    if not support.UNDER_CHECKER then
      assert.is_true(tonumber(peak_kb) < 30 * 1024)
    end
    local size = assert(io.open(path, "rb")):seek("end")
    assert.are.equal(size, sandbox.requests()[1].file.size)
  end)
end)
