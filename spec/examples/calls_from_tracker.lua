-- A call tracker's export -> Yandex Metrica calls.
--
-- Reads the tracker's semicolon-separated export, keeps the calls it could tie
-- to a Metrica ClientId, marks the missed ones, uploads them as calls and
-- waits until Metrica has processed them.
--
--   CSVUP_METRIKA_TOKEN=... lua5.4 calls_from_tracker.lua calls.csv COUNTER
local csvup = require "csvup"

local path = arg[1] or "spec/fixtures/call_tracker.csv"
local counter = arg[2] or os.getenv("CSVUP_COUNTER") or "2215573"

local function fail(err)
  io.stderr:write("calls_from_tracker: ", tostring(err), "\n")
  os.exit(1)
end

-- "2026-11-20 10:15:00" (UTC) -> Unix seconds
local function unix_time(text)
  local y, m, d, hh, mm, ss = text:match("^(%d+)-(%d+)-(%d+) (%d+):(%d+):(%d+)$")
  y, m = tonumber(y), tonumber(m)
  if m <= 2 then
    y, m = y - 1, m + 12
  end
  local days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + tonumber(d) - 719469
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

local calls = {}
local rows, err = csvup.csv.rows(path, { delimiter = "auto" })
if not rows then
  fail(err)
end
for call in rows do
  if call.metrika_client_id ~= "" then
    calls[#calls + 1] = {
      ClientId = call.metrika_client_id,
      DateTime = unix_time(call.started_at),
      PhoneNumber = call.caller,
      TalkDuration = tonumber(call.duration_s),
      CallMissed = call.status == "missed", -- written as 1 or 0
    }
  end
end

local metrika = assert(csvup.metrika.new {
  token = os.getenv("CSVUP_METRIKA_TOKEN"), counter = counter, base_url = os.getenv("CSVUP_BASE_URL"),
})
local uploading
uploading, err = metrika:upload_calls {
  rows = calls, columns = { "ClientId", "DateTime", "PhoneNumber", "TalkDuration", "CallMissed" },
  new_goal_name = "Tracked calls",
}
if not uploading then
  fail(err)
end
uploading, err = metrika:wait(uploading, { interval = tonumber(os.getenv("CSVUP_POLL_INTERVAL")) or 1 })
if not uploading then
  fail(err)
end
print(("%d calls: %s"):format(#calls, uploading.status))
