-- `make bench`, CSV building: 1,000,000 offline-conversion records written to a
-- file by csvup's csv.writer, by a plain Lua table.concat loop, and by Python's
-- csv.DictWriter (when python3 is present); median of 5 runs after a warm-up.
-- Then the peak RSS of a 10-million-row writer fed by an iterator.
local csv = require "csvup.csv"
local socket = require "socket"

local ROWS = 1000000
local RUNS = 5
local BIG_ROWS = 10000000
local COLUMNS = { "ClientId", "Target", "DateTime", "Price", "Currency" }
local OUT = arg[1] or "build/bench"

local function make_row(i)
  return {
    ClientId = ("%d"):format(1335912476409664580 + i), -- 19 digits, above 2^53
    Target = "GOAL" .. i % 5,
    DateTime = 1700000000 + i,
    Price = (i % 100000) / 100,
    Currency = "RUB",
  }
end

local function median_of(runs, fn)
  fn() -- warm-up
  local times = {}
  for i = 1, runs do
    local t0 = socket.gettime()
    fn()
    times[i] = socket.gettime() - t0
  end
  table.sort(times)
  return times[(runs + 1) // 2], times[1], times[runs]
end

local rows = {}
for i = 1, ROWS do
  rows[i] = make_row(i)
end
local path = OUT .. "/csv_bench.csv"

local function csvup_writer()
  local w = assert(csv.writer(path, { columns = COLUMNS }))
  assert(w:write_all(rows))
  assert(w:close())
end

local function plain_lua()
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(COLUMNS, ","), "\n")
  for i = 1, #rows do
    local r = rows[i]
    f:write(table.concat({ r.ClientId, r.Target, r.DateTime, r.Price, r.Currency }, ","), "\n")
  end
  f:close()
end

local results = {}
local function measure(name, fn)
  local median, low, high = median_of(RUNS, fn)
  results[#results + 1] = { name, median, low, high }
  return median
end

local csvup_time = measure("csvup csv.writer", csvup_writer)
local lua_time = measure("plain Lua table.concat loop", plain_lua)

-- Python's DictWriter on the same records, built the same way (not timed).
local python_time
if os.execute("command -v python3 >/dev/null 2>&1") then
  local script = ([[
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
]]):format(ROWS, path, RUNS)
  local pipe = io.popen("python3 -c '" .. script .. "'")
  local median, low, high = pipe:read("n", "n", "n")
  pipe:close()
  if median then
    python_time = median
    results[#results + 1] = { "Python csv.DictWriter", median, low, high }
  end
end

-- Peak RSS of a 10M-row writer fed by an iterator, in a process of its own.
local rss_script = ([[
  local csv = require "csvup.csv"
  local w = assert(csv.writer(%q, { columns = { "ClientId", "Target", "DateTime", "Price", "Currency" } }))
  local i = 0
  assert(w:write_all(function()
    i = i + 1
    if i <= %d then
      return { ClientId = "1335912476409664580", Target = "GOAL1", DateTime = 1700000000 + i, Price = i %% 1000 / 100, Currency = "RUB" }
    end
  end))
  assert(w:close())
  print(io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]):format(OUT .. "/csv_big.csv", BIG_ROWS)
local pipe = io.popen("lua5.4 -e '" .. rss_script .. "'")
local peak_kb = pipe:read("n")
pipe:close()
os.remove(OUT .. "/csv_big.csv")
os.remove(path)

print(("\n### CSV building: %d offline-conversion records (median of %d runs, min–max)\n"):format(ROWS, RUNS))
print("| writer | median s | min s | max s |")
print("|---|---|---|---|")
for _, r in ipairs(results) do
  print(("| %s | %.3f | %.3f | %.3f |"):format(r[1], r[2], r[3], r[4]))
end
print()
print(("csvup vs plain Lua: %.1f× faster (goal ≥ 5×)"):format(lua_time / csvup_time))
if python_time then
  print(("csvup vs Python DictWriter: %.1f× faster (goal ≥ 2×)"):format(python_time / csvup_time))
end
print(("peak RSS writing %d rows from an iterator: %.1f MB (goal < 30 MB)"):format(BIG_ROWS, (peak_kb or 0) / 1024))
