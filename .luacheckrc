-- luacheck, run by `make test`
std = "lua54"
max_line_length = false
files["spec"] = { std = "+busted" }
