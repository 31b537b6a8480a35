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

  it("gives the man page EXAMPLES, FILES and an ENVIRONMENT with every name the command reads", function()
    local page = unroff(files.read("build/docs/csvup.1"))
    for _, section in ipairs { "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES" } do
      assert.is_truthy(page:find("\n.SH " .. section .. "\n", 1, true), section)
    end
    local environment = page:match("\n%.SH ENVIRONMENT\n(.-)\n%.SH ")
    for _, name in ipairs { "CSVUP_METRIKA_TOKEN", "CSVUP_CARROTQUEST_TOKEN", "CSVUP_BASE_URL", "CSVUP_COUNTER",
      "XDG_STATE_HOME", "XDG_RUNTIME_DIR", "TMPDIR" } do
      assert.is_truthy(environment:find(".B " .. name .. "\n", 1, true), name)
    end
    local listed = page:match("\n%.SH FILES\n(.-)\n%.SH ")
    for _, path in ipairs { "journal.sqlite3", "$XDG_RUNTIME_DIR/csvup/", "/var/spool/csvup/" } do
      assert.is_truthy(listed:find(path, 1, true), path)
    end
    -- every example parses as the command line it shows: its subcommand's --help answers
    local examples = 0
    for command in page:match("\n%.SH EXAMPLES\n(.*)$"):gmatch("\n%.RS\n(.-)\n%.RE") do
      local first, second = command:match("^csvup (%l+) (%-?[%w-]*)")
      local words = first .. (second:find("^%l") and " " .. second or "")
      local status, help = run(support.LUA .. " lua/bin/csvup " .. words .. " --help", true)
      assert.are.equal(0, status, command .. ": " .. help)
      examples = examples + 1
    end
    assert.is_true(examples >= 5)
  end)

  it("shows no default twice, no raw tab, and the environment in --help", function()
    local commands = { "", "sandbox", "validate", "journal", "metrika uploadings", "metrika wait" }
    for _, m in ipairs(registry.methods) do
      commands[#commands + 1] = m.service .. " " .. registry.cli_name(m.name)
    end
    for _, command in ipairs(commands) do
      local status, help = run(support.LUA .. " lua/bin/csvup " .. command .. " --help", true)
      assert.are.equal(0, status, help)
      assert.is_nil(help:find("\t", 1, true), command)
      assert.is_nil(help:find("default: ([^%s;)]+)%s*%(default: %1%)"), command)
    end
    local _, top = run(support.LUA .. " lua/bin/csvup --help", true)
    for _, name in ipairs { "CSVUP_METRIKA_TOKEN", "CSVUP_CARROTQUEST_TOKEN", "CSVUP_BASE_URL", "CSVUP_COUNTER",
      "XDG_STATE_HOME" } do
      assert.matches(name, top, 1, true)
    end
  end)

  it("gives the API reference its project name, an overview page, every parameter a description, escaped code",
    function()
    local index = files.read("build/docs/api/index.html")
    assert.matches('<div id="product_name"><big><b>csvup</b></big></div>', index, 1, true)
    assert.matches("topics/overview.md.html", index, 1, true)
    assert.matches("csvup.metrika.new", html("build/docs/api/topics/overview.md.html"), 1, true)
    assert.is_true(#html("build/docs/api/modules/csvup.html") > 600) -- more than a line
    for _, module in ipairs { "csvup", "csvup.metrika", "csvup.carrotquest", "csvup.csv", "csvup.batch", "csvup.ngx",
      "csvup.errors" } do
      local page = files.read("build/docs/api/modules/" .. module .. ".html")
      for name, text in page:gmatch('<span class="parameter">([^<]*)</span>(.-)</li>') do
        local described = text:gsub("<span class=\"types\">.-</span>", ""):gsub("<[^>]*>", ""):gsub("%s+", "")
        assert.is_true(#described > 0, module .. ": " .. name)
      end
      assert.is_nil(page:find("<close>", 1, true), module)
    end
  end)
end)
