-- Many calls at once from one Lua thread, through libcurl's multi interface.
--
--   local results = csvup.batch({
--     { client = metrika, method = "upload_expenses", args = { file = "2026-11-01.csv" } },
--     ...
--   }, { concurrency = 3, progress = function(sent, total, done, count) end })
--   for i, r in ipairs(results) do  -- in the order of the jobs
--     if r[1] then ... else print(r[2]) end  -- { result } or { nil, err }
--   end
--
-- Each job is checked exactly as the method would check it; the jobs of one
-- client share up to `concurrency` connections, start no faster than its
-- `rate`, and Metrica's parallel-request guard still holds (3 per token). A
-- job that failed in a way that is safe to repeat (429, 503 backend_error,
-- refused) is repeated on its own afterwards, with its client's retry
-- policy; one failure never stops the rest. A progress callback that raises
-- (or SIGINT/SIGTERM, once core.signals() is on) stops the batch: what landed
-- keeps its result, the rest get the error that stopped it.
local client = require "csvup.client"
local core = require "csvup.core"
local errors = require "csvup.errors"
local once = require "csvup.once"
local registry = require "csvup.registry"

local type, error, ipairs = type, error, ipairs

local batch = {}

local function check_jobs(jobs)
  if type(jobs) ~= "table" then
    error("csvup.batch expects an array of jobs", 3)
  end
  for i, job in ipairs(jobs) do
    if type(job) ~= "table" or type(job.client) ~= "table" or type(job.client.plans) ~= "table"
      or not job.client.plans[job.method] then
      error(("csvup.batch: job %d needs a client and the name of one of its API methods"):format(i), 3)
    end
  end
end

--- Runs many client calls at once; the results come in the order of the jobs.
-- csvup.batch(jobs, { concurrency = 3, progress = fn }) -> results
function batch.batch(jobs, opts)
  check_jobs(jobs)
  opts = opts or {}
  local concurrency = opts.concurrency or 3
  if not (client.positive(concurrency) and concurrency == math.floor(concurrency)) then
    error("csvup.batch: concurrency must be a whole number from 1", 2)
  end
  local results, pools, order = {}, {}, {}
  for i, job in ipairs(jobs) do
    local call, err = job.client.plans[job.method](job.client, job.args)
    local m, booking = registry.method[job.method], nil
    if call and call.args.source then -- checked (and hashed): opened again when its upload starts
      call.args.source:park()
    end
    if call and m.shape == "upload" then -- its journal entry and marker, as a single call has
      booking, err = once.before(job.client, call, m, job.args)
      call = booking and call
    end
    if not call then
      results[i] = { nil, err }
    elseif booking and booking.result then
      results[i] = { booking.result }
    else
      local key = job.client -- jobs of one client share its pool of connections
      if not pools[key] then
        pools[key] = { client = job.client, entries = {}, jobs = {} }
        order[#order + 1] = key
      end
      local pool = pools[key]
      pool.entries[#pool.entries + 1] = { endpoint = registry.endpoint[call.endpoint], args = call.args }
      pool.jobs[#pool.jobs + 1] = { index = i, call = call, job = job, booking = booking }
    end
  end
  local done, count, stopped = 0, #jobs, nil
  for _, key in ipairs(order) do
    local pool = pools[key]
    local raw = {}
    if not stopped then
      local conns, err = {}
      for c = 1, math.min(concurrency, #pool.entries) do
        conns[c], err = pool.client.connect() -- the client's own worked: the same options
        if not conns[c] then
          break
        end
      end
      if #conns == 0 then
        return nil, err
      end
      local progress = opts.progress and function(sent, total, finished)
        opts.progress(sent, total, done + finished, count)
      end
      local rate = pool.client.policy.rate
      raw, err = core.multi(conns, pool.entries, progress, { interval = rate and 1 / rate })
      for _, conn in ipairs(conns) do
        conn:close()
      end
      if not raw and not err.results then
        return nil, err
      elseif not raw then -- stopped by the progress callback or a signal: keep what landed
        raw, stopped = err.results, err
      end
    end
    for k, entry in ipairs(pool.jobs) do
      local c, r, call = entry.job.client, raw[k], entry.call
      local answer, failure
      if r then
        answer, failure = client.interpret(r[1], r[2], r[3], c.read_error)
      else -- never started
        failure = errors.new(stopped.kind, stopped.code, stopped.message, { request_sent = false })
      end
      if not answer and r and failure.code == "validation_failed" then
        failure = client.checked_report(call.args, failure)
      elseif not answer and r then
        local verdict = not stopped and client.classify(failure, registry.endpoint[call.endpoint].method)
        if verdict == "retry" or (verdict == "unknown" and c.policy.retry_unsafe) then
          answer, failure = c:call(call.endpoint, call.args) -- on its own, with the client's retries
        elseif verdict == "unknown" then
          failure = client.outcome_unknown(failure, call.endpoint)
        end
      end
      if call.args.source then
        call.args.source:close()
      end
      if entry.booking then
        results[entry.index] = { once.after(c, call, entry.booking, answer, failure) }
      elseif answer then
        results[entry.index] = { call.finish(answer) }
      else
        results[entry.index] = { nil, failure }
      end
    end
    done = done + #pool.jobs
  end
  return results
end

return batch
