-- Reference text derived from csvup.registry, so
-- that the documentation cannot drift from what the clients do: the README's
-- endpoint table, the LDoc input of the API reference (`make docs`) and the
-- man page, which shows each subcommand as its --help does.
local options = require "csvup.options"
local registry = require "csvup.registry"

local format, concat = string.format, table.concat
local ipairs, pairs, require = ipairs, pairs, require
local io, package = io, package

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
      local ep = registry.endpoint[name]
      verbs[i], paths[i] = ep.method, "`" .. ep.path .. "`"
    end
    lines[#lines + 1] = format("| %s | `%s` | %s | %s | %s |", m.service, docs.signature(m), verbs[1],
      concat(paths, "<br>"), m.help)
  end
  return concat(lines, "\n") .. "\n"
end

-- The API reference -------------------------------------------------------------

-- The modules of the reference: the source whose header comment describes
-- the module and whose doc comments (a block opened by `---`) above functions
-- are taken as they are; the class of its `function Class:name` methods, and
-- the service whose registry methods the class also holds.
local MODULES = {
  { name = "csvup", source = "init.lua", intro = {
    "The module's table: VERSION, and the parts below, each also required on its own.",
    "",
    "  csvup.metrika.new{ token, counter }: a Yandex Metrica client (offline conversions, calls, expenses, user",
    "    parameters, CRM, goals; wait for processing);",
    "  csvup.carrotquest.new{ token }: a Carrot quest client (user import);",
    "  csvup.csv: CSV encoding, a streaming writer, a reader (csv.rows) and encoding detection;",
    "  csvup.batch(jobs, opts): many calls at once on libcurl's multi interface;",
    "  csvup.errors: the errors every call returns as nil, err;",
    "  csvup.ngx: a call from an nginx worker thread (OpenResty).",
    "",
    "Every I/O function returns nil, err on failure: err has code, kind (network, api, input, internal),",
    "message and a readable __tostring. The command line (csvup --help, man csvup) is built on the same",
    "clients.",
  } },
  { name = "csvup.metrika", source = "metrika.lua", class = "Client", service = "metrika",
    class_help = "A client, from csvup.metrika.new: one method per Metrica API method, wait and close." },
  { name = "csvup.carrotquest", source = "carrotquest.lua", class = "Client", service = "carrotquest",
    class_help = "A client, from csvup.carrotquest.new: one method per Carrot quest API method, and close." },
  { name = "csvup.csv", source = "csv.lua", class = "Writer", class_help = "A writer, from csv.writer." },
  { name = "csvup.batch", source = "batch.lua" },
  { name = "csvup.ngx", source = "ngx.lua" },
  { name = "csvup.errors", source = "errors.lua" },
}

-- What an upload method takes besides its registry options (csvup.client's UPLOAD_KEYS).
local UPLOAD_OPTIONS = {
  "@tparam[opt] string opts.file the CSV file's path, streamed from disk",
  "@tparam[opt] {table,...} opts.rows records to send instead of a file (column name -> value)",
  "@tparam[opt] {string,...} opts.columns the rows' columns, in this order (default: the union of their keys)",
  "@tparam[opt] string opts.filename the file name the service is told (default: the file's own)",
  "@param[opt] opts.validate check every row (true or \"full\", the default), the header (\"header\") or nothing (false)",
  "@tparam[opt] function opts.progress called as progress(sent, total) while the body goes out",
}

local LUA_TYPES = { text = "string", enum = "string", integer = "int", date_or_range = "string", tags = "{string,...}" }

-- What the parameters of the hand-written functions are, where their doc
-- comment says it only in its prose; a spec checks that none is left without.
local PARAMS = {
  ["errors.new"] = { kind = "network, api, input or internal", code = "a short name of what failed",
    message = "the readable text", fields = "further keys the error keeps (status, attempts, problems, ...)" },
  ["errors.fail"] = { kind = "as for errors.new", code = "as for errors.new", message = "as for errors.new",
    fields = "as for errors.new" },
  ["errors.invalid"] = { fmt = "a string.format pattern", ["..."] = "its values" },
  ["errors.interrupted"] = { signal = "the signal's name (SIGINT, SIGTERM)" },
  ["errors.printable"] = { s = "the text (any value, made a string)", max = "the most characters kept (optional)" },
  ["errors.text"] = { value = "what a callback raised" },
  ["errors.is"] = { value = "any value" },
  ["csv.columns"] = { rows = "an array of records", i = "the first record looked at", j = "the last one" },
  ["csv.encode"] = { rows = "an array of records (column name -> value)", opts = "the options listed above" },
  ["csv.writer"] = { target = "a path, or an open file handle", opts = "as for csv.encode" },
  ["csv.encoding"] = { name = "utf-8, cp1251, windows-1251 or auto", path = "the file auto reads" },
  ["csv.rows"] = { source = "a path, an open file handle, or an object with read(n)",
    opts = "delimiter, encoding, record_limit, name" },
  ["Writer:write"] = { row = "a record (column name -> value)" },
  ["Writer:write_all"] = { source = "an array of records, or an iterator that gives one per call and nil at the end" },
  ["batch.batch"] = { jobs = "an array of { client, method, args }",
    opts = "concurrency (how many at once) and progress(done, total)" },
  ["csvup_ngx.run"] = { service = "metrika or carrotquest", method = "the client method's name",
    client_options = "the options of the client's new()", call_options = "the method's options" },
  ["csvup_ngx.call"] = { pool = "the nginx thread pool's name", service = "metrika or carrotquest",
    method = "the client method's name", client_options = "the options of the client's new()",
    call_options = "the method's options" },
  ["csvup_ngx.collector"] = { name = "the collector's name, used by add, flush and stats",
    opts = "pool, spool, service, method, client, args and the bounds listed above" },
  ["csvup_ngx.add"] = { name = "the collector's name", row = "a record (column name -> value)" },
  ["csvup_ngx.flush"] = { name = "the collector's name" },
  ["csvup_ngx.stats"] = { name = "the collector's name" },
  ["metrika.new"] = { opts = "token, counter, ulogin, and the connection and retry options (csvup.client)" },
  ["carrotquest.new"] = { opts = "token, app, and the connection and retry options (csvup.client)" },
  ["Client:wait"] = { uploading_or_id = "the uploading an upload returned, or its id",
    opts = "kind, timeout (seconds), interval (the longest pause, seconds), progress(uploading)" },
}

-- Text for LDoc's plain format, which is copied into HTML as it is.
local function html_text(text)
  return (text:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"))
end


-- The documented stub of one registry method, as a method of class.
local function method_stub(m, class)
  local lines = { "---", "-- " .. m.help:gsub("^%l", string.upper) .. ".", "-- " .. docs.signature(m) }
  local params = {}
  if m.shape == "read" or m.id then
    lines[#lines + 1] = "-- @param id the uploading's id, or the uploading"
    params[#params + 1] = "id"
  end
  if m.shape ~= "read" then
    local required = false
    for _, o in ipairs(m.options) do
      required = required or o.required
    end
    lines[#lines + 1] = format("-- @tparam%s table opts the call's options", required and "" or "[opt]")
    for _, o in ipairs(m.options) do
      lines[#lines + 1] = format("-- @tparam%s %s opts.%s %s", o.required and "" or "[opt]", LUA_TYPES[o.type], o.name,
        (options.describe(o):gsub("; required$", ""):gsub("\t", "tab")))
    end
    for name, help in pairs(m.flags or {}) do
      lines[#lines + 1] = format("-- @tparam[opt] boolean opts.%s %s", name, help)
    end
    if m.shape == "upload" then
      for _, text in ipairs(UPLOAD_OPTIONS) do
        lines[#lines + 1] = "-- " .. text
      end
    end
    params[#params + 1] = "opts"
  end
  lines[#lines + 1] = "-- @return the result: " .. (m.kind and m.service == "metrika" and "the uploading"
    or m.result and "the answer's " .. m.result or "the answer")
  lines[#lines + 1] = "-- @return[2] nil"
  lines[#lines + 1] = "-- @return[2] err, a csvup.errors error"
  lines[#lines + 1] = format("function %s:%s(%s) end", class, m.name, concat(params, ", "))
  return concat(lines, "\n")
end

-- A source file's header comment, and its doc comments with the functions
-- they stand above: { header = lines, functions = { { block, owner, name, params } } }.
local function read_source(text)
  local source = { header = {}, functions = {} }
  local block, in_header = nil, true
  for line in text:gmatch("([^\n]*)\n") do
    local comment = line:match("^%-%-%-? ?(.*)$")
    if in_header and comment and not line:match("^%-%-%-") then
      source.header[#source.header + 1] = comment
    else
      in_header = false
      if line:match("^%-%-%-") and not line:match("^%-%-%-%-") then
        block = { comment }
      elseif block and comment then
        block[#block + 1] = comment
      elseif block then
        local owner, sep, name, params = line:match("^function ([%w_]+)([.:])([%w_]+)%(([^)]*)%)")
        if name then
          source.functions[#source.functions + 1] = { block = block, owner = owner, method = sep == ":", name = name,
            params = params }
        end
        block = nil
      end
    end
  end
  return source
end

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then
    return nil, err
  end
  local ok
  ok, err = f:write(text)
  f:close()
  return ok and true, err
end

-- A doc comment opened by a line of its own: LDoc drops an item whose
-- opening line holds "--" (as in "--provider").
local function comment_block(lines)
  local out = { "---" }
  for _, line in ipairs(lines) do
    out[#out + 1] = "-- " .. html_text(line)
  end
  return concat(out, "\n")
end

-- A function's doc block with a @param line for each parameter it does not describe.
local function described(f)
  local block = { table.unpack(f.block) }
  local texts = PARAMS[f.owner .. (f.method and ":" or ".") .. f.name] or {}
  for name in f.params:gmatch("[^,%s]+") do
    local known = false
    for _, line in ipairs(block) do
      known = known or line:match("^@t?param%S* ") and (line:match("^@param%S* (%S+)") == name
        or line:match("^@tparam%S* %S+ (%S+)") == name)
    end
    if not known then
      block[#block + 1] = format("@param %s %s", name, texts[name] or "")
    end
  end
  return block
end

-- docs.ldoc_input() -> { { name = module, text = LDoc input }, ... } | nil, err:
-- one Lua file of documented stubs per module, from the registry and the
-- modules' sources (found on package.path).
function docs.ldoc_input()
  local files = {}
  for _, mod in ipairs(MODULES) do
    local path = package.searchpath(mod.name, package.path)
    local file, err = io.open(path or mod.name)
    if not file then
      return nil, err
    end
    local source = read_source(file:read("a"))
    file:close()
    local header = source.header
    for _, line in ipairs(mod.intro or {}) do
      header[#header + 1] = line
    end
    header[#header + 1] = "@module " .. mod.name
    local parts = { comment_block(header) }
    local methods = {}
    for _, f in ipairs(source.functions) do
      local stub = comment_block(described(f)) .. "\n" .. (f.method and format("function %s:%s(%s) end", f.owner, f.name,
        f.params) or format("function %s(%s) end", f.name, f.params))
      if f.method then
        methods[#methods + 1] = stub
      else
        parts[#parts + 1] = stub
      end
    end
    if mod.class then
      parts[#parts + 1] = format("--- %s\n-- @type %s", mod.class_help, mod.class)
      for _, m in ipairs(mod.service and registry.methods or {}) do
        if m.service == mod.service then
          parts[#parts + 1] = method_stub(m, mod.class)
        end
      end
      for _, stub in ipairs(methods) do
        parts[#parts + 1] = stub
      end
      if mod.service then
        parts[#parts + 1] = format("--- Closes the client's connections; also by `local c &lt;close&gt;` and the "
          .. "garbage collector."
          .. "\nfunction %s:close() end", mod.class)
      end
    end
    files[#files + 1] = { name = mod.name, text = concat(parts, "\n\n") .. "\n" }
  end
  return files
end

-- The reference's overview page: HTML, as LDoc's plain format copies it.
local OVERVIEW = [[
<h1>Overview</h1>

<p>csvup uploads CSV data to Yandex Metrica (offline conversions, calls,
expenses, user parameters, CRM) and Carrot quest (user import) from Lua 5.4
or OpenResty: files are streamed from disk, checked against each endpoint's
columns before anything is sent, and converted (Windows-1251, <code>;</code>)
while they are sent.</p>

<pre>
local csvup = require "csvup"
local metrika = assert(csvup.metrika.new { token = os.getenv("CSVUP_METRIKA_TOKEN"), counter = 2215573 })
local uploading, err = metrika:upload_offline_conversions { file = "conversions.csv", comment = "crmsync" }
if not uploading then error(tostring(err)) end
local done = assert(metrika:wait(uploading)) -- PROCESSED or LINKAGE_FAILURE
metrika:close()
</pre>

<p>Each call returns its result, or <code>nil, err</code>: <code>err.kind</code> is network, api,
input or internal, <code>err.code</code> says what failed, <code>tostring(err)</code> reads.</p>

<p>The modules: <code>csvup</code> (the table of the others), <code>csvup.metrika</code> and
<code>csvup.carrotquest</code> (the clients: one method per API method, each listed
with its options), <code>csvup.csv</code> (CSV text, a streaming writer, a reader),
<code>csvup.batch</code> (many calls at once), <code>csvup.errors</code>, <code>csvup.ngx</code> (nginx).</p>

<p>The <code>csvup</code> command does the same from the shell and from cron: see
<code>man csvup</code> or <code>csvup --help</code>. The environment it and the examples read:
<code>CSVUP_METRIKA_TOKEN</code>, <code>CSVUP_CARROTQUEST_TOKEN</code>, <code>CSVUP_BASE_URL</code>,
<code>CSVUP_COUNTER</code>.</p>
]]

-- docs.write_ldoc_input(dir) -> true | nil, err: the stubs as dir/<module>.lua,
-- dir/overview.md and dir/config.ld, for `ldoc -c dir/config.ld -d OUT .`
function docs.write_ldoc_input(dir)
  local files, err = docs.ldoc_input()
  if not files then
    return nil, err
  end
  local ok
  ok, err = write(dir .. "/overview.md", OVERVIEW)
  if not ok then
    return nil, err
  end
  local names = {}
  for i, file in ipairs(files) do
    names[i] = format("%q", file.name .. ".lua") -- ldoc reads them from the config's folder
    ok, err = write(dir .. "/" .. file.name .. ".lua", file.text)
    if not ok then
      return nil, err
    end
  end
  return write(dir .. "/config.ld", format('project = "csvup"\ntitle = "csvup %s reference"\n'
    .. 'description = "Upload CSV data to Yandex Metrica and Carrot quest"\n'
    .. "file = { %s }\ntopics = { \"overview.md\" }\nsort = false\nformat = \"plain\"\n", require("csvup").VERSION,
    concat(names, ", ")))
end

-- The man page ------------------------------------------------------------------

-- The parser that `csvup` builds, with every subcommand's options and help:
-- cli.main is entered with argparse's parse replaced by one that hands the
-- parser back, so that the man page shows exactly what --help shows.
-- Text for roff: backslashes escaped, hyphens as minus signs (so that
-- options can be copied), a tab shown as \t, a line break allowed after a
-- comma (long lists of choices), no line that starts as a request.
local function roff(text)
  text = text:gsub("\\", "\\e"):gsub("%-", "\\-"):gsub("\t", "\\et"):gsub(",", ",\\:")
  return (text:gsub("\n([.'])", "\n\\&%1"):gsub("^([.'])", "\\&%1"))
end

-- The arguments and options of one command, each as its --help lists it (argparse's own labels and descriptions).
local function elements(command, lines)
  for _, list in ipairs { command._arguments, command._options } do
    for _, element in ipairs(list) do
      if not element._hidden then
        lines[#lines + 1] = ".TP"
        lines[#lines + 1] = ".B " .. roff(concat(element:_get_label_lines(), " "))
        lines[#lines + 1] = roff(element:_get_description())
      end
    end
  end
end

local function commands(parent, lines)
  for _, command in ipairs(parent._commands) do
    lines[#lines + 1] = ".SS " .. roff(command:_get_fullname())
    lines[#lines + 1] = roff(command._description or command._summary or "")
    elements(command, lines)
    commands(command, lines)
  end
end

-- The man page's EXAMPLES: { what it does, the command }.
local EXAMPLES = {
  { "Upload offline conversions from cron, wait for processing, log with times on stderr:",
    "csvup metrika upload-offline-conversions --counter 2215573 --comment crmsync --wait conversions.csv "
      .. ">>upload.out 2>>upload.log" },
  { "See what would be sent (the body converted from an Excel export), sending nothing:",
    "csvup metrika upload-expenses --counter 2215573 --provider fb --delimiter ';' --encoding cp1251 --dry-run "
      .. "costs.csv" },
  { "Check a file as its upload would, every row, the problems as JSON:",
    "csvup validate offline-conversions --json conversions.csv" },
  { "Wait again for an uploading whose wait was stopped:",
    "csvup metrika wait 9007199254740993 --counter 2215573" },
  { "Rehearse against the local sandbox:",
    "csvup sandbox --port 8080 & CSVUP_BASE_URL=http://127.0.0.1:8080 CSVUP_METRIKA_TOKEN=sandbox-token "
      .. "csvup metrika goals --counter 1" },
  { "List what the journal keeps:", "csvup journal --limit 5" },
}

-- FILES and ENVIRONMENT: { name, what it is }.
local FILES = {
  { "$XDG_STATE_HOME/csvup/journal.sqlite3", "the journal of uploads sent (else ~/.local/state/csvup/; "
    .. "--journal names another, --no-journal uses none)" },
  { "$XDG_RUNTIME_DIR/csvup/", "the lock directory of the parallel-request slots (3 per Metrica token, shared by "
    .. "every csvup process of the user); /tmp/csvup-UID when XDG_RUNTIME_DIR is unset or not the user's" },
  { "/var/spool/csvup/", "the spool directory of the README's nginx collector recipe" },
}
local ENVIRONMENT = {
  { "CSVUP_BASE_URL", "the API's address for every subcommand, e.g. a sandbox's; --base-url wins" },
  { "CSVUP_COUNTER", "the Metrica counter when --counter is not given" },
  { "XDG_STATE_HOME", "where the journal is kept (an absolute path; else ~/.local/state)" },
  { "XDG_RUNTIME_DIR", "where the slots' lock files are kept (else /tmp/csvup-UID)" },
  { "TMPDIR", "where the records of a rows iterator are written before they are sent (an unlinked file; else "
    .. "/tmp); standard input (FILE -) is copied under /tmp, as Lua's os.tmpname makes it" },
  { "HOME", "the journal's default folder when XDG_STATE_HOME is unset" },
}

local function tagged(lines, list)
  for _, item in ipairs(list) do
    lines[#lines + 1] = ".TP"
    lines[#lines + 1] = ".B " .. roff(item[1])
    lines[#lines + 1] = roff(item[2])
  end
end

-- docs.man_page() -> the text of csvup.1
function docs.man_page()
  local parser = require("csvup.cli").parser()
  local version = require("csvup").VERSION
  local lines = {
    format('.TH CSVUP 1 "" "csvup %s" "User Commands"', version),
    ".ad l",
    ".nh",
    ".SH NAME",
    "csvup \\- " .. roff(parser._description:gsub("^%u", string.lower):gsub("%.$", "")),
    ".SH SYNOPSIS",
    ".B csvup",
    ".I command",
    "[\\fIsubcommand\\fR] [\\fIoptions\\fR] [\\fIarguments\\fR]",
    ".SH DESCRIPTION",
    roff(parser._description),
    "Every command and subcommand takes \\fB\\-h\\fR, \\fB\\-\\-help\\fR; an option's value may follow it or an"
      .. " equals sign (\\fB\\-\\-counter=1\\fR).",
    ".SH OPTIONS",
  }
  elements(parser, lines)
  lines[#lines + 1] = ".SH COMMANDS"
  commands(parser, lines)
  lines[#lines + 1] = ".SH ENVIRONMENT"
  for _, service in ipairs { "metrika", "carrotquest" } do
    lines[#lines + 1] = ".TP"
    lines[#lines + 1] = ".B " .. registry.services[service].token_env
    lines[#lines + 1] = "the " .. registry.services[service].help .. " token, unless \\fB\\-\\-token\\-file\\fR is given"
  end
  tagged(lines, ENVIRONMENT)
  lines[#lines + 1] = ".SH FILES"
  tagged(lines, FILES)
  lines[#lines + 1] = ".SH EXIT STATUS"
  lines[#lines + 1] = roff(parser._epilog:match("^(.-)\n\n") or parser._epilog)
  lines[#lines + 1] = ".SH EXAMPLES"
  for _, example in ipairs(EXAMPLES) do
    lines[#lines + 1] = ".PP"
    lines[#lines + 1] = roff(example[1])
    lines[#lines + 1] = ".nf"
    lines[#lines + 1] = ".RS"
    lines[#lines + 1] = roff(example[2]):gsub(",\\:", ",")
    lines[#lines + 1] = ".RE"
    lines[#lines + 1] = ".fi"
  end
  return concat(lines, "\n") .. "\n"
end

return docs
