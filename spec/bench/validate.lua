-- Checking and reading files: `csvup validate` over about 200 MB of varied
-- offline-conversion rows and 100 MB of Carrot quest users in Cyrillic (every
-- row checked), and csv.rows over 1,000,000 rows against Python's
-- csv.DictReader over the same file.
local common = require "bench.common"

local ROWS = 1000000

local PYTHON = [[
import csv, time
def run():
    with open("%s", newline="") as f:
        for record in csv.DictReader(f):
            pass
run()
times = []
for _ in range(%d):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
times.sort()
print(times[len(times) // 2], times[0], times[-1])
]]

local READ = [[
  local csv = require "csvup.csv"
  local socket = require "socket"
  local times = {}
  for i = 1, %d + 1 do
    local started = socket.gettime()
    local n = 0
    for record in assert(csv.rows(%q)) do
      n = n + 1
    end
    assert(n == %d)
    times[i] = socket.gettime() - started
  end
  table.remove(times, 1)
  table.sort(times)
  print(times[(#times + 1) // 2], times[1], times[#times])]]

return function()
  local path = common.varied_conversions_file(200)
  local size_mb = io.open(path):seek("end") / 1048576
  local validate = { common.time(function()
    common.run(("%s lua/bin/csvup validate offline-conversions %s"):format(common.LUA, path))
  end, 3) }
  local rows = {
    { ("csvup validate, every row, %.0f MB of varied conversions"):format(size_mb), validate,
      ("%.0f MB/s (goal ≥ 500 MB/s)"):format(size_mb / validate[1]) },
  }
  local users = common.cyrillic_users_file(100)
  local users_mb = io.open(users):seek("end") / 1048576
  local cyrillic = { common.time(function()
    common.run(("%s lua/bin/csvup validate --delimiter ';' --merge-field '$email' carrotquest-users %s")
      :format(common.LUA, users))
  end, 3) }
  rows[#rows + 1] = { ("csvup validate, every row, %.0f MB of Carrot quest users in Cyrillic"):format(users_mb), cyrillic,
    ("%.0f MB/s"):format(users_mb / cyrillic[1]) }
  local small = common.varied_conversions_file(nil, ROWS)
  local mine = { common.run(("%s -e '%s'"):format(common.LUA, READ:format(common.RUNS, small, ROWS)))
    :match("(%S+)%s+(%S+)%s+(%S+)") }
  for i = 1, 3 do
    mine[i] = tonumber(mine[i])
  end
  rows[#rows + 1] = { "csv.rows over 1M rows", mine, "" }
  if os.execute("command -v python3 >/dev/null 2>&1") then
    local python = { common.run(("python3 -c '%s'"):format(PYTHON:format(small, common.RUNS))):match("(%S+)%s+(%S+)%s+(%S+)") }
    for i = 1, 3 do
      python[i] = tonumber(python[i])
    end
    -- rounded down: a ratio just under the goal never prints as the goal
    rows[#rows][3] = ("%.2f× Python's DictReader (goal ≥ 3×)"):format(math.floor(python[1] / mine[1] * 100) / 100)
    rows[#rows + 1] = { "Python csv.DictReader over 1M rows", python, "" }
  end
  return rows
end
