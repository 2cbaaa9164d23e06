-- Signing a request as the Huawei Cloud SDKs do (SDK-HMAC-SHA256), without sending it: to see
-- what the client signs, or to call another Huawei Cloud API with the same keys.
--
--   lua5.4 examples/sign.lua
--
-- Needs no network and no credentials: the keys below are made up, and X-Sdk-Date is fixed so
-- that the output is always the same.
local cb = require "codeartsbuild"

local authorization, canonical, string_to_sign, date = cb.sign{
  method = "GET",
  path = "/v3/jobs/cb5fa20de5fd4cf8be681d4bd6fdd2f6/61/record-info",
  query = { lang = "en" },
  headers = {
    Host = "cloudbuild-ext.cn-north-4.myhuaweicloud.com",
    ["X-Sdk-Date"] = "20240101T000000Z",
    ["X-Project-Id"] = "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b",
  },
  ak = "EXAMPLEAKEXAMPLEAKEX",
  sk = "exampleSKexampleSKexampleSKexampleSK0000",
}

print("date:           " .. date)
print("canonical request:")
for line in (canonical .. "\n"):gmatch("([^\n]*)\n") do print("  " .. line) end
print("string to sign:")
for line in (string_to_sign .. "\n"):gmatch("([^\n]*)\n") do print("  " .. line) end
print("Authorization:  " .. authorization)
