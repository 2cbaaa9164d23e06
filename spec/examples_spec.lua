-- The runnable examples, run as a user would: against the emulator, configured by the environment.
local run = require "spec.support.run"

describe("examples/quickstart.lua", function()
  it("prints a record, five more fetched concurrently, and a not_found error", function()
    local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(run.quote("lua/?.lua;lua/?/init.lua;;"),
      run.quote("build/" .. run.version .. "/?.so;;"))
    local out, status = run.capture(("%s spec/support/with-emulator --tls -- %s examples/quickstart.lua")
      :format(env, run.lua))
    assert.are.equal(0, status, out)
    assert.truthy(out:find("client:   codeartsbuild.client{127.0.0.1:%d+, aksk, AK=EMUA%*%*%*%*}"), out)
    assert.truthy(out:find("record:   #61 %u+ %S+ %x%x%x%x%x%x%x "), out)
    for n = 56, 60 do
      assert.truthy(out:find("\n          #" .. n .. " %u+ "), out)
    end
    assert.truthy(out:find("kind=not_found status=404 code=CB.00062001", 1, true), out)
  end)
end)
