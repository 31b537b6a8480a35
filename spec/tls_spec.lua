-- TLS is verified by default; plain http only to this machine unless asked for.
local csvup = require "csvup"
local cli = require "support.cli"
local files = require "support.files"
local support = require "support.sandbox"
local tls = require "support.tls"

describe("TLS", function()
  local sandbox, proxy

  setup(function()
    sandbox = support.start()
    proxy = tls.start(sandbox.url)
  end)

  teardown(function()
    proxy.stop()
    sandbox.stop()
  end)

  before_each(function()
    sandbox.reset()
  end)

  local function client(opts)
    opts.token, opts.counter, opts.base_url, opts.retries = support.TOKEN, 1, proxy.url, 0
    return assert(csvup.metrika.new(opts))
  end

  it("refuses a certificate it cannot verify, with a clear error, and sends nothing", function()
    local m = client {}
    local ok, err = m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv" }
    assert.is_nil(ok)
    assert.are.equal("PEER_FAILED_VERIFICATION", err.code)
    assert.matches("certificate", err.message)
    assert.are.same({}, sandbox.requests())
    m:close()
  end)

  it("trusts the certificate given as ca_file", function()
    local m = client { ca_file = proxy.ca_file }
    assert(m:upload_offline_conversions { file = "spec/fixtures/offline_conversions.csv" })
    assert.are.equal(1, #sandbox.requests())
    m:close()
  end)

  it("lets the command line trust the certificate given with --ca-file, and refuses it without", function()
    local state = files.tmpdir()
    local front = { url = proxy.url, tmp = state }
    local args = "metrika upload-offline-conversions --counter 1 --no-journal spec/fixtures/offline_conversions.csv"
    local _, err, code = cli.run(front, state, args)
    assert.are.equal(4, code) -- network
    assert.matches("PEER_FAILED_VERIFICATION", err)
    assert.are.same({}, sandbox.requests())
    local out
    out, err, code = cli.run(front, state, args .. " --ca-file " .. proxy.ca_file)
    files.remove(state)
    assert.are.equal(0, code, err)
    assert.matches("uploading %d+", out)
    assert.are.equal(1, #sandbox.requests())
  end)

  it("ends at once an upload answered before its body was read, where HTTP/2 would spin", function()
    -- nginx answers at once and never reads the body: an HTTP/2 upload would wait for a window that never opens
    local early = tls.start(sandbox.url, { http2 = true,
      answer = [[default_type application/json; return 200 '{"uploading":{"id":7,"status":"UPLOADED"}}';]] })
    local dir = files.tmpdir()
    local path = files.write(dir .. "/big.csv", "ClientId,Target,DateTime\n"
      .. ("133591247640966458,GOAL1,1481718166\n"):rep(200000))
    local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = early.url,
      ca_file = early.ca_file, retries = 0, upload_timeout = 20 })
    local ok, err = m:upload_offline_conversions { file = path }
    m:close()
    early.stop()
    files.remove(dir)
    assert.are.same({ 7, "UPLOADED" }, { ok and ok.id, ok and ok.status }, tostring(err))
    assert.are.same({}, sandbox.requests())
  end)

  it("refuses plain http to another machine unless allow_http is set", function()
    local m, err = csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = "http://api-metrika.yandex.net" }
    assert.is_nil(m)
    assert.are.equal("invalid_argument", err.code)
    assert.matches("plain http", err.message)
    assert.is_nil(tostring(err):find(support.TOKEN, 1, true))
    assert.is_table(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = "http://10.0.0.1", allow_http = true })
    for _, local_url in ipairs { "http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1" } do
      assert.is_table(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = local_url })
    end
  end)
end)
