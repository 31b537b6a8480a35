-- An Excel export from a Russian-locale machine (";"-separated, Windows-1251)
-- is sent as the services document: UTF-8, with commas for Metrica.
local csvup = require "csvup"
local json = require "csvup.json"
local support = require "support.sandbox"
local files = require "support.files"

-- "Привет" and "Заказ; оплачен" in Windows-1251
local PRIVET = "\207\240\232\226\229\242"
local ORDER = "\199\224\234\224\231; \238\239\235\224\247\229\237"

describe("an Excel export", function()
  local sandbox, path, m = support.sandbox(), nil, nil

  setup(function()
    sandbox.start()
    path = files.write(sandbox.tmp .. "/export.csv", "ClientId;Target;DateTime;Price\r\n"
      .. "133591247640966458;" .. PRIVET .. ";1481718166;12.50\r\n"
      .. '1725043211904716011;"' .. ORDER .. '";1481718200;99.90\r\n')
  end)

  teardown(sandbox.stop)

  before_each(function()
    sandbox.reset()
    m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
  end)

  after_each(function()
    m:close()
  end)

  it("arrives as UTF-8 with commas, quoted where a value holds one", function()
    local u = assert(m:upload_offline_conversions { file = path, delimiter = ";", encoding = "cp1251" })
    assert.are.equal(2, u.line_quantity)
    assert.are.equal("ClientId,Target,DateTime,Price\n133591247640966458,Привет,1481718166,12.50\n"
      .. "1725043211904716011,Заказ; оплачен,1481718200,99.90\n", sandbox.requests()[1].file.content)
  end)

  it("is read twice, once checked and measured, once sent: converted byte for byte", function()
    local input, output = { "ClientId;Target;DateTime\r\n" }, { "ClientId,Target,DateTime\n" }
    for i = 1, 6000 do -- under the sandbox's 1 MB kept of a body
      local id = 133591247640966458 + i
      input[#input + 1] = ("%d;%s;1481718166\r\n%d;\"%s\";1481718200\r\n%d;\"a, \"\"b\"\"\";1481718300\r\n\r\n")
        :format(id, PRIVET, id, ORDER, id)
      output[#output + 1] = ('%d,Привет,1481718166\n%d,Заказ; оплачен,1481718200\n%d,"a, ""b""",1481718300\n')
        :format(id, id, id)
    end
    local big = files.write(sandbox.tmp .. "/big_export.csv", table.concat(input))
    local function read_bytes()
      return tonumber(io.open("/proc/self/io"):read("a"):match("rchar: (%d+)"))
    end
    local before = read_bytes()
    assert(m:upload_offline_conversions { file = big, delimiter = ";", encoding = "cp1251" })
    local read = read_bytes() - before
    assert.are.equal(table.concat(output), sandbox.requests()[1].file.content)
    -- a third read, to measure the converted size apart, would make it 3×
    assert.is_true(read < 2.5 * #table.concat(input), ("read %d bytes of a %d-byte file"):format(read, #table.concat(input)))
  end)

  it("of long runs of plain lines is converted byte for byte, blank lines dropped", function()
    -- lines with no quote or CR (the export as most tools write it), past many reads; Cyrillic
    -- in some, a blank line or a value with a comma (quoted when sent) now and then
    local input, output = { "ClientId;Target;DateTime\n" }, { "ClientId,Target,DateTime\n" }
    for i = 1, 15000 do
      local id, target, sent = 133591247640966458 + i, "GOAL" .. i % 5, nil
      if i % 7 == 0 then
        target, sent = PRIVET .. i, "Привет" .. i
      elseif i % 997 == 0 then
        target, sent = "a,b", '"a,b"'
      end
      input[#input + 1] = ("%d;%s;1481718166\n%s"):format(id, target, i % 1000 == 0 and "\n" or "")
      output[#output + 1] = ("%d,%s,1481718166\n"):format(id, sent or target)
    end
    local long = files.write(sandbox.tmp .. "/long_export.csv", table.concat(input))
    local u = assert(m:upload_offline_conversions { file = long, delimiter = ";", encoding = "cp1251" })
    assert.are.equal(15000, u.line_quantity)
    assert.are.equal(table.concat(output), sandbox.requests()[1].file.content)
  end)

  it("is read with encoding = 'auto', which finds it is not UTF-8", function()
    assert(m:upload_offline_conversions { file = path, delimiter = "auto", encoding = "auto" })
    assert.matches("Привет", sandbox.requests()[1].file.content, 1, true)
  end)

  it("names the exact line of a bad row, and sends nothing", function()
    local bad = files.write(sandbox.tmp .. "/bad.csv", "ClientId;Target;DateTime\r\n1;" .. PRIVET .. ";1481718166\r\n"
      .. '2;"' .. ORDER .. '\r\nна две строки";1481718166\r\n3;G;1481718166000\r\n')
    local _, err = m:upload_offline_conversions { file = bad, delimiter = ";", encoding = "cp1251" }
    assert.are.same({ "validation_failed", 5, "DateTime" }, { err.code, err.problems[1].line, err.problems[1].column })
    assert.are.same({}, sandbox.requests())
  end)

  it("is refused as invalid UTF-8 without an encoding, with a hint", function()
    local _, err = m:upload_offline_conversions { file = path, delimiter = ";" }
    assert.are.equal("invalid_utf8", err.code)
    assert.matches("encoding cp1251", err.message)
  end)

  it("goes through the command line, and csvup validate agrees", function()
    local command = ("CSVUP_METRIKA_TOKEN=%s %s lua/bin/csvup %%s --delimiter ';' --encoding cp1251 %s 2>&1")
      :format(support.TOKEN, support.LUA, path)
    local pipe = io.popen(command:format("validate offline-conversions") .. "; echo status $?")
    assert.matches("valid for offline%-conversions\nstatus 0", pipe:read("a"))
    pipe:close()
    pipe = io.popen(command:format("metrika upload-offline-conversions --no-journal --json --counter 1 --base-url "
      .. sandbox.url))
    local u = json.decode(pipe:read("a"))
    pipe:close()
    assert.are.equal(2, u.line_quantity)
  end)

  it("that cannot be read as given comes back as an error, not a raise", function()
    local broken = files.write(sandbox.tmp .. "/broken.csv", 'ClientId;Target;DateTime\r\n1;"G;1481718166\r\n')
    local ok, result, err = pcall(m.upload_offline_conversions, m, { file = broken, delimiter = ";", validate = false })
    assert.is_true(ok)
    assert.is_nil(result)
    assert.are.same({ "input", "malformed_csv" }, { err.kind, err.code })
    assert.are.same({}, sandbox.requests())
  end)

  it("is held to the service's size limit as it is sent, converted", function()
    -- 20 MB of mostly Cyrillic in Windows-1251 is 37 MB of UTF-8: over Carrot quest's 30 MB
    local big = sandbox.tmp .. "/big_users.csv"
    assert(os.execute(("{ printf '$email;$name\\n'; yes 'a@b.c;%s' | head -c 20000000; } > %s"):format(
      ("\207"):rep(40), big)))
    local cq = assert(csvup.carrotquest.new { token = support.TOKEN, base_url = sandbox.url })
    local _, err = cq:import_users { file = big, merge_field = "$email", delimiter = ";", encoding = "cp1251",
      validate = false }
    cq:close()
    assert.are.same({ "input", "file_too_large" }, { err.kind, err.code })
    assert.are.same({}, sandbox.requests())
  end)

  it("keeps its delimiter for Carrot quest, which is told it, and becomes UTF-8", function()
    local users = files.write(sandbox.tmp .. "/users.csv", "$email;$name\r\nmargo@example.com;" .. PRIVET .. "\r\n")
    local cq = assert(csvup.carrotquest.new { token = support.TOKEN, base_url = sandbox.url })
    assert(cq:import_users { file = users, merge_field = "$email", delimiter = ";", encoding = "cp1251" })
    cq:close()
    local req = sandbox.requests()[1]
    assert.are.same({ { ";" }, "$email;$name\nmargo@example.com;Привет\n" }, { req.fields.delimiter, req.file.content })
  end)
end)
