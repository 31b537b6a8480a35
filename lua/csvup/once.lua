-- Exactly once: an upload is sent at most once, even when its answer is lost
-- or a rerun sends the same file again.
--  * A marker the service stores and lists back (in the comment, or in the
--    part's file name where the upload takes no comment) makes each upload
--    findable: after an unknown outcome the uploadings list is read, with
--    backoff for a bounded time, and the uploading found is the result.
--  * The journal (csvup.journal, off unless the client has one) records an
--    upload before it is sent and its uploading after: a rerun of a finished
--    upload is answered from it, one whose process died (or that this
--    process no longer sends) is looked up first.
local core = require "csvup.core"
local errors = require "csvup.errors"
local json = require "csvup.json"
local journal = require "csvup.journal"
local options = require "csvup.options"
local registry = require "csvup.registry"

local format, type, tostring, ipairs, min = string.format, type, tostring, ipairs, math.min

local once = {}

local RESOLVE_FIRST_PAUSE = 0.25 -- seconds between looks for a lost answer, doubling
local RUNNING_SECONDS = 120      -- how long a rerun waits for the same upload sent by a live process
local RUNNING_PAUSE = 0.25

-- "csvup" and ten hex digits: only Latin letters and digits, which any comment may hold.
local function marker_of(seed)
  return "csvup" .. core.sha256(seed):sub(1, 10)
end

-- The method's option named name.
local function option(m, name)
  for _, o in ipairs(m.options) do
    if o.name == name then
      return o
    end
  end
end

-- Puts the marker where the kind's uploadings list shows it; nil, err when it does not fit.
local function mark(call, kind, marker, m)
  if kind.mark == "comment" then
    local query, o = call.args.query, option(m, "comment")
    local joint = o.letters_digits and "" or " " -- after a space where a comment may hold one
    local comment = query.comment and query.comment .. joint .. marker or marker
    if options.chars(comment) > o.max then
      return errors.invalid("%s: the comment leaves no room for the marker that makes the upload findable: "
        .. "shorten it to %d characters", m.name, o.max - #marker - #joint)
    end
    query.comment = comment
  elseif kind.mark == "filename" then
    local base = call.args.filename or (call.args.file or "rows.csv"):match("[^/]*$")
    call.args.filename = base:gsub("%.[Cc][Ss][Vv]$", "") .. "_" .. marker .. ".csv"
  end
  return true
end

-- The uploading of the call's kind whose comment holds the marker, looked for
-- with backoff for up to seconds (once when nil); nil when it is not listed.
local function find(self, call, kind, marker, seconds)
  local deadline, pause = core.now() + (seconds or 0), RESOLVE_FIRST_PAUSE
  local filter = {} -- the upload's options its list shows it by (conversions: type)
  for _, name in ipairs(kind.listed_by or {}) do
    filter[name] = call.args.query[name]
  end
  while true do
    local list = self[kind.list](self, filter)
    for _, u in ipairs(type(list) == "table" and list or {}) do
      if type(u) == "table" and json.is_count(u.id) and type(u.comment) == "string" and u.comment:find(marker, 1, true) then
        self.kinds[u] = kind.name
        return u
      end
    end
    local left = deadline - core.now()
    if left <= 0 then
      return nil
    end
    if core.sleep(min(pause, left)) then
      return nil -- a signal: stop looking
    end
    pause = pause * 2
  end
end

-- The SHA-256 of what the call sends: the encoded rows, or the file's bytes
-- (hashed by the check that read them, else read again here).
local function hash_of(call)
  local args = call.args
  if args.data then
    return core.sha256(args.data), #args.data
  elseif call.digest and call.digest.sha256 then
    return call.digest.sha256, call.digest.size
  end
  return core.sha256_file(args.source or args.file)
end

local function record(j, entry, result)
  j:finish(entry.id, { uploading = json.encode(result), uploading_id = tostring(result.id or result.uploading_id),
    status = result.status and tostring(result.status) or nil })
end

-- The journal's entry for the call: "new" (send it), "started" (its process
-- died: look it up first) or "finished"; waits while another live process
-- sends it, and fails at once when this one does.
local function begin(self, j, call, force)
  local hash, size = hash_of(call)
  if not hash then
    return nil, size
  end
  local key = journal.key(self.service, call.args.counter, call.endpoint, call.args.query or call.args.fields,
    self.conn:base_url(), self.account)
  key.hash, key.size, key.file, key.force = hash, size, call.args.file, force
  local deadline = core.now() + RUNNING_SECONDS
  while true do
    local entry, err = j:begin(key)
    if not entry or entry.state ~= "running" then
      return entry, err
    elseif entry.this_process then
      return errors.fail("input", "in_progress", "this process is sending the same upload now (the same job twice "
        .. "in a batch?): it is not sent twice")
    elseif core.now() >= deadline then
      return errors.fail("input", "in_progress", format("process %s is sending the same upload now: run again "
        .. "when it is done", tostring(entry.pid)))
    end
    local signal = core.sleep(RUNNING_PAUSE)
    if signal then
      return errors.interrupted(signal)
    end
    key.force = nil
  end
end

-- once.before(self, call, m, opts) -> ticket | nil, err, before an upload
-- is sent: the journal consulted (and the upload recorded), the marker put
-- in. ticket.result is set when the upload was found instead of to be sent.
function once.before(self, call, m, opts)
  local kind = registry.kind[m.kind]
  local j = opts.journal ~= false and self.journal or nil
  local ticket = { kind = kind, name = m.name, journal = j }
  local entry, err
  if j then
    entry, err = begin(self, j, call, opts.force)
    if not entry then
      return nil, err
    elseif entry.state == "finished" then
      local earlier = json.decode(entry.uploading or "")
      if type(earlier) == "table" and call.revive then
        earlier = call.revive(earlier)
      end
      if type(earlier) ~= "table" then
        return errors.fail("internal", "journal_failed", "the journal's record of this upload is unreadable: "
          .. "send again with force")
      end
      if self.kinds then
        self.kinds[earlier] = kind.name
      end
      ticket.result = earlier
      return ticket
    end
    ticket.entry = entry
  end
  ticket.marker = kind.mark and marker_of(entry and (entry.hash .. " " .. entry.id .. " " .. entry.created)
    or format("%s %s %s", core.now(), math.random(), tostring({})))
  if ticket.marker then
    local ok
    ok, err = mark(call, kind, ticket.marker, m)
    if not ok then
      if entry then
        j:fail(entry.id, err.code)
      end
      return nil, err
    end
  end
  if entry and entry.state == "started" then
    if not ticket.marker then
      j:release(entry.id)
      return errors.fail("network", "outcome_unknown", format("%s: an earlier run started this upload and did not "
        .. "finish, and the service lists no uploadings to look in: check it by hand, then send again with force",
        m.name))
    end
    ticket.result = find(self, call, kind, ticket.marker)
    if ticket.result then
      record(j, entry, ticket.result)
    end
  end
  return ticket
end

-- once.after(self, call, ticket, answer, err) -> result | nil, err: the
-- upload's answer, or its lost answer looked for by the marker; the journal
-- told how it ended.
function once.after(self, call, ticket, answer, err)
  local result
  if answer then
    result, err = call.finish(answer)
  elseif err.code == "outcome_unknown" and ticket.marker then
    result = find(self, call, ticket.kind, ticket.marker, self.resolve_timeout)
    if result then
      err = nil
    else
      err.marker, err.message = ticket.marker, err.message .. format(" (its marker: %s)", ticket.marker)
    end
  end
  local entry = ticket.entry
  if entry then
    if result then
      record(ticket.journal, entry, result)
    elseif err.request_sent == false or (err.kind ~= "network" and err.code ~= "bad_response"
        and err.code ~= "interrupted") then
      ticket.journal:fail(entry.id, err.code) -- refused, or surely not sent: a rerun sends it
    else -- its outcome is unknown: a rerun, from this process too, looks for it by its marker first
      ticket.journal:release(entry.id)
    end
  end
  return result, err
end

-- once.send(self, call, m, opts) -> result | nil, err, and a note ("journal")
-- when the result was found instead of sent: call is a method's plan.
function once.send(self, call, m, opts)
  local ticket, err = once.before(self, call, m, opts)
  if not ticket then
    return nil, err
  elseif ticket.result then
    return ticket.result, nil, "journal"
  end
  local answer
  answer, err = self:call(call.endpoint, call.args)
  return once.after(self, call, ticket, answer, err)
end

return once
