-- bench/wrk_paths.lua: makes wrk request the benchmark's paths in turn, as the other clients do.
--
--   wrk -t1 -c16 -d3s -s bench/wrk_paths.lua http://127.0.0.1:PORT -- PATHS_FILE TOKEN
--
-- PATHS_FILE holds one request path per line. Every request is formatted once, in init(), so
-- that wrk spends per request only what it spends without a script. The headers are the static
-- ones the token-authenticated client sends. done() prints `WRK {json}` with the totals.
-- luacheck: globals init request done, read_globals wrk

local requests, count, index = {}, 0, 0

function init(args)
  local paths_file, token = args[1], args[2]
  local headers = { ["Accept"] = "application/json", ["X-Auth-Token"] = token }
  for path in io.lines(paths_file) do
    count = count + 1
    requests[count] = wrk.format("GET", path, headers)
  end
  assert(count > 0, "no paths in " .. tostring(paths_file))
end

function request()
  index = index % count + 1
  return requests[index]
end

function done(summary, latency)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"latency_p50_us":%d,"latency_p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
