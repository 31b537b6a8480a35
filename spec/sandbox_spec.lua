-- The sandbox against the API reference, in plain HTTP: the requests it takes
-- and refuses, and the shapes of its answers.
local support = require "support.sandbox"
local json = require "csvup.json"

local COUNTER = 2215573
local M = "/management/v1/counter/" .. COUNTER
local CDP = "/cdp/api/v1/counter/" .. COUNTER

local function csv_part(content, filename)
  return { name = "file", filename = filename or "data.csv", content = content }
end

describe("sandbox", function()
  local sandbox = support.sandbox { ["process-delay"] = 0.2 }
  setup(sandbox.start)
  teardown(sandbox.stop)
  before_each(sandbox.reset)

  local function call(r)
    return support.call(sandbox.url, r)
  end

  local function carrot_import(fields, content)
    local form = { { name = "app", content = "12345" }, { name = "delimiter", content = "," } }
    for _, f in ipairs(fields) do
      form[#form + 1] = { name = f[1], content = f[2] }
    end
    form[#form + 1] = csv_part(content or "$user_id,$name\n1,Anna\n")
    return call { path = "/users/import", form = form }
  end

  local function assert_carrot_error(expected_status, expected_error, status, body)
    assert.are.equal(expected_status, status)
    assert.are.equal(expected_status, body.meta.status)
    assert.are.equal(expected_error, body.meta.error)
    assert.is_string(body.meta.error_message)
    assert.are.same({}, body.data)
    assert.is_nil(body.errors)
  end

  describe("Carrot quest import", function()
    it("takes tags as one field holding a JSON array", function()
      local status, body = carrot_import { { "tags", '["vip","x y"]' } }
      assert.are.equal(200, status)
      assert.are.equal(1, body.data.updates_planned)
      assert.are.same({ '["vip","x y"]' }, sandbox.requests()[1].fields.tags)
    end)

    it("refuses tags sent as one field per tag, or not as a JSON array", function()
      assert_carrot_error(400, "ValidationError", carrot_import { { "tags", '"vip"' }, { "tags", '"x y"' } })
      assert_carrot_error(400, "ValidationError", carrot_import { { "tags", '"vip"' } })
      assert_carrot_error(400, "ValidationError", carrot_import { { "tags", "vip" } })
      assert_carrot_error(400, "ValidationError", carrot_import { { "tags", '{"a":"vip"}' } })
    end)

    it("accepts a $ column outside the best-known system properties", function()
      local status, body = carrot_import({}, "$user_id,$last_seen,$utm_source\n1,2026-11-20,mail\n")
      assert.are.equal(200, status)
      assert.are.equal(1, body.data.updates_planned)
    end)

    it("answers injected 429 and 503 faults in its own envelope", function()
      sandbox.fault { fault = "too_many_requests", path = "/users/import", retry_after = 2 }
      local status, body, headers = carrot_import {}
      assert_carrot_error(429, "TooManyRequests", status, body)
      assert.are.equal("2", headers["retry-after"])
      sandbox.fault { fault = "backend_error", path = "/users/import" }
      assert_carrot_error(503, "ServiceUnavailable", carrot_import {})
      sandbox.fault { fault = "backend_error", path = "/offline_conversions" }
      status, body = call { path = M .. "/offline_conversions/uploadings" }
      assert.are.equal(503, status)
      assert.are.equal("backend_error", body.errors[1].error_type)
    end)
  end)

  describe("user parameters", function()
    local function upload(query, content, filename)
      return call { path = M .. "/user_params/uploadings/upload", query = query,
        form = { csv_part(content or "clientid,key,value\n133591247640966458,tier,gold\n", filename or "params.csv") } }
    end

    it("take only action on upload, and answer with content_id_type null and the file name as comment", function()
      local status, body = upload { action = "update", content_id_type = "client_id" }
      assert.are.equal(400, status)
      assert.are.equal("invalid_parameter", body.errors[1].error_type)
      assert.are.equal("content_id_type", body.errors[1].location)
      status, body = upload { action = "update" }
      assert.are.equal(200, status)
      assert.are.equal(json.null, body.uploading.content_id_type)
      assert.are.equal("params.csv", body.uploading.comment)
      assert.are.equal("is_processed", body.uploading.status)
    end)

    it("match column names in any case; a delete_keys file may hold only key", function()
      assert.are.equal(200, (upload({ action = "update" }, "UserId,Key,Value\nu1,tier,gold\n")))
      assert.are.equal(200, (upload({ action = "delete_keys" }, "key\ntier\n")))
      local status, body = upload({ action = "update" }, "key\ntier\n")
      assert.are.equal(400, status)
      assert.are.equal("invalid_uploading", body.errors[1].error_type)
    end)

    it("are confirmed with content_id_type in the JSON body, and refused without a valid one", function()
      local _, up = upload { action = "update" }
      local id = up.uploading.id
      local confirm = M .. "/user_params/uploading/" .. id .. "/confirm"
      local status, body = call { path = confirm, body = json.encode { uploading = { id = id } } }
      assert.are.equal(400, status)
      assert.are.equal("uploading.content_id_type", body.errors[1].location)
      status, body = call { path = confirm, body = json.encode { uploading = { content_id_type = "email" } } }
      assert.are.equal(400, status)
      assert.are.equal("uploading.content_id_type", body.errors[1].location)
      status, body = call { path = confirm,
        body = json.encode { uploading = { id = id, content_id_type = "client_id", comment = "tiers" } } }
      assert.are.equal(200, status)
      assert.are.equal(id, body.uploading.id)
      assert.are.equal("client_id", body.uploading.content_id_type)
      assert.are.equal("tiers", body.uploading.comment)
    end)

    it("are edited with PUT, and then confirmed without repeating content_id_type", function()
      local _, up = upload { action = "update" }
      local one = M .. "/user_params/uploading/" .. up.uploading.id
      local status, body = call { method = "PUT", path = one,
        body = json.encode { uploading = { comment = "renamed", content_id_type = "user_id" } } }
      assert.are.equal(200, status)
      assert.are.equal("renamed", body.uploading.comment)
      local _, got = call { path = one }
      assert.are.equal("user_id", got.uploading.content_id_type)
      status = call { path = one .. "/confirm", body = json.encode { uploading = {} } }
      assert.are.equal(200, status)
    end)
  end)

  describe("CRM uploads", function()
    local ORDERS = "id,create_date_time,client_uniq_id,order_status,revenue\n"
      .. "1,10.01.2024 11:56,c-1,PAID,100\n,10.01.24,c-2,PAID,50\n3,2024-01-10 11:56:07,c-3,PAID,70\n"

    local function orders(content, query)
      return call { path = CDP .. "/data/simple_orders", query = query or { merge_mode = "SAVE" },
        form = { csv_part(content) } }
    end

    it("answer UploadingMetaExternal: a string uploading_id, no id and no status", function()
      local status, body = orders(ORDERS)
      assert.are.equal(200, status)
      local u = body.uploading
      assert.is_string(u.uploading_id)
      assert.are.equal("PASSED", u.api_validation_status)
      assert.are.equal(3, u.elements_count)
      for _, key in ipairs { "datetime", "entity_type", "uploading_format", "uploading_source" } do
        assert.is_string(u[key], key)
      end
      assert.is_nil(u.id)
      assert.is_nil(u.status)
    end)

    it("answer FAILED for a file the service refuses", function()
      local status, body = orders("id,create_date_time\n1,2024-01-10T11:56\n")
      assert.are.equal(200, status)
      assert.are.equal("FAILED", body.uploading.api_validation_status)
    end)

    it("take delimiter_type for contacts and orders", function()
      for _, path in ipairs { "/data/contacts/csv", "/data/orders/csv" } do
        local status, body = call { path = CDP .. path, query = { merge_mode = "SAVE", delimiter_type = "SEMICOLON" },
          form = { csv_part("uniq_id;name\nc-1;Anna\nc-2;Petr\n") } }
        assert.are.equal(200, status, path)
        assert.are.equal("PASSED", body.uploading.api_validation_status)
        assert.are.equal(2, body.uploading.elements_count)
      end
    end)

    it("are listed by last_uploadings with limit 1..1000 (10 by default) and source", function()
      for _ = 1, 12 do
        orders(ORDERS)
      end
      local status, body = call { path = CDP .. "/last_uploadings" }
      assert.are.equal(200, status)
      assert.are.equal(10, #body.uploadings)
      assert.is_string(body.uploadings[1].uploading_id)
      assert.are.equal(3, #select(2, call { path = CDP .. "/last_uploadings", query = { limit = 3, source = "API" } })
        .uploadings)
      assert.are.equal(0, #select(2, call { path = CDP .. "/last_uploadings", query = { source = "FILE" } }).uploadings)
      for _, limit in ipairs { 0, 1001 } do
        status, body = call { path = CDP .. "/last_uploadings", query = { limit = limit } }
        assert.are.equal(400, status)
        assert.are.equal("limit", body.errors[1].location)
      end
      status, body = call { path = CDP .. "/last_uploadings", query = { datetime_offset = "2099-01-01T00:00:00Z" } }
      assert.are.equal(200, status)
      assert.are.equal(10, #body.uploadings)
    end)
  end)

  describe("Metrica management", function()
    local CONVERSIONS = "ClientId,Target,DateTime\n133591247640966458,GOAL1,1481718166\n1,paid,1481718167\n"

    local function conversions(query, counter_path)
      return call { path = (counter_path or M) .. "/offline_conversions/upload", query = query,
        form = { csv_part(CONVERSIONS) } }
    end

    it("names the parameter at fault in errors[].location", function()
      local status, body = call { path = M .. "/expense/delete_single", method = "POST" }
      assert.are.equal(400, status)
      assert.are.equal("date", body.errors[1].location)
      status, body = conversions { colour = "red" }
      assert.are.equal(400, status)
      assert.are.equal("colour", body.errors[1].location)
    end)

    it("takes a conversion comment with spaces, № and commas, and refuses a control character or an emoji", function()
      for _, comment in ipairs { "crm2026Выгрузка", "crm sync", "№ 5, a&b", "ok€" } do
        assert.are.equal(200, (conversions { comment = comment }), comment)
      end
      for _, comment in ipairs { "crm \u{1F600}", "crm\tsync" } do
        local status, body = conversions { comment = comment }
        assert.are.same({ 400, "invalid_parameter", "comment" }, { status, body.errors[1].error_type,
          body.errors[1].location })
      end
    end)

    it("shows static and dynamic call counts on calls uploadings, and no new_goal_name", function()
      local status, body = call { path = M .. "/offline_conversions/upload_calls", query = { new_goal_name = "calls" },
        form = { csv_part("ClientId,DateTime,StaticCall\n1,1481718166,1\n2,1481718167,0\n3,1481718168,1\n") } }
      assert.are.equal(200, status)
      assert.are.equal(2, body.uploading.static_calls_quantity)
      assert.are.equal(1, body.uploading.dynamic_calls_quantity)
      assert.is_nil(body.uploading.new_goal_name)
    end)

    it("reports a deletion without provider as one of every provider", function()
      local _, body = call { path = M .. "/expense/delete", form = { csv_part("Date,UTMSource\n2026-11-01,fb\n") } }
      assert.are.equal(json.null, body.uploading.provider)
      assert.are.equal("REMOVES", body.uploading.type)
      _, body = call { path = M .. "/expense/delete", query = { provider = "fb_ads" },
        form = { csv_part("Date,UTMSource\n2026-11-01,fb\n") } }
      assert.are.equal("fb_ads", body.uploading.provider)
    end)

    it("deletes one expense line over a date range", function()
      local status, body = call { path = M .. "/expense/delete_single", method = "POST",
        query = { date = "2026-11-01/2026-11-20", UTMSource = "fb" } }
      assert.are.equal(200, status)
      assert.are.equal("REMOVES", body.uploading.type)
      status = call { path = M .. "/expense/delete_single", method = "POST", query = { date = "2026-11-01/20" } }
      assert.are.equal(400, status)
    end)

    it("lists offline-conversion uploadings of every type, each saying its own, and takes no type", function()
      conversions {}
      call { path = M .. "/offline_conversions/upload", query = { type = "CALLS" },
        form = { csv_part("ClientId,DateTime\n1,1481718166\n") } }
      local _, body = call { path = M .. "/offline_conversions/uploadings" }
      assert.are.same({ "CALLS", "BASIC" }, { body.uploadings[1].type, body.uploadings[2].type })
      assert.are.equal(400, (call { path = M .. "/offline_conversions/uploadings", query = { type = "CALLS" } }))
    end)

    it("keeps uploadings per counter", function()
      local _, up = conversions {}
      local other = "/management/v1/counter/42"
      local _, body = call { path = other .. "/offline_conversions/uploadings" }
      assert.are.same({}, body.uploadings)
      local status = call { path = other .. "/offline_conversions/uploading/" .. up.uploading.id }
      assert.are.equal(404, status)
      assert.are.equal(200, (call { path = M .. "/offline_conversions/uploading/" .. up.uploading.id }))
    end)

    it("refuses a counter the token has no access to with 403 access_denied", function()
      for _, base in ipairs { "/management/v1/counter/403", "/cdp/api/v1/counter/403" } do
        local status, body = call { path = base .. "/goals" }
        assert.are.equal(403, status)
        assert.are.equal("access_denied", body.errors[1].error_type)
      end
    end)

    it("lists and creates goals per counter, and counts Targets that name none", function()
      local _
      local status, body = call { path = M .. "/goals" }
      assert.are.equal(200, status)
      assert.are.same({}, body.goals)
      status, body = call { path = M .. "/goals", body = json.encode { goal = { name = "Paid", type = "action",
        conditions = { { type = "exact", url = "paid" } } } } }
      assert.are.equal(200, status)
      local goal = body.goal
      assert.is_not_nil(goal.id)
      assert.are.same({ { type = "exact", url = "paid" } }, goal.conditions)
      _, body = call { path = M .. "/goals" }
      assert.are.same({ goal }, body.goals)
      assert.are.same({}, select(2, call { path = "/management/v1/counter/42/goals" }).goals)
      status, body = call { path = M .. "/goals", body = json.encode { goal = { name = "x", type = "url",
        conditions = { { type = "exact", url = "x" } } } } }
      assert.are.equal(400, status)
      assert.are.equal("goal.type", body.errors[1].location)
      _, body = conversions {}
      assert.are.equal(1, body.uploading.goal_not_found_quantity) -- GOAL1 names no goal, paid does
    end)
  end)
end)

describe("sandbox with a list of counters", function()
  local sandbox = support.sandbox { options = { counters = { 42 } } }
  setup(sandbox.start)
  teardown(sandbox.stop)

  it("takes those counters only", function()
    local status, body = support.call(sandbox.url, { path = "/management/v1/counter/" .. COUNTER .. "/goals" })
    assert.are.equal(403, status)
    assert.are.equal("access_denied", body.errors[1].error_type)
    assert.are.equal(200, (support.call(sandbox.url, { path = "/management/v1/counter/42/goals" })))
  end)
end)
