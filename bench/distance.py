"""The TLS and distance parts of `make bench` (issue 15), run by bench/run.py.

TLS: the plain table's clients against the same nginx over TLS on loopback (no delay), records/s.
Distance: the records 1..1000 of one job at concurrency 16, and the first record of a fresh
process, through the latency proxy (bench/latency_proxy.c) at each round trip of --rtt, over
HTTP/1.1 (the TLS port whose ALPN offers http/1.1 only) and over the port that offers h2 too;
wrk, h2load and curl as the peers. Every run's connections and handshakes come from nginx's access
log ($connection, $ssl_session_reused) and the proxy's count of connections opened.

The limit of a walk: the handshake round trips (TCP 1, TLS 1.3 1: the request goes with the
client's Finished) + ceil(1000 / 16) round trips of requests; of a first record: the handshake
round trips + 1. DNS is not counted (the endpoint is an address). Nothing here may be faster.
"""

import math
import shutil
import statistics
import subprocess

import harness as h
import run as r

WALK = 1000          # builds in a walk
WALK_CONCURRENCY = 16
HANDSHAKE_RTTS = 2   # TCP + TLS 1.3
FIRST_JOB = h.CAMEL_JOB


def walk_paths():
    return [f"/v3/jobs/{h.CAMEL_JOB}/{n}/record-info" for n in range(1, WALK + 1)]


class FirstRecord(r.Scenario):
    """The first record in a fresh process, timed from the process's start to its exit: `lua` a
    one-line script (cb.record_info on the client made from the environment), `cli` bin/codeartsbuild
    record, `curl` the curl CLI."""

    def __init__(self, name, how, label, port="h2"):
        super().__init__(name, how, 1, label, port=port)

    def environment(self, ctx):
        return {"CODEARTSBUILD_ENDPOINT": ctx.endpoint(self.port), "CODEARTSBUILD_TOKEN": h.TOKEN,
                "CODEARTSBUILD_CA_FILE": str(ctx.server.ca)}

    def argv(self, ctx):
        if self.client == "lua":
            return [h.LUA, "-e", f'local r = assert(require("codeartsbuild").record_info("{FIRST_JOB}", 1)) '
                                 'assert(r.buildNo == 1)']
        if self.client == "cli":
            return [h.LUA, str(h.ROOT / "bin" / "codeartsbuild"), "-q", "record", FIRST_JOB, "1"]
        return ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ctx.server.ca),
                "-H", "Accept: application/json", "-H", f"X-Auth-Token: {h.TOKEN}",
                f"{ctx.endpoint(self.port)}/v3/jobs/{FIRST_JOB}/1/record-info"]

    def parse(self, run, ctx):
        if run["exit"] != 0 or (self.client == "curl" and run["stdout"].strip() != "200"):
            raise RuntimeError(f"{self.client}: exit {run['exit']}: {run['stdout'][-200:]} {run['stderr'][-300:]}")
        return 1, run["wall_s"], None


class CachedList(r.Scenario):
    """`codeartsbuild list JOB --last 1000` in a fresh process, with the cache of finished builds:
    `second=False` empties the cache first (every build asked for), `second=True` runs on what the
    first left (run_rounds runs the first of a round before the second)."""

    def __init__(self, name, label, second):
        super().__init__(name, "cli", WALK_CONCURRENCY, label, port="h2")
        self.second = second

    def cache_home(self, ctx):
        return ctx.work / "xdg-cache"

    def environment(self, ctx):
        return {"CODEARTSBUILD_ENDPOINT": ctx.endpoint(self.port), "CODEARTSBUILD_TOKEN": h.TOKEN,
                "CODEARTSBUILD_CA_FILE": str(ctx.server.ca), "XDG_CACHE_HOME": str(self.cache_home(ctx))}

    def argv(self, ctx):
        if not self.second:
            shutil.rmtree(self.cache_home(ctx), ignore_errors=True)
        return [h.LUA, str(h.ROOT / "bin" / "codeartsbuild"), "-q", "list", FIRST_JOB, "--last", str(WALK),
                "--json"]

    def parse(self, run, ctx):
        lines = [line for line in run["stdout"].splitlines() if line.startswith("{")]
        if run["exit"] != 0 or len(lines) != WALK:
            raise RuntimeError(f"list: exit {run['exit']}, {len(lines)} records: {run['stderr'][-300:]}")
        return WALK, run["wall_s"], None

    def requests_expected(self, records):
        return 1 if self.second else records


def cache_scenarios():
    return [CachedList("cache-first", "list --last 1,000, empty cache", False),
            CachedList("cache-second", "the same again, from the cache", True)]


def tls_scenarios():
    w = r.Wrk("tls-wrk-c16", "wrk", 16, "wrk -t1 -c16", port="h1")
    out = [w, r.H2load("tls-h2load-m16", "h2load -c1 -m16", "h2", 1, 16),
           r.Curl("tls-curl-par16", "curl", 16, "curl --parallel-max 16", port="h1"),
           r.Curl("tls-curl-par16-h2", "curl", 16, "curl --parallel-max 16", port="h2"),
           r.Codeartsbuild("tls-cb-fetch16", "fetch", 16, "fetch, concurrency 16", port="h1"),
           r.Codeartsbuild("tls-cb-fetch16-h2", "fetch", 16, "fetch, concurrency 16", port="h2")]
    # The same client in the plain table, for the "x plain" column.
    for sc, plain in zip(out, ["wrk-c16", None, "curl-par16", "curl-par16", "cb-fetch16", "cb-fetch16"]):
        sc.plain = plain
    return out


def walk_scenarios(rtt=20):
    wrk = r.Wrk("dist-wrk-c16", "wrk", 16, "wrk -t1 -c16 (1,000 / rate)", port="h1")
    wrk.seconds = max(2, math.ceil(rtt * 40 / 1000))  # a few hundred requests
    return [r.Codeartsbuild("dist-cb-h1", "range", 16, "codeartsbuild fetch", port="h1"),
            r.Codeartsbuild("dist-cb-h2", "range", 16, "codeartsbuild fetch", port="h2"),
            wrk,
            r.H2load("dist-h2load-h1", "h2load --h1 -c16", "h1", 16, 1, h1=True),
            r.H2load("dist-h2load-m16", "h2load -c1 -m16", "h2", 1, 16),
            r.Curl("dist-curl-h1", "curl", 16, "curl --parallel-max 16", port="h1"),
            r.Curl("dist-curl-h2", "curl", 16, "curl --parallel-max 16", port="h2")]


def first_scenarios():
    return [FirstRecord("first-lua", "lua", "lua5.4 -e record_info"),
            FirstRecord("first-cli", "cli", "bin/codeartsbuild record"),
            FirstRecord("first-curl", "curl", "curl (one URL)")]


def part_header():
    return {"started": r.now_utc(), "commit": h.machine_info()["commit"], "load_before": h.loadavg()}


def measure_tls(ctx, args):
    head = part_header()
    ctx.count = args.count
    ctx.paths = h.paths_for(ctx.count, ctx.builds)
    ctx.paths_file.write_text("\n".join(ctx.paths) + "\n")
    scenarios = tls_scenarios()
    runs, rejected = r.run_rounds(ctx, scenarios, args.tls_runs, args, "tls")
    ctx.count = 1  # the first record with no delay: what a fresh process costs besides round trips
    first, rej = r.run_rounds(ctx, first_scenarios(), args.first_runs, args, "tls")
    return dict(head, runs=runs, first=first, rejected=dict(rejected, **rej), count=args.count,
                load_after=h.loadavg(), scenarios=[sc.name for sc in scenarios])


def measure_distance(ctx, args):
    head = part_header()
    ctx.paths = walk_paths()
    ctx.paths_file.write_text("\n".join(ctx.paths) + "\n")
    out = dict(head, rtts={}, walk=WALK, concurrency=WALK_CONCURRENCY, handshake_rtts=HANDSHAKE_RTTS)
    for rtt in args.rtt:
        ctx.rtt_ms = rtt
        try:
            ctx.count = WALK
            walks, rej1 = r.run_rounds(ctx, walk_scenarios(rtt), args.distance_runs, args, f"{rtt:g} ms")
            ctx.count = 1
            firsts, rej2 = r.run_rounds(ctx, first_scenarios(), args.first_runs, args, f"{rtt:g} ms")
            ctx.count = WALK
            cached, rej3 = r.run_rounds(ctx, cache_scenarios(), args.distance_runs, args, f"{rtt:g} ms")
        finally:
            ctx.rtt_ms = None
        out["rtts"][str(rtt)] = {"walk": walks, "first": firsts, "cache": cached,
                                 "rejected": dict(rej1, **rej2, **rej3)}
    out["load_after"] = h.loadavg()
    return out


# ---------------------------------------------------------------------------------------------------
# Summaries and the report

def spread(values):
    return min(values), statistics.median(values), max(values)


def summarise(runs, count=None):
    """Median and spread of a scenario's runs, with what nginx and the proxy saw of its connections.
    count: scale each run's time to that many records (wrk runs for a time, not for a count)."""
    good = [x for x in runs if "error" not in x]
    s = {"runs": len(runs), "good": len(good), "errors": [x["error"] for x in runs if "error" in x]}
    if not good:
        return s
    s["rate"] = spread([x["rate"] for x in good])
    s["seconds"] = spread([x["seconds"] * (count / x["records"] if count else 1) for x in good])
    s["cpu_us"] = statistics.median(x["cpu_us_per_record"] for x in good)
    s["server_cpu_us"] = statistics.median(x["server_cpu_us_per_record"] for x in good)
    conns = [x["conns"] for x in good if "conns" in x]
    if conns:
        s["connections"] = spread([c["connections"] for c in conns])
        s["full"] = spread([c["full"] for c in conns])
        s["resumed"] = spread([c["resumed"] for c in conns])
        s["per_conn"] = spread([c["requests"] / max(1, c["connections"]) for c in conns])
        s["requests"] = spread([c["requests"] for c in conns])
        s["max_per_conn"] = max(c["max_requests_per_conn"] for c in conns)
        s["protocols"] = sorted({p for c in conns for p in c["protocols"]})
    if any("opened" in x for x in good):
        s["opened"] = spread([x["opened"] for x in good if "opened" in x])
        s["late_p99_us"] = max(x["proxy_late_us"][1] for x in good if x.get("proxy_late_us"))
        s["late_max_us"] = max(x["proxy_late_us"][2] for x in good if x.get("proxy_late_us"))
    s["loaded"] = sum(1 for x in good if x.get("loaded"))
    return s


def fmt_spread(t, fmt="{:,.0f}"):
    """'median (min–max)', or just the value when all runs agree."""
    lo, mid, hi = t
    if fmt.format(lo) == fmt.format(hi):
        return fmt.format(mid)
    return f"{fmt.format(mid)} ({fmt.format(lo)}–{fmt.format(hi)})"


def protocol(s):
    """'h2', 'http/1.1', 'http/1.1 + h2' ... from the protocols nginx logged; with TLS 1.3 implied."""
    names = {"HTTP/2.0": "h2", "HTTP/1.1": "http/1.1"}
    protos = sorted({names.get(p.split()[0], p.split()[0]) for p in s.get("protocols", [])})
    tls = sorted({p.split()[1] for p in s.get("protocols", []) if len(p.split()) > 1} - {"TLSv1.3"})
    return " + ".join(protos) + (f" ({', '.join(tls)})" if tls else "")


def conn_cells(s):
    """connections, full / resumed handshakes, requests per connection (mean; the most on one)."""
    if "connections" not in s:
        return "–", "–", "–"
    return (fmt_spread(s.get("opened", s["connections"])),
            f"{fmt_spread(s['full'])} / {fmt_spread(s['resumed'])}",
            f"{fmt_spread(s['per_conn'], '{:,.1f}')} (max {s['max_per_conn']:,})")


def tls_table(raw, plain_summary, scenarios):
    lines = ["| client | port | protocol | conc. | records/s | client CPU µs/record | nginx CPU µs/record | "
             "connections | handshakes full / resumed | requests per connection | x plain HTTP |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in scenarios:
        s = summarise(raw["runs"].get(sc.name, []))
        if not s.get("good"):
            lines.append(f"| {sc.label} | {sc.port} | FAILED: {s['errors'][:1]} | | | | | | | | |")
            continue
        plain = plain_summary.get(sc.plain, {}).get("rate") if sc.plain else None
        c, hs, per = conn_cells(s)
        lines.append(f"| {sc.label} | {sc.port} | {protocol(s)} | {sc.concurrency} | **{fmt_spread(s['rate'])}** | "
                     f"{s['cpu_us']:.1f} | {s['server_cpu_us']:.1f} | {c} | {hs} | {per} | "
                     f"{r.ratio(s['rate'][1], plain)} |")
    return "\n".join(lines)


def walk_limit_s(rtt, walk=WALK, conc=WALK_CONCURRENCY):
    return (HANDSHAKE_RTTS + math.ceil(walk / conc)) * rtt / 1000


def first_limit_s(rtt):
    return (HANDSHAKE_RTTS + 1) * rtt / 1000


def distance_tables(raw, loopback_first):
    """One table of walks and one of first records per round trip; returns (markdown, plot rows).
    loopback_first: the first-record runs over TLS with no delay ({name: runs}), for comparison."""
    out, plot = [], []
    for rtt_s, part in raw["rtts"].items():
        rtt = float(rtt_s)
        limit = walk_limit_s(rtt)
        out.append(f"### {rtt:g} ms round trip: {WALK:,} builds at concurrency {WALK_CONCURRENCY}\n\n"
                   f"The limit: ({HANDSHAKE_RTTS} + ceil({WALK:,} / {WALK_CONCURRENCY})) x {rtt:g} ms = "
                   f"**{limit:.2f} s**.\n")
        out.append("| client | port | protocol | time s | records/s | x limit | connections opened | "
                   "handshakes full / resumed | requests per connection | proxy late p99 / max µs |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for sc in walk_scenarios():
            s = summarise(part["walk"].get(sc.name, []), count=WALK)
            if not s.get("good"):
                out.append(f"| {sc.label} | {sc.port} | FAILED: {s['errors'][:1]} | | | | | | | |")
                continue
            c, hs, per = conn_cells(s)
            ratio = tuple(x / limit for x in s["seconds"])
            out.append(f"| {sc.label} | {sc.port} | {protocol(s)} | **{fmt_spread(s['seconds'], '{:.2f}')}** | "
                       f"{fmt_spread(s['rate'])} | **{fmt_spread(ratio, '{:.2f}')}** | {c} | {hs} | {per} | "
                       f"{s.get('late_p99_us', '–')} / {s.get('late_max_us', '–')} |")
            plot.append((f"{sc.label} ({protocol(s)})", rtt, ratio))
        flimit = first_limit_s(rtt)
        out.append(f"\n**First record of a fresh process** (port h2, from the process's start to its exit; "
                   f"the limit: ({HANDSHAKE_RTTS} + 1) x {rtt:g} ms = {flimit * 1000:.0f} ms; the issue's "
                   f"target: the limit + 30 ms = {flimit * 1000 + 30:.0f} ms):\n")
        out.append("| client | protocol | time ms | x limit | over the limit, ms | same, TLS on loopback, ms | "
                   "connections | handshakes full / resumed |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for sc in first_scenarios():
            s = summarise(part["first"].get(sc.name, []))
            if not s.get("good"):
                out.append(f"| {sc.label} | FAILED: {s['errors'][:1]} | | | | | |")
                continue
            ms = tuple(x * 1000 for x in s["seconds"])
            c, hs, _ = conn_cells(s)
            near = summarise(loopback_first.get(sc.name, []))
            out.append(f"| {sc.label} | {protocol(s)} | **{fmt_spread(ms, '{:.0f}')}** | "
                       f"{fmt_spread(tuple(x / (flimit * 1000) for x in ms), '{:.2f}')} | "
                       f"{fmt_spread(tuple(x - flimit * 1000 for x in ms), '{:.0f}')} | "
                       f"{fmt_spread(tuple(x * 1000 for x in near['seconds']), '{:.0f}') if near.get('good') else '–'} | "
                       f"{c} | {hs} |")
        out.append(cache_table(part.get("cache"), rtt))
        out.append("")
    return "\n".join(out), plot


def cache_table(runs, rtt):
    """The two cached list runs at one round trip, and how much faster the second was."""
    if not runs:
        return ""
    first, second = (summarise(runs.get(sc.name, [])) for sc in cache_scenarios())
    out = [f"\n**The cache of finished builds** (`codeartsbuild list JOB --last {WALK:,} --json` in a fresh "
           "process, port h2; requests as nginx logged them):\n",
           "| run | time s | requests | connections | x faster than the first |", "|---|---:|---:|---:|---:|"]
    for sc, s in zip(cache_scenarios(), (first, second)):
        if not s.get("good"):
            out.append(f"| {sc.label} | FAILED: {s['errors'][:1]} | | | |")
            continue
        faster = (fmt_spread(tuple(first["seconds"][1] / x for x in reversed(s["seconds"])), "{:.1f}")
                  if first.get("good") else "–")
        out.append(f"| {sc.label} | **{fmt_spread(s['seconds'], '{:.2f}')}** | {fmt_spread(s['requests'])} | "
                   f"{fmt_spread(s.get('opened', s.get('connections', (0, 0, 0))))} | **{faster}** |")
    return "\n".join(out)


def write_plot(plot, png):
    """Walk time over the limit, per client, one bar per round trip (bench/distance.gp)."""
    rtts = sorted({rtt for _, rtt, _ in plot})
    clients = list(dict.fromkeys(label for label, _, _ in plot))
    dat = h.OUT / "distance.dat"
    with open(dat, "w") as f:
        f.write("client " + " ".join(f'"{rtt:g} ms" lo hi' for rtt in rtts) + "\n")
        for label in clients:
            cells = []
            for rtt in rtts:
                v = next((ratio for l, t, ratio in plot if l == label and t == rtt), None)
                cells.append("%.3f %.3f %.3f" % (v[1], v[0], v[2]) if v else "NaN NaN NaN")
            f.write(f'"{label}" ' + " ".join(cells) + "\n")
    subprocess.run(["gnuplot", "-e", f"datafile='{dat}'; columns={len(rtts)}; outfile='{png}'",
                    str(h.BENCH / "distance.gp")], check=True)


def report(raw, plain_summary, png_name):
    """The TLS and distance sections of RESULTS.md (either may be missing from raw)."""
    text = ""
    tls = raw.get("tls")
    if tls:
        text += f"""## TLS on loopback

The clients of the plain table against the same nginx and documents over TLS 1.3 (ECDSA P-256
certificate from a CA made at run time; every client verifies it: codeartsbuild with `ca_file`,
curl with `--cacert`; wrk and h2load do not verify), no delay; {tls['count']:,} records per run, the
median of {len(next(iter(tls['runs'].values())))} runs with (min–max). Port `h1`: ALPN offers http/1.1 only; port
`h2`: h2 and http/1.1, the client chooses. Connections and handshakes are from nginx's access log
(`$connection`, `$ssl_session_reused`); requests per connection: the mean (and the most on one
connection). "x plain HTTP": over the same client's rate in the plain table. Measured
{tls['started']} UTC, commit `{tls['commit']}`, load average {' '.join(tls['load_before'])} before,
{' '.join(tls['load_after'])} after.

{tls_table(tls, plain_summary, tls_scenarios())}

"""
    dist = raw.get("distance")
    if dist:
        tables, plot = distance_tables(dist, (tls or {}).get("first", {}))
        if plot:
            write_plot(plot, png_name)
        late = [summarise(runs).get("late_max_us", 0) for part in dist["rtts"].values()
                for kind in ("walk", "first", "cache") for runs in part.get(kind, {}).values()]
        text += f"""## Distance

The same TLS server behind `bench/latency_proxy.c`, which holds every byte for half the round trip
in each direction (the kernel's timestamp of its arrival + the one-way time; the TCP handshake's
round trip is added by holding the client's first bytes, since the kernel accepts at once). The
proxy runs at a real-time priority (`chrt -f`) so the machine's load does not make it late: the
last column says how late it released bytes (p99 and max over the runs; at most
{max(late or [0]):,} µs in this run). Times are the median of the runs (min–max): codeartsbuild's
measured loop (`client:fetch(job, {{from = 1, to = {dist['walk']:,}}}, {{concurrency = {dist['concurrency']}}})`,
`bench/client.lua range`, the client made before the clock starts, its connections inside);
h2load's own "finished in" (connections included); curl's process, start to exit; wrk runs for a
time, and its row is {dist['walk']:,} / its rate (connection set-up left out). "connections opened":
counted by the proxy. Round trips in a limit: TCP 1 + TLS 1.3 1 ({dist['handshake_rtts']}; the
request goes with the client's Finished; DNS is not counted, the endpoint is an address), then
one per request in flight. Measured {dist['started']} UTC, commit `{dist['commit']}`, load average
{' '.join(dist['load_before'])} before, {' '.join(dist['load_after'])} after.

{tables}
![walk time over the limit](distance.png)

"""
    return text
