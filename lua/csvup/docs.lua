-- Reference text derived from csvup.registry and the C endpoint rows: the
-- README's endpoint table, so that the documentation cannot drift from what
-- the clients do.
local core = require "csvup.core"
local registry = require "csvup.registry"

local format, concat = string.format, table.concat
local ipairs = ipairs

local docs = {}

-- "name{ a, b? }", "name(id)" or "name(id, { a? })": how a method is called.
function docs.signature(m)
  local names = {}
  for _, o in ipairs(m.options) do
    names[#names + 1] = o.name .. (o.required and "" or "?")
  end
  local opts = #names > 0 and "{ " .. concat(names, ", ") .. " }" or nil
  if m.shape == "read" then
    return m.name .. "(id)"
  elseif m.id then
    return format("%s(id%s)", m.name, opts and ", " .. opts or "")
  end
  return m.name .. (opts or "{}")
end

-- The endpoints a method calls: one, or one per value of an option that picks it (CRM's entity).
local function endpoints(m)
  for _, o in ipairs(m.options) do
    if o.endpoints then
      local list = {}
      for i, value in ipairs(o.values) do
        list[i] = o.endpoints[value]
      end
      return list
    end
  end
  return { m.name }
end

-- The Markdown table of every method: service, call, HTTP method, path, what it does.
function docs.endpoint_table()
  local lines = { "| service | method | HTTP | path | what it does |", "|---|---|---|---|---|" }
  for _, m in ipairs(registry.methods) do
    local verbs, paths = {}, {}
    for i, name in ipairs(endpoints(m)) do
      local ep = core.ENDPOINTS[name]
      verbs[i], paths[i] = ep.method, "`" .. ep.path .. "`"
    end
    lines[#lines + 1] = format("| %s | `%s` | %s | %s | %s |", m.service, docs.signature(m), verbs[1],
      concat(paths, "<br>"), m.help)
  end
  return concat(lines, "\n") .. "\n"
end

return docs
