-- Exactly once: an upload is sent at most once, even when its answer is lost
-- or a rerun sends the same file again.
--  * A marker the service stores and lists back (in the comment, or in the
--    part's file name where the upload takes no comment) makes each upload
--    findable: after an unknown outcome the uploadings list is read, every
--    page that could hold it, with backoff for a bounded time, and the
--    uploading found is the result.
--  * A lookup has three answers: found; not listed (the list answered, was
--    read through, and the marker is not in it, still after resolve_timeout,
--    the list's lag allowance); unknown (the list failed or could not be
--    read through). Only "not listed" lets the upload go out again; unknown
--    stays outcome_unknown until a list answers.
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

local format, type, tostring, ipairs, min, floor, tonumber, setmetatable, select, remove =
  string.format, type, tostring, ipairs, math.min, math.floor, tonumber, setmetatable, select, table.remove

local once = {}

local RESOLVE_FIRST_PAUSE = 0.25 -- seconds between looks for a lost answer, doubling
local RUNNING_SECONDS = 120      -- how long a rerun waits for the same upload sent by a live process
local RUNNING_PAUSE = 0.25
-- Paging: the lists' documented default page, and how many pages a lookup reads at most.
local PAGE, PAGES_MAX = 10000, 20
-- How far the service's clock may be behind this one: an uploading created
-- more than this before the upload started is older than it.
local CLOCK_SKEW = 600

-- What this side stops an upload with (a signal, a callback's error): once
-- the body went out whole, that error is the answer, and a rerun looks for
-- the upload before sending it.
local STOPPED_HERE = { interrupted = true, callback_error = true }

-- "csvup" and ten hex digits: only Latin letters and digits, which any comment may hold.
local function marker_of(seed)
  return "csvup" .. core.sha256(seed):sub(1, 10)
end

-- A marker of its own for an upload no journal entry names.
local function fresh_marker()
  return marker_of(format("%s %s %s", core.now(), math.random(), tostring({})))
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
    local comment = query.comment and query.comment .. " " .. marker or marker
    if options.chars(comment) > o.max then
      return errors.invalid("%s: the comment leaves no room for the marker that makes the upload findable: "
        .. "shorten it to %d characters", m.name, o.max - #marker - 1)
    end
    query.comment = comment
  elseif kind.mark == "filename" then
    local base = call.args.filename or (call.args.file or "rows.csv"):match("[^/]*$")
    call.args.filename = base:gsub("%.[Cc][Ss][Vv]$", "") .. "_" .. marker .. ".csv"
  end
  return true
end

-- Seconds since 1970 of a list's create_time ("2025-01-01T00:00:00Z", or
-- with an offset like "+03:00"); nil when it reads otherwise.
local function seconds_of(text)
  local y, mo, d, h, mi, sec, zone =
    tostring(text):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)[%.%d]*(.*)$")
  if not y then
    return nil
  end
  local shift = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      return nil
    end
    shift = (sign == "+" and 1 or -1) * (tonumber(zh) * 3600 + tonumber(zm) * 60)
  end
  y, mo = tonumber(y), tonumber(mo)
  y = mo <= 2 and y - 1 or y -- days from civil: the year counted from March (no // under LuaJIT)
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (mo + (mo > 2 and -3 or 9)) + 2) / 5) + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec) - shift
end

-- One reading of the list: "found", uploading | "absent" | "unknown", err.
-- The order of the lists is not documented: pages are read until the marker
-- is found, the list ends (a page shorter than asked), or a page that runs
-- from newer to older holds only uploadings older than the upload (since,
-- seconds since 1970): further pages are older still. At most PAGES_MAX pages.
local function read_list(self, kind, marker, since)
  local offset = 0
  for _ = 1, PAGES_MAX do
    -- every type's uploadings: the conversions list takes no type, and the marker is the upload's alone
    local answer, err = self:call(kind.list, self:complete { query = { limit = PAGE, offset = offset } })
    local list = answer and answer.uploadings
    if type(list) ~= "table" then
      return "unknown", err or errors.new("api", "bad_response", "the uploadings list has no uploadings array")
    end
    local older = #list > 0
    for _, u in ipairs(list) do
      if type(u) == "table" and json.is_count(u.id) and type(u.comment) == "string"
          and u.comment:find(marker, 1, true) then
        self.kinds[u] = kind.name
        return "found", u
      end
      local t = type(u) == "table" and seconds_of(u.create_time)
      older = older and t and t < since - CLOCK_SKEW
    end
    if #list < PAGE then
      return "absent"
    end
    local first, last = type(list[1]) == "table" and seconds_of(list[1].create_time),
      type(list[#list]) == "table" and seconds_of(list[#list].create_time)
    if older and first and last and first > last then
      return "absent"
    end
    offset = offset + #list
  end
  return "unknown", errors.new("network", "lookup_bounded", format("the uploadings list was read for %d pages "
    .. "without reaching uploadings older than this one", PAGES_MAX))
end

-- once.lookup(self, kind, marker, since) -> "found", uploading |
-- "absent" | "unknown", err: the uploading of the call's kind whose comment
-- holds the marker. The list is read with backoff until it is found, or for
-- resolve_timeout seconds, the list's lag allowance: "absent" only when the
-- last reading answered without it, "unknown" when it failed.
function once.lookup(self, kind, marker, since)
  local deadline, pause = core.now() + self.resolve_timeout, RESOLVE_FIRST_PAUSE
  while true do
    local answer, found = read_list(self, kind, marker, since)
    local left = deadline - core.now()
    if answer == "found" or left <= 0 then
      return answer, found
    end
    local signal = core.sleep(min(pause, left))
    if signal then
      return "unknown", select(2, errors.interrupted(signal))
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

-- The journal entries of the uploadings this client sent or found, for a
-- further step (once.step): uploading -> { journal, id, steps }.
local function entries(self)
  self.entries = self.entries or setmetatable({}, { __mode = "k" })
  return self.entries
end

-- Records the uploading in the entry, with what a further step needs (the
-- content_id_type a user-parameter upload is confirmed with); nil, or the
-- journal's error when it could not be recorded.
local function record(self, j, entry, result)
  local id = result.id or result.uploading_id -- none for an import (Carrot quest)
  id = id ~= nil and tostring(id) or nil
  local steps = { content_id_type = id and self.content_id_types and self.content_id_types[id] or nil }
  entries(self)[result] = { journal = j, id = entry.id, steps = steps }
  local ok, err = j:finish(entry.id, { uploading = json.encode(result), uploading_id = id,
    status = result.status and tostring(result.status) or nil, steps = json.encode(steps) })
  return not ok and err or nil
end

-- Whether err says the upload surely was not kept: nothing went out whole
-- (this side stopped it before its end), or the service refused it in its
-- own error shape with a 4xx (or in its answer). A 5xx, an answer in another
-- shape (a gateway's HTML page), a reset, a timeout, or this side stopping
-- once the body went out whole (a signal, a callback's error, an answer too
-- large) leave it unknown.
local function refused(err)
  if err.request_sent == false then
    return true
  elseif err.kind == "network" or err.code == "interrupted" or err.code == "bad_response" then
    return false
  elseif err.kind == "api" and err.status then
    return err.status < 500 and not err.code:find("^http_%d+$")
  end
  return not err.request_sent
end

-- The error of an upload whose outcome stays unknown after its lookup
-- (found: "absent" or "unknown", and the lookup's error).
local function still_unknown(err, name, marker, found, cause)
  local why = found == "absent" and "it is not in the uploadings list: a rerun looks once more, then sends it"
    or format("the uploadings list could not be read (%s): a rerun looks for it before sending anything",
      cause and cause.message or "no answer")
  local message = format("%s: whether the service kept the upload is unknown (%s), and %s (its marker: %s)",
    name, err.message or err.code, why, marker)
  return errors.new("network", "outcome_unknown", message, { marker = marker, lookup = found,
    cause = err.cause or err.code, status = err.status, sent = err.sent, attempts = err.attempts })
end

-- The journal's key of the call, the hash and size aside.
local function key_of(self, call)
  local args = call.args
  local key = journal.key(self.service, args.counter, call.endpoint, args.query or args.fields,
    self.conn:base_url(), self.account)
  key.file = args.file
  return key
end

-- The journal's entry for the call: "new" (send it), "started" (its process
-- died: look it up first) or "finished"; waits while another live process
-- sends it, and fails at once when this one does.
local function begin(self, j, call, force)
  local hash, size = hash_of(call)
  if not hash then
    return nil, size
  end
  local key = key_of(self, call)
  key.hash, key.size, key.force = hash, size, force
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

-- The journal key of a call its gate can record as it is sent (see
-- stage_journal.c: hashed in a thread as the body goes out, recorded before
-- its last bytes, stopped there when the journal holds it): a single call's
-- file no pass hashed, sent as it is, of a size no live entry of the key
-- has, so that the journal holds it only if a process records it meanwhile.
-- nil for any other, which is hashed before anything is sent; nil, err when
-- the journal cannot tell.
local function gate_key(self, j, call, kind, force)
  local source = call.args.source
  local size = source and source:size() or 0
  if force or not kind.mark or not (call.digest and call.digest.gate) or call.digest.sha256 or size == 0 then
    return nil
  end
  local key = key_of(self, call)
  key.size = size
  local holds, err = j:holds(key)
  if holds ~= false then
    return nil, err
  end
  return key
end

-- Sends the call through the journal's gate: its marker chosen now, and
-- recorded with the entry the gate makes.
local function through_gate(call, kind, m, booking, key)
  local args = call.args
  booking.marker = fresh_marker()
  booking.unmarked = { comment = args.query and args.query.comment, filename = args.filename }
  local ok, err = mark(call, kind, booking.marker, m)
  if not ok then
    return nil, err
  end
  booking.gate = { "journal", journal = booking.journal, key = key, marker = booking.marker }
  args.stages = args.stages or {}
  args.stages[#args.stages + 1] = booking.gate
  return booking
end

-- The call as it was before through_gate.
local function ungate(call, booking)
  local args, stages = call.args, call.args.stages
  for i = #stages, 1, -1 do
    if stages[i] == booking.gate then
      remove(stages, i)
    end
  end
  if args.query then
    args.query.comment = booking.unmarked.comment
  end
  args.filename = booking.unmarked.filename
end

-- once.before(self, call, m, opts) -> booking | nil, err, before an upload
-- is sent: the journal consulted (and the upload recorded), the marker put
-- in. booking.result is set when the upload was found instead of to be sent.
function once.before(self, call, m, opts)
  local kind = registry.kind[m.kind]
  local j = opts.journal ~= false and self.journal or nil
  local booking = { kind = kind, name = m.name, journal = j, since = os.time() }
  local entry, err
  if j then
    local key
    key, err = gate_key(self, j, call, kind, opts.force)
    if key then
      return through_gate(call, kind, m, booking, key)
    elseif err then
      return nil, err
    end
    entry, err = begin(self, j, call, opts.force)
    if not entry then
      return nil, err
    elseif entry.state == "finished" then
      local earlier, steps = json.decode(entry.uploading or ""), json.decode(entry.steps or "")
      if type(earlier) == "table" and call.revive then
        earlier = call.revive(earlier)
      end
      if type(earlier) ~= "table" then
        return errors.fail("internal", "journal_failed", "the journal's record of this upload is unreadable: "
          .. "send again with force")
      end
      steps = type(steps) == "table" and steps or {}
      if self.kinds then
        self.kinds[earlier] = kind.name
      end
      if self.content_id_types and steps.content_id_type then
        self.content_id_types[tostring(earlier.id)] = steps.content_id_type
      end
      entries(self)[earlier] = { journal = j, id = entry.id, steps = steps }
      booking.result = earlier
      return booking
    end
    booking.entry, booking.since = entry, entry.created
  end
  booking.marker = kind.mark and (entry and (entry.marker
    or marker_of(entry.hash .. " " .. entry.id .. " " .. entry.created)) or fresh_marker())
  if booking.marker then
    local ok
    ok, err = mark(call, kind, booking.marker, m)
    if not ok then
      if entry then
        j:fail(entry.id, err.code)
      end
      return nil, err
    end
  end
  if entry and entry.state == "started" then
    if not booking.marker then
      j:release(entry.id)
      return errors.fail("network", "outcome_unknown", format("%s: an earlier run started this upload and did not "
        .. "finish, and the service lists no uploadings to look in: check it by hand, then send again with force",
        m.name))
    end
    local found, u = once.lookup(self, kind, booking.marker, booking.since)
    if found == "found" then
      booking.result, booking.unrecorded = u, record(self, j, entry, u)
    elseif found == "unknown" then
      j:release(entry.id)
      if u.code == "interrupted" then
        return nil, u
      end
      return nil, still_unknown({ message = "an earlier run sent it and did not learn the answer" }, m.name,
        booking.marker, found, u)
    end -- not listed past the lag allowance: it is sent now
  end
  return booking
end

-- once.after(self, call, booking, answer, err) -> result | nil, err: the
-- upload's answer, or, when its outcome is unknown, the upload looked for
-- by the marker; the journal told how it ended. A result the journal could
-- not record comes with the note "unrecorded" and the journal's error.
function once.after(self, call, booking, answer, err)
  local result, unrecorded
  if answer then
    result, err = call.finish(answer)
  end
  local entry, j = booking.entry, booking.journal
  if not result and not refused(err) and not STOPPED_HERE[err.code] and booking.marker then
    local found, u = once.lookup(self, booking.kind, booking.marker, booking.since)
    if found == "found" then
      result, err = u, nil
    elseif u and u.code == "interrupted" then -- stopped while looking: sent whole, the outcome unknown
      err, u.request_sent, u.signal, u.marker = u, true, nil, booking.marker
    else
      err = still_unknown(err, booking.name, booking.marker, found, u)
    end
  end
  if entry then
    if result then
      unrecorded = record(self, j, entry, result)
    elseif refused(err) then
      j:fail(entry.id, err.code) -- refused, or surely not sent: a rerun sends it
    else -- its outcome is unknown: a rerun, from this process too, looks for it by its marker first
      j:release(entry.id)
    end
  end
  if unrecorded then
    return result, nil, "unrecorded", unrecorded
  end
  return result, err
end

-- once.send(self, call, m, opts) -> result | nil, err, and a note: "journal"
-- when the result was found instead of sent, "unrecorded" (and the
-- journal's error) when the journal could not record it.
function once.send(self, call, m, opts)
  local booking, err = once.before(self, call, m, opts)
  if not booking then
    return nil, err
  elseif booking.result then
    if booking.unrecorded then
      return booking.result, nil, "unrecorded", booking.unrecorded
    end
    return booking.result, nil, "journal"
  end
  local answer, lost
  answer, err = self:call(call.endpoint, call.args)
  if booking.gate then
    ungate(call, booking)
    if not answer and err.code == "journal_holds" then -- the journal holds it: hashed first, as any other
      call.digest.gate = nil
      return once.send(self, call, m, opts)
    end
    booking.entry, lost = booking.journal:marked(booking.marker) -- none when the body never reached the gate
    booking.since = booking.entry and booking.entry.created or booking.since
  end
  local result, note, unrecorded
  result, err, note, unrecorded = once.after(self, call, booking, answer, err)
  if result and not note and lost then -- recorded as started, its end not: a rerun looks it up by its marker
    return result, nil, "unrecorded", lost
  end
  return result, err, note, unrecorded
end

-- once.steps(self, uploading) -> what the journal keeps for the uploading's
-- further steps (content_id_type, confirmed), or an empty table.
function once.steps(self, uploading)
  local e = self.entries and self.entries[uploading]
  return e and e.steps or {}
end

-- once.step(self, uploading, name, value) -> true | nil, err: records that
-- a further step was taken (confirmed = true), where a journal keeps the uploading.
function once.step(self, uploading, name, value)
  local e = self.entries and self.entries[uploading]
  if not e then
    return true
  end
  e.steps[name] = value
  return e.journal:finish(e.id, { steps = json.encode(e.steps) })
end

return once
