-- The README's sections and fenced blocks, as the specs that run them read them.
local files = require "support.files"

local readme = {}

local README = "README.md"

-- The text of the README's "## title" section.
function readme.section(title)
  local text = files.read(README)
  local start = assert(text:find("\n## " .. title .. "\n", 1, true), "the README has no section " .. title)
  local stop = text:find("\n## ", start + 1, true)
  return text:sub(start, stop)
end

-- The one fenced block of a language in a section.
function readme.fenced(title, language)
  local blocks = {}
  for block in readme.section(title):gmatch("\n```" .. language .. "\n(.-\n)```") do
    blocks[#blocks + 1] = block
  end
  assert(#blocks == 1, ("the README's %s section has %d ```%s blocks, not one"):format(title, #blocks, language))
  return blocks[1]
end

return readme
