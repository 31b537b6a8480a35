-- The examples in spec/examples run against the sandbox as a user would run them.
local support = require "support.sandbox"

describe("examples", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function run(script)
    local pipe = io.popen(("CSVUP_BASE_URL=%s CSVUP_METRIKA_TOKEN=%s CSVUP_CARROTQUEST_TOKEN=%s CSVUP_POLL_INTERVAL=0.1 "
      .. "%s spec/examples/%s 2>&1; echo \"exit $?\""):format(sandbox.url, support.TOKEN, support.TOKEN, support.LUA, script))
    local output = pipe:read("a")
    pipe:close()
    local text, code = output:match("^(.-)exit (%d+)\n$")
    assert.are.equal("0", code, text)
    return text, sandbox.requests()
  end

  it("crm_to_metrika.lua uploads the paid orders with a ClientId and waits", function()
    local output, requests = run("crm_to_metrika.lua")
    assert.matches("4 paid orders with a ClientId", output)
    assert.matches("PROCESSED, 4 lines, 4 linked", output)
    assert.matches("133591247640966458,crm_paid,1795166403,1234.5,RUB", requests[1].file.content, 1, true)
  end)

  it("costs_upload_delete.lua uploads costs, then deletes the first day", function()
    local output, requests = run("costs_upload_delete.lua")
    assert.matches("uploaded 4 cost lines: PROCESSED", output)
    assert.matches("deleting the costs of 2026%-11%-01", output)
    assert.are.equal("csvup-example", requests[1].query.provider)
    assert.matches("^daily costs csvup%x+$", requests[1].query.comment) -- the marker that finds a lost answer
    assert.matches("1520.75", requests[1].file.content, 1, true)
    local last = requests[#requests]
    assert.are.same({ "/management/v1/counter/2215573/expense/delete_single", "2026-11-01", "csvup-example" },
      { last.path, last.query.date, last.query.provider })
  end)

  it("users_to_carrotquest.lua imports everyone, then tags the VIPs", function()
    local output, requests = run("users_to_carrotquest.lua")
    assert.matches("imported: 3 users, 3 updates planned, 0 refused", output)
    assert.matches("vip: 2 users", output)
    assert.are.same({ '["imported"]' }, requests[1].fields.tags)
    assert.matches("777,margo@example.com,", requests[1].file.content, 1, true)
  end)

  it("calls_from_tracker.lua uploads the tied calls, missed ones marked", function()
    local output, requests = run("calls_from_tracker.lua")
    assert.matches("2 calls: PROCESSED", output)
    assert.matches("/upload_calls$", requests[1].path)
    assert.matches("1725043211904716011,1795174812,+79990000002,0,1", requests[1].file.content, 1, true)
  end)
end)
