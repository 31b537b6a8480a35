-- csvup: upload CSV data to Yandex Metrica and Carrot quest.
local core = require "csvup.core"

return {
  VERSION = core.VERSION,
  csv = require "csvup.csv",
  metrika = require "csvup.metrika",
  carrotquest = require "csvup.carrotquest",
  batch = require("csvup.batch").batch,
  errors = require "csvup.errors",
}
