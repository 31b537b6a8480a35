-- `make bench`: every figure side by side in one markdown table. Figures
-- only, never pass/fail; the goals are printed beside them.
local SECTIONS = { "upload", "validate", "csv", "parallel", "openresty" }

local function seconds(t)
  return t and ("%.3f"):format(t) or ""
end

print("| measurement | median s | min s | max s | notes |")
print("|---|---|---|---|---|")
for _, name in ipairs(SECTIONS) do
  for _, row in ipairs(require("bench." .. name)()) do
    local t = row[2] or {}
    print(("| %s | %s | %s | %s | %s |"):format(row[1], seconds(t[1]), seconds(t[2]), seconds(t[3]), row[3]))
    io.stdout:flush()
  end
end
require("bench.common").release()
