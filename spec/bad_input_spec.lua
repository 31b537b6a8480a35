-- Bad input is refused with a clear error before anything is sent.
local csvup = require "csvup"
local core = require "csvup.core"
local EP = require("csvup.registry").endpoint
local support = require "support.sandbox"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

describe("bad input", function()
  local sandbox, m, cq = support.sandbox(), nil, nil

  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 2215573, base_url = sandbox.url })
    cq = assert(csvup.carrotquest.new { token = support.TOKEN, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
    cq:close()
    assert.are.same({}, sandbox.requests(), "nothing may reach the API")
  end)

  local function refused(code, pattern, result, err)
    assert.is_nil(result)
    assert.are.equal(code, err.code)
    assert.matches(pattern, tostring(err))
  end

  it("a missing file, named in the error", function()
    refused("file_not_found", "nope%.csv: No such file", m:upload_offline_conversions { file = sandbox.tmp .. "/nope.csv" })
  end)

  it("a path that is not a readable regular file", function()
    refused("file_unreadable", "not a regular file", m:upload_offline_conversions { file = sandbox.tmp })
  end)

  if io.popen("id -u"):read("l") ~= "0" then -- root reads any file
    it("a file without read permission", function()
      local path = sandbox.tmp .. "/secret.csv"
      assert(io.open(path, "w")):close()
      os.execute("chmod 000 " .. path)
      refused("file_unreadable", "Permission denied", m:upload_offline_conversions { file = path })
    end)
  end

  it("a counter that is not a positive integer", function()
    for _, counter in ipairs { 0, -5, 1.5, 2215573.0, "abc", "12a", "", false } do
      local bad = assert(csvup.metrika.new { token = support.TOKEN, counter = counter, base_url = sandbox.url })
      refused("invalid_argument", "counter must be a positive integer", bad:offline_conversion_uploadings())
      bad:close()
    end
  end)

  it("an id that is a float or above int64", function()
    refused("invalid_argument", "id must be a positive integer", m:offline_conversion_uploading(1.5))
    refused("invalid_argument", "id must be a positive integer", m:offline_conversion_uploading("9223372036854775808"))
  end)

  it("a file over the endpoint's limit: 1 GB for Metrica", function()
    local big = sandbox.tmp .. "/big.csv"
    assert(os.execute("truncate -s 1025M " .. big))
    refused("file_too_large", "big%.csv is 1025%.0 MB %(1074790400 bytes%), over the 1024 MB limit",
      m:upload_offline_conversions { file = big })
    refused("file_too_large", "over the 1024 MB limit of upload_expenses", m:upload_expenses { file = big })
  end)

  it("a file over the endpoint's limit: 30 MB for Carrot quest", function()
    local big = sandbox.tmp .. "/users.csv"
    assert(os.execute("truncate -s 31M " .. big))
    refused("file_too_large", "over the 30 MB limit of import_users", cq:import_users { file = big })
  end)

  it("a comment over 255 characters, counted as characters and not bytes", function()
    refused("invalid_argument", "comment must be at most 255 characters",
      m:upload_offline_conversions { file = CONVERSIONS, comment = ("я"):rep(256) })
    refused("invalid_argument", "comment", m:delete_expense_line { date = "2026-11-01", comment = ("x"):rep(300) })
  end)

  it("a line break or NUL in a value bound for a query or a form field", function()
    refused("invalid_argument", "query parameter 'comment'",
      m:upload_expenses { file = CONVERSIONS, comment = "a\r\nX-Injected: 1", validate = false })
    refused("invalid_argument", "query parameter 'provider'", m:upload_expenses { file = CONVERSIONS, provider = "a\0b", validate = false })
    refused("invalid_argument", "tags %[1%] must be a non%-empty tag name of one line", cq:import_users { file = CONVERSIONS, tags = { "a\nb" }, validate = false })
    refused("invalid_argument", "filename", m:upload_calls { file = CONVERSIONS, filename = "x\r\n.csv", validate = false })
    local app = assert(csvup.carrotquest.new { token = support.TOKEN, app = "1\n2", base_url = sandbox.url })
    refused("invalid_argument", "form field 'app'", app:import_users { file = CONVERSIONS, validate = false })
    app:close()
  end)

  it("tags that are not an array of names", function()
    refused("invalid_argument", "tags must be a tag name or an array", cq:import_users { file = CONVERSIONS,
      tags = { x = "vip" }, validate = false })
    refused("invalid_argument", "tags must be a tag name or an array", cq:import_users { file = CONVERSIONS,
      tags = { "a", nil, "c" }, validate = false })
  end)

  it("an unknown delimiter or merge_field for Carrot quest", function()
    refused("invalid_argument", 'delimiter must be one of: ",", ";", "|", "\\9", " ", got "::"', cq:import_users { file = CONVERSIONS, delimiter = "::" })
    refused("invalid_argument", 'merge_field must be one of: "%$user_id", "%$email", got "%$phone"',
      cq:import_users { file = CONVERSIONS, merge_field = "$phone" })
  end)

  it("an unknown type, action, merge_mode or entity for Metrica", function()
    refused("invalid_argument", 'type must be one of: "BASIC", "CALLS", "CHATS", got "PHONE"',
      m:upload_offline_conversions { file = CONVERSIONS, type = "PHONE" })
    refused("invalid_argument", "action is required", m:upload_user_params { file = CONVERSIONS })
    refused("invalid_argument", "merge_mode", m:upload_crm { entity = "orders", merge_mode = "MERGE", file = CONVERSIONS })
    refused("invalid_argument", "entity", m:upload_crm { entity = "leads", merge_mode = "SAVE", file = CONVERSIONS })
    refused("invalid_argument", "date must be a date YYYY%-MM%-DD or a range", m:delete_expense_line { date = "01.11.2026" })
  end)

  it("both file and rows, or neither", function()
    refused("invalid_argument", "exactly one of file", m:upload_offline_conversions { file = CONVERSIONS, rows = {} })
    refused("invalid_argument", "exactly one of file", m:upload_offline_conversions {})
  end)

  it("a value that CSV cannot hold, with its row and column, even unvalidated", function()
    refused("invalid_value", "row 2, column Price", m:upload_offline_conversions {
      rows = { { ClientId = "1", Target = "G", DateTime = 1, Price = 1 }, { ClientId = "2", Target = "G", DateTime = 1, Price = {} } },
      validate = false,
    })
  end)

  it("a missing token", function()
    local client, err = csvup.metrika.new { counter = 1, base_url = sandbox.url }
    refused("invalid_argument", "a token is required", client, err)
  end)

  it("raises for programmer misuse: options that are not a table", function()
    assert.has_error(function() m:upload_offline_conversions("file.csv") end)
    assert.has_error(function() core.request(m.conn, EP.upload_calls, { file = CONVERSIONS, progress = 42 }) end)
    assert.has_error(function() core.request(m.conn, EP.import_users, { file = CONVERSIONS }) end,
      "import_users is a carrotquest endpoint, called with a metrika connection")
  end)
end)
