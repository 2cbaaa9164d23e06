-- The signer against the published SDK-HMAC-SHA256 vectors, and its input checks.
local core = require "codeartsbuild.core"
local cjson = require "cjson"

local function read_vectors()
  -- The project's copy; shared/ holds the original when the checkout sits beside it.
  local path = "../shared/reference/signing-vectors.json"
  local f = io.open(path) or assert(io.open("spec/fixtures/signing-vectors.json"))
  local text = f:read("*a")
  f:close()
  return cjson.decode(text)
end

local vectors = read_vectors()

local function sign(v)
  return core.sign{ method = v.method, path = v.path, query = v.query, headers = v.headers,
                    body = v.body, ak = v.ak, sk = v.sk }
end

local function sha256_hex(s)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("openssl dgst -sha256 -r " .. tmp))
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  return out:match("^(%x+)")
end

describe("core.sign", function()
  it("has five published vectors to check", function()
    assert.are.equal(5, #vectors.vectors)
  end)

  for _, v in ipairs(vectors.vectors) do
    it("reproduces vector " .. v.id, function()
      local authorization, canonical, to_sign, date = sign(v)
      assert.are.equal(v.authorization, authorization)
      assert.are.equal(v.headers["X-Sdk-Date"], date)
      if v.canonical_request then assert.are.equal(v.canonical_request, canonical) end
      if v.string_to_sign then assert.are.equal(v.string_to_sign, to_sign) end
      if v.canonical_request_sha256 then
        assert.are.equal(v.canonical_request_sha256, sha256_hex(canonical))
      end
      if v.payload_sha256 then
        assert.are.equal(v.payload_sha256, canonical:match("([^\n]*)$"))
      end
      -- The string to sign always ends in the hash of the canonical request.
      assert.are.equal(sha256_hex(canonical), to_sign:match("([^\n]*)$"))
    end)
  end

  it("builds the canonical query of the SDK tests", function()
    local cq = vectors.canonical_query
    local _, canonical = core.sign{ path = "/", query = cq.params, ak = "a", sk = "b",
                                    headers = { ["X-Sdk-Date"] = "20200101T000000Z" } }
    local lines = {}
    for line in (canonical .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.are.equal(cq.expected, lines[3])
  end)

  it("accepts the query as a map as well as a list of pairs", function()
    local headers = { ["X-Sdk-Date"] = "20200101T000000Z" }
    local a = core.sign{ path = "/p", query = { { "b", "2" }, { "a", "1" } }, headers = headers, ak = "a", sk = "b" }
    local b = core.sign{ path = "/p", query = { a = 1, b = "2" }, headers = headers, ak = "a", sk = "b" }
    assert.are.equal(a, b)
  end)

  it("signs with the current time when no X-Sdk-Date is given, and signs that header", function()
    local authorization, canonical, _, date = core.sign{ path = "/x", ak = "AK", sk = "SK" }
    assert.truthy(date:match("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ$"))
    assert.truthy(canonical:find("x-sdk-date:" .. date, 1, true))
    assert.truthy(authorization:find("SignedHeaders=x-sdk-date,", 1, true))
    local year = tonumber(date:sub(1, 4))
    assert.are.equal(tonumber(os.date("!%Y")), year)
  end)

  it("changes the signature when the secret key changes", function()
    local v = vectors.vectors[1]
    local other = {}
    for k, val in pairs(v) do other[k] = val end
    other.sk = "AnotherSecretKey"
    assert.are_not.equal(sign(v), sign(other))
  end)

  it("refuses header values that would split the request", function()
    assert.has_error(function()
      core.sign{ path = "/", ak = "a", sk = "b", headers = { ["X-Evil"] = "a\r\nX-Other: b" } }
    end)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.sign("GET /") end)
    assert.has_error(function() core.sign{ path = "/", ak = "a" } end)
    assert.has_error(function() core.sign{ path = "/", ak = "a", sk = "b", query = "a=1" } end)
    assert.has_error(function() core.sign{ path = "/", ak = "a", sk = "b", headers = { ["X-A"] = {} } } end)
  end)
end)
