-- The one error model: every error is a table with code, message and kind,
-- printed readably by its __tostring (set in C, shared with the errors the C
-- core makes). Code that decides (retry? which exit status?) reads kind:
--   network   the request or its answer was lost on the way (transport
--             failures, timeouts, outcome_unknown, slot_timeout)
--   api       the service answered with an error, or with an answer of the
--             wrong shape (bad_response)
--   input     arguments, files, validation: fix the call and try again
--   internal  a callback raised, or a bug was caught
local core = require "csvup.core"

local format, type, tostring = string.format, type, tostring

local errors = {}

errors.KINDS = { network = true, api = true, input = true, internal = true }

--- Makes an error: a table with kind, code, message and a readable __tostring.
-- errors.new(kind, code, message, fields?) -> err; fields keeps its other keys
-- (status, errors, retry_after, attempts, sent, request_sent, problems, ...).
function errors.new(kind, code, message, fields)
  local err = fields or {}
  err.kind, err.code, err.message = kind, code, message
  return core.error(err)
end

--- Returns nil and errors.new(kind, code, message, fields).
function errors.fail(kind, code, message, fields)
  return nil, errors.new(kind, code, message, fields)
end

--- Returns nil and an invalid_argument error whose message is format(fmt, ...).
-- An argument the caller can fix: invalid_argument, kind input.
function errors.invalid(fmt, ...)
  return nil, errors.new("input", "invalid_argument", format(fmt, ...))
end

--- Returns nil and the error of a wait a signal cut short (see core.signals).
-- errors.interrupted(signal) -> nil, err (code "interrupted", kind "internal")
function errors.interrupted(signal)
  return errors.fail("internal", "interrupted", "interrupted by " .. tostring(signal) .. " while waiting: nothing "
    .. "more was sent", { signal = signal, request_sent = false })
end

--- Makes text from a server or a file safe to print.
-- Control characters become \n, \t or \xNN; the text is cut at max
-- characters (none when max is nil) with "...".
function errors.printable(s, max)
  s = tostring(s):gsub("[%c\127]", function(c)
    return c == "\n" and "\\n" or c == "\t" and "\\t" or format("\\x%02X", c:byte())
  end)
  return max and #s > max and s:sub(1, max) .. "..." or s
end

-- The text of a raised value, even of one whose __tostring raises in turn.
function errors.text(value)
  local ok, text = pcall(tostring, value)
  return ok and type(text) == "string" and text or ("a %s that cannot be shown as text"):format(type(value))
end

--- Tells whether a value is a csvup error (a table with code and kind).
function errors.is(value)
  return type(value) == "table" and type(value.code) == "string" and errors.KINDS[value.kind] ~= nil
end

return errors
