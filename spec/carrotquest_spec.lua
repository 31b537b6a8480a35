-- Carrot quest user import through the public client, against the sandbox.
local csvup = require "csvup"
local support = require "support.sandbox"

describe("carrotquest client", function()
  local cq
  local sandbox = support.sandbox()
  setup(sandbox.start)
  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    cq = assert(csvup.carrotquest.new { token = support.TOKEN, base_url = sandbox.url })
  end)

  after_each(function()
    cq:close()
  end)

  local function last_request()
    local requests = sandbox.requests()
    return requests[#requests]
  end

  it("imports a file with app, merge_field, delimiter and the tags as one JSON array, as form fields", function()
    local result = assert(cq:import_users {
      file = "spec/fixtures/carrotquest_users.csv", merge_field = "$email", delimiter = ";",
      tags = { "vip", 'said "hi"' },
    })
    assert.are.equal(2, result.updates_planned)
    assert.are.same({}, result.row_errors)
    local req = last_request()
    assert.are.equal("POST", req.method)
    assert.are.equal("/users/import", req.path)
    assert.are.equal("Token [hidden]", req.headers.authorization) -- the sandbox hides the token it got
    assert.are.same({
      app = { "$self_app" }, merge_field = { "$email" }, delimiter = { ";" }, tags = { '["vip","said \\"hi\\""]' },
    }, req.fields)
    assert.are.equal(assert(io.open("spec/fixtures/carrotquest_users.csv", "rb")):read("a"), req.file.content)
  end)

  it("sends rows comma-separated and says so, since the API would read a tab", function()
    local result = assert(cq:import_users {
      validate = false, -- to see the API's row_errors for the empty key
      rows = { { ["$user_id"] = "135", ["$name"] = "Аннушка", ["Действие"] = "пролила масло" },
               { ["$user_id"] = "", ["$name"] = "Воланд" } },
      columns = { "$user_id", "$name", "Действие" },
      tags = "import",
    })
    assert.are.equal(1, result.updates_planned)
    assert.are.same({ [3] = "Empty value of $user_id" }, result.row_errors)
    local req = last_request()
    assert.are.same({ "," }, req.fields.delimiter)
    assert.are.same({ '["import"]' }, req.fields.tags)
    assert.are.equal("$user_id,$name,Действие\n135,Аннушка,пролила масло\n,Воланд,\n", req.file.content)
  end)

  it("uses the app given to new", function()
    local other = assert(csvup.carrotquest.new { token = support.TOKEN, app = "12345", base_url = sandbox.url })
    assert(other:import_users { rows = { { ["$user_id"] = "1" } } })
    assert.are.same({ "12345" }, last_request().fields.app)
    other:close()
  end)

  it("gives meta.error and meta.error_message of a refused import", function()
    local result, err = cq:import_users { rows = { { name = "no key" } }, validate = false }
    assert.is_nil(result)
    assert.are.equal(400, err.status)
    assert.are.equal("ValidationError", err.code)
    assert.matches("%$user_id", err.message)
  end)

  it("sends at most 2 requests a second by default, as the Carrot quest docs advise", function()
    for _ = 1, 3 do
      assert(cq:import_users { rows = { { ["$user_id"] = "1" } } })
    end
    local requests = sandbox.requests()
    for i = 2, 3 do
      assert.is_true(requests[i].time - requests[i - 1].time >= 0.45) -- a floor, never a speed goal
    end
  end)

  it("answers a wrong token with 403 PermissionDeniedError, the token not in the error", function()
    local wrong = assert(csvup.carrotquest.new { token = "s3cr3t-wrong", base_url = sandbox.url })
    local _, err = wrong:import_users { rows = { { ["$user_id"] = "1" } } }
    assert.are.equal(403, err.status)
    assert.are.equal("PermissionDeniedError", err.code)
    assert.is_nil(tostring(err):find("s3cr3t", 1, true))
    wrong:close()
  end)
end)
