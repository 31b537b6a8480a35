-- Collectors: events gathered into batch uploads through a durable spool.
-- add() checks a row and appends it to this worker's spool file (one write);
-- a flush, on a timer or on demand, renames the spool into a batch file and
-- uploads it in the thread pool with the journal on, so that a batch whose
-- answer was lost is found by its marker and never sent twice.
--
-- In the spool directory, for a collector named paid:
--   paid.<worker>.<n>.new          a spool file being made (its header only)
--   paid.<worker>.<n>.spool        a worker's spool (a CSV file: header, rows
--                                  appended), locked (flock) while its worker lives
--   paid.<worker>.<n>.<seq>.<rows>.batch.csv   a batch to send; locked while sent
--   ....batch.csv.journal          its journal (csvup.journal), while it is sent
--   ....rejected.csv, ....rejected.txt   a batch the service or the checks
--                                  refused (kind input), and why: kept, never retried
--   paid.budget                    "YYYY-MM-DD uploads" of the GMT day, shared
--                                  by the workers under flock
--   paid.bytes                     the bytes the spool holds, all workers', under
--                                  flock: each add reads and grows it, each flush
--                                  sets it from the files
-- A spool whose lock can be taken belongs to a worker that is gone (crash,
-- kill -9, reload, upgrade): any worker's next flush turns it into a batch.
local csv = require "csvup.csv"
local errors = require "csvup.errors"
local fs = require "csvup.ngx.fs"
local registry = require "csvup.registry"
local validate = require "csvup.validate"

local ngx = rawget(_G, "ngx")
local type, tostring, tonumber, pairs, ipairs, pcall, error, next =
  type, tostring, tonumber, pairs, ipairs, pcall, error, next
local concat, sort, min, floor, format = table.concat, table.sort, math.min, math.floor, string.format

local collector = {}

local DEFAULTS = { interval = 60, max_rows = 50000, max_spool_bytes = 2 ^ 30, uploads_per_day = 1000,
  fsync = "flush" }
local FSYNC = { row = true, flush = true, never = true }
local BACKOFF_MAX = 3600       -- seconds between attempts after failures, at most
local LOCK_WAIT = 2            -- seconds to wait for the lock of the budget or the byte count
local FLUSH_WAIT = 600         -- seconds flush() waits for a flush already running
local DAY = 86400

local collectors = {} -- this worker's, by name

local function fail(code, message, kind)
  return errors.fail(kind or "input", code, message)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do
    c[k] = v
  end
  return c
end

-- Checks the options of collector(name, opts); the collector's state.
local function configure(name, opts)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") then
    return fail("invalid_argument", "csvup.ngx.collector: the name must be letters, digits, _ or -")
  end
  if type(opts) ~= "table" then
    return fail("invalid_argument", "csvup.ngx.collector: options must be a table")
  end
  local c = { name = name }
  for k, v in pairs(DEFAULTS) do
    c[k] = opts[k] == nil and v or opts[k]
  end
  for _, k in ipairs { "interval", "max_rows", "max_spool_bytes", "uploads_per_day" } do
    if type(c[k]) ~= "number" or c[k] <= 0 or c[k] ~= c[k] or c[k] == math.huge then
      return fail("invalid_argument", "csvup.ngx.collector: " .. k .. " must be a positive number")
    end
  end
  if not FSYNC[c.fsync] then
    return fail("invalid_argument", 'csvup.ngx.collector: fsync must be "row", "flush" or "never"')
  end
  if type(opts.pool) ~= "string" or type(opts.spool) ~= "string" or opts.spool == "" then
    return fail("invalid_argument", "csvup.ngx.collector: pool (a thread_pool's name) and spool (a directory) are needed")
  end
  local m = registry.method[opts.method]
  local kind = m and registry.kind[m.kind]
  local schema = kind and kind.service == opts.service and registry.schema(kind, opts.args)
  if not schema then
    return fail("invalid_argument", ("csvup.ngx.collector: %s has no upload method %s with a schema")
      :format(tostring(opts.service), tostring(opts.method)))
  end
  if type(opts.client) ~= "table" or (opts.args ~= nil and type(opts.args) ~= "table") then
    return fail("invalid_argument", "csvup.ngx.collector: client and args must be tables")
  end
  c.pool, c.dir, c.service, c.method, c.schema = opts.pool, opts.spool:gsub("/+$", ""), opts.service, opts.method, schema
  c.client, c.args = copy(opts.client), copy(opts.args)
  c.prefix = c.dir .. "/" .. name .. "."
  c.worker = format("%d-%d", ngx.worker.pid(), floor(ngx.now() * 1000))
  c.spools, c.headers, c.rows, c.seq, c.files = {}, {}, 0, 0, 0
  c.sent = 0
  local err
  c.bytes_fd, err = fs.open(c.prefix .. "bytes", true)
  if not c.bytes_fd then
    return nil, err
  end
  return c
end

-- Takes the lock of an open file, waiting a bounded time for the other workers: true, or nil, err.
local function lock(fd, path)
  local deadline = ngx.now() + LOCK_WAIT
  while true do
    local locked, err = fs.try_lock(fd, path)
    if locked then
      return true
    elseif locked == nil or ngx.now() >= deadline then
      return nil, err or errors.new("internal", "spool_io", "spool: " .. path .. " stayed locked")
    end
    ngx.sleep(0.001)
  end
end

-- Runs fn(bytes) under the lock of the spool's byte count, and stores what fn
-- returns as the new count.
local function with_bytes(c, fn)
  local path = c.prefix .. "bytes"
  local locked, err = lock(c.bytes_fd, path)
  if not locked then
    return nil, err
  end
  local okay, bytes, a, b = pcall(fn, tonumber(fs.read(c.bytes_fd):match("^%d+")) or 0)
  local ok
  ok, err = okay, not okay and errors.new("internal", "internal_error", "spool: " .. errors.text(bytes))
  if okay and bytes then
    ok, err = fs.replace(c.bytes_fd, format("%d\n", bytes), path)
  end
  fs.unlock(c.bytes_fd)
  if not ok then
    return nil, err
  end
  return bytes, a, b
end

-- The spool files and batches of c in its directory: { name = size }, total
-- bytes (the byte count is set to it), and how many batches were refused.
local function scan(c)
  local found, total, rejected
  local _, err = with_bytes(c, function()
    local names, list_err = fs.list(c.dir)
    if not names then
      error(list_err)
    end
    found, total, rejected = {}, 0, 0
    local own = c.name .. "."
    for _, n in ipairs(names) do
      local mine = n:sub(1, #own) == own
      if mine and n:match("%.rejected%.csv$") then
        rejected = rejected + 1
      elseif mine and (n:match("%.spool$") or n:match("%.batch%.csv$")) then
        local size = fs.size(c.dir .. "/" .. n)
        if size then
          found[n], total = size, total + size
        end
      end
    end
    return total
  end)
  if not found then
    return nil, err
  end
  return found, total, rejected
end

-- A new spool file: made as .new (locked, header written), then named .spool.
local function new_spool(c, header)
  c.files = c.files + 1
  local base = format("%s%s.%d", c.prefix, c.worker, c.files)
  local fd, err = fs.append(base .. ".new")
  if not fd then
    return nil, err
  end
  local locked
  locked, err = fs.try_lock(fd, base .. ".new")
  local ok = locked and fs.write(fd, header, base .. ".new")
  if ok then
    ok, err = fs.rename(base .. ".new", base .. ".spool")
  end
  if not ok then
    fs.close(fd)
    fs.unlink(base .. ".new")
    return nil, err or errors.new("internal", "spool_io", "spool: another process holds " .. base .. ".new")
  end
  return { fd = fd, path = base .. ".spool", base = base, rows = 0 }
end

-- This worker's spool for a header. Another worker's flush may take a .new
-- file for a dead worker's in the moment before it is locked (and remove it):
-- then the next name is tried.
local function spool_for(c, header)
  local s, err, tries = c.spools[header], nil, 0
  while not s and tries < 3 do
    tries = tries + 1
    s, err = new_spool(c, header)
  end
  c.spools[header] = s
  return s, err
end

-- Turns this worker's spool files into batches (a rename each).
local function seal(c)
  local spools = c.spools
  c.spools, c.rows = {}, 0
  local first_err
  for _, s in pairs(spools) do
    local _, err
    if c.fsync ~= "never" then
      _, err = fs.sync(s.fd, s.path)
    end
    if not err then
      c.seq = c.seq + 1
      _, err = fs.rename(s.path, format("%s.%d.%d.batch.csv", s.base, c.seq, s.rows))
    end
    fs.close(s.fd) -- a spool that failed to become a batch is a leftover: a later flush adopts it
    first_err = first_err or err
  end
  if next(spools) and c.fsync ~= "never" then
    local ok, err = fs.sync_dir(c.dir)
    first_err = first_err or (not ok and err)
  end
  return not first_err, first_err
end

-- Whether a spool file holds a row beyond its header.
local function holds_rows(path)
  local f = io.open(path, "rb")
  if not f then
    return false
  end
  local rows = f:read("L") and f:read(1)
  f:close()
  return rows ~= nil
end

-- Turns the spool files no live worker holds into batches (those of workers
-- that are gone, and this worker's own that failed to become one: a lock is
-- per open file, so this worker's open spools refuse it too); removes .new
-- files, and spool files with no row, left by a worker that died.
local function adopt(c, names)
  for _, n in ipairs(names) do
    local stem, ext = n:match("^(.+)%.(%a+)$")
    if (ext == "spool" or ext == "new") and n:sub(1, #c.name + 1) == c.name .. "." then
      local path = c.dir .. "/" .. n
      local fd = fs.open(path)
      if fd then
        if fs.try_lock(fd, path) and fs.size(path) then
          if ext == "new" or not holds_rows(path) then
            fs.unlink(path)
          else
            c.seq = c.seq + 1
            fs.rename(path, format("%s/%s.%d.x.batch.csv", c.dir, stem, c.seq))
          end
        end
        fs.close(fd)
      end
    end
  end
end

local function today()
  return os.date("!%Y-%m-%d", ngx.time())
end

-- Opens and locks the budget file: fd, its day's count and its path.
local function open_budget(c)
  local path = c.prefix .. "budget"
  local fd, err = fs.open(path, true)
  if not fd then
    return nil, err
  end
  local locked
  locked, err = lock(fd, path)
  if not locked then
    fs.close(fd)
    return nil, err
  end
  local day, n = fs.read(fd):match("^(%d+%-%d+%-%d+) (%d+)")
  if day ~= today() then
    n = 0
  end
  return fd, tonumber(n), path
end

-- The uploads made today by all workers.
local function uploads_today(c)
  local fd, n = open_budget(c)
  if not fd then
    return nil
  end
  fs.close(fd)
  return n
end

-- Takes one upload of the day's budget: true, false when it is spent, or nil, err.
local function reserve(c)
  local fd, n, path = open_budget(c)
  if not fd then
    return nil, n
  end
  local ok, err
  if n >= c.uploads_per_day then
    ok = false
  else
    ok, err = fs.replace(fd, format("%s %d\n", today(), n + 1), path)
    if ok then
      ok, err = fs.sync(fd, path)
    end
  end
  fs.close(fd)
  return ok, err
end

local function remove_journal(path)
  for _, suffix in ipairs { ".journal", ".journal-journal", ".journal-wal", ".journal-shm" } do
    fs.unlink(path .. suffix)
  end
end

-- Moves a batch the service or the checks refused aside, with its error.
local function reject(path, err)
  local stem = path:gsub("%.batch%.csv$", "")
  fs.rename(path, stem .. ".rejected.csv")
  local f = io.open(stem .. ".rejected.txt", "w")
  if f then
    f:write(errors.printable(tostring(err)), "\n")
    f:close()
  end
  remove_journal(path)
end

-- The batch's file, open and locked against the other workers: fd, or nil ("skipped") or nil, err.
-- A batch whose outcome is unknown may be taken by any worker: its journal
-- has it looked for by its marker before anything is sent again.
local function take(path)
  local fd = fs.open(path)
  if not fd then
    return nil -- sent and removed by another worker meanwhile
  end
  local locked, err = fs.try_lock(fd, path)
  if locked and fs.size(path) then
    return fd
  end
  fs.close(fd)
  return nil, err -- another worker sends it now (or has sent it), or the lock failed
end

-- Sends one batch: "sent", "skipped", "spent", or nil, err.
local function send(c, path)
  local fd, err = take(path)
  if not fd then
    return not err and "skipped" or nil, err
  end
  local ok
  ok, err = reserve(c)
  if not ok then
    fs.close(fd)
    return ok == false and "spent" or nil, err
  end
  local client, args = copy(c.client), copy(c.args)
  client.journal, args.file = path .. ".journal", path
  local result
  result, err = require("csvup.ngx").call(c.pool, c.service, c.method, client, args)
  local refused = not result and err.kind == "input" and err.code ~= "in_progress"
  if result then
    fs.unlink(path)
    remove_journal(path)
    c.sent = c.sent + 1
  elseif refused then
    reject(path, err) -- never retried: the file would be refused again
    c.last_error = tostring(err)
  end
  fs.close(fd)
  if result or refused then
    return "sent"
  end
  return nil, err -- outcome unknown, network, api: the batch stays and is tried again
end

-- One flush: seal, adopt, then send every batch there is (oldest first) while the budget lasts.
local function run(c, now)
  local ok, err = seal(c)
  local names
  if ok then
    names, err = fs.list(c.dir)
  end
  if not names then
    return nil, err
  end
  adopt(c, names)
  if not now and c.retry_at and ngx.now() < c.retry_at then
    return true
  end
  names, err = fs.list(c.dir)
  if not names then
    return nil, err
  end
  local batches = {}
  for _, n in ipairs(names) do
    if n:sub(1, #c.name + 1) == c.name .. "." and n:match("%.batch%.csv$") then
      batches[#batches + 1] = n
    end
  end
  sort(batches)
  for _, n in ipairs(batches) do
    local done
    done, err = send(c, c.dir .. "/" .. n)
    if done == "spent" then
      break
    elseif not done then
      c.last_error = tostring(err)
      c.backoff = min((c.backoff or c.interval / 2) * 2, BACKOFF_MAX)
      c.retry_at = ngx.now() + c.backoff
      return nil, err
    end
  end
  c.backoff, c.retry_at = nil, nil
  return true
end

-- Runs a flush (one at a time per collector in a worker; a second waits for the first).
local function flush(c, now)
  local deadline = ngx.now() + FLUSH_WAIT
  while c.flushing do
    if ngx.now() >= deadline then
      return fail("flush_timeout", "csvup.ngx.flush: another flush of " .. c.name .. " is still running", "internal")
    end
    ngx.sleep(0.01)
  end
  c.flushing = true
  local okay, ok, err = pcall(run, c, now)
  c.flushing = false
  if not okay then
    return fail("internal_error", "csvup.ngx.flush: " .. errors.text(ok), "internal")
  end
  scan(c)
  return ok, err
end

local function tick(premature, c)
  if premature then -- the worker exits: its spool stays for the next workers, unlocked as it exits
    return
  end
  if not c.flushing then
    local ok, err = flush(c)
    if not ok then
      ngx.log(ngx.WARN, "csvup collector ", c.name, ": ", tostring(err))
    end
  end
end

--- Starts a collector in this worker (init_worker_by_lua): see csvup.ngx.
function collector.new(name, opts)
  local c, err = configure(name, opts)
  if not c then
    return nil, err
  end
  local listed
  listed, err = fs.list(c.dir) -- the spool directory is there and readable
  if not listed then
    return nil, err
  end
  collectors[name] = c
  local ok
  ok, err = ngx.timer.every(c.interval, tick, c)
  if ok then
    ok, err = ngx.timer.at(0, tick, c) -- what an earlier nginx left is sent first
  end
  if not ok then
    return fail("timer_failed", "csvup.ngx.collector: " .. tostring(err), "internal")
  end
  return true
end

local function get(name)
  local c = collectors[name]
  if not c then
    error("csvup.ngx: no collector " .. tostring(name) .. " in this worker (collector() in init_worker_by_lua)", 3)
  end
  return c
end

--- Checks a row and appends it to this worker's spool: true once written, or nil, err.
function collector.add(name, row)
  local c = get(name)
  if type(row) ~= "table" then
    error("csvup.ngx.add expects a row (a table)", 2)
  end
  local columns = csv.columns({ row })
  local ok, err = validate.rows(c.schema, { row }, columns)
  if not ok then
    return nil, err
  end
  local key = concat(columns, ",")
  local header = c.headers[key]
  if not header then
    header = csv.encode({ columns })
    c.headers[key] = header
  end
  local line
  line, err = csv.encode({ row }, { columns = columns, header = false })
  if not line then
    return nil, err
  end
  local need = #line + (c.spools[header] and 0 or #header) -- a new spool file starts with the header
  local s
  -- under the lock of the byte count, so that the bound holds for all workers together
  local bytes, taken = with_bytes(c, function(held)
    if held + need > c.max_spool_bytes then
      return nil, errors.new("internal", "spool_full", format("csvup.ngx: the spool of %s holds %d bytes, its "
        .. "max_spool_bytes is %d: the row was not taken", c.name, held, c.max_spool_bytes))
    end
    local spool, spool_err = spool_for(c, header)
    if not spool then
      return nil, spool_err
    end
    local wrote, write_err = fs.write(spool.fd, line, spool.path)
    if not wrote then
      return held + need - #line, write_err -- what spool_for wrote, counted
    end
    s = spool
    return held + need
  end)
  if not s then
    return nil, taken or bytes
  end
  if c.fsync == "row" then
    ok, err = fs.sync(s.fd, s.path)
    if not ok then
      return nil, err
    end
  end
  s.rows, c.rows = s.rows + 1, c.rows + 1
  if c.rows >= c.max_rows and not c.flushing and not c.soon then
    c.soon = true
    ngx.timer.at(0, function(premature)
      c.soon = nil
      tick(premature, c)
    end)
  end
  return true
end

--- Flushes now (in a context that may yield) and waits for it: true, or nil, err.
function collector.flush(name)
  return flush(get(name), true)
end

--- What waits and what was sent (see the README).
function collector.stats(name)
  local c = get(name)
  local found, bytes, rejected = scan(c)
  local st = { rows = c.rows, bytes = bytes, batches = 0, rejected = rejected, sent = c.sent,
    uploads_today = uploads_today(c), uploads_per_day = c.uploads_per_day,
    retry_at = c.retry_at, last_error = c.last_error }
  if st.uploads_today and st.uploads_today >= c.uploads_per_day then
    st.waiting_until = (floor(ngx.time() / DAY) + 1) * DAY -- the budget is spent: the next GMT day
  end
  for n in pairs(found or {}) do
    local rows = n:match("%.(%d+)%.batch%.csv$")
    if rows then
      st.batches, st.rows = st.batches + 1, st.rows + tonumber(rows)
    elseif n:match("%.x%.batch%.csv$") then
      st.batches = st.batches + 1
    end
  end
  return st
end

return collector
