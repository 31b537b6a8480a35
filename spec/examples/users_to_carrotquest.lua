-- A users table dump -> Carrot quest user properties, tagged.
--
-- Reads a tab-separated dump (psql's \copy ... TO STDOUT), maps its columns to
-- Carrot quest properties ($user_id, $email, $name, and two custom ones),
-- tidies the email (Carrot quest matches it exactly), and imports everyone
-- with the tags "imported" and, for VIPs, "vip".
--
--   CSVUP_CARROTQUEST_TOKEN=... lua5.4 users_to_carrotquest.lua users.tsv
local csvup = require "csvup"

local path = arg[1] or "spec/fixtures/users_dump.tsv"

local function fail(err)
  io.stderr:write("users_to_carrotquest: ", tostring(err), "\n")
  os.exit(1)
end

local everyone, vips = {}, {}
local rows, err = csvup.csv.rows(path, { delimiter = "\t" })
if not rows then
  fail(err)
end
for user in rows do
  local record = {
    ["$user_id"] = user.id,
    ["$email"] = user.email:match("^%s*(.-)%s*$"), -- stray spaces would make a second user
    ["$name"] = user.full_name,
    plan = user.plan,
    signed_up = user.signed_up,
  }
  everyone[#everyone + 1] = record
  if user.is_vip == "t" then
    vips[#vips + 1] = record
  end
end

local carrotquest = assert(csvup.carrotquest.new {
  token = os.getenv("CSVUP_CARROTQUEST_TOKEN"), base_url = os.getenv("CSVUP_BASE_URL"),
})
for _, batch in ipairs { { users = everyone, tags = { "imported" } }, { users = vips, tags = { "vip" } } } do
  local result
  result, err = carrotquest:import_users {
    rows = batch.users, columns = { "$user_id", "$email", "$name", "plan", "signed_up" }, tags = batch.tags,
  }
  if not result then
    fail(err)
  end
  local refused = 0
  for line, message in pairs(result.row_errors) do
    refused = refused + 1
    io.stderr:write(("line %s refused: %s\n"):format(line, message))
  end
  print(("%s: %d users, %d updates planned, %d refused"):format(table.concat(batch.tags, ","), #batch.users,
    result.updates_planned, refused))
end
