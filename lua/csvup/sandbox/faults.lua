-- Faults the sandbox can inject, to rehearse what a job meets on a bad night.
-- POST /_sandbox/faults {"fault": NAME, "count": n (1), "path": "part of the path"
-- (any), "retry_after": seconds or an HTTP date (too_many_requests), "delay": seconds (slow)}
-- queues one; the next count matching requests get it ({"clear": true} forgets
-- those queued). The faults:
--   reset_mid_upload    reads the first 64 KB of the body, then resets the connection
--   drop_after_body     reads the whole body, then closes without an answer
--   lost_answer         processes the request as usual, then resets the connection instead of answering
--   slow                answers as usual after delay seconds
--   html_500, html_502  an HTML error page from a proxy (the request is not processed)
--   gateway_504, gateway_502  the request is processed, then a gateway answers
--                       with an HTML error page instead of the service's answer
--   too_many_requests   429, with Retry-After when retry_after is given (Metrica: the error_type
--                       `quota` names, quota_requests_by_ip unless given, and `status` 420 as the
--                       English quotas page gives it)
--   backend_error       503
-- (both in the error body of the service the path belongs to: Metrica's
-- {"errors":[...]} or Carrot quest's {"meta":{...},"data":{}})
--   truncated_json      200 with JSON cut in the middle
--   wrong_content_type  200 text/html
--   huge                200 with a 100 MB body
--   redirect            302 to another host
local faults = {}

faults.KNOWN = {
  reset_mid_upload = true, drop_after_body = true, lost_answer = true, slow = true, html_500 = true, html_502 = true,
  too_many_requests = true, backend_error = true, truncated_json = true, wrong_content_type = true,
  huge = true, redirect = true, gateway_504 = true, gateway_502 = true,
}

local HUGE = 100 * 1024 * 1024
local huge_body -- made once, when first queued

local function html(status, title)
  return status, ("<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center>"
    .. "<hr><center>nginx</center></body></html>"):format(status, title, status, title),
    { ["Content-Type"] = "text/html" }
end

local ANSWERS = {
  html_500 = function() return html(500, "Internal Server Error") end,
  html_502 = function() return html(502, "Bad Gateway") end,
  too_many_requests = function(f, service)
    local status, body = service.fault_answer("too_many_requests", f)
    return status, body, f.retry_after and { ["Retry-After"] = tostring(f.retry_after) }
  end,
  backend_error = function(_, service) return service.fault_answer("backend_error") end,
  truncated_json = function() return 200, '{"uploading":{"id":90071992547409' end,
  wrong_content_type = function() return 200, "<html><body>Welcome</body></html>", { ["Content-Type"] = "text/html" } end,
  huge = function() return 200, huge_body end,
  redirect = function() return 302, "", { Location = "https://example.org/elsewhere" } end,
}

local AFTER_PROCESSING = {
  gateway_504 = function() return html(504, "Gateway Time-out") end,
  gateway_502 = function() return html(502, "Bad Gateway") end,
}

-- Whether the fault replaces the answer of a request that was processed.
function faults.after_processing(f)
  return AFTER_PROCESSING[f.fault] ~= nil
end

-- The answer that replaces the service's one.
function faults.answer_after(f)
  return AFTER_PROCESSING[f.fault]()
end

-- Readies a fault when it is queued, so that answering it takes no time.
function faults.prepare(f)
  if f.fault == "huge" then
    huge_body = huge_body or ("x"):rep(HUGE)
  end
end

-- Whether the fault is an answer (rather than something done to the connection).
function faults.answers(f)
  return ANSWERS[f.fault] ~= nil
end

-- The answer of a fault that answers, in the manner of service (metrika.lua or
-- carrotquest.lua), or nil for the ones that act on the connection.
function faults.answer(f, service)
  local answer = ANSWERS[f.fault]
  if answer then
    return answer(f, service)
  end
end

return faults
