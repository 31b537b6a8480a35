-- At most 3 Metrica requests at once per token, however many processes send them.
local support = require "support.sandbox"

-- Runs n processes at once, each uploading a file to sandbox; returns how many succeeded.
local function upload_from_processes(sandbox, n, parallel)
  local script = ([[
    local m = require("csvup").metrika.new { token = %q, counter = 1, base_url = %q, parallel = %d }
    print(m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv" } and "ok" or "failed")]])
    :format(support.TOKEN, sandbox.url, parallel)
  local command = ("for i in $(seq %d); do %s -e '%s' & done; wait"):format(n, support.LUA, script)
  local pipe = io.popen(command)
  local output = pipe:read("a")
  pipe:close()
  return select(2, output:gsub("ok", ""))
end

describe("the parallel-request guard", function()
  local sandbox = support.sandbox { ["answer-delay"] = 0.3 }
  local slow = support.sandbox { ["answer-delay"] = 2 } -- for the control: 8 processes started on a busy machine overlap
  setup(function()
    sandbox.start()
    slow.start()
  end)
  teardown(function()
    sandbox.stop()
    slow.stop()
  end)

  it("keeps 8 processes to 3 requests at once", function()
    assert.are.equal(8, upload_from_processes(sandbox, 8, 3))
    assert.is_true(sandbox.stats().max_in_flight <= 3)
    assert.are.equal(8, #sandbox.requests())
  end)

  -- the control: it shows the guard is what holds them back (too slow to overlap under a memory checker)
  local control = support.UNDER_CHECKER and pending or it
  control("lets them all through at once when the guard is off (parallel = 0)", function()
    assert.are.equal(8, upload_from_processes(slow, 8, 0))
    assert.is_true(slow.stats().max_in_flight > 3)
  end)
end)
