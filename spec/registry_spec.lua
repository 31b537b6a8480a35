-- An endpoint is what csvup.registry says it is: a new one is a registry
-- entry, called through the one generic request of the C core, no rebuild.
local core = require "csvup.core"
local files = require "support.files"
local recorder = require "support.recorder"
local support = require "support.sandbox"

local CONVERSIONS = "spec/fixtures/offline_conversions.csv"

describe("the registry's endpoints", function()
  local server, dir

  setup(function()
    server = recorder.start()
    dir = files.tmpdir()
  end)

  teardown(function()
    server.stop()
    files.remove(dir)
  end)

  -- Runs a script in a child process with the checkout's modules: the registry it changes is its own.
  local function run(script)
    local path = files.write(dir .. "/script.lua", script)
    local pipe = io.popen(("timeout 30 env %s %s 2>&1"):format(support.LUA, path))
    local output = pipe:read("a")
    local _, _, code = pipe:close()
    return output, code
  end

  local function last()
    local list = server.requests()
    return list[#list]
  end

  it("take a method added at run time as a client method, sent to a real server", function()
    server.answer { { method = "POST", path = "/notes$", body = '{"note":{"id":9007199254740993}}' },
      { method = "POST", path = "/upload_calls_v2", body = '{"uploading":{"id":5,"status":"UPLOADED"}}' } }
    local output, code = run(([[
      local registry = require "csvup.registry"
      registry.add { name = "add_note", service = "metrika", shape = "query", http = "POST", body = "form",
        path = "/management/v1/counter/{counter}/notes", help = "keep a note with the counter",
        options = { { name = "text", type = "text", required = true, help = "the note" },
          { name = "pinned", type = "enum", values = { "yes", "no" }, help = "keep it on top" } } }
      registry.add { name = "upload_calls_v2", service = "metrika", shape = "upload", kind = "calls", http = "POST",
        path = "/management/v1/counter/{counter}/offline_conversions/upload_calls_v2", help = "upload calls anew",
        options = { { name = "comment", type = "text", max = 255, help = "a note kept with the uploading" } } }
      local csvup = require "csvup"
      local m = assert(csvup.metrika.new { token = "t", counter = 7, base_url = %q, retries = 0 })
      local note = assert(m:add_note { text = "paid & shipped", pinned = "yes" })
      print("note", math.type(note.note.id), note.note.id)
      local _, err = m:add_note { pinned = "maybe" }
      print("refused", err.code)
      local uploading = assert(m:upload_calls_v2 { file = %q, comment = "v2" })
      print("uploading", uploading.id)
    ]]):format(server.url, "spec/fixtures/calls.csv"))
    assert.are.equal(0, code, output)
    assert.matches("note\tinteger\t9007199254740993\n", output)
    assert.matches("refused\tinvalid_argument\n", output)
    assert.matches("uploading\t5\n", output)
    local requests = server.requests()
    assert.are.equal(2, #requests, output)
    assert.are.equal("POST /management/v1/counter/7/notes HTTP/1.1", requests[1].line)
    assert.matches("\r\nContent%-Type: application/x%-www%-form%-urlencoded", requests[1].head)
    assert.are.equal("text=paid%20%26%20shipped&pinned=yes", requests[1].body)
    -- the comment carries the marker that finds the uploading again (see csvup.once)
    assert.matches("^POST /management/v1/counter/7/offline_conversions/upload_calls_v2%?comment=v2%%20%w+ HTTP/1%.1$",
      requests[2].line)
    assert.matches('name="file"; filename="calls.csv"', requests[2].body)
  end)

  it("are described as the README's Architecture section shows", function()
    local readme = files.read("README.md")
    local example = assert(readme:match("\nAn endpoint is described.-\n```lua\n(.-)```"))
    local output, code = run([[
      local registry = require "csvup.registry"
      local function wire(e)
        return table.concat({ e.name, e.service, e.method, e.path, table.concat(e.query, ","), tostring(e.body),
          tostring(e.max_file_size) }, " ")
      end
      local before = wire(registry.endpoint.expense_uploadings)
      ]] .. example .. [[
      print(#registry.methods, before == wire(registry.endpoint.expense_uploadings))
      print(table.concat(registry.endpoint.expense_uploadings.query, ","))
    ]])
    assert.are.equal(0, code, output)
    assert.are.equal("27\ttrue\nlimit,offset,ulogin\n", output)
  end)

  describe("in the C core", function()
    local conn

    before_each(function()
      conn = assert(core.connection { service = "metrika", token = "t", base_url = server.url })
    end)

    after_each(function()
      conn:close()
    end)

    local function endpoint(fields)
      local e = { name = "probe", service = "metrika", method = "POST", path = "/probe/{id}", query = { "a" } }
      for k, v in pairs(fields) do
        e[k] = v
      end
      return e
    end

    it("refuse a malformed description as a programmer's error, sending nothing", function()
      local count = #server.requests()
      for _, bad in ipairs { { method = "FETCH" }, { path = "probe" }, { path = "/probe/{id" },
        { path = "/probe/id}" }, { path = "/probe?x=1" }, { body = "xml" }, { method = "GET", body = "json" },
        { query = { "a b" } }, { max_file_size = -1 }, { service = "carrotquest" }, { name = "" } } do
        assert.has_error(function()
          core.request(conn, endpoint(bad), { id = 1, query = { a = 1 } })
        end)
      end
      assert.are.equal(count, #server.requests())
    end)

    it("send ids as digits, query names in their order, and refuse what a URL or form would change", function()
      server.answer { { method = "POST", path = "^/probe/", body = "{}" } }
      local e = endpoint { query = { "b", "a" } }
      assert.are.equal(200, (core.request(conn, e, { id = "9223372036854775807", query = { a = "x y", b = true } })))
      assert.are.equal("POST /probe/9223372036854775807?b=true&a=x%20y HTTP/1.1", last().line)
      local count = #server.requests()
      for _, args in ipairs { { id = "01" }, { id = 2 ^ 53 + 0.5 }, { id = 1, query = { c = "unknown" } },
        { id = 1, query = { a = "line\r\nX-Injected: 1" } }, { id = 1, query = { a = "nul\0byte" } },
        { id = 1, query = { a = ("x"):rep(70000) } } } do
        local ok, err = core.request(conn, e, args)
        assert.is_nil(ok)
        assert.are.same({ "invalid_argument", "input" }, { err.code, err.kind })
      end
      local _, err = core.request(conn, endpoint { body = "form", fields = { "f" } }, { id = 1, fields = { f = "a\nb" } })
      assert.are.equal("invalid_argument", err.code)
      assert.are.equal(count, #server.requests())
    end)

    it("take the upload limit from the description, for check_file and the upload alike", function()
      local small = endpoint { body = "multipart", max_file_size = 10 }
      local _, err = core.check_file(small, CONVERSIONS)
      assert.are.equal("file_too_large", err.code)
      assert.matches("probe", err.message)
      _, err = core.request(conn, small, { id = 1, file = CONVERSIONS })
      assert.are.equal("file_too_large", err.code)
      assert.is_true(core.check_file(endpoint { body = "multipart" }, CONVERSIONS))
    end)
  end)
end)
