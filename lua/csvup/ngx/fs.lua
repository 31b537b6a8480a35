-- The few POSIX file calls the collectors' spool needs and Lua's io lacks
-- (fsync, flock, a directory listing, appends by one write), through the
-- LuaJIT ffi: the spool runs only in nginx workers, on OpenResty's LuaJIT.
-- Linux's flag values. Every function returns nil, err (kind internal) on failure.
local ffi = require "ffi"
local errors = require "csvup.errors"

local C = ffi.C
local tostring, tonumber, pcall, ipairs = tostring, tonumber, pcall, ipairs

local fs = {}

for _, decl in ipairs {
  "int open(const char *path, int flags, int mode);",
  "int close(int fd);",
  "long write(int fd, const void *buf, size_t n);",
  "long pread(int fd, void *buf, size_t n, long offset);",
  "long pwrite(int fd, const void *buf, size_t n, long offset);",
  "int ftruncate(int fd, long length);",
  "long lseek(int fd, long offset, int whence);",
  "int fsync(int fd);",
  "int flock(int fd, int operation);",
  "int rename(const char *from, const char *to);",
  "int unlink(const char *path);",
  "char *strerror(int errnum);",
  "typedef struct csvup_dir csvup_dir;",
  "csvup_dir *opendir(const char *path);",
  "int closedir(csvup_dir *dir);",
  -- glibc's struct dirent on Linux (64-bit)
  "struct csvup_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type; char d_name[256]; };",
  "struct csvup_dirent *readdir(csvup_dir *dir);",
} do
  pcall(ffi.cdef, decl) -- declared once per VM; another module may have declared the same function
end

local O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_APPEND, O_CLOEXEC = 0, 1, 2, 0x40, 0x400, 0x80000
local LOCK_EX, LOCK_NB, LOCK_UN = 2, 4, 8
local SEEK_END = 2
local EINTR, EAGAIN, ENOENT = 4, 11, 2

local function failed(what, path)
  local errno = ffi.errno()
  return nil, errors.new("internal", "spool_io", ("spool: %s %s: %s"):format(what, tostring(path),
    ffi.string(C.strerror(errno))), { errno = errno })
end

-- fs.append(path) -> fd: opened for appends, created (mode 0640) when missing.
function fs.append(path)
  local fd = C.open(path, O_WRONLY + O_CREAT + O_APPEND + O_CLOEXEC, tonumber("640", 8))
  if fd < 0 then
    return failed("cannot open", path)
  end
  return fd
end

-- fs.open(path, create) -> fd for reading and writing; nil, err ("missing" when absent and not created).
function fs.open(path, create)
  local fd = C.open(path, O_RDWR + O_CLOEXEC + (create and O_CREAT or 0), tonumber("640", 8))
  if fd < 0 then
    if ffi.errno() == ENOENT then
      return nil, "missing"
    end
    return failed("cannot open", path)
  end
  return fd
end

function fs.close(fd)
  C.close(fd)
end

-- Writes all of text at the file's end; a short write is retried, an error returned.
function fs.write(fd, text, path)
  local done = 0
  while done < #text do
    local n = tonumber(C.write(fd, ffi.cast("const char *", text) + done, #text - done))
    if n < 0 then
      if ffi.errno() ~= EINTR then
        return failed("cannot write", path)
      end
    else
      done = done + n
    end
  end
  return true
end

-- The whole content of an open file (a small one: the budget file).
function fs.read(fd)
  local size = tonumber(C.lseek(fd, 0, SEEK_END))
  if size <= 0 then
    return ""
  end
  local buf = ffi.new("char[?]", size)
  local n = tonumber(C.pread(fd, buf, size, 0))
  return n > 0 and ffi.string(buf, n) or ""
end

-- Replaces the content of an open file by text.
function fs.replace(fd, text, path)
  if C.ftruncate(fd, 0) ~= 0 or tonumber(C.pwrite(fd, text, #text, 0)) ~= #text then
    return failed("cannot write", path)
  end
  return true
end

function fs.sync(fd, path)
  if C.fsync(fd) ~= 0 then
    return failed("cannot fsync", path)
  end
  return true
end

-- Syncs a directory, so that a rename or a new file in it survives a crash.
function fs.sync_dir(dir)
  local fd = C.open(dir, O_RDONLY + O_CLOEXEC, 0)
  if fd < 0 then
    return failed("cannot open", dir)
  end
  local ok, err = fs.sync(fd, dir)
  C.close(fd)
  return ok, err
end

-- Takes the exclusive lock of an open file without waiting: true, or false when another holds it.
function fs.try_lock(fd, path)
  if C.flock(fd, LOCK_EX + LOCK_NB) == 0 then
    return true
  elseif ffi.errno() == EAGAIN then
    return false
  end
  return failed("cannot lock", path)
end

function fs.unlock(fd)
  C.flock(fd, LOCK_UN)
end

function fs.rename(from, to)
  if C.rename(from, to) ~= 0 then
    return failed("cannot rename to " .. to .. ":", from)
  end
  return true
end

-- Removes a file; one already gone is no error.
function fs.unlink(path)
  if C.unlink(path) ~= 0 and ffi.errno() ~= ENOENT then
    return failed("cannot remove", path)
  end
  return true
end

-- The size of a file, or nil when it is gone.
function fs.size(path)
  local fd = C.open(path, O_RDONLY + O_CLOEXEC, 0)
  if fd < 0 then
    return nil
  end
  local size = tonumber(C.lseek(fd, 0, SEEK_END))
  C.close(fd)
  return size
end

-- The names in a directory (but . and ..).
function fs.list(dir)
  local d = C.opendir(dir)
  if d == nil then
    return failed("cannot list", dir)
  end
  local names = {}
  while true do
    local entry = C.readdir(d)
    if entry == nil then
      break
    end
    local name = ffi.string(entry.d_name)
    if name ~= "." and name ~= ".." then
      names[#names + 1] = name
    end
  end
  C.closedir(d)
  return names
end

return fs
