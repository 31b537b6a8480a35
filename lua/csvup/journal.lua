-- The upload journal: which uploads were sent, keyed by service, base URL,
-- account, counter, endpoint, query and the SHA-256 of the bytes, so that a
-- rerun of the same upload is answered from it instead of being sent again
-- (csvup.core does the SQLite and the hashing).
local core = require "csvup.core"
local errors = require "csvup.errors"
local json = require "csvup.json"

local byte, format, gsub = string.byte, string.format, string.gsub
local concat, sort = table.concat, table.sort

local journal = {}

-- journal.path() -> $XDG_STATE_HOME/csvup/journal.sqlite3, else
-- ~/.local/state/csvup/journal.sqlite3 | nil, err
function journal.path()
  local state = os.getenv("XDG_STATE_HOME")
  if state and state:sub(1, 1) == "/" then -- a relative one is to be ignored (XDG base directories)
    return state .. "/csvup/journal.sqlite3"
  end
  local home = os.getenv("HOME")
  if not home or home == "" then
    return nil, core.error { code = "journal_unusable", kind = "input",
      message = "no journal path: neither XDG_STATE_HOME nor HOME is set" }
  end
  return home .. "/.local/state/csvup/journal.sqlite3"
end

-- f(path), the default path when path is nil.
local function at(f, path)
  if path == nil then
    local err
    path, err = journal.path()
    if not path then
      return nil, err
    end
  end
  return f(path)
end

-- journal.open(path?) -> journal | nil, err; the default path when none is given.
-- The journal's methods: begin, finish, fail, release, list, close (see src/journal.c).
function journal.open(path)
  return at(core.journal_open, path)
end

-- journal.check(path?) -> { finding, ... } (empty when the file is sound) |
-- nil, err: SQLite's integrity check of the journal, read only.
function journal.check(path)
  return at(core.journal_check, path)
end

-- journal.escape(s) -> s percent-encoded as libcurl encodes a query value:
-- all but letters, digits and - . _ ~ (so two different queries never read the same).
function journal.escape(s)
  return (gsub(s, "[^%w%-%._~]", function(c)
    return format("%%%02X", byte(c))
  end))
end

local function text(value, name)
  local t = type(value)
  if t == "string" then
    return journal.escape(value)
  elseif t == "number" then
    -- 5 and 5.0 ask the same
    local whole = math.floor(value) == value and value > -2 ^ 63 and value < 2 ^ 63
    return whole and format("%d", value) or format("%.17g", value)
  elseif t == "boolean" then
    return tostring(value)
  end
  error("journal: query value '" .. name .. "' must be a string, number, boolean or a list of them", 3)
end

-- journal.query{ name = value | { value, ... } } -> "a=1&b=x%20y&b=z": names
-- sorted, repeated values in their order. The same query gives the same text.
function journal.query(query)
  local names, parts = {}, {}
  for name in pairs(query or {}) do
    if type(name) ~= "string" then
      error("journal: query names must be strings", 2)
    end
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    local value = query[name]
    if type(value) == "table" then
      for _, v in ipairs(value) do
        parts[#parts + 1] = journal.escape(name) .. "=" .. text(v, name)
      end
    else
      parts[#parts + 1] = journal.escape(name) .. "=" .. text(value, name)
    end
  end
  return concat(parts, "&")
end

-- journal.key(service, counter, endpoint, query, base_url, account?) -> the
-- key fields for j:begin, which also takes hash, file, size and force.
-- base_url is where the client sends; account, whom for, when the rest
-- leaves it open.
function journal.key(service, counter, endpoint, query, base_url, account)
  return { service = service, counter = counter ~= nil and text(counter, "counter") or nil, endpoint = endpoint,
    query = journal.query(query), base_url = base_url, account = account }
end

-- journal.account(token) -> "token " and 16 hex digits: the account of a
-- client that only its token names (Carrot quest's $self_app). The service
-- offers no way to learn the project a token belongs to without sending it,
-- and two projects' imports must not answer for each other, so the journal
-- keeps a one-way digest instead: it tells tokens apart, and the token, long
-- and random, cannot be recovered from it.
function journal.account(token)
  return "token " .. core.sha256("csvup journal account\n" .. token):sub(1, 16)
end


-- journal.describe(entry) -> one line for a listing: time, state, service,
-- where it went (base URL, and the account if any), counter, endpoint, file,
-- the start of the hash, uploading id and status.
function journal.describe(entry)
  local parts = {
    os.date("%Y-%m-%d %H:%M:%S", entry.updated or entry.created),
    entry.state,
    entry.service,
    (entry.base_url or "-") .. (entry.account and " as " .. entry.account or ""),
    entry.counter or "-",
    entry.endpoint,
    entry.file or "-",
    entry.hash and entry.hash:sub(1, 12) or "-",
  }
  -- an import (Carrot quest) has no uploading id (csvup 0.1.0 wrote the text "nil"): what its answer says instead
  local result = json.decode(entry.uploading or "")
  if entry.uploading_id and entry.uploading_id ~= "nil" then
    parts[#parts + 1] = "uploading " .. entry.uploading_id
  elseif type(result) == "table" and result.updates_planned ~= nil then
    local refused = 0
    for _ in pairs(type(result.row_errors) == "table" and result.row_errors or {}) do
      refused = refused + 1
    end
    parts[#parts + 1] = format("updates_planned=%s rows_refused=%d", tostring(result.updates_planned), refused)
  end
  if entry.status then
    parts[#parts + 1] = entry.status
  end
  if entry.error then
    parts[#parts + 1] = entry.error
  end
  for i, part in ipairs(parts) do
    parts[i] = errors.printable(part)
  end
  return concat(parts, "  ")
end

return journal
