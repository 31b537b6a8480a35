-- A progress bar on stderr: bytes, rate and time left, redrawn at most ten
-- times a second. Only on a terminal: progress.new returns nil otherwise.
local core = require "csvup.core"

local format, rep, floor = string.format, string.rep, math.floor

local progress = {}

local WIDTH = 24

local function megabytes(n)
  return format("%.1f MB", n / 1048576)
end

local function duration(s)
  s = floor(s + 0.5)
  return s >= 60 and format("%dm%02ds", floor(s / 60), s % 60) or format("%ds", s)
end

-- progress.new(label, out?) -> a function(sent, total) for the upload methods,
-- with .finish(); nil when out (io.stderr) is not a terminal.
function progress.new(label, out)
  out = out or io.stderr
  if not core.isatty(2) then
    return nil
  end
  local started, drawn = core.now(), 0
  local bar = {}
  local function draw(sent, total, force)
    local now = core.now()
    if not force and now - drawn < 0.1 then
      return
    end
    drawn = now
    local share = total > 0 and sent / total or 0
    local rate = sent / math.max(now - started, 1e-3)
    local left = rate > 0 and (total - sent) / rate or 0
    local filled = floor(share * WIDTH)
    out:write(format("\r%s [%s%s] %3d%% %s / %s, %s/s, %s left ", label, rep("#", filled), rep(".", WIDTH - filled),
      floor(share * 100), megabytes(sent), megabytes(total), megabytes(rate), duration(left)))
    out:flush()
  end
  bar.update = function(sent, total)
    bar.last_sent, bar.last_total = sent, total
    draw(sent, total)
  end
  bar.finish = function()
    if bar.last_total then
      draw(bar.last_sent, bar.last_total, true)
      out:write("\n")
    end
  end
  return bar
end

return progress
