"""Shared pieces of the benchmark scripts (bench/run.py, bench/distance.py, bench/profile_client.py):
paths, the data set, the nginx server (plain HTTP, and TLS with a CA made at run time), the latency
proxy, and running one client process with its resource usage measured.

Nothing here talks to anything but 127.0.0.1. Every process started here is stopped here: the
nginx server stops when its `with` block ends, and `stop_all()` runs at exit and on SIGINT/SIGTERM.
"""

import atexit
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = ROOT / "build" / "bench"  # scratch: data set, logs, raw results (build/ is git-ignored)
LUA = os.environ.get("LUA", "lua5.4")
LUA_VERSION = LUA.replace("lua", "") if LUA != "luajit" else "luajit"
MODULE_DIR = ROOT / "build" / LUA_VERSION

sys.path.insert(0, str(ROOT / "spec" / "support"))
import emulator  # noqa: E402  the project's own record generator: the documents are the emulator's

# Server on CPU 0, every client on CPU 1 (taskset).
SERVER_CPU = "0"
CLIENT_CPU = "1"

# Two jobs of the same size, one per spelling of the record's keys; a run reads half its records
# from each. Job ids are 32 letters or digits, as the client requires.
CAMEL_JOB = "benchcamel".ljust(32, "0")
SNAKE_JOB = "benchsnake".ljust(32, "0")
# The 100,000-build walk reads one nginx location that answers any build number (see nginx_conf).
WALK_JOB = "benchwalk".ljust(32, "0")
TOKEN = "bench-token-not-checked-by-nginx"
# Documents per job. nginx keeps every document of the set open (open_file_cache), and this
# machine's descriptor limit is 20,000: 2 x 4,000 leaves room. Longer runs read the set again.
DEFAULT_BUILDS = 4000

# ---------------------------------------------------------------------------------------------------
# Processes we started, stopped at exit whatever happens.

_children = []


def stop_process(proc, sig=signal.SIGTERM, grace=5.0):
    """Stops one process we started: sig, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass


def stop_all():
    while _children:
        stop_process(_children.pop())


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# The data set: record-info documents as files, exactly as the emulator's v3 API sends them.

def envelope(result):
    """The v3 envelope of the real API (and of the emulator): success, message, err_code, result."""
    return emulator.encode_json({"success": True, "message": "", "err_code": "", "result": result})


def v1_envelope(result):
    """The v1 and v4 envelope: status, error, result."""
    return emulator.encode_json({"status": "success", "error": None, "result": result})


def make_job(job_id, builds):
    # Ten minutes apart, as the emulator's "big" job: dates stay in 2024-2025.
    return emulator.Job(job_id, job_id[:10], builds, 0, True, 600, "monorepo")


def generate_data(www, builds):
    """Writes www/v3/jobs/<job>/<n>/record-info for n in 1..builds, for both spellings, and for the
    camel job what a client with api = "auto" asks first (as of the real service): the v1 record
    path and /v1/job/<job>/running-status. Kept between runs: regenerated only when `builds`, this
    layout or the emulator's generator changed."""
    stamp_text = json.dumps({
        "builds": builds, "jobs": [CAMEL_JOB, SNAKE_JOB], "layout": "v3 + v1 camel",
        "emulator": hashlib.sha256((ROOT / "spec/support/emulator.py").read_bytes()).hexdigest(),
    })
    stamp = www / "STAMP"
    if stamp.exists() and stamp.read_text() == stamp_text:
        return
    log(f"bench: generating {3 * builds} record-info documents in {www} (kept for later runs)")
    if www.exists():
        shutil.rmtree(www)
    dataset = emulator.DataSet(1)
    sizes = []

    def write(path, body):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    for job_id, spelling in ((CAMEL_JOB, "camel"), (SNAKE_JOB, "snake")):
        job = make_job(job_id, builds)
        for n in range(1, builds + 1):
            record = dataset.record(job, n)
            body = envelope(emulator.render_record(record, spelling, "v3"))
            sizes.append(len(body))
            write(www / "v3" / "jobs" / job_id / str(n) / "record-info", body)
            if job_id == CAMEL_JOB:
                write(www / "v1" / "record" / job_id / str(n) / "record-info",
                      v1_envelope(emulator.render_record(record, spelling, "v1")))
    camel = make_job(CAMEL_JOB, builds)
    newest = dataset.record(camel, builds)
    # The shape of the emulator's running-status (ShowRunningStatus, SERVICE-CONTRACTS).
    write(www / "v1" / "job" / CAMEL_JOB / "running-status", v1_envelope({
        "last_build_no": str(builds), "last_build_status": newest["status"],
        "is_running": newest["status"] == "RUNNING", "last_job_id": CAMEL_JOB}))
    (www / "SIZES").write_text(json.dumps({"mean": sum(sizes) / len(sizes), "min": min(sizes), "max": max(sizes)}))
    stamp.write_text(stamp_text)


def document_sizes(www):
    return json.loads((www / "SIZES").read_text())


def document_count(www):
    return json.loads((www / "STAMP").read_text())["builds"] * 2


def walk_template():
    """One record document for the walk location, with its buildNo replaced by nginx's $bn (the
    number from the URL): every build number gets a valid record that says its own number."""
    job = make_job(WALK_JOB, 1000)
    record = emulator.render_record(emulator.DataSet(1).record(job, 500), "camel", "v3")
    text = envelope(record).decode("utf-8")
    marker = '"buildNo": 500,'
    assert marker in text and "$" not in text, "walk template: unexpected record text"
    text = text.replace(marker, '"buildNo": $bn,')
    return text.replace("\\", "\\\\").replace("'", "\\'")


def paths_for(count, builds):
    """The request paths of a run of `count` records: half from each job, build numbers 1, 2, ...
    wrapping after `builds` (a longer run reads the data set again)."""
    half = count // 2
    out = []
    for job_id, n in ((CAMEL_JOB, half), (SNAKE_JOB, count - half)):
        out.extend(f"/v3/jobs/{job_id}/{(i % builds) + 1}/record-info" for i in range(n))
    return out


# ---------------------------------------------------------------------------------------------------
# nginx

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(folder):
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it (ECDSA P-256), made
    with the openssl CLI: {"ca", "cert", "key"} paths. Clients verify the server with the CA."""
    folder.mkdir(parents=True, exist_ok=True)
    f = {name: folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr", "san.cnf")}
    f["san.cnf"].write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                            "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n")

    def openssl(*argv):
        subprocess.run(["openssl", *argv], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f["ca.key"], "-out", f["ca.pem"], "-days", "2",
            "-subj", "/CN=codeartsbuild bench CA")
    openssl("req", *ec, "-keyout", f["server.key"], "-out", f["server.csr"], "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", f["server.csr"], "-CA", f["ca.pem"], "-CAkey", f["ca.key"], "-CAcreateserial",
            "-days", "2", "-extfile", f["san.cnf"], "-out", f["server.pem"])
    return {"ca": f["ca.pem"], "cert": f["server.pem"], "key": f["server.key"]}


# One line per request on the TLS server: the connection's number (HTTP/2 streams share their
# connection's), the request's index on it, "r" when the TLS session was resumed, the protocols.
TLS_LOG_FORMAT = "$connection $connection_requests $ssl_session_reused $server_protocol $ssl_protocol $status"


def nginx_conf(prefix, www, port, documents, tls=None):
    # nginx keeps each cached document open: the cache must hold the data set (else it thrashes)
    # and the worker's descriptor limit must hold the cache plus the connections. A worker that
    # runs out of descriptors stops accepting connections, and clients hang.
    cached = documents + 64
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile != resource.RLIM_INFINITY and nofile < cached + 1100:
        raise RuntimeError(f"{documents} documents need {cached + 1100} descriptors; the hard limit is {nofile}")
    nofile = cached + 1100
    return f"""# written by bench/harness.py; one worker, loopback only, no access log
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
# open_file_cache keeps a descriptor per document: room for the whole data set.
worker_rlimit_nofile {nofile};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    types {{ }}
    default_type "{emulator.JSON_TYPE}";
    sendfile on;
    tcp_nodelay on;
    etag off;
    # Clients keep their connections for the whole run: no reconnection every 1000 requests.
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    open_file_cache max={cached} inactive=300s;
    open_file_cache_valid 300s;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {www};
        # The service answers every request with a request id; clients read it.
        add_header X-Request-Id $request_id always;
        location / {{ }}
        location ~ "^/v3/jobs/{WALK_JOB}/(?<bn>[1-9][0-9]{{0,9}})/record-info$" {{
            return 200 '{walk_template()}';
        }}
    }}
{tls_server(prefix, www, tls) if tls else ""}}}
"""


def tls_server(prefix, www, tls):
    """The same documents over TLS: port h1 offers http/1.1 only (ALPN), port h2 offers h2 too.
    TLS 1.2 and 1.3, session cache and tickets on (resumption possible), an access log (TLS_LOG_FORMAT)."""
    return f"""    log_format cbtls '{TLS_LOG_FORMAT}';
    server {{
        listen 127.0.0.1:{tls["h1"]} ssl backlog=4096;
        listen 127.0.0.1:{tls["h2"]} ssl http2 backlog=4096;
        ssl_certificate {tls["cert"]};
        ssl_certificate_key {tls["key"]};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_session_tickets on;
        access_log {prefix}/tls-access.log cbtls;
        root {www};
        add_header X-Request-Id $request_id always;
        location / {{ }}
    }}
"""


class Nginx:
    """nginx-light on 127.0.0.1:<free port>, pinned to SERVER_CPU, its own prefix in a temp dir;
    with tls=True also the TLS server (ports tls_port["h1"] and ["h2"], CA in self.ca)."""

    def __init__(self, www, tls=False):
        self.www = www
        self.prefix = Path(tempfile.mkdtemp(prefix="cb-bench-nginx-"))
        self.port = free_port()
        self.tls = None
        if tls:
            self.tls = dict(make_tls(self.prefix / "tls"), h1=free_port(), h2=free_port())
        self.proc = None
        self.worker_pid = None

    def __enter__(self):
        (self.prefix / "tmp").mkdir()
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_conf(self.prefix, self.www, self.port, document_count(self.www), self.tls))
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, "nginx", "-p", str(self.prefix), "-c", str(conf), "-e",
             str(self.prefix / "error.log")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        _children.append(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " + self.proc.stderr.read().decode(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("nginx did not start listening within 10 s")
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"expected one nginx worker, found {children}")
        self.worker_pid = int(children[0])
        return self

    def __exit__(self, *exc):
        # SIGQUIT: graceful stop (workers finish their connections), then SIGKILL after 5 s.
        stop_process(self.proc, signal.SIGQUIT)
        if self.proc in _children:
            _children.remove(self.proc)
        shutil.rmtree(self.prefix, ignore_errors=True)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca(self):
        return self.tls and self.tls["ca"]

    @property
    def access_log(self):
        return self.prefix / "tls-access.log"

    def worker_cpu_s(self):
        return process_cpu_s(self.worker_pid)


def connection_stats(lines):
    """What the TLS server's access log lines (TLS_LOG_FORMAT) of one run say about connections:
    how many were used, how many began with a full or a resumed handshake, requests on each, and
    the protocols seen."""
    conns = {}
    protocols = set()
    for line in lines:
        f = line.split()
        if len(f) < 6:
            continue
        c = conns.setdefault(f[0], {"requests": 0, "resumed": f[2] == "r"})
        c["requests"] += 1
        protocols.add(f"{f[3]} {f[4]}")
    requests = [c["requests"] for c in conns.values()]
    return {"connections": len(conns), "resumed": sum(1 for c in conns.values() if c["resumed"]),
            "full": sum(1 for c in conns.values() if not c["resumed"]), "requests": sum(requests),
            "max_requests_per_conn": max(requests, default=0), "protocols": sorted(protocols)}


class LatencyProxy:
    """build/bench/latency_proxy (bench/latency_proxy.c) holding each direction for one_way_ms, in
    front of the given nginx ports: self.ports maps each target port to the proxy's. Run at a
    real-time priority when it may (chrt), so that the machine's load does not make it late. On
    exit: self.accepted (connections per target port) and self.late_us (p50, p99, max, chunks)."""

    BINARY = OUT / "latency_proxy"

    def __init__(self, one_way_ms, targets, listen=None):
        """listen: {target: port} to listen on (default any free port): the same endpoint in
        every run, which the cache of finished builds is keyed by."""
        self.one_way_ms, self.targets, self.listen = one_way_ms, list(targets), listen or {}
        self.ports, self.accepted, self.late_us, self.realtime = {}, {}, None, False

    def __enter__(self):
        argv = [str(self.BINARY), str(round(self.one_way_ms * 1000))] + \
            [f"{self.listen.get(t, 0)}:{t}" for t in self.targets]
        self.realtime = subprocess.run(["chrt", "-f", "10", "true"], capture_output=True).returncode == 0
        self.proc = subprocess.Popen((["chrt", "-f", "10"] if self.realtime else []) + argv, text=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        _children.append(self.proc)
        for line in self.proc.stdout:
            if line.startswith("listen "):
                listen, target = map(int, line.split()[1:])
                self.ports[target] = listen
            elif line.strip() == "ready":
                return self
        raise RuntimeError("latency proxy did not start")

    def __exit__(self, *exc):
        stop_process(self.proc)
        if self.proc in _children:
            _children.remove(self.proc)
        for line in self.proc.stdout.read().splitlines():
            if line.startswith("accepted "):
                self.accepted = dict(zip(self.targets, map(int, line.split()[1:])))
            elif line.startswith("late_us "):
                self.late_us = [int(x) for x in line.split()[1:]]
        self.proc.stdout.close()


# ---------------------------------------------------------------------------------------------------
# Measuring

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid):
    """utime + stime of a running process, from /proc/<pid>/stat (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def cpu_busy_s():
    """Busy seconds of each CPU so far (everything but idle and iowait), from /proc/stat."""
    busy = {}
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"cpu(\d+) (.*)", line)
        if m:
            v = [int(x) for x in m.group(2).split()]
            busy[m.group(1)] = (sum(v[:8]) - v[3] - v[4]) / CLOCK_TICK
    return busy


def others_busy(window=0.5):
    """The share of each CPU busy over `window` seconds (between runs: nothing of ours is running)."""
    b0 = cpu_busy_s()
    time.sleep(window)
    b1 = cpu_busy_s()
    return {cpu: (b1[cpu] - b0.get(cpu, 0.0)) / window for cpu in b1}


def wait_for_quiet(threshold, max_wait):
    """Waits (at most max_wait seconds) until both benchmark CPUs are at most `threshold` busy with
    other work, so that runs land in the machine's quieter moments. Returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        busy = others_busy()
        if max(busy.get(SERVER_CPU, 0.0), busy.get(CLIENT_CPU, 0.0)) <= threshold:
            break
        if time.monotonic() - t0 >= max_wait:
            break
    return time.monotonic() - t0


def lua_env():
    env = dict(os.environ)
    env["LUA_PATH"] = f"{ROOT}/lua/?.lua;{ROOT}/lua/?/init.lua;;"
    env["LUA_CPATH"] = f"{MODULE_DIR}/?.so;;"
    # The client reads credentials from the environment only for what its options leave out:
    # make sure nothing of the caller's environment leaks into a benchmark run.
    for name in list(env):
        if name.startswith(("CODEARTSBUILD_", "HUAWEICLOUD_SDK_", "CLOUD_SDK_")):
            del env[name]
    return env


def run_client(argv, server=None, timeout=300, env=None, peak_rss=False, stdout_to_devnull=False):
    """Runs one client process, pinned to CLIENT_CPU, to completion and measures it: wall time and
    user+system CPU (wait4), the nginx worker's CPU over the same interval, and each CPU's busy time
    (to tell how much else ran meanwhile). With peak_rss, also its peak RSS, through /usr/bin/time:
    a process forked by this (large) Python process inherits its RSS high-water mark, so wait4's
    ru_maxrss would be ours, not the client's. Kills the client after `timeout` seconds. Returns a
    dict; stdout and stderr as text."""
    out_dir = Path(tempfile.mkdtemp(prefix="cb-bench-run-"))
    try:
        stdout_f = open(os.devnull, "wb") if stdout_to_devnull else open(out_dir / "stdout", "w+b")
        stderr_f = open(out_dir / "stderr", "w+b")
        cmd = ["taskset", "-c", CLIENT_CPU]
        if peak_rss:
            cmd += ["/usr/bin/time", "-f", "%M", "-o", str(out_dir / "time")]
        cmd += list(argv)
        busy0 = cpu_busy_s()
        server0 = server.worker_cpu_s() if server else 0.0
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout_f, stderr=stderr_f, cwd=ROOT,
                                env=env or lua_env())
        _children.append(proc)
        deadline = time.monotonic() + timeout
        timed_out = False
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                proc.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        _children.remove(proc)
        server_cpu = (server.worker_cpu_s() - server0) if server else 0.0
        busy1 = cpu_busy_s()
        maxrss = None
        if peak_rss and (out_dir / "time").exists():
            last = (out_dir / "time").read_text().strip().splitlines()
            maxrss = int(last[-1]) if last and last[-1].isdigit() else None
        stderr_f.seek(0)
        result = {
            "argv": cmd, "exit": proc.returncode, "timed_out": timed_out, "wall_s": wall,
            "cpu_s": rusage.ru_utime + rusage.ru_stime, "user_s": rusage.ru_utime, "sys_s": rusage.ru_stime,
            "maxrss_kb": maxrss, "minflt": rusage.ru_minflt, "server_cpu_s": server_cpu,
            "cpu_busy_s": {cpu: busy1[cpu] - busy0.get(cpu, 0.0) for cpu in busy1},
            "stdout": "", "stderr": stderr_f.read().decode(errors="replace"),
        }
        if not stdout_to_devnull:
            stdout_f.seek(0)
            result["stdout"] = stdout_f.read().decode(errors="replace")
        stdout_f.close()
        stderr_f.close()
        return result
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def last_json_line(text, prefix):
    """The JSON object after `prefix` on the last line that starts with it."""
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    raise ValueError(f"no '{prefix}' line in the output:\n{text[-2000:]}")


# ---------------------------------------------------------------------------------------------------
# callgrind output

def _function_name(text):
    """callgrind names the nested levels of a recursion fn'2, fn'3...: one function here."""
    return re.sub(r"'\d+$", "", text.strip())


def parse_callgrind(path):
    """Reads a callgrind output file (written with --compress-strings=no) into
    ({function: self Ir}, {function: inclusive Ir}, total Ir), function = (name, object, file).

    Self cost: the function's own cost lines. Inclusive: self plus the cost of its calls to other
    functions (a call's cost line is its callee's inclusive cost). For a function that calls
    itself again further down (the Lua interpreter does, through pcall), inclusive counts the
    nested part twice, as callgrind_annotate does; the functions this project reads are not such.
    This parser replaces callgrind_annotate, whose output depends on the current directory (it
    drops the object name from some lines when it finds the source file) and which counts the cost
    of calls already in progress at a CALLGRIND_ZERO_STATS (`calls=0`) as the caller's own."""
    self_cost, calls_cost = {}, {}
    ob = fl = fn = None
    callee_ob = callee = None
    in_call = False
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    if callee != fn[:2]:
                        calls_cost[fn] = calls_cost.get(fn, 0) + ir
                    in_call = False
                else:
                    self_cost[fn] = self_cost.get(fn, 0) + ir
            elif line.startswith("fn="):
                fn = (_function_name(line[3:]), Path(ob or "").name, fl or "")
                callee_ob = None
            elif line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("fl="):
                fl = line[3:].strip()
            elif line.startswith("cob="):
                callee_ob = line[4:].strip()
            elif line.startswith("cfn="):
                callee = (_function_name(line[4:]), Path(callee_ob or ob or "").name)
                callee_ob = None
            elif line.startswith("calls="):
                in_call = True
            elif line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    inclusive = {k: self_cost.get(k, 0) + calls_cost.get(k, 0) for k in set(self_cost) | set(calls_cost)}
    return self_cost, inclusive, total


# ---------------------------------------------------------------------------------------------------
# The machine, for the report

def command_output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info():
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', Path("/etc/os-release").read_text(), re.M))
    virt = command_output(["systemd-detect-virt"]) or "unknown"
    versions = {
        "nginx": command_output(["dpkg-query", "-W", "-f=${Version}", "nginx-light"]),
        "wrk": command_output(["dpkg-query", "-W", "-f=${Version}", "wrk"]),
        "h2load": command_output(["dpkg-query", "-W", "-f=${Version}", "nghttp2-client"]),
        "curl": command_output(["curl", "--version"]).splitlines()[0] if shutil.which("curl") else "",
        "lua": " ".join(command_output([LUA, "-v"]).split()[:2]),
        "lua-cjson": command_output(["dpkg-query", "-W", "-f=${Version}", "lua-cjson"]),
        "openssl": " ".join(command_output(["openssl", "version"]).split()[:2]),
        "gcc": command_output(["gcc", "--version"]).splitlines()[0] if shutil.which("gcc") else "",
    }
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = [line[3:] for line in command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "csrc",
                                                       "lua"]).splitlines()]
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", ""), "virt": virt,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions, "commit": commit, "csrc_lua_modified": dirty,
    }


def loadavg():
    return Path("/proc/loadavg").read_text().split()[:3]


if __name__ == "__main__":
    # python3 bench/harness.py serve [BUILDS]: the benchmark's nginx with its data set, for trying a
    # client by hand; prints the endpoint, stops on Ctrl-C.
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: python3 bench/harness.py serve [BUILDS]")
    www = OUT / "www"
    generate_data(www, int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_BUILDS)
    with Nginx(www, tls=True) as server:
        print(server.endpoint, "camel:", CAMEL_JOB, "snake:", SNAKE_JOB, "walk:", WALK_JOB, flush=True)
        print(f"TLS: https://127.0.0.1:{server.tls['h1']} (http/1.1), https://127.0.0.1:{server.tls['h2']} "
              f"(h2 and http/1.1), CA {server.ca}, log {server.access_log}", flush=True)
        while True:
            time.sleep(3600)
