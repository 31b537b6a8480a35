-- rows = an iterator: records checked and encoded into an unlinked temporary
-- file, then sent like a file (a Content-Length, the journal, retries).
local csvup = require "csvup"
local support = require "support.sandbox"
local recorder = require "support.recorder"
local files = require "support.files"

-- An iterator of n offline conversions; the bad one's ClientId is no id.
local function conversions(n, bad)
  local i = 0
  return function()
    i = i + 1
    if i <= n then
      return { ClientId = i == bad and "not-an-id" or tostring(133591247640966458 + i), Target = "GOAL1",
        DateTime = "1481718166" }
    end
  end
end

describe("an upload of rows from an iterator", function()
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  it("sends the records encoded as an array of them would be, with a Content-Length", function()
    local server = recorder.start()
    server.answer { { method = "POST", path = "/offline_conversions/upload", body = '{"uploading":{"id":1}}' } }
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = server.url })
    assert(m:upload_offline_conversions { rows = conversions(10000) })
    local list, next_row = {}, conversions(10000)
    for row in next_row do
      list[#list + 1] = row
    end
    assert(m:upload_offline_conversions { rows = list })
    m:close()
    local requests = server.requests()
    server.stop()
    assert.are.equal(2, #requests)
    local function part(body) -- the file part, without libcurl's boundary (random for each request)
      return (body:gsub("%-%-%-%-+%x+", "--"))
    end
    assert.are.equal(part(requests[2].body), part(requests[1].body))
    assert.truthy(requests[1].body:find("\n133591247640976458,", 1, true))
    assert.truthy(requests[1].head:lower():find("content%-length: %d+"))
    assert.falsy(requests[1].head:lower():find("transfer%-encoding"))
  end)

  it("sends nothing when a record fails its check, naming its row in a later batch", function()
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
    local u, err = m:upload_offline_conversions { rows = conversions(10000, 9000) }
    m:close()
    assert.is_nil(u)
    assert.are.equal("validation_failed", err.code)
    assert.are.equal(9000, err.problems[1].row)
    assert.are.equal(0, sandbox.posts())
  end)

  it("stops with callback_error when the iterator raises, sending nothing", function()
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
    local u, err = m:upload_offline_conversions { rows = function() error("export broke") end }
    m:close()
    assert.is_nil(u)
    assert.are.same({ "input", "callback_error" }, { err.kind, err.code })
    assert.matches("export broke", err.message)
    assert.are.equal(0, sandbox.posts())
  end)

  it("is retried with the same bytes and kept in the journal", function()
    local dir = files.tmpdir()
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url,
      journal = dir .. "/journal.sqlite3", backoff = { base = 0.05 } })
    sandbox.fault { fault = "too_many_requests", retry_after = 0.1 }
    local first = assert(m:upload_offline_conversions { rows = conversions(5000) })
    local again = assert(m:upload_offline_conversions { rows = conversions(5000) })
    m:close()
    files.remove(dir)
    assert.are.equal(first.id, again.id)
    assert.are.equal(2, sandbox.posts()) -- the 429 and the upload; the second call is answered by the journal
  end)
end)
