-- `make docs`: the API reference (LDoc) and the man page, both from the
-- registry that the clients and --help come from.
local files = require "support.files"
local registry = require "csvup.registry"
local support = require "support.sandbox"

-- Runs a shell command; the tools it runs (make, ldoc, groff, man) get no
-- sanitizer preloaded, when the suite runs under one, unless it runs the
-- module under test (module).
local function run(command, module)
  local pipe = assert(io.popen((module and "sh -c '" or "env -u LD_PRELOAD sh -c '") .. command .. "' 2>&1"))
  local output = pipe:read("a")
  local ok, _, status = pipe:close()
  return ok and 0 or status, output
end

-- The entries of a --help text: { [label] = description }. Labels start in
-- column 4 and descriptions in column 26 (argparse's margins); a label too
-- long for that stands alone, its description on the lines below.
local function help_entries(text)
  local lines, entries, label = {}, {}, nil
  for line in text:gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  for i, line in ipairs(lines) do
    if line:match("^   %S") then
      local alone = (lines[i + 1] or ""):match("^" .. (" "):rep(25) .. "%S")
      label = alone and line:match("^   (.-)%s*$") or line:sub(4, 24):match("^(.-)%s*$")
      entries[label] = alone and "" or line:sub(26)
    elseif label and line:match("^%s+%S") then
      entries[label] = (entries[label] .. " " .. line:match("^%s+(.-)%s*$")):gsub("^ ", "")
    else
      label = nil
    end
  end
  return entries
end

local function unroff(text)
  return (text:gsub("\\%-", "-"):gsub("\\et", "\t"):gsub("\\e", "\\"):gsub("\\[&:]", ""))
end

-- The man page's entries by section: { ["csvup metrika goals"] = { [label] = description } }.
local function man_entries(text)
  local sections, current = {}, nil
  local lines = {}
  for line in text:gmatch("[^\n]*") do
    lines[#lines + 1] = line
  end
  for i, line in ipairs(lines) do
    local title = line:match("^%.SS (.*)$")
    if title then
      current = {}
      sections[unroff(title)] = current
    elseif line == ".TP" and current then
      current[unroff(lines[i + 1]:match("^%.B (.*)$"))] = unroff(lines[i + 2])
    end
  end
  return sections
end

local function html(path)
  return files.read(path):gsub("<[^>]*>", "")
end

describe("make docs", function()
  setup(function()
    local status, output = run("rm -rf build/docs && make --no-print-directory docs")
    assert(status == 0, output)
  end)

  it("writes a man page that renders without warnings", function()
    local status, output = run("groff -man -Tutf8 -ww -z build/docs/csvup.1")
    assert.are.equal(0, status)
    assert.are.equal("", output)
    status, output = run("MANWIDTH=80 man --warnings -l build/docs/csvup.1")
    assert.are.equal(0, status)
    assert.matches("csvup metrika upload%-offline%-conversions", output)
  end)

  it("gives every registry method's subcommand, with each option as its --help does", function()
    local sections = man_entries(files.read("build/docs/csvup.1"))
    for _, m in ipairs(registry.methods) do
      local name = m.service .. " " .. registry.cli_name(m.name)
      local man = sections["csvup " .. name]
      assert.is_table(man, "the man page has no section for csvup " .. name)
      local status, help = run(support.LUA .. " lua/bin/csvup " .. name .. " --help", true)
      assert.are.equal(0, status, help)
      local entries = help_entries(help)
      assert.is_not_nil(next(entries))
      assert.are.same(entries, man, "csvup " .. name)
      for _, o in ipairs(m.options) do
        local flag = "--" .. registry.cli_name(o.type == "tags" and "tag" or o.name)
        local found = false
        for label, description in pairs(man) do
          found = found or (label:find(flag .. " ", 1, true) == 1 and description:find(o.help, 1, true) ~= nil)
        end
        assert.is_true(found, "csvup " .. name .. " " .. flag)
      end
    end
  end)

  it("writes an API reference that documents every registry method and the hand-written functions", function()
    local pages = {}
    for _, service in ipairs { "metrika", "carrotquest" } do
      pages[service] = html("build/docs/api/modules/csvup." .. service .. ".html")
    end
    for _, m in ipairs(registry.methods) do
      assert.is_truthy(pages[m.service]:find("Client:" .. m.name .. " (", 1, true), m.name)
      assert.is_truthy(pages[m.service]:find(m.help:gsub("^%l", string.upper), 1, true), m.name)
    end
    local functions = {
      metrika = { "new (opts)", "Client:wait (uploading_or_id, opts)" },
      carrotquest = { "new (opts)" },
      csv = { "encode (rows, opts)", "writer (target, opts)", "rows (source, opts)", "Writer:write_all (source)" },
      batch = { "batch (jobs, opts)" },
      ngx = { "call (pool, service, method, client_options, call_options)" },
      errors = { "new (kind, code, message, fields)", "is (value)" },
    }
    for module, names in pairs(functions) do
      local page = html("build/docs/api/modules/csvup." .. module .. ".html")
      for _, name in ipairs(names) do
        assert.is_truthy(page:find(name, 1, true), "csvup." .. module .. ": " .. name)
      end
    end
    assert.is_truthy(html("build/docs/api/index.html"):find("csvup.metrika", 1, true))
  end)
end)
