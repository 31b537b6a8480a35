-- What goes on the wire and what comes back, as the services document them,
-- checked byte for byte against a plain server that records every request and
-- answers as told.
local csvup = require "csvup"
local json = require "csvup.json"
local recorder = require "support.recorder"
local support = require "support.sandbox"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"
local PREFIX = "/management/v1/counter/1"
local UPLOADING = '{"uploading":{"id":9007199254740993,"status":"UPLOADED","comment":"x.csv",'
  .. '"content_id_type":null}}'

describe("on the wire", function()
  local server, m, cq

  setup(function()
    server = recorder.start()
  end)

  teardown(function()
    server.stop()
  end)

  before_each(function()
    m = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url, retries = 0, resolve_timeout = 0 })
    cq = assert(csvup.carrotquest.new { token = "t", base_url = server.url, retries = 0 })
  end)

  after_each(function()
    m:close()
    cq:close()
  end)

  local function last()
    local list = server.requests()
    return list[#list]
  end

  -- The multipart part named name: its content.
  local function part(body, name)
    return body:match('name="' .. name .. '"\r\n\r\n(.-)\r\n%-%-')
  end

  it("sends the token only in the Authorization header", function()
    server.answer { { method = "GET", path = "/expense/uploadings", body = '{"uploadings":[]}' } }
    local secret = assert(csvup.metrika.new { token = "s3cr3t-token", counter = 1, base_url = server.url })
    assert(secret:expense_uploadings())
    secret:close()
    local req = last()
    assert.matches("\r\nAuthorization: OAuth s3cr3t%-token\r\n", req.head .. "\r\n")
    assert.are.equal(1, select(2, req.raw:gsub("s3cr3t%-token", "")))
  end)

  it("sends Carrot quest tags as one form field holding a JSON array", function()
    server.answer { { method = "POST", path = "^/users/import", body = '{"meta":{"status":200},"data":{"row_errors":{},'
      .. '"updates_planned":2}}' } }
    assert(cq:import_users { file = "spec/fixtures/carrotquest_users.csv", merge_field = "$email", delimiter = ";",
      tags = { "vip", "x y" } })
    local body = last().body
    assert.are.equal('["vip","x y"]', part(body, "tags"))
    assert.are.equal(1, select(2, body:gsub('name="tags"', "")))
  end)

  it("takes Carrot quest row_errors keyed by line, and keeps other keys as they came, raising nothing", function()
    server.answer { { method = "POST", path = "^/users/import", body = '{"meta":{"status":200},"data":{"row_errors":'
      .. '{"1":"bad email","33":"empty"},"updates_planned":5}}' } }
    local result = assert(cq:import_users { file = "spec/fixtures/carrotquest_users.csv", merge_field = "$email",
      delimiter = ";" })
    assert.are.same({ [1] = "bad email", [33] = "empty" }, result.row_errors)
    assert.are.same({ row_errors = { ["1"] = "bad email", ["33"] = "empty" }, updates_planned = 5 },
      json.decode(json.encode(result)))
    for _, row_errors in ipairs { '{"1":"a","x":"b"}', '{"0":"a"}', '{"1":{"nested":1}}', '{"1.5":"a"}',
      '{"1":"a","01":"b"}', '{"100000000000000000000":"a"}' } do
      server.answer { { method = "POST", path = "^/users/import", body = '{"meta":{"status":200},"data":{"row_errors":'
        .. row_errors .. ',"updates_planned":1}}' } }
      local ok, r, err = pcall(cq.import_users, cq, { file = "spec/fixtures/carrotquest_users.csv",
        merge_field = "$email", delimiter = ";" })
      assert.is_true(ok, tostring(r))
      assert.is_nil(err, row_errors)
      assert.are.same({ {}, json.decode(row_errors) }, { r.row_errors, r.row_errors_raw }, row_errors)
    end
  end)

  -- A bad answer to an upload leaves its outcome unknown: it is looked up, and stays unknown here.
  it("refuses as a bad answer an uploading whose id is no whole number from 0", function()
    for _, id in ipairs { "NaN", "-Infinity", "Infinity", "-5", "1.5", '"12a"', "null", "true",
      math.type and '"12"' or "-1" } do -- on Lua 5.4 an id is a number, as the service writes it
      server.answer { { method = "POST", path = "/offline_conversions/upload",
        body = '{"uploading":{"id":' .. id .. ',"status":"UPLOADED"}}' } }
      local u, err = m:upload_offline_conversions { file = CONVERSIONS }
      assert.is_nil(u, id)
      assert.are.same({ "outcome_unknown", "bad_response" }, { err.code, err.cause }, id)
    end
  end)

  it("finds a lost answer only in a listed uploading that has an id", function()
    local lost = assert(csvup.metrika.new { token = "t", counter = 1, base_url = server.url, retries = 0,
      resolve_timeout = 0 })
    for _, id in ipairs { "", '"id":"x",', '"id":17,' } do
      server.answer { { method = "POST", path = "/offline_conversions/upload", status = 0, body = "" },
        { method = "GET", path = "/offline_conversions/uploadings",
          body = '{"uploadings":[{' .. id .. '"comment":"$COMMENT","status":"PROCESSED"}]}' } }
      local u, err = lost:upload_offline_conversions { file = CONVERSIONS }
      if id == "" or id:find('"x"') then
        assert.are.equal("outcome_unknown", err and err.code, id)
      else
        assert.are.same({ 17, "PROCESSED" }, { u.id, u.status })
      end
    end
    lost:close()
  end)

  it("uploads user parameters with only action, and confirms with content_id_type in the body", function()
    server.answer { { method = "POST", path = "/user_params/uploadings/upload", body = UPLOADING },
      { method = "POST", path = "/confirm$", body = UPLOADING:gsub("null", '"client_id"') } }
    local u = assert(m:upload_user_params { file = "spec/fixtures/user_params.csv", action = "update",
      content_id_type = "client_id" })
    assert.matches("^POST " .. PREFIX .. "/user_params/uploadings/upload%?action=update HTTP", last().line)
    assert(m:confirm_user_params(u))
    local req = last()
    assert.matches("^POST " .. PREFIX .. "/user_params/uploading/9007199254740993/confirm HTTP", req.line)
    assert.matches('"id":9007199254740993[,}]', req.body)
    assert.are.equal("client_id", json.decode(req.body).uploading.content_id_type)
  end)

  it("edits an uploading of user parameters with PUT and an uploading body", function()
    server.answer { { method = "PUT", path = "/user_params/uploading/%d+$", body = UPLOADING } }
    assert(m:edit_user_params_uploading("9007199254740993", { comment = "plans", content_id_type = "user_id" }))
    local req = last()
    assert.matches("^PUT " .. PREFIX .. "/user_params/uploading/9007199254740993 HTTP", req.line)
    local sent = json.decode(req.body).uploading
    assert.are.same({ "plans", "user_id" }, { sent.comment, sent.content_id_type })
  end)

  it("returns a CRM uploading as the service describes it, and refuses a FAILED one", function()
    local answer = '{"uploading":{"uploading_id":"98765432109876543210","datetime":"2026-11-25 10:00:00",'
      .. '"api_validation_status":"%s","elements_count":2,"entity_type":"CONTACT","uploading_format":"CSV",'
      .. '"uploading_source":"API"}}'
    server.answer { { method = "POST", path = "/data/contacts/csv", body = answer:format("PASSED") } }
    local u = assert(m:upload_crm { entity = "contacts", merge_mode = "SAVE", delimiter_type = "SEMICOLON",
      file = "spec/fixtures/contacts.csv" })
    assert.are.equal("98765432109876543210", u.uploading_id)
    assert.matches("/data/contacts/csv%?merge_mode=SAVE&delimiter_type=SEMICOLON ", last().line)
    server.answer { { method = "POST", path = "/data/contacts/csv", body = answer:format("FAILED") } }
    local _, err = m:upload_crm { entity = "contacts", merge_mode = "SAVE", file = "spec/fixtures/contacts.csv" }
    assert.are.same({ "api", "api_validation_failed" }, { err.kind, err.code })
    assert.are.equal("98765432109876543210", err.uploading.uploading_id)
  end)

  it("sends the documented query parameters of deletes and lists", function()
    server.answer { { method = "POST", path = "/expense/delete_single", body = UPLOADING },
      { method = "GET", path = "/uploadings", body = '{"uploadings":[]}' },
      { method = "GET", path = "/last_uploadings", body = '{"uploadings":[]}' } }
    assert(m:delete_expense_line { date = "2026-11-01/2026-11-20", utm_campaign = "autumn" })
    assert.matches("/expense/delete_single%?date=2026%-11%-01%%2F2026%-11%-20&UTMCampaign=autumn ", last().line)
    assert(m:offline_conversion_uploadings { type = "CALLS", limit = 5 })
    assert.matches("/offline_conversions/uploadings%?limit=5 ", last().line) -- the list takes no type
    assert(m:crm_uploadings { limit = 1000, datetime_offset = "2026-11-01 00:00:00", source = "API" })
    assert.matches("/last_uploadings%?limit=1000&datetime_offset=2026%-11%-01%%2000%%3A00%%3A00&source=API ", last().line)
    local before = #server.requests()
    local _, err = m:crm_uploadings { limit = 1001 }
    assert.are.same({ "input", before }, { err.kind, #server.requests() })
  end)

  it("lists goals, creates one, and checks every Target against them when asked", function()
    server.answer { { method = "GET", path = "/goals$", body = '{"goals":[{"id":1,"name":"Paid","type":"action",'
      .. '"is_retargeting":0,"conditions":[{"type":"exact","url":"GOAL1"}]}]}' },
      { method = "POST", path = "/goals$", body = '{"goal":{"id":2,"name":"Lead","type":"action",'
      .. '"conditions":[{"type":"exact","url":"lead"}]}}' },
      { method = "POST", path = "/offline_conversions/upload", body = UPLOADING } }
    assert.are.equal("GOAL1", assert(m:goals())[1].conditions[1].url)
    local goal = assert(m:create_goal { name = "Lead", identifier = "lead" })
    assert.are.equal(2, goal.id)
    assert.are.same({ goal = { name = "Lead", type = "action", conditions = { { type = "exact", url = "lead" } } } },
      json.decode(last().body))
    local before = #server.requests()
    local _, err = m:upload_offline_conversions { check_targets = true,
      rows = { { ClientId = "1", Target = "GOAL1", DateTime = 1481718166 }, { ClientId = "2", Target = "GOAL2",
        DateTime = 1481718166 } } }
    assert.are.same({ "input", "unknown_target", 3, "Target" },
      { err.kind, err.code, err.problems[1].line, err.problems[1].column })
    assert.are.equal(before + 1, #server.requests()) -- the goals were read; nothing was uploaded
    _, err = m:upload_offline_conversions { file = CONVERSIONS, check_targets = true }
    assert.are.same({ CONVERSIONS, 4, 1 }, { err.file, err.problems[1].line, err.problem_count })
    assert(m:upload_offline_conversions { check_targets = true,
      rows = { { ClientId = "1", Target = "GOAL1", DateTime = 1481718166 } } })
    local semicolons = os.tmpname()
    local f = assert(io.open(semicolons, "w"))
    f:write("ClientId;Target;DateTime\n1;NOSUCHGOAL;1481718166\n")
    f:close()
    _, err = m:upload_offline_conversions { file = semicolons, delimiter = ";", check_targets = true }
    os.remove(semicolons)
    assert.are.same({ "unknown_target", 2 }, { err.code, err.problems[1].line }) -- read as the upload reads it
  end)

  it("treats a success of the wrong shape as bad_response, never as a result", function()
    for _, body in ipairs { "null", "true", '{"uploading":5}', "{}", "[]", '{"uploading":{"status":"UPLOADED"}}' } do
      server.answer { { method = "POST", path = "/expense/upload", body = body } }
      local result, err = m:upload_expenses { file = "spec/fixtures/expenses.csv" }
      assert.is_nil(result, body)
      assert.are.same({ "outcome_unknown", "bad_response" }, { err.code, err.cause }, body)
    end
  end)

  it("exits non-zero from the command line for a refused CRM upload or a shapeless answer", function()
    server.answer { { method = "POST", path = "/data/contacts/csv", body = '{"uploading":{"uploading_id":"7",'
      .. '"api_validation_status":"FAILED"}}' }, { method = "POST", path = "/expense/upload", body = "{}" } }
    local command = "CSVUP_METRIKA_TOKEN=t " .. support.LUA .. " lua/bin/csvup metrika %s --no-journal --resolve-timeout 0 --counter 1 --base-url "
      .. server.url .. " %s >/dev/null 2>&1"
    local ok, _, code = os.execute(command:format("upload-crm --entity contacts --merge-mode SAVE",
      "spec/fixtures/contacts.csv"))
    assert.are.same({ false, 1 }, { ok or false, code })
    ok, _, code = os.execute(command:format("upload-expenses", "spec/fixtures/expenses.csv"))
    assert.are.same({ false, 4 }, { ok or false, code }) -- its outcome unknown: the list did not show it
  end)
end)
