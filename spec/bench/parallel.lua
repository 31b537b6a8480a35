-- Parallel uploads: 20 offline-conversion uploads to the sandbox, which holds
-- every answer 200 ms, one after another and in a batch of 3.
local csvup = require "csvup"
local common = require "bench.common"
local support = require "support.sandbox"

return function()
  local sandbox = support.start { ["answer-delay"] = 0.2 }
  local m = assert(csvup.metrika.new { token = support.TOKEN, counter = 1, base_url = sandbox.url })
  local jobs = {}
  for i = 1, 20 do
    jobs[i] = { client = m, method = "upload_offline_conversions", args = { file = "spec/fixtures/offline_conversions.csv" } }
  end
  local serial = { common.time(function()
    for _, job in ipairs(jobs) do
      assert(m:upload_offline_conversions(job.args))
    end
  end, 3) }
  local parallel = { common.time(function()
    for _, r in ipairs(assert(csvup.batch(jobs, { concurrency = 3 }))) do
      assert(r[1], tostring(r[2]))
    end
  end, 3) }
  m:close()
  sandbox.stop()
  return {
    { "20 uploads, 200 ms answers: one at a time", serial, "" },
    { "20 uploads, 200 ms answers: csvup.batch of 3", parallel, ("%.2f of the serial time"):format(parallel[1] / serial[1]) },
  }
end
