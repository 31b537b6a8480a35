-- What each upload endpoint accepts, one declarative table per endpoint, from
-- the public API documentation. csvup.validate checks rows and files against
-- them before anything is sent. Where the documentation is silent, the
-- decision is written next to the table it shapes.
--
-- A schema: columns (name -> type, see csvup.validate), required (names),
-- one_of (names, at least one present and filled in each row), unknown
-- ("error": a column not listed is refused; "allow"), booleans (how true and
-- false are written for rows).
local schema = {}

local ID_COLUMNS = { "UserId", "ClientId", "Yclid", "PurchaseId" }

-- The values of TrafficSource (first-level traffic sources), as a set.
schema.TRAFFIC_SOURCES = {}
for s in ("internal direct referral organic ad saved undefined email social messenger qrcode recommend"):gmatch("%S+") do
  schema.TRAFFIC_SOURCES[s] = true
end

schema.offline_conversions = {
  columns = {
    UserId = "text", ClientId = "id", Yclid = "id", PurchaseId = "text",
    Target = "text", DateTime = "unix_seconds", Price = "decimal", Currency = "currency",
  },
  required = { "Target", "DateTime" },
  one_of = ID_COLUMNS,
  unknown = "error",
}

schema.calls = {
  columns = {
    UserId = "text", ClientId = "id", Yclid = "id", DateTime = "unix_seconds", StaticCall = "flag",
    Price = "decimal", Currency = "currency", PhoneNumber = "text", TalkDuration = "count",
    HoldDuration = "count", CallMissed = "flag", Tag = "text", FirstTimeCaller = "flag", URL = "text",
    CallTrackerURL = "text",
  },
  required = { "DateTime" },
  one_of = { "UserId", "ClientId", "Yclid" },
  unknown = "error",
  booleans = { "1", "0" },
}

-- The documented window (the last 360 days to 30 days ahead) is not checked
-- here: it moves with the calendar, and the API says which dates it refused.
schema.expenses = {
  columns = {
    Date = "date_or_range", Expenses = "decimal", UTMSource = "text", UTMMedium = "text",
    UTMCampaign = "text", UTMTerm = "text", UTMContent = "text", TrafficSource = "traffic_source",
    TrafficSourceDetail = "text", Currency = "currency", Clicks = "count",
  },
  required = { "Date", "Expenses" },
  one_of = { "UTMSource", "TrafficSource" },
  unknown = "error",
}

schema.expenses_delete = {
  columns = {
    Date = "date_or_range", UTMSource = "text", UTMMedium = "text", UTMCampaign = "text", UTMTerm = "text",
    UTMContent = "text", TrafficSource = "traffic_source", TrafficSourceDetail = "text",
  },
  required = { "Date" },
  unknown = "error",
}

-- The column names are not confirmed by the documentation; these are the ones
-- clients send. Value is absent from delete_keys uploads.
schema.user_params = {
  columns = { UserId = "text", ClientId = "id", Key = "text", Value = "text" },
  required = { "Key" },
  one_of = { "UserId", "ClientId" },
  unknown = "error",
}

-- Only the documented columns are typed; the documentation does not close the
-- list of optional ones, so other columns are let through.
schema.crm_simple_orders = {
  columns = {
    id = "text", create_date_time = "datetime", client_ids = "text", emails = "text", phones = "text",
    emails_md5 = "text", phones_md5 = "text", client_uniq_id = "text", order_status = "text",
    revenue = "decimal", cost = "decimal",
  },
  required = { "id", "create_date_time" },
  one_of = { "client_ids", "emails", "phones", "emails_md5", "phones_md5" },
  unknown = "allow",
}

-- Custom properties are any names without "$"; system properties are "$" keys.
-- The system keys listed are those the documentation names: extend the list
-- here when a real upload needs another.
schema.carrotquest_users = {
  columns = {
    ["$user_id"] = "key", ["$email"] = "key", ["$name"] = "property", ["$phone"] = "property",
    ["$last_seen"] = "property_date",
  },
  custom = "property", -- the type of a column not listed; its name must not start with "$"
  merge_key = true,    -- the merge_field column is required, its values filled and trimmed
  unknown = "custom",
}

return schema
