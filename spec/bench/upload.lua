-- Upload throughput and memory: a 1 GB CSV to a local nginx sink (a location
-- that reads the whole body and discards it), by csvup and by `curl -F`, and
-- csvup's peak RSS for 100 MB and 1 GB. The four uploads take turns in each
-- round (common.time_together).
local common = require "bench.common"
local openresty = require "support.openresty"

local UPLOAD = [[
  local m = require("csvup").metrika.new { token = "t", counter = 1, base_url = %q }
  assert(m:upload_offline_conversions { file = %q, validate = %s })
  print(io.open("/proc/self/status"):read("a"):match("VmHWM:%%s*(%%d+)"))]]

-- Rounds of the four uploads: on a shared virtual machine some uploads of a
-- series take twice as long, whoever sends; the median of 9 stays clear of them.
local ROUNDS = 9

local function csvup_upload(url, path, validate)
  return tonumber(common.run(("%s -e '%s'"):format(common.LUA, UPLOAD:format(url, path, validate))))
end

return function()
  local sink = openresty.start("http://127.0.0.1:1", "t")
  local url = sink.url .. "/sink"
  local big = common.conversions_file(1024)
  local size_mb = io.open(big):seek("end") / 1048576
  local rows = {}
  local curl, plain, header, full = table.unpack(common.time_together({
    function()
      common.run(("curl -sS -o /dev/null -F file=@%s %s/management/v1/counter/1/offline_conversions/upload")
        :format(big, url))
    end,
    function() csvup_upload(url, big, "false") end,
    function() csvup_upload(url, big, '"header"') end,
    function() csvup_upload(url, big, '"full"') end,
  }, ROUNDS))
  rows[#rows + 1] = { "upload 1 GB: curl -F", curl, ("%.0f MB/s"):format(size_mb / curl[1]) }
  rows[#rows + 1] = { "upload 1 GB: csvup (validate = false)", plain,
    ("%.0f MB/s, %.2f× curl (goal ≤ 1.05×)"):format(size_mb / plain[1], plain[1] / curl[1]) }
  rows[#rows + 1] = { "upload 1 GB: csvup, the header and a UTF-8 scan (validate = \"header\")", header,
    ("%.0f MB/s, %.2f× curl"):format(size_mb / header[1], header[1] / curl[1]) }
  rows[#rows + 1] = { "upload 1 GB: csvup, every row checked as it is sent (the default)", full,
    ("%.0f MB/s, %.2f× curl, fastest runs %.2f×, round by round %.2f× (goal ≤ 1.0×)"):format(size_mb / full[1],
      full[1] / curl[1], full[2] / curl[2], common.paired_ratio(full, curl)) }
  local peak_100 = csvup_upload(url, common.conversions_file(100), "false") / 1024
  local peak_1g = csvup_upload(url, big, "false") / 1024
  rows[#rows + 1] = { "peak RSS uploading 100 MB / 1 GB", nil, ("%.1f MB / %.1f MB (goal < 16 MB at 1 GB, within 2 MB)")
    :format(peak_100, peak_1g) }
  rows[#rows + 1] = { "peak RSS uploading 1 GB, every row checked", nil, ("%.1f MB (goal ≤ 16 MB)")
    :format(csvup_upload(url, big, '"full"') / 1024) }
  sink.stop()
  return rows
end
