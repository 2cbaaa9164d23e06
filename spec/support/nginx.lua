--- nginx (Debian's nginx-light) over TLS on 127.0.0.1, for what the emulator cannot play: HTTP/2.
-- Two ports on one server: `h1`, whose ALPN offers http/1.1 only, and `h2`, which offers h2 too.
-- Every build number of any job answers the v1 record-info path with a small record whose
-- buildNo is the number asked for; Server:file(name, bytes) serves a file under /files/. The
-- access log says, per request, the connection's serial number, whether its TLS session was
-- resumed ("r") or not ("."), and the protocol.
--
--     local server = nginx.start(certs)   -- certs from emulator.make_certs
--     ... server.h1, server.h2 (ports), server:log() -> { {connection =, resumed =, protocol =}, ... }
--     server:stop()
local run = require "spec.support.run"

local M = {}

local CONFIG = [[
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 256; }
http {
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp;
    fastcgi_temp_path %s/tmp;
    uwsgi_temp_path %s/tmp;
    scgi_temp_path %s/tmp;
    log_format cb '$connection $ssl_session_reused $server_protocol $status';
    access_log %s/access.log cb;
    server {
        listen 127.0.0.1:%d ssl;
        listen 127.0.0.1:%d ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets on;
        default_type application/json;
        location ~ "^/v1/record/[0-9a-f]{32}/(?<bn>[1-9][0-9]{0,9})/record-info$" {
            return 200 '{"status": "success", "error": null, "result": {"buildNo": $bn, "status": "SUCCESS"}}';
        }
        location /files/ { root %s; default_type application/octet-stream; }
    }
}
]]

local function free_ports(n)
  local out = run.capture("python3 -c 'import socket\n"
    .. "s = [socket.socket() for _ in range(" .. n .. ")]\n"
    .. "[x.bind((\"127.0.0.1\", 0)) for x in s]\n"
    .. "print(\" \".join(str(x.getsockname()[1]) for x in s))'")
  local ports = {}
  for port in out:gmatch("%d+") do ports[#ports + 1] = tonumber(port) end
  assert(#ports == n, "cannot find free ports: " .. out)
  return ports
end

--- Whether nginx is installed (the suite's packages include nginx-light).
function M.available()
  local _, status = run.capture("command -v nginx")
  return status == 0
end

local Server = {}
Server.__index = Server

function M.start(certs)
  local dir = run.tmpdir()
  assert(os.execute("mkdir -p " .. run.quote(dir .. "/tmp")))
  local ports = free_ports(2)
  local d = dir
  assert(os.execute("mkdir -p " .. run.quote(dir .. "/files")))
  run.write(dir .. "/nginx.conf", CONFIG:format(d, d, d, d, d, d, d, d, ports[1], ports[2],
    certs.server_cert, certs.server_key, d))
  local out, status = run.capture(("nginx -p %s -c %s/nginx.conf"):format(run.quote(dir), run.quote(dir)))
  assert(status == 0, "nginx did not start: " .. out .. (run.read(dir .. "/error.log") or ""))
  return setmetatable({ dir = dir, h1 = ports[1], h2 = ports[2], log_offset = 0 }, Server)
end

--- Serves `bytes` of random data as /files/NAME (octet-stream, for streamed downloads); returns
-- the data.
function Server:file(name, bytes)
  local path = self.dir .. "/files/" .. name
  assert(os.execute(("head -c %d /dev/urandom > %s"):format(bytes, run.quote(path))))
  return assert(run.read(path))
end

--- The access log's entries since the last call (nginx writes each once the answer is sent).
function Server:log()
  local text = run.read(self.dir .. "/access.log") or ""
  local entries = {}
  for line in text:sub(self.log_offset + 1):gmatch("[^\n]+") do
    local connection, reused, protocol, status = line:match("^(%d+) (%S+) (%S+) (%d+)$")
    entries[#entries + 1] = { connection = tonumber(connection), resumed = reused == "r", protocol = protocol,
      status = tonumber(status) }
  end
  self.log_offset = #text
  return entries
end

--- The log's entries since the last call, once there are at least n of them (at most 5 s).
function Server:wait_log(n)
  local entries = {}
  for _ = 1, 50 do
    for _, e in ipairs(self:log()) do entries[#entries + 1] = e end
    if #entries >= n then break end
    os.execute("sleep 0.1")
  end
  return entries
end

--- Connections in log entries: { count =, resumed =, protocols = { [protocol] = requests } }.
function M.connections(entries)
  local seen, out = {}, { count = 0, resumed = 0, protocols = {} }
  for _, e in ipairs(entries) do
    if not seen[e.connection] then
      seen[e.connection] = true
      out.count = out.count + 1
      if e.resumed then out.resumed = out.resumed + 1 end
    end
    out.protocols[e.protocol] = (out.protocols[e.protocol] or 0) + 1
  end
  return out
end

function Server:stop()
  local pid = run.read(self.dir .. "/nginx.pid")
  if pid and pid:match("^%d+") then
    os.execute("kill " .. pid:match("^%d+"))
    for _ = 1, 50 do -- at most 5 s for it to go
      local _, alive = run.capture("kill -0 " .. pid:match("^%d+") .. " 2>/dev/null")
      if alive ~= 0 then break end
      os.execute("sleep 0.1")
    end
  end
  os.execute("rm -rf " .. run.quote(self.dir))
end

return M
