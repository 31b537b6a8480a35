-- Another process (sqlite3) that holds a journal's lock until the spec lets
-- it go, so that a spec never bets on how long a sleep lasts.
local socket = require "socket"
local files = require "support.files"

local journal_lock = {}

-- Runs sql (which takes the lock) on the SQLite file at path in sqlite3 and
-- waits (10 s at most) until it has; returns the function that lets it go.
function journal_lock.hold(path, sql)
  local said = os.tmpname()
  local holder = assert(io.popen(("timeout 120 sqlite3 %s > %s 2>&1"):format(path, said), "w"))
  holder:write(sql, "\n.print locked\n")
  holder:flush()
  local deadline = socket.gettime() + 10
  while not files.peek(said):find("locked", 1, true) do
    assert(socket.gettime() < deadline, "sqlite3 did not take the lock: " .. files.peek(said))
    socket.sleep(0.02)
  end
  return function()
    holder:close()
    os.remove(said)
  end
end

return journal_lock
