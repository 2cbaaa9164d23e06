-- Connections against nginx over TLS (the emulator speaks HTTP/1.1 only): a walk's requests go
-- as streams on one connection where the server offers HTTP/2; over HTTP/1.1 a walk keeps at
-- most `concurrency` connections from start to end, and those after the first can resume its
-- TLS session. What each costs at a distance is in bench/RESULTS.md ("Distance").
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local nginx = require "spec.support.nginx"
local run = require "spec.support.run"

local JOB = "0123456789abcdef0123456789abcdef"

local function walk(client, count, concurrency)
  local recs, failures = assert(client:fetch(JOB, { from = 1, to = count }, { concurrency = concurrency }))
  assert.are.equal(0, #failures)
  assert.are.equal(count, #recs)
  for i, rec in ipairs(recs) do assert.are.equal(i, rec.buildNo) end
end

describe("connections (nginx over TLS)", function()
  local certs_dir, certs, server

  setup(function()
    assert(nginx.available(), "nginx is not installed (make deps installs nginx-light)")
    certs_dir = run.tmpdir()
    certs = emulator.make_certs(certs_dir)
    server = nginx.start(certs)
  end)

  teardown(function()
    if server then server:stop() end
    if certs_dir then os.execute("rm -rf " .. run.quote(certs_dir)) end
  end)

  local function client_for(port, concurrency)
    return assert(cb.new{ endpoint = "https://127.0.0.1:" .. port, token = "a-token", ca_file = certs.ca,
      concurrency = concurrency })
  end

  it("sends a walk's requests as streams on one HTTP/2 connection", function()
    server:log()
    local client = client_for(server.h2, 16)
    walk(client, 200, 16)
    client:close()
    local seen = nginx.connections(server:wait_log(200))
    assert.are.equal(1, seen.count)
    assert.are.same({ ["HTTP/2.0"] = 200 }, seen.protocols)
  end)

  it("keeps at most `concurrency` HTTP/1.1 connections through a walk, and resumes TLS sessions", function()
    server:log()
    local client = client_for(server.h1, 8)
    walk(client, 400, 8)
    walk(client, 100, 8) -- a second walk on the same client opens nothing new
    client:close()
    local seen = nginx.connections(server:wait_log(500))
    assert.are.same({ ["HTTP/1.1"] = 500 }, seen.protocols)
    assert.is_true(seen.count >= 1 and seen.count <= 8, seen.count .. " connections")
    -- On a loaded machine, with nginx slow to finish handshakes, libcurl 7.88 may run a walk's
    -- requests one after another on the first connection (the curl CLI's --parallel does the same;
    -- README, Known limits). When it opens more, the first connection's session, once its answer
    -- has come, is offered by those opened after it (on an idle machine all of them resume).
    if seen.count > 1 then
      assert.is_true(seen.resumed >= 1, seen.resumed .. " of " .. seen.count .. " connections resumed")
    end
  end)
end)
