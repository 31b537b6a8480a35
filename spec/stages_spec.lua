-- core.request's body chain: a source (a file or a string) through
-- args.stages, in order, each stage reading from the one before it.
local core = require "csvup.core"
local csvup = require "csvup"
local EP = require("csvup.registry").endpoint
local files = require "support.files"
local support = require "support.sandbox"
local validate = require "csvup.validate"

local HEADER = "ClientId;Target;DateTime;Price;Currency\n"
local ROW = "133591247640966458;GOAL1;1481718166;123.45;RUB\n"

describe("an upload body's stages", function()
  local sandbox = support.sandbox()
  local m, dir
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    dir = files.tmpdir()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
    files.remove(dir)
  end)

  -- A plan of the conversions' schema for the header, its delimiter a comma.
  local function plan()
    local path = dir .. "/header.csv"
    files.write(path, HEADER:gsub(";", ","))
    local p = assert(validate.plan("offline_conversions", path, { delimiter = "," }))
    p.delimiter = ","
    return p
  end

  it("recode a string as it is sent", function()
    local status = core.request(m.conn, EP.upload_offline_conversions, { counter = 1, data = HEADER .. ROW,
      stages = { { "recode", delimiter = ";", to = "," } } })
    assert.are.equal(200, status)
    assert.are.equal((HEADER .. ROW):gsub(";", ","), sandbox.requests()[1].file.content)
  end)

  it("check a string's UTF-8 as it is sent, naming the first byte that is not", function()
    local result, err = core.request(m.conn, EP.upload_offline_conversions, { counter = 1,
      data = HEADER .. ROW .. "1;G\xffOAL;1481718166;1;RUB\n", stages = { { "utf8" } } })
    assert.is_nil(result)
    assert.are.equal("validation_failed", err.code)
    assert.matches("byte " .. #HEADER + #ROW + 4 .. " of the file is not valid UTF%-8", err.message)
    assert.are.equal(0, #sandbox.requests()) -- the body never ended: the service got no request
  end)

  it("check the records of a converted file as they are sent, after the recoder", function()
    local path = dir .. "/orders.csv"
    files.write(path, HEADER .. ROW:rep(1000) .. "1.3e+17;GOAL1;1481718166;1;RUB\n" .. ROW)
    local result, err = core.request(m.conn, EP.upload_offline_conversions, { counter = 1, file = path,
      stages = { { "recode", delimiter = ";", to = "," }, { "check", plan = plan() } } })
    assert.is_nil(result)
    assert.are.equal("validation_failed", err.code)
    assert.matches("line 1002: a value does not pass its check", err.message)
    assert.are.equal(0, #sandbox.requests())
  end)

  it("send a converted file whose records pass, byte for byte", function()
    local path = dir .. "/orders.csv"
    files.write(path, HEADER .. ROW:rep(1000))
    assert.are.equal(200, (core.request(m.conn, EP.upload_offline_conversions, { counter = 1, file = path,
      stages = { { "recode", delimiter = ";", to = "," }, { "check", plan = plan() }, { "utf8" } } })))
    assert.are.equal((HEADER .. ROW:rep(1000)):gsub(";", ","), sandbox.requests()[1].file.content)
  end)

  it("send a byte order mark as it is, before the header the check reads", function()
    local data = "\xEF\xBB\xBF" .. HEADER:gsub(";", ","):gsub("\n", "") -- the header's end is the file's
    core.request(m.conn, EP.upload_offline_conversions, { counter = 1, data = data,
      stages = { { "check", plan = plan() } } })
    assert.are.equal(data, sandbox.requests()[1].file.content)
  end)

  it("are named: another name is a programmer's error", function()
    assert.has_error(function()
      core.request(m.conn, EP.upload_offline_conversions, { counter = 1, data = HEADER, stages = { { "gzip" } } })
    end, "args.stages: no stage gzip")
  end)
end)
