--- Writes the seed corpora of the fuzz harnesses into spec/fuzz/corpus/<harness>/ from real
-- material: the emulator's responses (bodies and header blocks, both field spellings, every API
-- version), error bodies of each shape the client understands, and the published signing
-- vectors. Run from the repository root when the harness input formats change:
--
--     lua5.4 spec/fuzz/make_seeds.lua
--
-- The files it writes are kept in git; libFuzzer only reads them (make fuzz).
package.path = "./?.lua;" .. package.path
local emulator = require "spec.support.emulator"
local cjson = require "cjson"

local ROOT = "spec/fuzz/corpus/"

local function write(harness, name, data)
  os.execute("mkdir -p " .. ROOT .. harness)
  local f = assert(io.open(ROOT .. harness .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

local function curl(emu, path)
  local p = assert(io.popen(("curl -s -i -H 'X-Auth-Token: %s' -H 'X-Project-Id: %s' '%s%s'")
    :format(emu.token, emu.project_id, emu.url, path)))
  local out = p:read("*a")
  p:close()
  local head, body = out:match("^(.-\r\n)\r\n(.*)$")
  return head, body
end

-- fuzz_record: bodies. ------------------------------------------------------------------------
local job = emulator.job_ids.reference
for _, spelling in ipairs({ "camel", "snake" }) do
  local emu = emulator.start{ spelling = spelling }
  local ok, err = pcall(function()
    for _, api in ipairs({ "v3", "v4", "v1" }) do
      local path = api == "v1" and ("/v1/record/%s/61/record-info"):format(job)
        or ("/%s/jobs/%s/61/record-info"):format(api, job)
      local head, body = curl(emu, path)
      write("fuzz_record", ("record-%s-%s.json"):format(api, spelling), body)
      if spelling == "camel" and api == "v3" then
        -- The header block too, in fuzz_headers' format (8 parameter bytes, then lines).
        write("fuzz_headers", "emulator-200.txt", "\16\0\3\5\0\16\0\0" .. head:gsub("\r\n", "\n"):gsub("\n", "\r\n"))
      end
    end
    local _, missing = curl(emu, ("/v3/jobs/%s/999999/record-info"):format(job))
    write("fuzz_record", "error-not-found.json", missing)
    local head, gone = curl(emu, "/v9/nothing")
    write("fuzz_record", "error-apigw.json", gone)
    write("fuzz_headers", "emulator-404.txt", "\0\200\1\1\0\1\0\1" .. head)
  end)
  emu:stop()
  assert(ok, err)
end

-- Error bodies of every shape record.c reads, and the API's own failure envelopes.
local errors = {
  { error_code = "CB.00062001", error_msg = "build record not found" },
  { errorCode = "APIGW.0301", errorMsg = "Incorrect IAM authentication information" },
  { code = "CB.00060500", message = "Internal error" },
  { err_code = "CB.00060200", message = "invalid parameter" },
  { error = { code = "APIGW.0308", message = "The throttling threshold has been reached" } },
  { error = { error_code = "CB.00062001", error_msg = "nested" } },
  { success = false, err_code = "CB.00060500", message = "Internal error", result = cjson.null },
  { status = "fail", error = { error_code = "CB.00060500", error_msg = "Internal error" }, result = cjson.null },
}
for i, body in ipairs(errors) do
  write("fuzz_record", ("error-shape-%d.json"):format(i), cjson.encode(body))
end
-- Values the hostile spec sends on purpose.
write("fuzz_record", "hostile-numbers.json",
  '{"success":true,"result":{"buildNo":1e999,"duration":-1e999,"repoId":1e300,"usePrivateSlave":2147483648}}')
write("fuzz_record", "hostile-types.json",
  '{"success":true,"result":{"branch":{"a":[1,2]},"buildNo":"61","duration":"5e3","commit":true,"tag":[]}}')
write("fuzz_record", "hostile-escapes.json",
  '{"success":true,"result":{"branch":"\\u0000\\u001f\\ud83d\\ude00","errMsg":"\\"\\\\"}}')

-- fuzz_headers: single header lines and Retry-After forms. ----------------------------------
local headers = {
  ["retry-after-seconds.txt"] = "\16\0\2\5\0\16\0\0HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n\r\n",
  ["retry-after-date.txt"] = "\16\0\2\5\0\16\0\0HTTP/1.1 503 Service Unavailable\r\n"
    .. "Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
  ["retry-after-future.txt"] = "\16\0\1\5\1\0\200\0Retry-After: Fri, 31 Dec 9999 23:59:59 GMT\r\n",
  ["request-id-odd.txt"] = "\0\10\0\0\0\0\0\0X-Request-Id:  \"quoted\\\" \t id \255\r\nx-request-id:\r\n",
  ["two-responses.txt"] = "\0\10\0\0\0\0\0\0HTTP/1.1 100 Continue\r\nX-Request-Id: first\r\n\r\n"
    .. "HTTP/1.1 200 OK\r\nX-Request-Id: second\r\nRetry-After: 5\r\n\r\n",
  -- The whole input is also tried as an expires_at: its first 8 bytes double as the parameters.
  ["expires-at.txt"] = "2024-01-02T03:04:05.000000Z",
  ["subject-token.txt"] = "\16\0\0\0\0\0\0\0HTTP/1.1 201 Created\r\n"
    .. "X-Subject-Token:  MIIEXAYJKoZIhvcNAQcCoIIETTCCBEkCAQEx \r\nx-subject-token: bad token\r\n\r\n",
}
for name, data in pairs(headers) do write("fuzz_headers", name, data) end

-- fuzz_sign: the published vectors, in the harness's line format. ----------------------------
local f = assert(io.open("spec/fixtures/signing-vectors.json"))
local vectors = cjson.decode(f:read("*a"))
f:close()
for _, v in ipairs(vectors.vectors) do
  local query = {}
  for _, pair in ipairs(v.query or {}) do query[#query + 1] = pair[1] .. "=" .. pair[2] end
  local lines = { v.method, v.path, table.concat(query, "&"), v.ak, v.sk }
  local names = {}
  for name in pairs(v.headers or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. v.headers[name] end
  write("fuzz_sign", "vector-" .. v.id .. ".txt", table.concat(lines, "\n") .. "\n\n" .. (v.body or ""))
end
-- What the client itself signs: a record-info GET with temporary credentials.
write("fuzz_sign", "client-record-info.txt", table.concat({
  "GET", "/v3/jobs/" .. job .. "/61/record-info", "", "EMUTMPAKZX8GH2KLP0QWE", "emuTempSKa8f7e6d5c4b3a29180fedcba98765",
  "host: 127.0.0.1:8443", "x-sdk-date: 20240102T030405Z", "x-project-id: 0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b",
  "x-security-token: emuSecurityTokenQ29kZUFydHNCdWlsZFRlbXA", "", "" }, "\n"))
write("fuzz_sign", "canonical-query.txt", "GET\n/a%2Fb/%7Ec/\n?b=2&a=1\nAK\nSK\nHost: h\n\n")
print("seeds written under " .. ROOT)
