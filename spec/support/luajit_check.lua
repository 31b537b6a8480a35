-- Run by luajit_spec.lua under LuaJIT (Lua 5.1 ABI, numbers are doubles):
-- the modules nginx loads do their work there too. Prints "ok" at the end.
-- usage: luajit spec/support/luajit_check.lua SANDBOX_URL TOKEN
local csvup = require "csvup"
local json = require "csvup.json"
local validate = require "csvup.validate"

local url, token = arg[1], arg[2]

local function check(cond, what)
  if not cond then
    error("luajit: " .. what, 2)
  end
end

-- CSV: big ids as strings, shortest floats, integral numbers without ".0"
local text = assert(csvup.csv.encode({ { ClientId = "133591247640966458", DateTime = 1481718166, Price = 0.1 } },
  { columns = { "ClientId", "DateTime", "Price" } }))
check(text == "ClientId,DateTime,Price\n133591247640966458,1481718166,0.1\n", "csv.encode: " .. text)

-- JSON: an id above 2^53 comes back as a string of digits, never a rounded double
local answer = assert(json.decode('{"uploading":{"id":133591247640966458,"line_quantity":3}}'))
check(answer.uploading.id == "133591247640966458", "json id: " .. tostring(answer.uploading.id))
check(answer.uploading.line_quantity == 3, "json count")

-- validation
check(validate.rows("offline_conversions", { { ClientId = "1", Target = "G", DateTime = 1481718166 } }), "valid rows")
local valid, err = validate.rows("offline_conversions", { { ClientId = 1.5e17, Target = "G", DateTime = 1481718166 } })
check(valid == nil and err.code == "validation_failed" and err.message:find("is a float"), "a float id is refused")

-- a real upload to the sandbox, and the uploading read back by its string id
local m = assert(csvup.metrika.new { token = token, counter = 1, base_url = url })
local u = assert(m:upload_offline_conversions { rows = { { ClientId = "133591247640966458", Target = "G", DateTime = 1481718166 } } })
check(type(u.id) == "string" and u.id == "9007199254740993", "uploading id: " .. tostring(u.id))
local again = assert(m:offline_conversion_uploading(u.id))
check(again.id == u.id, "read back")
m:close()
print("ok")
