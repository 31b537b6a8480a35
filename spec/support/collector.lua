-- The README's collector recipe run from a temporary prefix, as pasted but
-- for what the README says to change (the listen address, the Lua paths) and
-- the places of a spec (pid, error log, spool directory), plus the
-- collector's options a spec sets. Master and workers, so that a spec can
-- kill -9 them all, restart, or reload (HUP).
local socket = require "socket"
local files = require "support.files"
local nginx = require "support.nginx"
local readme = require "support.readme"

local collector = {}

-- The collector section's one fenced block of a language.
local function fenced(language)
  return readme.fenced("OpenResty collector", language)
end

local function replace(text, from, to)
  local result, n = text:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
  assert(n > 0, "the recipe has no " .. from)
  return result
end

-- collector.start(sandbox, token, { interval = 1, max_spool_bytes = 100 },
--   { client = "retries = 0,", seed = function(spool) end })
-- -> { port, url, dir, spool, log(), kill(), start(), reload(), stop() }
-- extra.client is added to the client's options; extra.seed writes into the
-- spool directory before nginx starts.
function collector.start(sandbox, token, options, extra)
  extra = extra or {}
  local dir = files.tmpdir()
  local port = nginx.free_port()
  local spool = dir .. "/spool"
  -- a copy of the modules that the workers' user (www-data when run as root) can read, wherever the checkout is
  assert(os.execute(("mkdir -p %s/lib && cp -r lua build/luajit %s/lib/"):format(dir, dir)))
  local config = fenced("nginx")
  config = replace(config, "listen 127.0.0.1:8080;", "listen 127.0.0.1:" .. port .. ";")
  config = replace(config, '"/usr/local/share/lua/5.1/', '"' .. dir .. "/lib/lua/")
  config = replace(config, '"/usr/local/lib/lua/5.1/', '"' .. dir .. "/lib/luajit/")
  config = replace(config, "/run/csvup-nginx.pid", dir .. "/nginx.pid")
  config = replace(config, "/var/log/nginx/csvup-error.log", dir .. "/error.log")
  config = replace(config, '"/var/spool/csvup"', '"' .. spool .. '"')
  for name, value in pairs(options or {}) do
    local changed, n = config:gsub("\n(%s*)" .. name .. " = [^,\n]+,", "\n%1" .. name .. " = " .. value .. ",")
    assert(n == 1, "the recipe does not set " .. name)
    config = changed
  end
  if extra.client then
    config = replace(config, "counter = 2215573,", "counter = 2215573, " .. extra.client)
  end
  files.write(dir .. "/nginx.conf", config)
  -- the README's command that makes the spool directory, for this one
  local make_spool = replace(fenced("sh"), "/var/spool/csvup", spool)
  if io.popen("id -u"):read("l") ~= "0" then -- the `user` directive and chown need root; nginx runs as this user
    make_spool = make_spool:gsub(" %-o %S+ %-g %S+", "")
  end
  assert(os.execute(make_spool), make_spool)
  if extra.seed then
    extra.seed(spool)
    os.execute("chown -R --reference=" .. spool .. " " .. spool)
  end

  local n = { port = port, url = "http://127.0.0.1:" .. port, dir = dir, spool = spool }
  local pipe, master
  local command = ("echo $$; CSVUP_METRIKA_TOKEN=%s CSVUP_BASE_URL=%s exec nginx -p %s -c %s/nginx.conf "
    .. "-e %s/error.log -g 'daemon off;' 2>&1"):format(token, sandbox.url, dir, dir, dir)

  function n.start()
    pipe = assert(io.popen(command))
    master = pipe:read("l")
    assert(nginx.wait(port), "nginx did not answer on port " .. port)
  end

  -- The pids of the master's workers: the processes whose parent it is (from /proc, as procps may be missing).
  function n.workers()
    local list = io.popen("ls /proc")
    local pids = {}
    for pid in list:lines() do
      local ok, stat = pcall(files.read, "/proc/" .. pid .. "/stat")
      if pid:match("^%d+$") and ok and stat:match("%) %S+ (%d+)") == master then
        pids[#pids + 1] = pid
      end
    end
    list:close()
    return pids
  end

  -- kill -9 of the master and every worker at once.
  function n.kill()
    local workers = n.workers()
    assert(#workers > 0, "nginx has no workers to kill")
    os.execute("kill -9 " .. master .. " " .. table.concat(workers, " "))
    pipe:close()
    socket.sleep(0.1)
  end

  function n.reload()
    os.execute("kill -HUP " .. master)
  end

  function n.log()
    local ok, text = pcall(files.read, dir .. "/error.log")
    return ok and text or ""
  end

  function n.stop()
    os.execute("kill -QUIT " .. master)
    pipe:close()
    files.remove(dir)
  end

  n.start()
  return n
end

-- The rows the sandbox received in uploads: { [ClientId] = times }, rows, uploads.
function collector.received(sandbox)
  local seen, rows, uploads = {}, 0, 0
  for _, r in ipairs(sandbox.requests()) do
    if r.method == "POST" and r.file then
      uploads = uploads + 1
      local first = true
      for line in r.file.content:gmatch("[^\n]+") do
        if not first then
          local id = line:match("^(%d+),")
          seen[id] = (seen[id] or 0) + 1
          rows = rows + 1
        end
        first = false
      end
    end
  end
  return seen, rows, uploads
end

return collector
