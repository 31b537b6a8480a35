-- Every Metrica method through the public client, against the sandbox over a
-- real socket, checking what the sandbox received.
local csvup = require "csvup"
local json = require "csvup.json"
local support = require "support.sandbox"
local socket = require "socket"

local COUNTER = 2215573
local PREFIX = "/management/v1/counter/2215573"
local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

describe("metrika client", function()
  local m
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = COUNTER, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
  end)

  local function last_request()
    local requests = sandbox.requests()
    return requests[#requests], #requests
  end

  -- An upload's query without the marker csvup adds to its comment to find it again.
  local function unmarked(query)
    local comment = query.comment and query.comment:gsub(" ?csvup%x+$", "")
    assert.is_truthy(query.comment == nil or comment ~= query.comment, "the marker is missing")
    query.comment = comment ~= "" and comment or nil
    return query
  end

  describe("offline conversions", function()
    it("streams a file as the multipart part 'file' and returns the uploading, id exact", function()
      local expected = assert(io.open(CONVERSIONS, "rb")):read("a")
      local u = assert(m:upload_offline_conversions { file = CONVERSIONS, comment = "crmsync", type = "BASIC" })
      assert.are.equal(9007199254740993, u.id)
      assert.are.equal("integer", math.type(u.id))
      assert.are.equal("UPLOADED", u.status)
      assert.are.equal(3, u.line_quantity)
      local req = last_request()
      assert.are.equal("POST", req.method)
      assert.are.equal(PREFIX .. "/offline_conversions/upload", req.path)
      assert.are.same({ comment = "crmsync", type = "BASIC" }, unmarked(req.query))
      assert.are.equal("OAuth [hidden]", req.headers.authorization) -- the sandbox hides the token it got
      assert.are.equal("offline_conversions.csv", req.file.filename)
      assert.are.equal("text/csv", req.file.content_type)
      assert.are.equal(expected, req.file.content)
      assert.are.equal(#expected, req.file.size)
      assert.is_nil(req.headers["transfer-encoding"])
      assert.truthy(tonumber(req.headers["content-length"]) > #expected)
    end)

    it("uploads rows as CSV, a ClientId above 2^53 kept to the digit", function()
      local u = assert(m:upload_offline_conversions {
        rows = {
          { ClientId = "133591247640966458", Target = "GOAL1", DateTime = 1481718166, Price = 123.45, Currency = "RUB" },
          { ClientId = 133591247640966459, Target = "GOAL1", DateTime = 1481718167 },
        },
        columns = { "ClientId", "Target", "DateTime", "Price", "Currency" },
      })
      assert.are.equal("UPLOADED", u.status)
      assert.are.equal("ClientId,Target,DateTime,Price,Currency\n"
        .. "133591247640966458,GOAL1,1481718166,123.45,RUB\n"
        .. "133591247640966459,GOAL1,1481718167,,\n", last_request().file.content)
    end)

    it("takes a comment with spaces, № and commas, the marker joined after a space", function()
      assert(m:upload_offline_conversions { file = CONVERSIONS, comment = "crm sync № 5, Выгрузка" })
      assert.matches("^crm sync № 5, Выгрузка csvup%x+$", last_request().query.comment)
      assert(m:upload_calls { file = "spec/fixtures/calls.csv", comment = "Upload by rym at 2026-12-07 10:00:00" })
      assert.matches("^Upload by rym at 2026%-12%-07 10:00:00 csvup%x+$", last_request().query.comment)
      -- the marker takes 16 characters: a comment of 239 still fits, one of 240 does not
      assert(m:upload_offline_conversions { file = CONVERSIONS, comment = ("я"):rep(239) })
      local _, err = m:upload_offline_conversions { file = CONVERSIONS, comment = ("я"):rep(240) }
      assert.matches("shorten it to 239 characters", tostring(err), 1, true)
    end)

    it("refuses, before sending, a conversion or calls comment with a control character or an emoji, naming it", function()
      for _, case in ipairs {
        { "upload_offline_conversions", CONVERSIONS, "crm \u{1F600}", '"\u{1F600}" at character 5' },
        { "upload_offline_conversions", CONVERSIONS, "a\tb", '"\\9" at character 2' },
        { "upload_calls", "spec/fixtures/calls.csv", "calls\n2026", '"\\\n" at character 6' },
        { "upload_calls", "spec/fixtures/calls.csv", "\128abc", "byte \\x80 at character 1" },
        { "upload_calls", "spec/fixtures/calls.csv", "abc\208", "byte \\xD0 at character 4" },
      } do
        local u, err = m[case[1]](m, { file = case[2], comment = case[3] })
        assert.is_nil(u)
        assert.are.same({ "input", "invalid_argument" }, { err.kind, err.code })
        assert.matches("comment may hold no control character and no emoji", tostring(err), 1, true)
        assert.matches(case[4], tostring(err), 1, true)
      end
      assert.are.equal(0, #sandbox.requests())
    end)

    it("sends an expense comment with & = and spaces as exactly one query value", function()
      assert(m:upload_expenses { file = "spec/fixtures/expenses.csv", comment = "a&b=c d" })
      assert.are.same({ comment = "a&b=c d" }, unmarked(last_request().query))
      assert.matches("^a&b=c d csvup%x+$", last_request().query.comment)
    end)

    it("lists uploadings newest first, with limit and offset", function()
      local first = assert(m:upload_offline_conversions { file = CONVERSIONS })
      local second = assert(m:upload_offline_conversions { file = CONVERSIONS })
      local all = assert(m:offline_conversion_uploadings())
      assert.are.same({ second.id, first.id }, { all[1].id, all[2].id })
      local page = assert(m:offline_conversion_uploadings { limit = 1, offset = 1 })
      assert.are.equal(1, #page)
      assert.are.equal(first.id, page[1].id)
      assert.are.same({ limit = "1", offset = "1" }, last_request().query)
    end)

    it("reads one uploading by id, by string id, or by the uploading itself", function()
      local u = assert(m:upload_offline_conversions { file = CONVERSIONS })
      assert.are.equal(u.id, assert(m:offline_conversion_uploading(u.id)).id)
      assert.are.equal(u.id, assert(m:offline_conversion_uploading(tostring(u.id))).id)
      assert.are.equal(u.id, assert(m:offline_conversion_uploading(u)).id)
      assert.are.equal(PREFIX .. "/offline_conversions/uploading/9007199254740993", last_request().path)
    end)

    it("sees the uploading reach PROCESSED, or LINKAGE_FAILURE when no visitor matches", function()
      local good = assert(m:upload_offline_conversions { file = CONVERSIONS })
      local unmatched = assert(m:upload_offline_conversions {
        rows = { { ClientId = "0", Target = "GOAL1", DateTime = 1481718166 } },
      })
      socket.sleep(0.3)
      assert.are.equal("PROCESSED", assert(m:offline_conversion_uploading(good.id)).status)
      assert.are.equal("LINKAGE_FAILURE", assert(m:offline_conversion_uploading(unmatched.id)).status)
    end)

    it("uploads calls with new_goal_name and reads them back", function()
      local u = assert(m:upload_calls {
        rows = { { ClientId = "133591247640966458", DateTime = 1481718166, PhoneNumber = "+79990000000" } },
        new_goal_name = "Calls",
      })
      local req = last_request()
      assert.are.equal(PREFIX .. "/offline_conversions/upload_calls", req.path)
      assert.are.same({ new_goal_name = "Calls" }, unmarked(req.query))
      assert.are.equal(u.id, assert(m:calls_uploading(u.id)).id)
      assert.are.equal(u.id, assert(m:calls_uploadings())[1].id)
      assert.are.equal(PREFIX .. "/offline_conversions/calls_uploadings", last_request().path)
    end)

    it("reads and switches the visit join thresholds", function()
      assert.is_false(assert(m:visit_join_threshold()).visit_join_threshold.extended)
      assert.is_true(assert(m:enable_extended_threshold()).success)
      assert.are.equal("POST", last_request().method)
      assert.is_true(assert(m:visit_join_threshold()).visit_join_threshold.extended)
      assert(m:disable_extended_threshold())
      local req = last_request()
      assert.are.equal("DELETE", req.method)
      assert.are.equal(PREFIX .. "/offline_conversions/extended_threshold", req.path)
      assert.is_true(assert(m:enable_calls_extended_threshold()).success)
      assert.is_true(assert(m:calls_visit_join_threshold()).visit_join_threshold.extended)
      assert(m:disable_calls_extended_threshold())
      assert.are.equal(PREFIX .. "/offline_conversions/calls_extended_threshold", last_request().path)
      assert.is_false(assert(m:calls_visit_join_threshold()).visit_join_threshold.extended)
    end)
  end)

  describe("expenses", function()
    it("uploads costs with a provider, deletes them by file, and lists both", function()
      local upload = assert(m:upload_expenses { file = "spec/fixtures/expenses.csv", provider = "fb" })
      assert.are.equal("EXPENSES", upload.type)
      assert.are.same({ provider = "fb" }, unmarked(last_request().query))
      assert.are.equal(PREFIX .. "/expense/upload", last_request().path)
      local delete = assert(m:delete_expenses { rows = { { Date = "2026-11-01", UTMSource = "fb" } }, comment = "oops" })
      assert.are.equal("REMOVES", delete.type)
      local req = last_request()
      assert.are.equal(PREFIX .. "/expense/delete", req.path)
      assert.are.same({ comment = "oops" }, unmarked(req.query))
      assert.are.equal("Date,UTMSource\n2026-11-01,fb\n", req.file.content)
      local list = assert(m:expense_uploadings())
      assert.are.same({ delete.id, upload.id }, { list[1].id, list[2].id })
      assert.are.equal(upload.id, assert(m:expense_uploading(upload.id)).id)
    end)

    it("deletes one line with the API's parameter names", function()
      local u = assert(m:delete_expense_line {
        date = "2026-11-01", utm_source = "fb", utm_campaign = "black friday", traffic_source = "ad", provider = "fb",
      })
      assert.are.equal("REMOVES", u.type)
      local req = last_request()
      assert.are.equal(PREFIX .. "/expense/delete_single", req.path)
      assert.are.same({ date = "2026-11-01", UTMSource = "fb", UTMCampaign = "black friday",
        trafficSource = "ad", provider = "fb" }, req.query)
    end)
  end)

  describe("user parameters", function()
    it("uploads, confirms with the uploading as JSON, and then it is processed", function()
      local u = assert(m:upload_user_params {
        rows = { { ClientId = "133591247640966458", Key = "plan", Value = "gold" } },
        action = "update", content_id_type = "client_id",
      })
      -- the upload takes only action; content_id_type goes with the confirmation
      assert.are.same({ action = "update" }, last_request().query)
      socket.sleep(0.3)
      assert.are.equal("is_processed", assert(m:user_params_uploading(u.id)).status)
      assert(m:confirm_user_params(u, { comment = "plans" }))
      local req = last_request()
      assert.are.equal(PREFIX .. "/user_params/uploading/" .. u.id .. "/confirm", req.path)
      local sent = json.decode(req.body).uploading
      assert.are.same({ u.id, "client_id", "plans" }, { sent.id, sent.content_id_type, sent.comment })
      socket.sleep(0.3)
      assert.are.equal("processed", assert(m:user_params_uploading(u.id)).status)
      assert.are.equal(u.id, assert(m:user_params_uploadings())[1].id)
      assert.are.same({}, last_request().query)
    end)

    it("lists user-parameter uploadings with limit and offset", function()
      assert(m:upload_user_params { file = "spec/fixtures/user_params.csv", action = "update" })
      local second = assert(m:upload_user_params { file = "spec/fixtures/user_params.csv", action = "update" })
      local page = assert(m:user_params_uploadings { limit = 1, offset = 1 })
      assert.are.equal(1, #page)
      assert.are_not.equal(second.id, page[1].id)
      assert.are.same({ limit = "1", offset = "1" }, last_request().query)
    end)
  end)

  describe("CRM", function()
    it("uploads simple orders with merge_mode and delimiter_type, and lists them", function()
      local u = assert(m:upload_crm {
        entity = "simple_orders", merge_mode = "APPEND", delimiter_type = "SEMICOLON",
        rows = { { id = "1", create_date_time = "2026-11-20 10:00:00", client_ids = "133591247640966458", revenue = 100.5 } },
        columns = { "id", "create_date_time", "client_ids", "revenue" },
      })
      local req = last_request()
      assert.are.equal("/cdp/api/v1/counter/2215573/data/simple_orders", req.path)
      assert.are.same({ merge_mode = "APPEND", delimiter_type = "SEMICOLON" }, req.query)
      assert.are.equal("id;create_date_time;client_ids;revenue\n1;2026-11-20 10:00:00;133591247640966458;100.5\n",
        req.file.content)
      assert.are.equal("PASSED", u.api_validation_status)
      assert.are.equal("string", type(u.uploading_id))
      assert.are.equal(u.uploading_id, assert(m:crm_uploadings { limit = 5 })[1].uploading_id)
      assert.are.equal("/cdp/api/v1/counter/2215573/last_uploadings", last_request().path)
    end)

    it("uploads contacts and orders to their own paths, saying the file's delimiter though it is a comma", function()
      assert(m:upload_crm { entity = "contacts", merge_mode = "SAVE", file = "spec/fixtures/contacts.csv" })
      assert.are.equal("/cdp/api/v1/counter/2215573/data/contacts/csv", last_request().path)
      assert.are.same({ merge_mode = "SAVE", delimiter_type = "COMMA" }, last_request().query)
      assert(m:upload_crm { entity = "orders", merge_mode = "UPDATE", file = "spec/fixtures/contacts.csv" })
      assert.are.equal("/cdp/api/v1/counter/2215573/data/orders/csv", last_request().path)
      assert.are.same({ merge_mode = "UPDATE", delimiter_type = "COMMA" }, last_request().query)
    end)
  end)

  describe("errors from the API (client checks off, to reach it)", function()
    it("gives the service's error_type, message and every error entry", function()
      local u, err = m:upload_offline_conversions { rows = { { ClientId = "1", DateTime = 1481718166 } }, validate = false }
      assert.is_nil(u)
      assert.are.equal(400, err.status)
      assert.are.equal("invalid_uploading", err.code)
      assert.matches("Target", err.message)
      assert.are.equal("invalid_uploading", err.errors[1].error_type)
      assert.matches("^HTTP 400 invalid_uploading: line 1: ", tostring(err))
    end)

    it("names the line of a bad row", function()
      local _, err = m:upload_offline_conversions { rows = {
        { ClientId = "1", Target = "G", DateTime = 1481718166 },
        { ClientId = "2", Target = "G", DateTime = 1481718166000 },
      }, validate = false }
      assert.matches("line 3: DateTime", err.message)
    end)

    it("answers a wrong token with 403 invalid_token and a missing scheme with 401", function()
      local wrong = assert(csvup.metrika.new { token = "wrong", counter = COUNTER, base_url = sandbox.url })
      local _, err = wrong:offline_conversion_uploadings()
      assert.are.equal(403, err.status)
      assert.are.equal("invalid_token", err.code)
      assert.is_nil(tostring(err):find("wrong", 1, true))
      wrong:close()
    end)

    it("reports a connection refused as COULDNT_CONNECT", function()
      local port = assert(socket.bind("127.0.0.1", 0))
      local _, p = port:getsockname()
      port:close()
      local dead = assert(csvup.metrika.new { token = support.TOKEN, counter = COUNTER, base_url = "http://127.0.0.1:" .. p,
        retries = 0 })
      local _, err = dead:offline_conversion_uploadings()
      assert.are.equal("COULDNT_CONNECT", err.code)
      assert.is_nil(err.status)
      dead:close()
    end)
  end)
end)
