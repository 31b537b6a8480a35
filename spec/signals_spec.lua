-- SIGINT and SIGTERM stop the command at once, without a terminal too (cron,
-- pipes), and it says what was sent.
local support = require "support.sandbox"
local files = require "support.files"

describe("a signal to the csvup command", function()
  local sandbox = support.sandbox { ["process-delay"] = 1000 } -- an uploading stays UPLOADED until the signal

  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)


  -- Starts csvup in the background; returns its pid and a function that waits
  -- for it (bounded) and gives its stderr and exit status.
  local function start(args)
    local err, status = sandbox.tmp .. "/err", sandbox.tmp .. "/status"
    os.remove(status)
    local pid = io.popen(("(XDG_STATE_HOME=%s CSVUP_METRIKA_TOKEN=%s %s lua/bin/csvup %s --base-url %s 2>%s "
      .. "</dev/null >/dev/null & echo $! >&3; wait $!; echo $? >%s) 3>&1 &"):format(files.tmpdir(), support.TOKEN,
      support.EXEC_LUA:gsub("exec ", ""), args, sandbox.url, err, status)):read("l")
    return pid, function()
      for _ = 1, 200 do
        local f = io.open(status)
        if f then
          local code = f:read("n")
          f:close()
          return files.read(err), code
        end
        os.execute("sleep 0.05")
      end
      error("csvup did not stop")
    end
  end

  local function when(condition)
    for _ = 1, 200 do
      if condition() then
        return
      end
      os.execute("sleep 0.05")
    end
    error("it did not happen")
  end

  it("SIGTERM while the answer is awaited: exit 143, and it says the upload was sent whole", function()
    sandbox.fault { fault = "slow", delay = 30, path = "/expense/upload" }
    local pid, finished = start("metrika upload-expenses --counter 1 spec/fixtures/expenses.csv")
    when(function() return sandbox.posts() == 1 end)
    os.execute("kill -TERM " .. pid)
    local err, code = finished()
    assert.are.equal(143, code)
    assert.matches("stopped by SIGTERM after the request was sent whole", err)
    assert.is_nil(err:find("traceback", 1, true))
  end)

  it("SIGINT while waiting for processing: exit 130, nothing more sent", function()
    local pid, finished = start("metrika upload-expenses --counter 1 --wait --interval 30 spec/fixtures/expenses.csv")
    when(function() return #sandbox.requests() >= 2 end) -- the upload and the first poll
    os.execute("kill -INT " .. pid)
    local err, code = finished()
    assert.are.equal(130, code)
    assert.matches("stopped by SIGINT while waiting", err)
    assert.are.equal(1, sandbox.posts())
  end)
end)
