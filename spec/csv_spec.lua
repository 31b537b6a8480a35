-- csvup.csv: what the APIs get from rows, and reading exports back.
local csv = require "csvup.csv"
local cjson = require "cjson"

describe("csv.encode", function()
  it("writes the union of all rows' columns, a key first seen in a later row included", function()
    local rows = { { a = 1 }, { a = 2, b = "x" }, { c = true } }
    assert.are.same({ "a", "b", "c" }, csv.columns(rows))
    assert.are.equal("a,b,c\n1,,\n2,x,\n,,true\n", csv.encode(rows))
  end)

  it("keeps integers exact over the 64-bit range and writes the shortest float, never an exponent", function()
    local out = csv.encode({ { 9007199254740993, math.maxinteger, math.mininteger, 0.1, 123.45, 2^53, 1e21, 5e-7, -0.0 } },
      { header = false })
    assert.are.equal("9007199254740993,9223372036854775807,-9223372036854775808,0.1,123.45,9007199254740992,"
      .. "1000000000000000000000,0.0000005,-0\n", out)
  end)

  it("quotes exactly the fields with the delimiter, a quote, CR or LF", function()
    local out = csv.encode({ { "plain", "a,b", 'say "hi"', "cr\ronly", "lf\n", "semi;colon" } }, { header = false })
    assert.are.equal('plain,"a,b","say ""hi""","cr\ronly","lf\n",semi;colon\n', out)
    out = csv.encode({ { "a,b", "semi;colon" } }, { header = false, delimiter = ";" })
    assert.are.equal('a,b;"semi;colon"\n', out)
  end)

  it("follows columns, null, eol and bom", function()
    local out = csv.encode({ { b = cjson.null, a = "x" } }, { columns = { "a", "b" }, null = "NULL", eol = "\r\n", bom = true })
    assert.are.equal("\239\187\191a,b\r\nx,NULL\r\n", out)
  end)

  it("treats keys as data, never as code", function()
    local key = 'x"]..os.exit(1)..["'
    assert.are.equal('"x""]..os.exit(1)..["""\n1\n', csv.encode { { [key] = 1 } })
  end)

  it("refuses NaN, infinity and tables, naming row and column", function()
    local _, err = csv.encode { { a = 1 }, { a = 0 / 0 } }
    assert.matches("row 2, column a", tostring(err))
    _, err = csv.encode { { a = {} } }
    assert.matches("row 1, column a: the value is a table", tostring(err))
  end)
end)

describe("csv.rows", function()
  local dir

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
  end)

  teardown(function()
    os.execute("rm -rf " .. dir)
  end)

  local function file(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path
  end

  local function read_all(path, opts)
    local out = {}
    for record in assert(csv.rows(path, opts)) do
      out[#out + 1] = record
    end
    return out
  end

  it("reads records keyed by the header, quoted newlines and a BOM included", function()
    local path = file("a.csv", '\239\187\191id,note\r\n1,"two\nlines"\r\n2,"say ""hi"""\r\n')
    assert.are.same({ { id = "1", note = "two\nlines" }, { id = "2", note = 'say "hi"' } }, read_all(path))
  end)

  it("reads another delimiter", function()
    assert.are.same({ { a = "1", b = "x,y" } }, read_all(file("b.csv", "a;b\n1;x,y\n"), { delimiter = ";" }))
  end)

  it("raises an error naming file and line for a malformed record", function()
    local path = file("bad.csv", 'a,b\n1,2\n3\n')
    local ok, err = pcall(read_all, path)
    assert.is_false(ok)
    assert.are.equal(path .. ":3: malformed_csv: 1 fields where the header has 2", tostring(err))
    path = file("open.csv", 'a\n"never closed\n')
    ok, err = pcall(read_all, path)
    assert.matches("open%.csv:2:1: malformed_csv: a quoted field is not closed", tostring(err))
  end)

  it("returns nil, err for a file it cannot open", function()
    local iter, err = csv.rows(dir .. "/missing.csv")
    assert.is_nil(iter)
    assert.are.equal("file_unreadable", err.code)
  end)

  it("reads back what encode wrote", function()
    local rows = { { id = "1", text = 'a,"b"\r\nc', n = "42" }, { id = "2", text = "", n = "-1" } }
    local path = file("round.csv", csv.encode(rows, { columns = { "id", "text", "n" } }))
    assert.are.same(rows, read_all(path))
  end)
end)
