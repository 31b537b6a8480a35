-- Temporary folders and files for specs.
local files = {}

-- A new, empty folder; files.remove takes it away with what it holds.
function files.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  return dir
end

function files.remove(dir)
  os.execute("rm -rf " .. dir)
end

function files.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

function files.read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- A file's text, "" while it does not exist (a log a process has yet to write).
function files.peek(path)
  local f = io.open(path, "rb")
  local text = f and f:read("a") or ""
  if f then
    f:close()
  end
  return text
end

return files
