-- What each upload endpoint accepts, one declarative table per endpoint, from
-- the public API documentation. csvup.validate checks rows and files against
-- them before anything is sent. Where the documentation is silent, the
-- decision is written next to the table it shapes.
--
-- A schema: columns (name -> type: text, id, unix_seconds, decimal, currency,
-- flag, count, date_or_range, datetime, traffic_source, property, key,
-- property_date; checked in C, see src/check.c), required (names, present and
-- filled), one_of (names, at least one present and filled in each row),
-- unknown ("error": a column not listed is refused; "allow"; "custom": typed
-- as custom), case_insensitive (column names match without regard to case),
-- booleans (how true and false are written for rows).
local schema = {}

local ID_COLUMNS = { "UserId", "ClientId", "Yclid", "PurchaseId" }

-- The values of TrafficSource (first-level traffic sources), in the documentation's order.
schema.TRAFFIC_SOURCES = { "internal", "direct", "referral", "organic", "ad", "saved", "undefined", "email", "social",
  "messenger", "qrcode", "recommend" }

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

-- Yandex's own API tests write the columns in lower case (userid or clientid,
-- key, value): names match without regard to case.
schema.user_params = {
  columns = { UserId = "text", ClientId = "id", Key = "text", Value = "text" },
  required = { "Key", "Value" },
  one_of = { "UserId", "ClientId" },
  unknown = "error",
  case_insensitive = true,
}

-- action = delete_keys: the file may hold only the key.
schema.user_params_delete = {
  columns = schema.user_params.columns,
  required = { "Key" },
  unknown = "error",
  case_insensitive = true,
}

-- The data format page requires create_date_time and at least one of the
-- client columns. Only the documented columns are typed; it does not close the
-- list of optional ones, so other columns are let through. create_date_time:
-- dd.MM.yyyy, dd.MM.yy or yyyy-MM-dd, optionally with " HH:mm" or " HH:mm:ss".
-- The reference's sample has an order without an id: id may be empty.
schema.crm_simple_orders = {
  columns = {
    id = "text", create_date_time = "datetime", client_ids = "text", emails = "text", phones = "text",
    emails_md5 = "text", phones_md5 = "text", client_uniq_id = "text", order_status = "text",
    revenue = "decimal", cost = "decimal",
  },
  required = { "create_date_time" },
  one_of = { "client_ids", "emails", "phones", "emails_md5", "phones_md5" },
  unknown = "allow",
}

-- Custom properties are any names without "$"; system properties are "$" keys.
-- The system keys listed are those the documentation names; the service's
-- list is open, so another "$" column passes with a warning.
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
