-- CSV building: 1,000,000 offline-conversion records written to a file by
-- csvup's csv.writer (in bulk and one w:write per row), a plain Lua table.concat loop, and Python's
-- csv.DictWriter on the same records; and the peak RSS of a 10-million-row
-- writer fed by an iterator.
local csv = require "csvup.csv"
local common = require "bench.common"

local ROWS = 1000000
local BIG_ROWS = 10000000
local COLUMNS = { "ClientId", "Target", "DateTime", "Price", "Currency" }
local OUT = "build/bench/csv_bench.csv"

local PYTHON = [[
import csv, time
rows = [{"ClientId": "%%d" %% (1335912476409664580 + i), "Target": "GOAL%%d" %% (i %% 5),
         "DateTime": 1700000000 + i, "Price": (i %% 100000) / 100, "Currency": "RUB"} for i in range(1, %d + 1)]
def run():
    with open("%s", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["ClientId", "Target", "DateTime", "Price", "Currency"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
run()
times = []
for _ in range(%d):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
times.sort()
print(times[len(times) // 2], times[0], times[-1])
]]

local BIG_WRITER = [[
  local csv = require "csvup.csv"
  local w = assert(csv.writer(%q, { columns = { "ClientId", "Target", "DateTime", "Price", "Currency" } }))
  local i = 0
  assert(w:write_all(function()
    i = i + 1
    if i <= %d then
      return { ClientId = "1335912476409664580", Target = "GOAL1", DateTime = 1700000000 + i, Price = i %% 1000 / 100,
        Currency = "RUB" }
    end
  end))
  assert(w:close())
  print(io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]

return function()
  local rows = {}
  for i = 1, ROWS do
    rows[i] = { ClientId = ("%d"):format(1335912476409664580 + i), Target = "GOAL" .. i % 5,
      DateTime = 1700000000 + i, Price = (i % 100000) / 100, Currency = "RUB" }
  end
  local csvup = { common.time(function()
    local w = assert(csv.writer(OUT, { columns = COLUMNS }))
    assert(w:write_all(rows))
    assert(w:close())
  end) }
  local per_row = { common.time(function()
    local w = assert(csv.writer(OUT, { columns = COLUMNS }))
    for i = 1, #rows do
      assert(w:write(rows[i]))
    end
    assert(w:close())
  end) }
  local plain = { common.time(function()
    local f = assert(io.open(OUT, "wb"))
    f:write(table.concat(COLUMNS, ","), "\n")
    for i = 1, #rows do
      local r = rows[i]
      f:write(table.concat({ r.ClientId, r.Target, r.DateTime, r.Price, r.Currency }, ","), "\n")
    end
    f:close()
  end) }
  local results = {
    { "CSV 1M rows: csvup csv.writer, write_all", csvup, ("%.1f× the plain loop"):format(plain[1] / csvup[1]) },
    { "CSV 1M rows: csvup csv.writer, w:write per row", per_row,
      ("%.1f× the plain loop (goal ≥ 5×)"):format(plain[1] / per_row[1]) },
    { "CSV 1M rows: plain Lua table.concat loop", plain, "" },
  }
  if os.execute("command -v python3 >/dev/null 2>&1") then
    local median, low, high = common.run(("python3 -c '%s'"):format(PYTHON:format(ROWS, OUT, common.RUNS)))
      :match("(%S+) (%S+) (%S+)")
    local python = { tonumber(median), tonumber(low), tonumber(high) }
    results[1][3] = results[1][3] .. (", %.1f× Python's DictWriter (goal ≥ 2×)"):format(python[1] / csvup[1])
    results[#results + 1] = { "CSV 1M rows: Python csv.DictWriter", python, "" }
  end
  local peak = tonumber(common.run(("%s -e '%s'"):format(common.LUA, BIG_WRITER:format("build/bench/csv_big.csv", BIG_ROWS))))
  os.remove("build/bench/csv_big.csv")
  os.remove(OUT)
  results[#results + 1] = { "peak RSS writing 10M rows from an iterator", nil, ("%.1f MB (goal < 30 MB)"):format(peak / 1024) }
  return results
end
