-- `rate` is exact (issue 11): the engine starts requests from a token bucket on a nanosecond clock,
-- so a client capped at R requests a second sends R a second, at every value the option takes.
-- Arrivals are counted by spec/support/arrivals.py, a small server that keeps up with thousands of
-- requests a second (the emulator does not). Tagged `timing`: the memory-check passes, whose
-- clients run many times slower, leave it out.
local cb = require "codeartsbuild"
local run = require "spec.support.run"

--- Starts arrivals.py; returns its URL and a function that stops it.
local function start_arrivals()
  local dir = run.tmpdir()
  local port_file = dir .. "/port"
  local pid = tonumber((run.capture(("(exec python3 spec/support/arrivals.py --port-file %s --parent-pid $PPID "
    .. ">/dev/null 2>&1 </dev/null) & echo $!"):format(run.quote(port_file))):match("%d+")))
  local port
  for _ = 1, 200 do
    port = tonumber(run.read(port_file) or "")
    if port then break end
    os.execute("sleep 0.05")
  end
  assert(port, "arrivals.py did not start")
  return "http://127.0.0.1:" .. port, function()
    os.execute(("kill %d 2>/dev/null; rm -rf %s"):format(pid, run.quote(dir)))
  end
end

describe("#timing the rate cap", function()
  local url, stop, counter

  setup(function()
    url, stop = start_arrivals()
    counter = assert(cb.new{ endpoint = url, token = "counting" })
  end)

  teardown(function()
    counter:close()
    stop()
  end)

  --- Sends `count` requests through a client capped at `rate`; returns the rate they arrived at.
  local function arrival_rate(rate, count)
    assert(counter:get("/__arrivals/reset"))
    local client = assert(cb.new{ endpoint = url, token = "counting", rate = rate, concurrency = 64 })
    for _ = 1, count do assert(client:submit_get("/x")) end
    local done = 0
    for _ = 1, count do -- bounded: each poll returns once a request is done
      for _, entry in ipairs(client:poll()) do
        assert(entry.body, entry.message)
        done = done + 1
      end
      if done == count then break end
    end
    client:close()
    local arrivals = assert(counter:get("/__arrivals"))
    assert.are.equal(count, arrivals.count)
    return (arrivals.count - 1) / (arrivals.last - arrivals.first)
  end

  for _, case in ipairs{ { rate = 5, count = 16 }, { rate = 300, count = 900 }, { rate = 2000, count = 6000 } } do
    it(("sends %d requests a second at rate = %d, within 5%%"):format(case.rate, case.rate), function()
      local measured = arrival_rate(case.rate, case.count)
      assert.is_true(math.abs(measured / case.rate - 1) < 0.05,
        ("%d requests arrived at %.1f a second with rate = %d"):format(case.count, measured, case.rate))
    end)
  end
end)
