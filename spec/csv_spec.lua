-- csvup.csv: what the APIs get from rows, and reading exports back.
local csv = require "csvup.csv"
local cjson = require "cjson"
local files = require "support.files"

local dir -- a folder for this file's specs

setup(function()
  dir = files.tmpdir()
end)

teardown(function()
  files.remove(dir)
end)

describe("csv.encode", function()
  it("writes the union of all rows' columns, a key first seen in a later row included", function()
    local rows = { { a = 1 }, { a = 2, b = "x" }, { c = true } }
    assert.are.same({ "a", "b", "c" }, csv.columns(rows))
    assert.are.same({ "a", "b", "c", "d" }, csv.columns { { b = 1, a = 2 }, { d = 1, c = 1, a = 3 } })
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
  local function file(name, text)
    return files.write(dir .. "/" .. name, text)
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

  it("keys every column of a narrow and of a wide file (250 and 300 columns)", function()
    for _, width in ipairs { 250, 300 } do
      local names, values, expected = {}, {}, {}
      for i = 1, width do
        names[i], values[i] = "c" .. i, i % 7 == 0 and "" or "v" .. i
        expected[names[i]] = values[i]
      end
      local row = table.concat(values, ",") .. "\n"
      local path = file(width .. ".csv", table.concat(names, ",") .. "\n" .. row .. row)
      assert.are.same({ expected, expected }, read_all(path))
    end
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
    assert.is_false(ok)
    assert.matches("open%.csv:2:1: malformed_csv: a quoted field is not closed", tostring(err))
  end)

  it("returns nil, err for a file it cannot open", function()
    local iter, err = csv.rows(dir .. "/missing.csv")
    assert.is_nil(iter)
    assert.are.equal("file_not_found", err.code)
  end)

  it("reads back what encode wrote", function()
    local rows = { { id = "1", text = 'a,"b"\r\nc', n = "42" }, { id = "2", text = "", n = "-1" } }
    local path = file("round.csv", csv.encode(rows, { columns = { "id", "text", "n" } }))
    assert.are.same(rows, read_all(path))
  end)
end)

describe("csv.encode, strict", function()
  it("refuses a string that is not valid UTF-8, naming row, column and byte", function()
    local _, err = csv.encode { { name = "ok" }, { name = "caf\233" } }
    assert.are.equal("invalid_value", err.code)
    assert.are.equal(2, err.row)
    assert.are.equal("name", err.column)
    assert.matches("row 2, column name: the value is not valid UTF%-8 %(at byte 4%)", tostring(err))
    for _, bad in ipairs { "\192\128", "\237\160\128", "\244\144\128\128", "\240\130\130\172", "abc\255" } do
      assert.is_nil((csv.encode { { bad } }))
    end
    assert.are.equal("\240\159\152\128,\228\184\173\n", csv.encode({ { "\240\159\152\128", "\228\184\173" } }, { header = false }))
  end)

  it("writes rows as arrays by position, under the given header", function()
    assert.are.equal("a,b\n1,2\n3,\n", csv.encode({ { 1, 2 }, { 3 } }, { columns = { "a", "b" } }))
    assert.are.equal("1,2\n", csv.encode({ { 1, 2 } }))
  end)

  it("writes booleans as the schema asks", function()
    assert.are.equal("x\n1\n0\n", csv.encode({ { x = true }, { x = false } }, { true_text = "1", false_text = "0" }))
  end)

  it("quotes a null text that needs it, and a lone CR", function()
    assert.are.equal('a\n"N,A"\n', csv.encode({ { b = 1 } }, { columns = { "a" }, null = "N,A" }))
    assert.are.equal('"\r"\n', csv.encode({ { "\r" } }, { header = false }))
  end)

  it("rejects bad options as programmer errors", function()
    assert.has_error(function() csv.encode({}, { delimiter = ",," }) end)
    assert.has_error(function() csv.encode({}, { delimiter = '"' }) end)
    assert.has_error(function() csv.encode({}, { eol = "\r" }) end)
    assert.has_error(function() csv.encode("rows") end)
  end)
end)

describe("csv.writer", function()
  it("writes rows one by one and in bulk, and tells bytes and rows on close", function()
    local path = dir .. "/w.csv"
    local w = assert(csv.writer(path, { columns = { "id", "v" } }))
    assert(w:write { id = 1, v = "a" })
    assert(w:write_all { { id = 2, v = "b" }, { id = 3 } })
    local n = 3
    assert(w:write_all(function()
      n = n + 1
      if n <= 5 then
        return { id = n, v = "it" }
      end
    end))
    local bytes, rows = w:close()
    local text = "id,v\n1,a\n2,b\n3,\n4,it\n5,it\n"
    assert.are.equal(text, files.read(path))
    assert.are.same({ #text, 5 }, { bytes, rows })
  end)

  it("writes to an open file handle and leaves it open", function()
    local path = dir .. "/h.csv"
    local f = assert(io.open(path, "wb"))
    local w = assert(csv.writer(f, { header = false, delimiter = ";" }))
    assert(w:write_all { { 1, "x;y" } })
    assert(w:close())
    f:write("after\n")
    f:close()
    assert.are.equal('1;"x;y"\nafter\n', files.read(path))
  end)

  it("takes the columns of the first rows written, and refuses a later row's new key instead of dropping it", function()
    local w = assert(csv.writer(dir .. "/later.csv"))
    assert(w:write { a = 0 })
    assert(w:write { a = 1, b = 1 }) -- in the first batch: a column
    local first = {}
    for i = 1, 5000 do
      first[i] = { a = i }
    end
    assert(w:write_all(first))
    local ok, err = w:write { a = 5001, c = "late" }
    assert.is_nil(ok)
    assert.are.equal("invalid_value", err.code)
    assert.are.equal(5003, err.row)
    assert.matches("has the column 'c', which is not in the header", tostring(err))
    assert(w:close())
    assert.matches("^a,b\n0,\n1,1\n1,\n", files.read(dir .. "/later.csv"))
  end)

  it("refuses, and never drops, a key beside fields by position, or a row of named fields among positional ones", function()
    for _, case in ipairs {
      { { { "x", a = 3 } }, "row 1: has the key 'a'" },
      { { { "x", "y" }, { a = 1, b = 2 } }, "row 2: has the key '[ab]'" },
      { { { "x" }, { "y", [3] = "z" } }, "row 2: has the key '3'" },
    } do
      local text, err = csv.encode(case[1], { header = false })
      assert.is_nil(text)
      assert.are.equal("invalid_value", err.code)
      assert.matches(case[2], tostring(err))
    end
    assert.are.equal("x,y\n1\n", csv.encode({ { "x", "y" }, { 1 } }, { header = false }))
  end)

  it("stops with callback_error when the row iterator raises", function()
    local w = assert(csv.writer(dir .. "/raise.csv"))
    local ok, err = w:write_all(function() error("source failed") end)
    assert.is_nil(ok)
    assert.are.equal("callback_error", err.code)
    assert.matches("source failed", tostring(err))
    w:close()
  end)
end)

describe("csv.rows, more", function()
  local function file(text)
    return files.write(dir .. "/f.csv", text)
  end

  it("sniffs the delimiter with 'auto'", function()
    for _, d in ipairs { ",", ";", "\t", "|" } do
      local iter, header = assert(csv.rows(file(("a%sb%sc\n1%s\"x%sy\"%s3\n"):format(d, d, d, d, d)), { delimiter = "auto" }))
      assert.are.same({ "a", "b", "c" }, header)
      assert.are.same({ a = "1", b = "x" .. d .. "y", c = "3" }, iter())
    end
  end)

  it("gives each record's line, skips blank lines, and refuses a repeated header name", function()
    local iter = assert(csv.rows(file('a,b\n1,"x\ny"\n\n2,z\n')))
    local r, line = iter()
    assert.are.same({ { a = "1", b = "x\ny" }, 2 }, { r, line })
    r, line = iter()
    assert.are.same({ { a = "2", b = "z" }, 5 }, { r, line })
    local none, err = csv.rows(file("a,b,a\n"))
    assert.is_nil(none)
    assert.matches("the column \"a\" appears twice", tostring(err))
  end)
end)

describe("round trips", function()
  -- random tables of hard values, encoded by csvup and read back by csv.rows
  local PIECES = { "a", "Я", "\240\159\152\128", ",", ";", "\t", "|", '"', '""', "\r", "\n", "\r\n", " ", "", "x y" }
  local seed = os.time()

  local function random_value()
    local kind = math.random(4)
    if kind == 1 then
      return math.random(math.mininteger, math.maxinteger)
    elseif kind == 2 then
      return (math.random() - 0.5) * 10 ^ math.random(-12, 20)
    end
    local parts = {}
    for i = 1, math.random(0, 6) do
      parts[i] = PIECES[math.random(#PIECES)]
    end
    return table.concat(parts)
  end

  it("reads back every value exactly (seed printed on failure)", function()
    math.randomseed(seed)
    local path = os.tmpname()
    for _ = 1, 30 do
      local delimiter = ({ ",", ";", "\t", "|" })[math.random(4)]
      local columns, rows = {}, {}
      for c = 1, math.random(1, 6) do
        columns[c] = "c" .. c .. PIECES[math.random(#PIECES)]
      end
      for r = 1, math.random(1, 40) do
        local row = {}
        for _, name in ipairs(columns) do
          row[name] = random_value()
        end
        rows[r] = row
      end
      files.write(path, assert(csv.encode(rows, { columns = columns, delimiter = delimiter,
        eol = math.random(2) == 1 and "\n" or "\r\n" })))
      local r = 0
      for record in assert(csv.rows(path, { delimiter = delimiter })) do
        r = r + 1
        for _, name in ipairs(columns) do
          local want, got = rows[r][name], record[name]
          if math.type(want) == "integer" then
            assert.are.equal(want, math.tointeger(tonumber(got)), "seed " .. seed)
          elseif math.type(want) == "float" then
            assert.are.equal(want, tonumber(got) + 0.0, "seed " .. seed) -- read as a double, as consumers do
            assert.is_nil(got:find("[eE]"), "seed " .. seed)
          else
            assert.are.equal(want, got, "seed " .. seed)
          end
        end
      end
      assert.are.equal(#rows, r, "seed " .. seed)
    end
    os.remove(path)
  end)
end)

describe("csv, hostile input", function()
  it("refuses a NUL byte in a value, naming row and column", function()
    local _, err = csv.encode { { a = "ok" }, { a = "x\0y" } }
    assert.are.equal("invalid_value", err.code)
    assert.are.same({ 2, "a" }, { err.row, err.column })
    assert.matches("NUL", tostring(err))
  end)

  it("says a file's lines end with a lone CR", function()
    local path = files.write(dir .. "/mac.csv", "a,b\r1,2\r")
    local ok, err = pcall(function()
      local iter = assert(csv.rows(path))
      return iter()
    end)
    assert.is_false(ok)
    assert.matches("lone CR", tostring(err))
  end)

  it("refuses a record longer than record_limit and a header longer than 64 KB", function()
    local path = files.write(dir .. "/long.csv", "a,b\n1," .. ("x"):rep(2000) .. "\n")
    local ok, err = pcall(function()
      for _ in assert(csv.rows(path, { record_limit = 1000 })) do end
    end)
    assert.is_false(ok)
    assert.matches("long%.csv:2: malformed_csv: .*longer than", tostring(err))
    local iter
    iter, err = csv.rows(files.write(dir .. "/wide.csv", ("h"):rep(70000) .. "\n1\n"))
    assert.is_nil(iter)
    assert.matches("header .*longer than 64 KB", tostring(err))
  end)

  it("reads from an object with a read method, whatever the size of its pieces", function()
    local text, pos = 'a,b\n1,"x\ny"\n2,z\n', 1
    local source = { read = function()
      local piece = text:sub(pos, pos + 2)
      pos = pos + 3
      return piece ~= "" and piece or nil
    end }
    local iter = assert(csv.rows(source))
    assert.are.same({ { a = "1", b = "x\ny" }, 2 }, { iter() })
    assert.are.same({ { a = "2", b = "z" }, 4 }, { iter() })
    assert.is_nil(iter())
    local _, err = csv.rows { read = function() error("gone") end }
    assert.matches("gone", tostring(err))
  end)

  it("reads from an open file handle", function()
    local f = assert(io.open(files.write(dir .. "/h.csv", "a;b\n1;2\n")))
    local iter, header = assert(csv.rows(f, { delimiter = "auto" }))
    assert.are.same({ "a", "b" }, header)
    assert.are.same({ a = "1", b = "2" }, iter())
    assert.is_nil(iter())
    f:close()
  end)
end)
