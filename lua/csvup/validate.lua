-- Checks rows and CSV files against csvup.schema before upload: every
-- problem gets its line (or row), column and reason; up to MAX_PROBLEMS are
-- listed in one error, and nothing is sent. The header is checked here; the
-- values of every row are checked in C (core.check_rows, reader:check), by
-- the column types below.
local core = require "csvup.core"
local csv = require "csvup.csv"
local schemas = require "csvup.schema"

local concat, format, min = table.concat, string.format, math.min
local ipairs, pairs, tostring, setmetatable, error =
  ipairs, pairs, tostring, setmetatable, error
local os_time = os.time

local validate = {}

local MAX_PROBLEMS = 20

-- ISO 4217 currency codes in use.
local CURRENCIES = [[AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
  BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
  GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
  LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
  PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
  TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL]]
CURRENCIES = CURRENCIES:gsub("%s+", " ")

local TRAFFIC_SOURCES = concat(schemas.TRAFFIC_SOURCES, " ")

-- Problems -------------------------------------------------------------------------

local Problems = {}
Problems.__index = Problems

-- Invalid UTF-8 is most often a Russian-locale Excel export: say how to read one.
local function with_encoding_hint(err)
  if err.code == "invalid_utf8" then
    err.message = err.message .. ": a Windows-1251 export? pass --encoding cp1251 (encoding = \"cp1251\")"
  end
  return err
end

-- When a one-column header holds another delimiter, what to pass instead.
local function other_delimiter(name, delimiter)
  for _, d in ipairs { ";", "\t", "|", "," } do
    if d ~= delimiter and name:find(d, 1, true) then
      local shown = d == "\t" and "\\t" or d
      return format("this file looks %s-separated: pass --delimiter '%s' (delimiter = \"%s\")", d == "\t" and "tab"
        or d, shown, shown)
    end
  end
end

-- warnings: a list the warnings are appended to too, or nil.
local function problems(where, warnings)
  return setmetatable({ list = {}, total = 0, where = where, sink = warnings }, Problems)
end

function Problems:add(line, column, reason, row)
  self.total = self.total + 1
  if #self.list < MAX_PROBLEMS then
    self.list[#self.list + 1] = { line = line, row = row, column = column, reason = reason }
  end
end

-- A note that does not fail the check.
function Problems:warn(line, column, reason)
  local warning = { line = line, column = column, reason = reason }
  self.warnings = self.warnings or {}
  self.warnings[#self.warnings + 1] = warning
  if self.sink then
    self.sink[#self.sink + 1] = warning
  end
end

local function describe(p)
  local place = p.row and ("row " .. p.row) or ("line " .. p.line)
  return format("%s, %s: %s", place, p.column or "header", p.reason)
end

-- true (and the warnings, if any) when there was no problem, else nil and the error listing them.
function Problems:result()
  if self.total == 0 then
    return true, self.warnings
  end
  local shown = {}
  for i = 1, min(3, #self.list) do
    shown[i] = describe(self.list[i])
  end
  local more = self.total > #shown and format(" (and %d more)", self.total - #shown) or ""
  return nil, core.error {
    code = "validation_failed", kind = "input", file = self.file, problems = self.list, problem_count = self.total,
    warnings = self.warnings,
    hint = self.hint,
    message = format("%d problem%s in %s: %s%s%s", self.total, self.total == 1 and "" or "s", self.where,
      concat(shown, "; "), more, self.hint and "; " .. self.hint or ""),
  }
end

-- The header ---------------------------------------------------------------------

local function lookup(name)
  local spec = schemas[name]
  if not spec then
    error("csvup.validate: no schema named " .. tostring(name), 3)
  end
  return spec
end

-- The schema's name for a column name, or nil when the schema does not list
-- it; matched as the service matches it (schema.names).
local function canonical(spec, name)
  if spec.columns[name] or not spec.names then
    return spec.columns[name] and name
  end
  local key = schemas.NAMES[spec.names]
  local wanted = key(name)
  for known in pairs(spec.columns) do
    if key(known) == wanted then
      return known
    end
  end
end

local function set_of(list)
  local set = {}
  for _, name in ipairs(list or {}) do
    set[name] = true
  end
  return set
end

-- Checks the column names; the plan of the value checks for core.check_rows and reader:check.
local function compile(spec, names, ctx, found)
  local present, columns = {}, {}
  local required_list = {}
  for i, name in ipairs(spec.required or {}) do
    required_list[i] = name
  end
  if spec.merge_key and ctx.merge_field then
    required_list[#required_list + 1] = ctx.merge_field
  end
  local required, one_of = set_of(required_list), set_of(spec.one_of)
  for i, name in ipairs(names) do
    name = tostring(name)
    local known = canonical(spec, name)
    -- a name matched as the service matches it may be padded, which the service trims; any other must be tidy
    local tidy = spec.names and name:match("^[ \t]*(.-)[ \t]*$") or name
    local reason = not (known and spec.names) and core.check_value("name", tidy)
    if present[known or name] then
      found:add(1, name, "the column appears twice in the header")
    elseif reason then
      found:add(1, name, "the column name " .. reason)
    elseif not known and spec.unknown == "error" then
      found:add(1, name, "is not a column this endpoint knows")
    elseif not known and spec.unknown == "warn" then
      found:warn(1, name, "is not a column the service knows: it is sent, and the service drops it")
    elseif not known and spec.unknown == "custom" and name:sub(1, 1) == "$" then
      found:warn(1, name, "is not a system property csvup knows: check its spelling in the service's list")
    end
    present[known or name] = true
    columns[i] = { type = spec.columns[known] or (spec.unknown ~= "error" and spec.custom) or nil,
      required = required[known or name], one_of = one_of[known] }
  end
  for _, name in ipairs(required_list) do
    if not present[name] then
      found:add(1, name, "the required column is missing")
    end
  end
  local any = not spec.one_of
  for name in pairs(one_of) do
    any = any or present[name]
  end
  if not any then
    found:add(1, concat(spec.one_of, "|"), "one of these columns is required")
  end
  return {
    columns = columns, one_of = spec.one_of and any and concat(spec.one_of, "|") or nil,
    currencies = CURRENCIES, traffic_sources = TRAFFIC_SOURCES, now = os_time(),
    problems = found.list, total = found.total, max = MAX_PROBLEMS,
  }
end

-- Checks -------------------------------------------------------------------------

-- validate.rows(schema_name, rows, columns?, ctx?) -> true[, warnings] | nil, err
-- ctx.merge_field names the Carrot quest merge column.
function validate.rows(name, rows, columns, ctx)
  local check = validate.batches(name, columns or csv.columns(rows), ctx)
  check(rows)
  return check()
end

-- validate.batches(schema_name, columns, ctx?) -> check: check(rows) checks
-- the next batch of a stream of rows (numbered on from the last batch),
-- check() gives the result of them all: true[, warnings] | nil, err.
function validate.batches(name, columns, ctx)
  local spec = lookup(name)
  ctx = ctx or {}
  local found = problems("the rows", ctx.warnings)
  local plan = compile(spec, columns, ctx, found)
  local before = 0
  return function(rows)
    if not rows then
      return found:result()
    end
    plan.total = found.total
    found.total = core.check_rows(plan, rows, columns, before)
    before = before + #rows
  end
end

-- The reader of a file past its header, the plan of its values and the
-- header's problems | nil, err. warnings: the list the header's warnings go to, or nil;
-- hash: whether the reader hashes what it reads (opts.digest wants it).
local function open_file(name, path, opts, warnings, hash)
  local spec = lookup(name)
  local reader, header = core.csv_reader(opts.source or path, { delimiter = opts.delimiter, utf8 = true, regular = true,
    sha256 = hash, encoding = opts.encoding, measure = opts.measure })
  if not reader then
    return nil, with_encoding_hint(header)
  end
  local found = problems(path, warnings)
  found.file = path
  local plan = compile(spec, header, opts, found)
  found.hint = found.total > 0 and #header == 1 and other_delimiter(header[1], opts.delimiter or ",") or nil
  return reader, plan, found
end

-- validate.file(schema_name, path, { level?, delimiter?, encoding?, merge_field?, digest?, warnings?, source? })
--   -> true[, warnings] | nil, err; encoding: "utf-8" (the default) or "cp1251";
-- source: the file as opened (a csvup.file), read instead of path.
-- warnings (here, in validate.rows and validate.plan): a list that gets the
-- warnings too, for the result of the upload the check is for.
-- digest: a table that gets the file's sha256 and size, hashed as it is read.
-- measure: a delimiter; when every record was read, opts.measured gets the
-- bytes of the file converted to it (core.recoder's size), from the same pass.
-- level "full" (the default): the header and every value of every row, in one
-- pass in C; "header": the header and a UTF-8 scan; false: nothing.
function validate.file(name, path, opts)
  opts = opts or {}
  local level = opts.level
  if level == nil then
    level = "full"
  end
  if level == false then
    return true
  elseif level ~= "full" and level ~= "header" then
    error('csvup.validate: level must be "full", "header" or false', 2)
  end
  local reader, plan, found = open_file(name, path, opts, opts.warnings, opts.digest ~= nil)
  if not reader then
    return nil, plan
  end
  local total, err = found.total, nil
  if level == "full" and found.total == 0 then
    total, err = reader:check(plan)
  end
  if total and opts.measure then
    opts.measured = reader:measured()
  end
  if total and opts.digest then
    local size
    opts.digest.sha256, size = reader:sha256()
    if opts.digest.sha256 then
      opts.digest.size = size
    else
      total, err = nil, size
    end
  end
  reader:close()
  if total and level == "header" and opts.encoding ~= "cp1251" then
    total, err = core.utf8_check_file(opts.source or path)
    total = total and found.total
  end
  if not total then
    return nil, with_encoding_hint(err)
  end
  found.total = total
  return found:result()
end

-- validate.plan(schema_name, path, { delimiter?, merge_field?, source?, warnings? }) -> plan | nil, err:
-- the header checked now, and the plan of its values, for an upload that
-- checks the rest of the file in C as it sends it (its "check" stage) and stops
-- before the end of its body at the first record that fails. validate.file
-- then tells every problem. source: the file as opened (a csvup.file), read
-- instead of path.
function validate.plan(name, path, opts)
  local reader, plan, found = open_file(name, path, opts, opts.warnings, false)
  if not reader then
    return nil, plan
  end
  reader:close()
  local ok, err = found:result()
  if not ok then
    return nil, err
  end
  return plan
end

return validate
