-- Ad costs -> Yandex Metrica expenses, then one day taken back.
--
-- Reads an ad network's daily export, uploads the costs under the provider
-- "csvup-example", waits until Metrica has processed them, then deletes the
-- first day's costs again (as after a wrong export for that day).
--
--   CSVUP_METRIKA_TOKEN=... lua5.4 costs_upload_delete.lua costs.csv COUNTER
--
-- CSVUP_BASE_URL points it at the sandbox (`csvup sandbox`) instead of the API.
local csvup = require "csvup"

local PROVIDER = "csvup-example"

local path = arg[1] or "spec/fixtures/ad_costs.csv"
local counter = arg[2] or os.getenv("CSVUP_COUNTER") or "2215573"

local function fail(err)
  io.stderr:write("costs_upload_delete: ", tostring(err), "\n")
  os.exit(1)
end

local costs, first_day = {}, nil
local rows, err = csvup.csv.rows(path)
if not rows then
  fail(err)
end
for row in rows do
  first_day = first_day or row.day
  costs[#costs + 1] = {
    Date = row.day,
    UTMSource = row.network, -- as in the ads' utm_source, case and all
    UTMCampaign = row.campaign,
    Expenses = row.spend, -- kept as the export wrote it: "1520.75", never re-rounded
    Clicks = tonumber(row.clicks),
    Currency = row.currency,
  }
end

local metrika = assert(csvup.metrika.new {
  token = os.getenv("CSVUP_METRIKA_TOKEN"), counter = counter, base_url = os.getenv("CSVUP_BASE_URL"),
})
local uploading
uploading, err = metrika:upload_expenses {
  rows = costs, columns = { "Date", "UTMSource", "UTMCampaign", "Expenses", "Clicks", "Currency" },
  provider = PROVIDER, comment = "daily costs",
}
if not uploading then
  fail(err)
end
uploading, err = metrika:wait(uploading, { interval = tonumber(os.getenv("CSVUP_POLL_INTERVAL")) or 1 })
if not uploading then
  fail(err)
end
print(("uploaded %d cost lines: %s"):format(#costs, uploading.status))

local removal
removal, err = metrika:delete_expense_line { date = first_day, provider = PROVIDER, comment = "wrong export" }
if not removal then
  fail(err)
end
print(("deleting the costs of %s: %s"):format(first_day, removal.status))
