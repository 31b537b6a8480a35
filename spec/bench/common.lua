-- What the benchmarks share: timing a run several times, child processes,
-- and the generated files they upload (made once, kept under build/bench).
local socket = require "socket"

local common = { RUNS = 5 }
local held = {} -- path -> the pid file of the vmtouch process holding it in memory

-- lua5.4 with the checkout's modules
common.LUA = [[LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;" LUA_CPATH="build/lua5.4/?.so;;" lua5.4]]

-- { median, min, max, rounds = seconds of each round } of RUNS runs of each
-- of fns after one warm-up, in the order of fns; they take turns in each
-- round, so that whatever else the machine does falls on all of them alike.
function common.time_together(fns, runs)
  runs = runs or common.RUNS
  local times = {}
  for i, fn in ipairs(fns) do
    fn()
    times[i] = {}
  end
  for round = 1, runs do
    for i, fn in ipairs(fns) do
      local started = socket.gettime()
      fn()
      times[i][round] = socket.gettime() - started
    end
  end
  for i, rounds in ipairs(times) do
    local list = table.move(rounds, 1, runs, 1, {})
    table.sort(list)
    times[i] = { list[(runs + 1) // 2], list[1], list[runs], rounds = rounds }
  end
  return times
end

-- The median of a's time over b's in the same round: two runs back to back
-- meet the same load on a shared machine, which two medians taken apart do not.
function common.paired_ratio(a, b)
  local ratios = {}
  for round, seconds in ipairs(a.rounds) do
    ratios[round] = seconds / b.rounds[round]
  end
  table.sort(ratios)
  return ratios[(#ratios + 1) // 2]
end

-- median, min and max seconds of RUNS runs of fn after one warm-up
function common.time(fn, runs)
  return table.unpack(common.time_together({ fn }, runs)[1])
end

-- Runs a shell command; its output, or an error naming the command.
function common.run(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("a")
  local ok = pipe:close()
  assert(ok, command .. " failed:\n" .. output)
  return output
end

-- Whether the file at path is there already (a bench file is made once).
local function made(path)
  local f = io.open(path)
  if f then
    f:close()
  end
  return f ~= nil
end

-- path, its pages held in memory (locked by vmtouch) until common.release():
-- the memory manager may page out file cache that has sat for a while (this
-- machine runs DAMON), and a run that reads from disk measures the disk.
local function hold(path)
  local pidfile = path .. ".vmtouch.pid"
  if not held[path] and os.execute(("vmtouch -q -l -d -w -m 4G -P %s %s"):format(pidfile, path)) then
    held[path] = pidfile
  end
  return path
end

-- Lets go of the files hold kept in memory.
function common.release()
  for path, pidfile in pairs(held) do
    local f = io.open(pidfile)
    if f then
      os.execute("kill " .. (f:read("l") or ""))
      f:close()
    end
    os.remove(pidfile)
    held[path] = nil
  end
end

-- An offline-conversions CSV of about `megabytes` MB under build/bench, made once.
function common.conversions_file(megabytes)
  local path = ("build/bench/conversions_%dmb.csv"):format(megabytes)
  if made(path) then
    return hold(path)
  end
  local rows = math.floor(megabytes * 1048576 / 36)
  common.run(("{ echo ClientId,Target,DateTime; yes 133591247640966458,GOAL1,1481718166 2>/dev/null | head -n %d; } > %s")
    :format(rows, path))
  return hold(path)
end

-- A file of `rows` rows under build/bench, made once by the awk program
-- (the body of its BEGIN block, which has the count in n).
local function awk_file(path, rows, program)
  if not made(path) then
    common.run(("awk -v n=%d 'BEGIN {%s}' > %s"):format(rows, program, path))
  end
  return hold(path)
end

-- Offline conversions of every shape a user sends (ClientId, UserId or Yclid,
-- five goals, prices, currencies, quoted notes), about `megabytes` MB or
-- `rows` rows.
function common.varied_conversions_file(megabytes, rows)
  rows = rows or math.floor(megabytes * 1048576 / 50)
  return awk_file(("build/bench/varied_%d.csv"):format(rows), rows, [[
    print "ClientId,UserId,Yclid,Target,DateTime,Price,Currency"
    split("RUB USD EUR KZT BYN", cur, " ")
    for (i = 1; i <= n; i++) {
      id = i % 3
      printf "%s,%s,%s,GOAL%d,%d,%d.%02d,%s\n",
        id == 0 ? sprintf("1335912476%08d", i) : "", id == 1 ? sprintf("\"user %d, \"\"vip\"\"\"", i) : "",
        id == 2 ? sprintf("4000%09d", i) : "", i % 5, 1700000000 + i % 9000000, i % 100000, i % 100,
        cur[i % 5 + 1]
    }
  ]])
end

-- About `megabytes` MB of Carrot quest users with names and cities in
-- Cyrillic (two bytes a letter in UTF-8), ";"-separated.
function common.cyrillic_users_file(megabytes)
  return awk_file(("build/bench/cyrillic_users_%dmb.csv"):format(megabytes), math.floor(megabytes * 1048576 / 66), [[
    print "$email;$name;city;plan"
    split("Анна Пётр Иван Мария Ольга Сергей Дмитрий Елена", name, " ")
    split("Москва Казань Омск Самара Новосибирск", city, " ")
    split("gold silver bronze", plan, " ")
    for (i = 1; i <= n; i++)
      printf "user%d@example.com;%s %s;%s;%s\n", i, name[i % 8 + 1], name[(i * 7) % 8 + 1], city[i % 5 + 1],
        plan[i % 3 + 1]
  ]])
end

return common
