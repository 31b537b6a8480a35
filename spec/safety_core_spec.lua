-- csvup.core against hostile callbacks, servers, files, options and signals:
-- no crash, no silent change, no leak of the token, no unbounded wait.
local core = require "csvup.core"
local EP = require("csvup.registry").endpoint
local csvup = require "csvup"
local files = require "support.files"
local support = require "support.sandbox"
local tls = require "support.tls"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

describe("csvup.core safety", function()
  local sandbox = support.sandbox()
  local dir

  setup(function()
    sandbox.start()
    dir = files.tmpdir()
  end)
  teardown(function()
    sandbox.stop()
    files.remove(dir)
  end)
  before_each(sandbox.reset)

  local function connect(opts)
    opts = opts or {}
    opts.service = opts.service or "metrika"
    opts.token = opts.token or support.TOKEN
    opts.base_url = opts.base_url or sandbox.url
    return core.connection(opts)
  end

  -- Runs a Lua script in a child process (a crash or a hang must not take
  -- the spec run with it); returns its output and exit code.
  local function run(script, env)
    local path = files.write(dir .. "/script.lua", script)
    local pipe = io.popen(("timeout 30 env %s %s %s 2>&1"):format(env or "", support.LUA, path))
    local output = pipe:read("a")
    local _, _, code = pipe:close()
    return output, code
  end

  local function copy_of_big_csv()
    local path = dir .. "/big.csv"
    assert(os.execute(("cp %s %s"):format(support.big_csv(), path)))
    return path
  end

  describe("a callback that uses the connection of its own call", function()
    it("closes the client at the end of the call instead of crashing", function()
      local output, code = run(([[
        local csvup = require "csvup"
        local m = assert(csvup.metrika.new { token = %q, counter = 1, base_url = %q, retries = 0 })
        local closed = false
        local result, err = m:upload_offline_conversions { file = %q, progress = function()
          if not closed then
            closed = true
            m:close()
          end
        end }
        print("call", result and "ok" or err.code)
        local _, after = m:expense_uploadings()
        print("after", after.code)
      ]]):format(support.TOKEN, sandbox.url, copy_of_big_csv()))
      assert.are.equal(0, code, output)
      assert.matches("call\tok", output)
      assert.matches("after\tclosed", output)
    end)

    it("answers a call on the same connection with busy, and the outer call goes on", function()
      local conn = assert(connect())
      local inner
      local status = core.request(conn, EP.upload_offline_conversions, { counter = 1, file = CONVERSIONS, progress = function()
        inner = inner or { core.request(conn, EP.expense_uploadings, { counter = 1 }) }
      end })
      assert.are.equal(200, status)
      assert.is_nil(inner[1])
      assert.are.same({ "busy", "input" }, { inner[2].code, inner[2].kind })
      assert.are.equal(1, #sandbox.requests())
      assert.are.equal(200, (core.request(conn, EP.expense_uploadings, { counter = 1 })))
      conn:close()
    end)

    it("in a batch: busy for a call, a close waits for the batch's end", function()
      local a, b = assert(connect()), assert(connect())
      local inner, closed
      local entries = {}
      for i = 1, 4 do
        entries[i] = { endpoint = EP.upload_offline_conversions, args = { counter = 1, file = CONVERSIONS } }
      end
      local results = assert(core.multi({ a, b }, entries, function()
        inner = inner or { core.request(a, EP.expense_uploadings, { counter = 1 }) }
        if not closed then
          closed = true
          b:close()
        end
      end))
      assert.are.same({ "busy", "input" }, { inner[2].code, inner[2].kind })
      for i = 1, 4 do
        assert.are.equal(200, results[i][1], tostring(results[i][2]))
      end
      assert.matches("closed", tostring(b))
      assert.are.equal(200, (core.request(a, EP.expense_uploadings, { counter = 1 })))
      a:close()
    end)
  end)

  it("a batch whose progress raises keeps the results of the uploads that landed", function()
    local conn = assert(connect())
    local entries = {}
    for i = 1, 3 do
      entries[i] = { endpoint = EP.upload_offline_conversions, args = { counter = 1, file = CONVERSIONS } }
    end
    local results, err = core.multi({ conn }, entries, function(_, _, done)
      if done == 1 then
        error("enough")
      end
    end)
    assert.is_nil(results)
    assert.are.same({ "callback_error", "internal" }, { err.code, err.kind })
    assert.are.equal(200, err.results[1][1])
    assert.is_nil(err.results[3])
    assert.are.equal(200, (core.request(conn, EP.expense_uploadings, { counter = 1 })))
    conn:close()
  end)

  it("holds an upload's checking reader while it runs, whatever a callback drops", function()
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
    local function upload_args()
      local call = assert(m.plans.upload_offline_conversions(m, { file = support.big_csv() }))
      return EP[call.endpoint], call.args
    end
    local conn = assert(connect())
    local endpoint, args = upload_args()
    args.progress = function()
      for k in pairs(args) do
        args[k] = k == "file" and args[k] or nil
      end
      collectgarbage()
      collectgarbage()
    end
    assert.are.equal(200, (core.request(conn, endpoint, args)))
    local entries = { {} }
    entries[1].endpoint, entries[1].args = upload_args()
    local results = assert(core.multi({ conn }, entries, function()
      entries[1].args = {}
      collectgarbage()
      collectgarbage()
    end))
    assert.are.equal(200, results[1][1], tostring(results[1][2]))
    conn:close()
    m:close()
  end)

  it("a closed reader checks nothing", function()
    local reader, header = assert(core.csv_reader(CONVERSIONS, {}))
    local columns = {}
    for i = 1, #header do
      columns[i] = {}
    end
    reader:close()
    assert.are.equal(0, reader:check { columns = columns, currencies = "", traffic_sources = "", now = os.time(),
      problems = {}, total = 0, max = 20 })
  end)

  it("encodes an empty first field (no memcpy from NULL under UBSan)", function()
    assert.are.equal(',x\r\n', csvup.csv.encode({ { "", "x" } }, { eol = "\r\n" }) or "?")
  end)

  it("refuses a query value that overflows the URL, and sends nothing", function()
    local conn = assert(connect())
    local result, err = core.request(conn, EP.delete_expense_line, { counter = 1, query = {
      date = "2024-01-01", UTMSource = "s", UTMCampaign = string.rep("c", 70000), comment = "after the long one" } })
    assert.is_nil(result)
    assert.are.same({ "invalid_argument", "input" }, { err.code, err.kind })
    assert.matches("UTMCampaign", err.message)
    assert.are.same({}, sandbox.requests())
    conn:close()
  end)

  describe("a file that changes while it is uploaded", function()
    local function upload_while(change)
      local path = copy_of_big_csv()
      local conn = assert(connect())
      local changed = false
      local result, err = core.request(conn, EP.upload_offline_conversions, { counter = 1, file = path, progress = function()
        if not changed then
          changed = true
          change(path)
        end
      end })
      conn:close()
      return result, err
    end

    it("is stopped with file_changed when it shrinks", function()
      local result, err = upload_while(function(path)
        assert(os.execute("truncate -s 1M " .. path))
      end)
      assert.is_nil(result)
      assert.are.same({ "file_changed", "input" }, { err.code, err.kind })
    end)

    it("is stopped with file_changed when it grows", function()
      local result, err = upload_while(function(path)
        local f = assert(io.open(path, "a"))
        f:write("1,G,1481718166\n")
        f:close()
      end)
      assert.is_nil(result)
      assert.are.same({ "file_changed", "input" }, { err.code, err.kind })
    end)
  end)

  describe("verbose output", function()
    it("hides any line naming Authorization, whatever comes before it", function()
      local output = run(([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        local conn = assert(core.connection { service = "metrika", token = "tok-SECRET-123", base_url = %q,
          verbose = true, user_agent = "probe [AUTHORIZATION: OAuth tok-SECRET-UA]" })
        core.request(conn, EP.expense_uploadings, { counter = 1 })
      ]]):format(sandbox.url))
      assert.matches("> GET /management/v1/counter/1/expense/uploadings", output)
      assert.matches("Authorization: %[hidden%]", output)
      assert.is_nil(output:find("SECRET", 1, true), output)
    end)

    it("hides the token over HTTP/2, where libcurl prints the header inside a text line", function()
      local proxy = tls.start(sandbox.url, { http2 = true })
      local output = run(([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        local conn = assert(core.connection { service = "metrika", token = "tok-SECRET-123", base_url = %q,
          ca_file = %q, verbose = true })
        print(core.request(conn, EP.expense_uploadings, { counter = 1 }))
      ]]):format(proxy.url, proxy.ca_file))
      proxy.stop()
      assert.matches("HTTP/2", output)
      assert.matches("authorization", output:lower())
      assert.is_nil(output:find("SECRET", 1, true), output)
    end)
  end)

  describe("the plain-http guard", function()
    it("refuses user info and hosts that only look local", function()
      for _, url in ipairs { "http://127.0.0.1@203.0.113.7/", "http://localhost:1@203.0.113.7/",
        "http://[::1]@203.0.113.7/", "http://127.attacker.example/", "https://user:pw@api-metrika.yandex.net",
        "http://localhost.attacker.example/", "ftp://127.0.0.1/", "not a url" } do
        local conn, err = connect { base_url = url }
        assert.is_nil(conn, url)
        assert.are.same({ "invalid_argument", "input" }, { err.code, err.kind }, url)
      end
    end)

    it("lets plain http reach this machine", function()
      for _, url in ipairs { "http://localhost:8080", "http://127.0.0.1:1/", "http://127.1.2.3", "http://[::1]:9/" } do
        local conn = assert(connect { base_url = url })
        conn:close()
      end
    end)
  end)

  it("refuses control, space and non-ASCII bytes in a token", function()
    for _, token in ipairs { "ab\1c", "ab\127c", "ab\255c", "ab c", "ab\0c", "ab\nc", "" } do
      local conn, err = connect { token = token }
      assert.is_nil(conn)
      assert.are.same({ "invalid_argument", "input" }, { err.code, err.kind })
      assert.is_nil(err.message:find("ab", 1, true))
    end
  end)

  describe("parallel-request slots", function()
    it("wait no longer than the call's timeout (slot_timeout), in a private directory", function()
      local runtime = dir .. "/runtime"
      assert(os.execute("mkdir -m 700 " .. runtime))
      local output, code = run(([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        local function connect(timeout)
          return assert(core.connection { service = "metrika", token = "slot-token", base_url = %q,
            parallel = 1, timeout = timeout })
        end
        local holder, waiter = connect(), connect(0.3)
        local inner
        assert(core.request(holder, EP.upload_offline_conversions, { counter = 1, file = %q, progress = function()
          inner = inner or { core.request(waiter, EP.expense_uploadings, { counter = 1 }) }
        end }))
        print(inner[2].code, inner[2].kind, inner[2].request_sent)
      ]]):format(sandbox.url, CONVERSIONS), "XDG_RUNTIME_DIR=" .. runtime)
      assert.are.equal(0, code, output)
      assert.matches("slot_timeout\tnetwork\tfalse", output)
      local mode = io.popen("stat -c %a " .. runtime .. "/csvup"):read("l")
      assert.are.equal("700", mode)
      -- named by HMAC-SHA256 of the Authorization line under the directory's salt, as openssl computes it
      local salt = io.popen("od -An -tx1 -v " .. runtime .. "/csvup/salt"):read("a"):gsub("%s", "")
      local mac = io.popen(("printf %%s 'Authorization: OAuth slot-token' | openssl dgst -sha256 -mac HMAC "
        .. "-macopt hexkey:%s"):format(salt)):read("a"):match("(%x+)%s*$")
      local names = io.popen("ls " .. runtime .. "/csvup"):read("a")
      assert.matches(mac:sub(1, 16) .. "%-0%.lock", names)
    end)

    it("say so when their directory cannot be used", function()
      local runtime = dir .. "/open-runtime"
      assert(os.execute(("mkdir -p %s/csvup && chmod 777 %s/csvup"):format(runtime, runtime)))
      local output = run(([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        local conn, err = core.connection { service = "metrika", token = "t", base_url = %q }
        print(conn, err.code, err.kind, err.message)
        print(assert(core.connection { service = "metrika", token = "t", base_url = %q, parallel = 0 }))
      ]]):format(sandbox.url, sandbox.url), "XDG_RUNTIME_DIR=" .. runtime)
      assert.matches("nil\tslots_unavailable\tinternal\t.*0700", output)
      assert.matches("csvup.connection %(metrika%)", output)
    end)
  end)

  describe("time and rate options", function()
    it("are refused at creation when not positive and finite", function()
      for _, opts in ipairs { { timeout = 0 }, { timeout = -1 }, { timeout = 0 / 0 }, { timeout = 1 / 0 },
        { upload_timeout = 0 }, { connect_timeout = -5 }, { low_speed_limit = 0 }, { low_speed_time = 0 },
        { low_speed_time = 1 / 0 }, { parallel = -1 }, { parallel = 2.5 } } do
        local name = next(opts)
        local conn, err = connect(opts)
        assert.is_nil(conn, name)
        assert.are.same({ "invalid_argument", "input" }, { err.code, err.kind })
        assert.matches(name, err.message)
      end
    end)

    it("core.sleep refuses NaN, infinities and huge waits", function()
      for _, seconds in ipairs { 0 / 0, 1 / 0, -1 / 0, 1e10 } do
        assert.has_error(function() core.sleep(seconds) end)
      end
      core.sleep(0)
      core.sleep(-0.5)
    end)
  end)

  it("utf8_check_file refuses /dev/zero and a FIFO instead of reading forever", function()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    local output, code = run(([[
      local core = require "csvup.core"
      local EP = require("csvup.registry").endpoint
      for _, path in ipairs { "/dev/zero", %q } do
        local ok, err = core.utf8_check_file(path)
        print(ok, err.code, err.kind)
      end
    ]]):format(fifo))
    assert.are.equal(0, code, output)
    assert.are.equal("nil\tfile_unreadable\tinput\nnil\tfile_unreadable\tinput\n", output)
  end)

  describe("signals", function()
    local PID = 'local pid = io.open("/proc/self/stat"):read("n")\n'

    it("stop an upload at once: interrupted, with what was sent", function()
      local output, code = run(PID .. ([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        core.signals()
        local conn = assert(core.connection { service = "metrika", token = "sandbox-token", base_url = %q,
          parallel = 0 })
        local killed = false
        local result, err = core.request(conn, EP.upload_offline_conversions, { counter = 1, file = %q, progress = function()
          if not killed then
            killed = true
            os.execute("kill -TERM " .. pid)
          end
        end })
        print(result, err.code, err.kind, err.request_sent, core.interrupted())
        result, err = core.request(conn, EP.expense_uploadings, { counter = 1 })
        print(result, err.code, err.request_sent)
      ]]):format(sandbox.url, copy_of_big_csv()))
      assert.are.equal(0, code, output)
      assert.matches("nil\tinterrupted\tinternal\tfalse\tSIGTERM\n", output)
      assert.matches("nil\tinterrupted\tfalse\n", output)
    end)

    it("stop a batch: interrupted, with the results so far", function()
      local output, code = run(PID .. ([[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        core.signals()
        local conns, entries = {}, {}
        for i = 1, 2 do
          conns[i] = assert(core.connection { service = "metrika", token = "sandbox-token", base_url = %q })
        end
        for i = 1, 5 do
          entries[i] = { endpoint = EP.upload_offline_conversions, args = { counter = 1, file = %q } }
        end
        local killed = false
        local results, err = core.multi(conns, entries, function()
          if not killed then
            killed = true
            os.execute("kill -TERM " .. pid)
          end
        end)
        print(results, err.code, err.kind, #err.results, err.results[1][2].code, err.results[5])
      ]]):format(sandbox.url, copy_of_big_csv()))
      assert.are.equal(0, code, output)
      assert.matches("nil\tinterrupted\tinternal\t2\tinterrupted\tnil\n", output)
    end)

    it("cut core.sleep short", function()
      local output, code = run(PID .. [[
        local core = require "csvup.core"
        local EP = require("csvup.registry").endpoint
        core.signals()
        assert(core.interrupted() == nil)
        os.execute("(sleep 0.2; kill -INT " .. pid .. ") &") -- system() itself ignores SIGINT
        local started = os.time()
        print(core.sleep(20), os.time() - started < 10)
      ]])
      assert.are.equal(0, code, output)
      assert.are.equal("SIGINT\ttrue\n", output)
    end)
  end)

  it("gives every error a kind", function()
    local refused = assert(connect { base_url = "http://127.0.0.1:1" })
    local _, err = core.request(refused, EP.expense_uploadings, { counter = 1 })
    assert.are.same({ "COULDNT_CONNECT", "network" }, { err.code, err.kind })
    _, err = core.request(refused, EP.upload_offline_conversions, { counter = 1, file = dir .. "/missing.csv" })
    assert.are.same({ "file_not_found", "input" }, { err.code, err.kind })
    refused:close()
    _, err = core.request(refused, EP.expense_uploadings, { counter = 1 })
    assert.are.same({ "closed", "input" }, { err.code, err.kind })
    local conn = assert(connect())
    _, err = core.request(conn, EP.upload_offline_conversions, { counter = 1, file = CONVERSIONS, progress = function()
      error("stop")
    end })
    assert.are.same({ "callback_error", "internal" }, { err.code, err.kind })
    conn:close()
  end)
end)
