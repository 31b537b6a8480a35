-- What each upload endpoint accepts, one declarative table per endpoint, from
-- the public API documentation. csvup.validate checks rows and files against
-- them before anything is sent. Where the documentation is silent, the
-- decision is written next to the table it shapes.
--
-- A schema: columns (name -> type: text, id, unix_seconds, decimal, currency,
-- flag, count, duration, date_or_range, datetime, email, traffic_source,
-- property, key, property_date; checked in C, see src/check.c), required (names, present and
-- filled), one_of (names, at least one present and filled in each row),
-- unknown ("error": a column not listed is refused; "warn": sent, with a
-- warning; "allow"; "custom": typed as custom), names (how a header's names
-- match the columns: a key of schema.NAMES; nil: exactly), booleans (how
-- true and false are written for rows). Metrica's values are checked
-- trimmed of the spaces and tabs around them, as the service reads them
-- (its API tests pass padded values); the file is sent as it is.
local schema = {}

local function lower_trimmed(name)
  -- the spaces, tabs, quotes and brackets around the name, and spaces and tabs inside it
  return (name:gsub("^[%s\"'`%[%]%(%){}]+", ""):gsub("[%s\"'`%[%]%(%){}]+$", ""):gsub("[ \t]+", ""):lower())
end

-- The key a header's name is matched by, for each way of matching names.
schema.NAMES = {
  -- Yandex's offline-conversion API tests pass ` ClientId `, `'Price'`, `[Target]` and `Date Time`:
  -- case, the spaces, quotes and brackets around a name and the spaces inside it do not count.
  loose = lower_trimmed,
  -- Yandex's user-parameter tests read "\tClie  --__ntid " as ClientId: the server keeps only the letters.
  letters = function(name)
    return (name:gsub("[^%a]+", ""):lower())
  end,
}

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
  names = "loose",
}

schema.calls = {
  columns = {
    UserId = "text", ClientId = "id", Yclid = "id", DateTime = "unix_seconds", StaticCall = "flag",
    Price = "decimal", Currency = "currency", PhoneNumber = "text", TalkDuration = "duration",
    HoldDuration = "duration", CallMissed = "flag", Tag = "text", FirstTimeCaller = "flag", URL = "text",
    CallTrackerURL = "text",
  },
  required = { "DateTime" },
  one_of = { "UserId", "ClientId", "Yclid" },
  unknown = "error",
  names = "loose",
  booleans = { "1", "0" },
}

-- Offline conversions of type CALLS: the calls guide's columns, no Target.
schema.offline_conversions_calls = schema.calls

-- Offline conversions of type CHATS: the chats guide takes a row without any
-- id as an unattributed event, so no id is required. The guide's further
-- columns (the messenger, whether it was answered, a tag) are not typed
-- here: other columns are sent as they are.
schema.offline_conversions_chats = {
  columns = {
    UserId = "text", ClientId = "id", Yclid = "id", PurchaseId = "text", DateTime = "unix_seconds",
    Price = "decimal", Currency = "currency",
  },
  required = { "DateTime" },
  unknown = "allow",
  names = "loose",
}

-- The documented window (the last 360 days to 30 days ahead) is not checked
-- here: it moves with the calendar, and the API says which dates it refused.
-- A column the service does not know is dropped by it, not refused (its
-- tests pass Date,UTMSource,Trash,Expenses, and OWOX exports full of ym:*
-- columns): sent, with a warning.
schema.expenses = {
  columns = {
    Date = "date_or_range", Expenses = "decimal", UTMSource = "text", UTMMedium = "text",
    UTMCampaign = "text", UTMTerm = "text", UTMContent = "text", TrafficSource = "traffic_source",
    TrafficSourceDetail = "text", Currency = "currency", Clicks = "count",
  },
  required = { "Date", "Expenses" },
  one_of = { "UTMSource", "TrafficSource" },
  unknown = "warn",
  names = "loose",
}

schema.expenses_delete = {
  columns = {
    Date = "date_or_range", UTMSource = "text", UTMMedium = "text", UTMCampaign = "text", UTMTerm = "text",
    UTMContent = "text", TrafficSource = "traffic_source", TrafficSourceDetail = "text",
  },
  required = { "Date" },
  unknown = "warn",
  names = "loose",
}

-- Yandex's own API tests write the columns in lower case (userid or clientid,
-- key, value), and the server reads a name by its letters alone.
schema.user_params = {
  columns = { UserId = "text", ClientId = "id", Key = "text", Value = "text" },
  required = { "Key", "Value" },
  one_of = { "UserId", "ClientId" },
  unknown = "error",
  names = "letters",
}

-- action = delete_keys: the file may hold only the key.
schema.user_params_delete = {
  columns = schema.user_params.columns,
  required = { "Key" },
  unknown = "error",
  names = "letters",
}

-- The data format page requires create_date_time and at least one of the
-- client columns. Only the documented columns are typed; it does not close the
-- list of optional ones, so other columns are let through. create_date_time:
-- dd.MM.yyyy, dd.MM.yy or yyyy-MM-dd, optionally with " HH:mm" or " HH:mm:ss".
-- The reference's sample has an order without an id: id may be empty.
-- Yandex's SimpleOrderValidationTest refuses dates before 1970 and
-- upper-case letters in emails.
schema.crm_simple_orders = {
  columns = {
    id = "text", create_date_time = "datetime", client_ids = "text", emails = "email", phones = "text",
    emails_md5 = "text", phones_md5 = "text", client_uniq_id = "text", order_status = "text",
    revenue = "decimal", cost = "decimal",
  },
  required = { "create_date_time" },
  one_of = { "client_ids", "emails", "phones", "emails_md5", "phones_md5" },
  unknown = "allow",
  names = "loose",
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
