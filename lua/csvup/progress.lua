-- A progress bar on stderr: the file's name, bytes, rate and time left,
-- redrawn at most ten times a second within the terminal's width; "waiting
-- for the answer" once the body is sent. Only on a terminal: progress.new
-- returns nil otherwise.
local core = require "csvup.core"

local format, rep, floor, max, min = string.format, string.rep, math.floor, math.max, math.min

local progress = {}

local STDERR = 2
local DEFAULT_COLUMNS = 80

local function megabytes(n)
  return format("%.1f", n / 1048576)
end

local function duration(s)
  s = floor(s + 0.5)
  return s >= 60 and format("%dm%02ds", floor(s / 60), s % 60) or format("%ds", s)
end

-- At most n characters of s (bytes: names are shown as they are), its end kept.
local function fit(s, n)
  return #s <= n and s or "…" .. s:sub(#s - n + 2)
end

-- progress.new(label, out?) -> { update = function(sent, total), finish(), status(line) };
-- nil when stderr is not a terminal.
function progress.new(label, out)
  out = out or io.stderr
  if not core.isatty(STDERR) then
    return nil
  end
  label = tostring(label):gsub("^.*/", ""):gsub("[%c]", "?")
  local started, drawn, waiting = core.now(), 0, false
  local bar = {}
  local function line(text)
    local columns = (core.columns(STDERR) or DEFAULT_COLUMNS) - 1 -- the last column would wrap
    out:write("\r", text:sub(1, columns), rep(" ", max(0, columns - #text)), "\r")
    out:flush()
  end
  local function draw(sent, total, force)
    local now = core.now()
    if not force and now - drawn < 0.1 then
      return
    end
    drawn = now
    if total > 0 and sent >= total then
      waiting = true
      return line(format("%s: %s MB sent, waiting for the answer", label, megabytes(total)))
    end
    local share = total > 0 and sent / total or 0
    local rate = sent / max(now - started, 1e-3)
    local tail = format(" %3d%% %s/%s MB %s MB/s %s left", floor(share * 100), megabytes(sent), megabytes(total),
      megabytes(rate), duration(rate > 0 and (total - sent) / rate or 0))
    local columns = (core.columns(STDERR) or DEFAULT_COLUMNS) - 1
    local name = fit(label, max(8, min(#label, columns - #tail - 12)))
    local width = max(0, columns - #name - #tail - 3)
    local filled = floor(share * width)
    line(format("%s [%s%s]%s", name, rep("#", filled), rep(".", width - filled), tail))
  end
  function bar.update(sent, total)
    bar.last_sent, bar.last_total = sent, total
    draw(sent, total)
  end
  -- One line that stays: a status while waiting for processing.
  function bar.status(text)
    line(text)
    out:write("\n")
  end
  function bar.finish()
    if bar.last_total then
      if not waiting then
        draw(bar.last_sent, bar.last_total, true)
      end
      out:write("\n")
    end
  end
  return bar
end

return progress
