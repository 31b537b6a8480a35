-- CRM orders -> Yandex Metrica offline conversions.
--
-- Reads a CRM export, keeps the paid orders that carry a Metrica ClientId,
-- uploads them as conversions of the goal "crm_paid", then waits until Metrica
-- has processed the uploading.
--
--   CSVUP_METRIKA_TOKEN=... lua5.4 crm_to_metrika.lua orders.csv COUNTER
--
-- CSVUP_BASE_URL points it at the sandbox (`csvup sandbox`) instead of the API.
local csvup = require "csvup"

local GOAL = "crm_paid"

local path = arg[1] or "spec/fixtures/crm_orders.csv"
local counter = arg[2] or os.getenv("CSVUP_COUNTER") or "2215573"

local function fail(err)
  io.stderr:write("crm_to_metrika: ", tostring(err), "\n")
  os.exit(1)
end

-- "2026-11-20 09:20:03" (UTC) -> Unix seconds.
local function unix_time(text)
  local y, m, d, hh, mm, ss = text:match("^(%d+)-(%d+)-(%d+) (%d+):(%d+):(%d+)$")
  y, m = tonumber(y), tonumber(m)
  if m <= 2 then
    y, m = y - 1, m + 12
  end
  -- days since 1970-01-01 in the proleptic Gregorian calendar
  local days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + tonumber(d) - 719469
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

local orders, err = csvup.csv.rows(path)
if not orders then
  fail(err)
end
local conversions = {}
for order in orders do
  if order.status == "paid" and order.metrika_client_id ~= "" then
    conversions[#conversions + 1] = {
      ClientId = order.metrika_client_id, -- 19 digits: kept as a string, every digit exact
      Target = GOAL,
      DateTime = unix_time(order.paid_at),
      Price = tonumber(order.amount),
      Currency = order.currency,
    }
  end
end
print(("%s: %d paid orders with a ClientId"):format(path, #conversions))

local metrika = assert(csvup.metrika.new {
  token = os.getenv("CSVUP_METRIKA_TOKEN"),
  counter = counter,
  base_url = os.getenv("CSVUP_BASE_URL"),
})
local uploading
uploading, err = metrika:upload_offline_conversions {
  rows = conversions, columns = { "ClientId", "Target", "DateTime", "Price", "Currency" }, comment = "crmsync",
}
if not uploading then
  fail(err)
end
print(("uploading %s: %s"):format(uploading.id, uploading.status))

-- Metrica takes up to 2 hours; the sandbox, half a second. Poll from 1 s on.
uploading, err = metrika:wait(uploading, { interval = tonumber(os.getenv("CSVUP_POLL_INTERVAL")) or 1 })
if not uploading then
  fail(err)
end
print(("uploading %s: %s, %d lines, %d linked to visits"):format(uploading.id, uploading.status,
  uploading.line_quantity, uploading.linked_quantity))
os.exit(uploading.status == "PROCESSED" and 0 or 1)
