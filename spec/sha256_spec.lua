-- SHA-256, the content hash that keys the upload journal.
local core = require "csvup.core"
local files = require "support.files"

describe("csvup.core.sha256", function()
  -- FIPS 180-2, appendix B, and the empty message
  local VECTORS = {
    [""] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq =
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    [("a"):rep(1000000)] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  }

  it("matches the FIPS 180-2 examples", function()
    for message, digest in pairs(VECTORS) do
      assert.are.equal(digest, core.sha256(message))
    end
  end)

  it("hashes a file as sha256sum does, across block and chunk edges", function()
    local dir = files.tmpdir()
    for _, size in ipairs { 0, 1, 55, 56, 63, 64, 65, 119, 65535, 65536, 65537, 200001 } do
      local bytes = {}
      for i = 1, size do
        bytes[i] = string.char((i * 7 + size) % 256)
      end
      local path = files.write(dir .. "/f" .. size, table.concat(bytes))
      local p = io.popen("sha256sum " .. path)
      local expected = p:read("l"):match("^%x+")
      p:close()
      local digest, n = core.sha256_file(path)
      assert.are.equal(expected, digest)
      assert.are.equal(size, n)
      assert.are.equal(expected, core.sha256(table.concat(bytes)))
    end
    local none, err = core.sha256_file(dir .. "/missing.csv")
    assert.is_nil(none)
    assert.are.same({ "file_not_found", "input" }, { err.code, err.kind })
    files.remove(dir)
  end)
end)
