-- Streams beside other requests against nginx over TLS (HTTP/1.1 and HTTP/2; the emulator speaks
-- HTTP/1.1 only): a download paused while its owner makes other requests on the same client, and
-- read to its end afterwards, byte for byte. A stream goes on a connection of its own, over
-- HTTP/1.1 (csrc/stream.c says why: libcurl 7.88 left a paused HTTP/2 stream stuck, and sent a
-- request on a stream's HTTP/1.1 connection mid-body).
local cb = require "codeartsbuild"
local emulator = require "spec.support.emulator"
local nginx = require "spec.support.nginx"
local run = require "spec.support.run"

local JOB = "0123456789abcdef0123456789abcdef"
local SIZE = 30 * 1000 * 1000

describe("streams beside other requests (nginx over TLS)", function()
  local certs_dir, certs, server, data

  setup(function()
    assert(nginx.available(), "nginx is not installed (make deps installs nginx-light)")
    certs_dir = run.tmpdir()
    certs = emulator.make_certs(certs_dir)
    server = nginx.start(certs)
    data = server:file("big.bin", SIZE)
  end)

  teardown(function()
    if server then server:stop() end
    if certs_dir then os.execute("rm -rf " .. run.quote(certs_dir)) end
  end)

  for _, protocol in ipairs{ "h2", "h1" } do
    it(("a paused download waits aside while records and walks go by (port %s)"):format(protocol), function()
      local client = assert(cb.new{ endpoint = "https://127.0.0.1:" .. server[protocol], token = "a-token",
        ca_file = certs.ca, concurrency = 16 })
      server:log()
      -- the first request of the client: it tries the credentials alone, and says they work as soon
      -- as the file begins, not at its last byte (the requests below would wait for ever)
      local id = assert(client:submit_get("/files/big.bin", nil, { stream = true }))
      local pieces = { assert(client:read(id)) }
      for n = 1, 10 do assert.are.equal(n, assert(client:record_info(JOB, n)).buildNo) end
      local recs, failures = client:fetch(JOB, { from = 1, to = 300 }, { concurrency = 16 })
      assert.are.equal(300, #recs)
      assert.are.equal(0, #failures)
      for _ = 1, 20 do pieces[#pieces + 1] = assert(client:read(id)) end
      recs = client:fetch(JOB, { from = 301, to = 600 }, { concurrency = 16 })
      assert.are.equal(300, #recs)
      local entry
      for _ = 1, 10000 do
        local piece = client:read(id)
        if type(piece) ~= "string" then entry = piece break end
        pieces[#pieces + 1] = piece
      end
      assert.are.equal(SIZE, entry.bytes)
      assert.is_true(table.concat(pieces) == data)
      client:close()
      local seen = nginx.connections(server:wait_log(611))
      if protocol == "h2" then
        -- the records as streams on one HTTP/2 connection, the file on an HTTP/1.1 one of its own
        assert.are.same({ ["HTTP/2.0"] = 610, ["HTTP/1.1"] = 1 }, seen.protocols)
      else
        assert.are.same({ ["HTTP/1.1"] = 611 }, seen.protocols)
      end
    end)
  end
end)
