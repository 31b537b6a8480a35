-- Upload throughput, processor time and memory, side by side with `curl -F`
-- in one run, on three local nginx sinks: `return 200`, which drops the body
-- as it comes; /sink, which reads the whole body into memory-backed files
-- (lua-nginx-module); and `return 200` over HTTPS. Each upload is a child
-- process timed by /usr/bin/time: wall time and user+sys. Measured: the
-- command line's default upload (journal on: every row checked and the bytes
-- hashed as they are sent, the upload recorded before its last bytes: the
-- journal's gate), the library's default upload (every row checked as it is
-- sent), a plain one (validate = false); on the first two sinks a
-- Windows-1251 ";" export by the library and by the command line, each
-- compared with the same upload of the plain file (one pass checks it and
-- measures its converted size, then it is converted as it is sent); on the
-- first, the default upload's parts alone (a read, SHA-256, the check); then
-- peak RSS, and rows a second from an iterator. BENCH_MB sets the file's
-- size (1024).
local common = require "bench.common"
local files = require "support.files"
local nginx = require "support.nginx"
local openresty = require "support.openresty"
local tls = require "support.tls"

local MB = tonumber(os.getenv("BENCH_MB")) or 1024
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 5
local ITERATOR_ROWS = 3000000

local DISCARD = [[
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path {dir}/body;
  server {
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {
      default_type application/json;
      return 200 '{"uploading":{"id":1,"status":"UPLOADED"}}';
    }
  }
}
]]

local UPLOAD = [[
  local m = require("csvup").metrika.new { token = "t", counter = 1, base_url = %q, ca_file = %s }
  assert(m:upload_offline_conversions { file = %q, validate = %s, encoding = %s, delimiter = %s })
  print(io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]

local ITERATE = [[
  local socket = require "socket"
  local m = require("csvup").metrika.new { token = "t", counter = 1, base_url = %q }
  local i, n = 0, %d
  local started = socket.gettime()
  assert(m:upload_offline_conversions { rows = function()
    i = i + 1
    if i <= n then
      return { ClientId = 133591247640966458 + i, Target = "GOAL" .. i %% 5, DateTime = 1481718166 + i }
    end
  end })
  print(socket.gettime() - started, io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]

local function start_discard()
  local dir, port = files.tmpdir(), nginx.free_port()
  local stop, pid = nginx.start(dir, port, (DISCARD:gsub("{(%w+)}", { dir = dir, port = tostring(port) })))
  return { url = "http://127.0.0.1:" .. port, pid = pid, stop = function()
    stop()
    files.remove(dir)
  end }
end

-- The user+sys seconds process pid has used so far.
local function cpu_of(pid)
  local stat = io.open("/proc/" .. pid .. "/stat"):read("a"):gsub("^.*%) ", "")
  local fields = {}
  for field in stat:gmatch("%S+") do
    fields[#fields + 1] = field
  end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- utime, stime in clock ticks (USER_HZ: 100)
end

local function quoted(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A sink: { url, pid? (its process), ca_file? (HTTPS) }.
local function library(sink, path, validate, encoding, delimiter)
  local ca_file = sink.ca_file and ("%q"):format(sink.ca_file) or "nil"
  return ("%s -e %s"):format(common.LUA, quoted(UPLOAD:format(sink.url, ca_file, path, validate, encoding or "nil",
    delimiter or "nil")))
end

-- The command line's default upload (extra: more options), with a journal
-- of its own each time (else it is sent once).
local function command_line(sink, path, extra)
  return ("d=$(mktemp -d); XDG_STATE_HOME=$d CSVUP_METRIKA_TOKEN=t %s lua/bin/csvup metrika "
    .. "upload-offline-conversions --base-url %s --counter 1 %s%s%s; s=$?; rm -rf $d; exit $s")
    :format(common.LUA, sink.url, sink.ca_file and "--ca-file " .. sink.ca_file .. " " or "",
      extra and extra .. " " or "", path)
end

-- { median, min, max } of wall seconds and of user+sys seconds of each
-- command, taking turns round by round, and of the sink's (its process pid,
-- when given) during each.
local function measure(commands, pid)
  local out = os.tmpname()
  local walls, cpus, sinks = {}, {}, {}
  for i = 1, #commands do
    walls[i], cpus[i], sinks[i] = {}, {}, {}
  end
  for round = 0, ROUNDS do -- round 0 warms up
    for i, command in ipairs(commands) do
      local before = pid and cpu_of(pid)
      common.run(("/usr/bin/time -f '%%e %%U %%S' -o %s sh -c %s >/dev/null"):format(out, quoted(command)))
      local wall, user, sys = io.open(out):read("a"):match("([%d.]+) ([%d.]+) ([%d.]+)%s*$")
      if round > 0 then
        walls[i][round], cpus[i][round] = tonumber(wall), tonumber(user) + tonumber(sys)
        sinks[i][round] = pid and cpu_of(pid) - before or 0
      end
    end
  end
  os.remove(out)
  local function stats(list)
    table.sort(list)
    return { list[(#list + 1) // 2], list[1], list[#list] }
  end
  for i = 1, #commands do
    walls[i], cpus[i], sinks[i] = stats(walls[i]), stats(cpus[i]), stats(sinks[i])
  end
  return walls, cpus, sinks
end

-- The uploads to one sink, each compared with curl's or with the plain
-- upload of the same kind (vs), with the sink's own processor time when its
-- process is known (2 cores are shared by the upload's threads and nginx);
-- with converted (a path), also that file's; with parts, also the parts of
-- the command line's default upload alone.
local function sink_rows(rows, sink_name, sink, big, converted, parts)
  local semicolon = [[--encoding cp1251 --delimiter ';']]
  local cases = {
    { "curl -F", ("curl -sS -o /dev/null %s-F file=@%s %s/management/v1/counter/1/offline_conversions/upload")
      :format(sink.ca_file and "--cacert " .. sink.ca_file .. " " or "", big, sink.url) },
    { "csvup command line, default (journal on: checked and hashed as it is sent)", command_line(sink, big), vs = 1,
      goal = "goal ≤ 1.5× wall, ≤ 2× cpu" },
    { "csvup library, default (every row checked as it is sent)", library(sink, big, '"full"'), vs = 1,
      goal = "goal ≤ 1.25× cpu, aim 1.0×" },
    { "csvup library, validate = false", library(sink, big, "false"), vs = 1 },
  }
  if converted then
    cases[5] = { "csvup library, Windows-1251 \";\" file converted as it is sent (every row checked)",
      library(sink, converted, '"full"', '"cp1251"', '";"'), vs = 3, goal = "goal ≤ 2× the plain upload" }
    cases[6] = { "csvup command line, default, Windows-1251 \";\" file", command_line(sink, converted, semicolon),
      vs = 2, goal = "goal ≤ 2× the plain upload" }
  end
  if parts then
    for _, part in ipairs {
      { "part alone: reading the file (cat)", ("cat %s >/dev/null"):format(big), part = true },
      { "part alone: SHA-256 of the file (libcrypto) and its reading",
        ("%s -e 'require(\"csvup.core\").sha256_file(%q)'"):format(common.LUA, big), part = true },
      { "part alone: every row checked (csvup validate) and its reading",
        ("%s lua/bin/csvup validate offline-conversions %s"):format(common.LUA, big), part = true },
    } do
      cases[#cases + 1] = part
    end
  end
  local commands = {}
  for i, case in ipairs(cases) do
    commands[i] = case[2]
  end
  local walls, cpus, sinks = measure(commands, sink.pid)
  for i, case in ipairs(cases) do
    local vs = case.vs or 1
    local name = case.part and ("%d MB, %s"):format(MB, case[1])
      or ("upload %d MB to %s: %s"):format(MB, sink_name, case[1])
    rows[#rows + 1] = { name, walls[i],
      ("%.0f MB/s; user+sys %.2f s%s; %.2f× %s wall, %.2f× cpu %s"):format(MB / walls[i][1], cpus[i][1],
        sink.pid and not case.part and (", nginx meanwhile %.2f s"):format(sinks[i][1]) or "",
        walls[i][1] / walls[vs][1], vs == 1 and "curl" or "plain", cpus[i][1] / cpus[vs][1], case.goal or "") }
  end
end

return function()
  local big = common.conversions_file(MB)
  local converted = ("build/bench/conversions_%dmb_cp1251_semicolon.csv"):format(MB)
  if not io.open(converted) then
    common.run(("tr , ';' < %s > %s"):format(big, converted))
  end
  local rows = {}
  local sink = openresty.start("http://127.0.0.1:1", "t")
  local discard = start_discard()
  local https = tls.start(nil, { answer = [[default_type application/json;
    return 200 '{"uploading":{"id":1,"status":"UPLOADED"}}';]] })
  sink_rows(rows, "nginx return 200", discard, big, converted, true)
  sink_rows(rows, "nginx reading the body (/sink)", { url = sink.url .. "/sink" }, big, converted)
  sink_rows(rows, "nginx return 200 over HTTPS", https, big)
  https.stop()
  local function peak(path, validate)
    return tonumber(common.run(library(discard, path, validate))) / 1024
  end
  rows[#rows + 1] = { "peak RSS uploading 100 MB / 1 GB", nil, ("%.1f MB / %.1f MB (goal < 16 MB at 1 GB, within 2 MB)")
    :format(peak(common.conversions_file(100), "false"), peak(common.conversions_file(1024), "false")) }
  rows[#rows + 1] = { "peak RSS uploading 1 GB, every row checked", nil, ("%.1f MB (goal ≤ 16 MB)")
    :format(peak(common.conversions_file(1024), '"full"')) }
  local seconds, kb = common.run(("%s -e %s"):format(common.LUA, quoted(ITERATE:format(discard.url, ITERATOR_ROWS))))
    :match("([%d.]+)%s+(%d+)")
  rows[#rows + 1] = { ("upload %d rows from an iterator (checked, encoded, hashed into a temporary file, sent)")
    :format(ITERATOR_ROWS), { tonumber(seconds) }, ("%.0f rows/s; peak RSS %.1f MB (goal < 40 MB)")
    :format(ITERATOR_ROWS / tonumber(seconds), tonumber(kb) / 1024) }
  discard.stop()
  sink.stop()
  return rows
end
