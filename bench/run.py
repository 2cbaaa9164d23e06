#!/usr/bin/env python3
"""The benchmark of issues 6 and 15 (`make bench`): codeartsbuild against the server's ceiling (wrk,
h2load) and the curl CLI, over plain HTTP, over TLS, and over TLS at a distance, in one run, on one
machine.

    python3 bench/run.py [--runs 3] [--count 20000] [--rtt 20 80] [--only PART|NAME ...]

What it does, in order:

1. generates the data set (bench/harness.py): 2 x 4,000 record-info documents as the emulator's v3
   API sends them (~1.25 KB each), one job per key spelling, kept in build/bench/www;
2. starts nginx-light on 127.0.0.1 (one worker, pinned to CPU 0, its own prefix in a temp dir) and
   warms it up with a discarded wrk run;
3. runs every scenario (`--list`) `--runs` times, in rounds (round 1 runs each scenario once, then
   round 2, ...) so that a burst of load from elsewhere hits all scenarios alike; each client
   process is pinned to CPU 1 and measured from outside (wall time, user+system CPU and page
   faults from wait4(), peak RSS from /usr/bin/time), along with the nginx worker's CPU and each
   CPU's busy time. The machine is shared: before a run the harness waits a little for both CPUs
   to be quiet, and a run during which other processes used more than `--max-others` of either
   CPU is thrown away and run again (`--retries`, within `--quiet-budget` seconds of waiting);
4. measures `require "codeartsbuild"` + the first record_info on the warm server (fresh process
   each time), and the RSS of a records() walk over 100,000 builds;
5. the TLS and distance parts (bench/distance.py): the clients over TLS on loopback, then through
   the latency proxy at each --rtt: 1,000 builds at concurrency 16 and the first record of a fresh
   process, with connections and handshakes from nginx's access log;
6. writes bench/RESULTS.md, bench/results.png (records/s against concurrency, gnuplot) and
   bench/distance.png, and the raw numbers of every run to build/bench/results.json (with --report
   elsewhere: the report, the plots and the raw numbers go there instead).

`--only PART ...` (plain, tls, distance) runs those parts; into the default report, the parts not
run come from the last build/bench/results.json.

Figures are medians over the runs. records/s: wrk's own count and duration; for curl, the
process's wall time (start-up included: a few ms of a run of seconds); for codeartsbuild, the
driver's measured loop (bench/client.lua; the client is made before the clock starts). Client CPU
per record: the whole process (start-up included) divided by the records it got.

nginx, the proxy and every client stop when the script ends, fails or is interrupted.
"""

import argparse
import contextlib
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness as h

CONCURRENCIES = (1, 4, 16, 64)


# ---------------------------------------------------------------------------------------------------
# Scenarios: how to run each client, and how to read what it did

class Scenario:
    """One way of reading the records. port: "plain" (HTTP), or the TLS server's "h1" (ALPN offers
    http/1.1 only) or "h2" (h2 and http/1.1), directly or through the latency proxy (ctx.endpoint)."""
    port = "plain"

    def __init__(self, name, client, concurrency, label, env=None, port=None):
        self.name, self.client, self.concurrency, self.label = name, client, concurrency, label
        self.env = env or {}  # added to the client's environment
        self.port = port or self.port

    def argv(self, ctx):
        raise NotImplementedError

    def environment(self, ctx):
        return self.env

    def parse(self, run, ctx):
        """(records, seconds, loop_cpu_s or None) from a finished run; raises on a bad run."""
        raise NotImplementedError

    def requests_expected(self, records):
        """How many requests the TLS server's log will show for a run (at least)."""
        return records


class Wrk(Scenario):
    seconds = None  # ctx.wrk_seconds

    def argv(self, ctx):
        return ["wrk", "-t1", f"-c{self.concurrency}", f"-d{self.seconds or ctx.wrk_seconds}s", "-s",
                str(h.BENCH / "wrk_paths.lua"), ctx.endpoint(self.port), "--", str(ctx.paths_file), h.TOKEN]

    def parse(self, run, ctx):
        w = h.last_json_line(run["stdout"], "WRK ")
        bad = sum(w[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        if bad:
            raise RuntimeError(f"wrk saw {bad} errors: {w}")
        return w["requests"], w["duration_us"] / 1e6, None


class Curl(Scenario):
    def argv(self, ctx):
        config = ctx.work / "curl.cfg"
        config.write_text(f'header = "Accept: application/json"\nheader = "X-Auth-Token: {h.TOKEN}"\n'
                          'write-out = "%{stderr}%{http_code}\\n"\n' +
                          (f'cacert = "{ctx.server.ca}"\n' if self.port != "plain" else "") +
                          "".join(f'url = "{ctx.endpoint(self.port)}{p}"\n' for p in ctx.paths))
        argv = ["curl", "-s", "-K", str(config)]
        if self.concurrency > 1:
            # --parallel-immediate: open the connections at once rather than wait to see whether the
            # first can carry them all as HTTP/2 streams (which curl does on the h2 port).
            argv[2:2] = ["--parallel", "--parallel-max", str(self.concurrency)] + \
                (["--parallel-immediate"] if self.port != "h2" else [])
        return argv

    def parse(self, run, ctx):
        codes = run["stderr"].split()
        ok = codes.count("200")
        if run["exit"] != 0 or ok != ctx.count:
            raise RuntimeError(f"curl: exit {run['exit']}, {ok} of {ctx.count} answers were 200: "
                               f"{run['stderr'][-300:]}")
        return ok, run["wall_s"], None


class H2load(Scenario):
    """h2load (nghttp2-client): ctx.count requests over `clients` connections, `streams` at a time
    on each (HTTP/2), or one at a time over HTTP/1.1 (h1=True). Each connection reads ctx.paths in
    order; its own count and duration ("finished in", connection set-up included)."""

    def __init__(self, name, label, port, clients, streams, h1=False):
        super().__init__(name, "h2load", clients * streams, label, port=port)
        self.clients, self.streams, self.h1 = clients, streams, h1

    def argv(self, ctx):
        urls = ctx.work / "urls.txt"
        urls.write_text("".join(f"{ctx.endpoint(self.port)}{p}\n" for p in ctx.paths))
        return ["h2load", "-n", str(ctx.count), "-c", str(self.clients), "-m", str(self.streams)] + \
            (["--h1"] if self.h1 else []) + ["-i", str(urls), "-H", "accept: application/json",
                                             "-H", f"x-auth-token: {h.TOKEN}"]

    def parse(self, run, ctx):
        out = run["stdout"]
        finished = re.search(r"finished in ([\d.]+)(ms|s)", out)
        ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
        codes = re.search(r"status codes: (\d+) 2xx", out)
        if run["exit"] != 0 or not (finished and ok and codes) or int(codes.group(1)) != ctx.count:
            raise RuntimeError(f"h2load: exit {run['exit']}: {out[-500:]} {run['stderr'][-300:]}")
        seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
        return int(codes.group(1)), seconds, None


class Codeartsbuild(Scenario):
    def __init__(self, name, mode, concurrency, label, auth="token", env=None, port=None):
        super().__init__(name, "codeartsbuild", concurrency, label, env, port)
        self.mode, self.auth = mode, auth

    def argv(self, ctx):
        return [h.LUA, str(h.BENCH / "client.lua"), self.mode, ctx.endpoint(self.port), f"count={ctx.count}",
                f"builds={ctx.builds}", f"concurrency={self.concurrency}", f"auth={self.auth}"] + \
            ([f"ca_file={ctx.server.ca}"] if self.port != "plain" else [])

    def parse(self, run, ctx):
        if run["exit"] != 0:
            raise RuntimeError(f"client exited {run['exit']}: {run['stderr'][-500:]}")
        r = h.last_json_line(run["stdout"], "RESULT ")
        if r["errors"] or r["records"] != ctx.count:
            raise RuntimeError(f"client: {r['records']} records, {r['errors']} errors")
        return r["records"], r["wall_s"], r["cpu_s"]


def scenarios():
    out = [Wrk(f"wrk-c{c}", "wrk", c, f"wrk -t1 -c{c}") for c in CONCURRENCIES]
    out.append(Curl("curl-seq", "curl", 1, "curl -K list (sequential)"))
    out.extend(Curl(f"curl-par{c}", "curl", c, f"curl --parallel-max {c}") for c in CONCURRENCIES[1:])
    out.append(Codeartsbuild("cb-seq", "seq", 1, "record_info loop"))
    out.extend(Codeartsbuild(f"cb-fetch{c}", "fetch", c, f"fetch, concurrency {c}") for c in CONCURRENCIES)
    out.append(Codeartsbuild("cb-records16", "records", 16, "records() iterator, concurrency 16"))
    # Signs every request (HMAC-SHA256); nginx does not check the signature.
    out.append(Codeartsbuild("cb-fetch16-aksk", "fetch", 16, "fetch, concurrency 16, AK/SK signed", auth="aksk"))
    # An experiment, not a client setting: glibc's malloc giving the top of the heap back to the
    # kernel after each GC cycle and faulting it in again (bench/PROFILE.md).
    out.append(Codeartsbuild("cb-records16-toppad", "records", 16, "records(), 16, MALLOC_TOP_PAD_=64 MiB",
                             env={"MALLOC_TOP_PAD_": str(64 << 20)}))
    return out


# ---------------------------------------------------------------------------------------------------
# Running

class Context:
    proxy = None   # the latency proxy of the run in progress (distance part)
    rtt_ms = None  # the round trip it adds; None: straight to nginx

    def endpoint(self, port):
        if port == "plain":
            return self.server.endpoint
        target = self.server.tls[port]
        return f"https://127.0.0.1:{self.proxy.ports[target] if self.proxy else target}"


def tls_log(ctx, offset, expected):
    """The TLS server's access log lines from `offset` on, once `expected` requests are in it (nginx
    writes a line when it has sent the answer: it may come just after the client has exited)."""
    deadline = time.monotonic() + 1.0
    while True:
        with open(ctx.server.access_log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def measured_run(scenario, ctx):
    tls = scenario.port != "plain"
    log_from = ctx.server.access_log.stat().st_size if tls and ctx.server.access_log.exists() else 0
    with contextlib.ExitStack() as stack:
        if tls and ctx.rtt_ms:
            targets = [ctx.server.tls["h1"], ctx.server.tls["h2"]]
            ctx.proxy_ports = getattr(ctx, "proxy_ports", None) or {t: h.free_port() for t in targets}
            ctx.proxy = stack.enter_context(h.LatencyProxy(ctx.rtt_ms / 2, targets, ctx.proxy_ports))
        try:
            env = dict(h.lua_env(), **scenario.environment(ctx))
            run = h.run_client(scenario.argv(ctx), server=ctx.server, timeout=ctx.timeout, peak_rss=True,
                               stdout_to_devnull=isinstance(scenario, Curl), env=env)
        finally:
            proxy, ctx.proxy = ctx.proxy, None
    entry = {k: run[k] for k in ("wall_s", "cpu_s", "user_s", "sys_s", "maxrss_kb", "server_cpu_s", "cpu_busy_s")}
    try:
        records, seconds, loop_cpu = scenario.parse(run, ctx)
    except (RuntimeError, ValueError) as e:
        entry["error"] = str(e)
        return entry
    if tls:  # connections and handshakes, as nginx saw them and (at a distance) as the proxy counted
        entry["conns"] = h.connection_stats(tls_log(ctx, log_from, scenario.requests_expected(records)))
        if proxy:
            entry["opened"] = proxy.accepted[ctx.server.tls[scenario.port]]
            entry["proxy_late_us"] = proxy.late_us
    other_cpu1 = run["cpu_busy_s"].get(h.CLIENT_CPU, 0.0) - run["cpu_s"]
    other_cpu0 = run["cpu_busy_s"].get(h.SERVER_CPU, 0.0) - run["server_cpu_s"]
    entry.update({
        "records": records, "seconds": seconds, "rate": records / seconds if seconds else 0.0,
        "cpu_us_per_record": run["cpu_s"] * 1e6 / records,
        "loop_cpu_us_per_record": loop_cpu * 1e6 / records if loop_cpu is not None else None,
        "server_cpu_us_per_record": run["server_cpu_s"] * 1e6 / records,
        "faults_per_record": run["minflt"] / records,
        # What else ran on each CPU meanwhile, as a share of one CPU (clock-tick resolution).
        "others_cpu1": max(0.0, other_cpu1) / run["wall_s"], "others_cpu0": max(0.0, other_cpu0) / run["wall_s"],
    })
    return entry


def quiet_run(scenario, ctx, args):
    """One measured run that other work on the machine did not disturb much: before it, wait (a
    little) for both CPUs to be quiet; after it, if other processes used more than --max-others of
    CPU 0 or CPU 1 during the run, throw it away and run again (at most --retries times, and while
    the --quiet-budget of waiting lasts). The last attempt is kept whatever happened, marked."""
    for attempt in range(args.retries + 1):
        budget = max(0.0, min(args.quiet_wait, args.quiet_budget - ctx.waited))
        ctx.waited += h.wait_for_quiet(args.quiet, budget)
        entry = measured_run(scenario, ctx)
        if "error" in entry:
            return entry
        loaded = max(entry["others_cpu0"], entry["others_cpu1"]) > args.max_others
        if not loaded:
            return entry
        if attempt == args.retries or ctx.waited >= args.quiet_budget:
            entry["loaded"] = True
            return entry
        ctx.rejected[scenario.name] = ctx.rejected.get(scenario.name, 0) + 1
        h.log(f"bench: {scenario.name}: other processes used {entry['others_cpu0']:.0%} of CPU 0 and "
              f"{entry['others_cpu1']:.0%} of CPU 1 during the run: running it again")
    return entry


def run_rounds(ctx, scenarios, runs, args, tag=""):
    """`runs` rounds of the scenarios (round 1 runs each once, then round 2...), so that a burst of
    load from elsewhere hits all of them alike. Returns ({name: [run, ...]}, {name: runs rejected})."""
    results, ctx.rejected = {sc.name: [] for sc in scenarios}, {}
    for round_no in range(1, runs + 1):
        for sc in scenarios:
            entry = quiet_run(sc, ctx, args)
            results[sc.name].append(entry)
            h.log(f"bench: {tag + ' ' if tag else ''}round {round_no}/{runs} {sc.name:18} " +
                  (f"ERROR {entry['error'][:200]}" if "error" in entry else
                   f"{entry['rate']:9,.0f} records/s  {entry['seconds']:7.3f} s  "
                   f"{entry['cpu_us_per_record']:6.1f} µs/record  "
                   f"others on CPU 0/1: {entry['others_cpu0']:.0%}/{entry['others_cpu1']:.0%}" +
                   (f"  {entry['conns']['connections']} conn, {entry['conns']['resumed']} resumed"
                    if "conns" in entry else "") +
                   ("  (loaded: kept, no retry left)" if entry.get("loaded") else "")))
    return results, ctx.rejected


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs):
    good = [r for r in runs if "error" not in r]
    s = {"runs": len(runs), "good": len(good), "errors": [r["error"] for r in runs if "error" in r]}
    if good:
        rates = [r["rate"] for r in good]
        s.update({
            "rate": median(rates), "rate_min": min(rates), "rate_max": max(rates), "rates": rates,
            "cpu_us": median([r["cpu_us_per_record"] for r in good]),
            "loop_cpu_us": median([r["loop_cpu_us_per_record"] for r in good]),
            "server_cpu_us": median([r["server_cpu_us_per_record"] for r in good]),
            "faults": median([r["faults_per_record"] for r in good]),
            "maxrss_kb": max(r["maxrss_kb"] for r in good),
            "others_cpu1": median([r["others_cpu1"] for r in good]),
            "others_cpu0": median([r["others_cpu0"] for r in good]),
            "shortest_s": min(r["seconds"] for r in good),
            "records": median([r["records"] for r in good]),
            "loaded_runs": sum(1 for r in good if r.get("loaded")),
        })
    return s


def measure_startup(ctx, times, args):
    """require + new + first record_info in fresh processes; and a bare interpreter for scale."""
    argv = [h.LUA, str(h.BENCH / "client.lua"), "startup", ctx.server.endpoint]
    h.run_client(argv)  # the files in the page cache: a warm start is what is measured
    totals, requires, cpus, walls, bare = [], [], [], [], []
    for _ in range(times):
        h.wait_for_quiet(args.quiet, args.quiet_wait)
        run = h.run_client(argv)
        r = h.last_json_line(run["stdout"], "RESULT ")
        totals.append(r["total_ms"])
        requires.append(r["require_ms"])
        cpus.append(r["cpu_ms"])
        walls.append(run["wall_s"] * 1000)
        bare.append(h.run_client([h.LUA, "-e", ""])["wall_s"] * 1000)
    return {"total_ms": median(totals), "total_ms_min": min(totals), "total_ms_max": max(totals),
            "require_ms": median(requires), "cpu_ms": median(cpus), "process_ms": median(walls),
            "bare_interpreter_ms": median(bare), "runs": times}


def measure_walk(ctx, builds, times, args):
    argv = [h.LUA, str(h.BENCH / "client.lua"), "walk", ctx.server.endpoint, f"count={builds}", "concurrency=16"]
    runs = []
    for _ in range(times):
        h.wait_for_quiet(args.quiet, args.quiet_wait)
        run = h.run_client(argv, timeout=max(ctx.timeout, 600), peak_rss=True)
        r = h.last_json_line(run["stdout"], "RESULT ")
        if run["exit"] != 0 or r["errors"] or r["records"] != builds:
            raise RuntimeError(f"walk: exit {run['exit']}, {r['records']} records, {r['errors']} errors")
        r["growth_kb"] = r["rss_end_kb"] - r["rss_start_kb"]
        r["peak_growth_kb"] = r["rss_peak_kb"] - r["rss_start_kb"]
        r["process_maxrss_kb"] = run["maxrss_kb"]
        runs.append(r)
    return {"builds": builds, "runs": runs, "growth_kb": median([r["growth_kb"] for r in runs]),
            "peak_growth_kb": median([r["peak_growth_kb"] for r in runs]),
            "rate": median([r["records"] / r["wall_s"] for r in runs])}


# ---------------------------------------------------------------------------------------------------
# The report

def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_1(x):
    return "–" if x is None else f"{x:,.1f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def baseline_for(summary, kind, concurrency):
    name = {"wrk": f"wrk-c{concurrency}", "curl": "curl-seq" if concurrency == 1 else f"curl-par{concurrency}"}[kind]
    return summary.get(name, {}).get("rate")


def results_table(ctx, summary):
    lines = [
        "| client | conc. | records/s (median) | runs: min–max | client CPU µs/record | of which loop | "
        "page faults/record | peak RSS MB | nginx CPU µs/record | others on CPU 0 / 1 | rerun | x wrk | x curl |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in ctx.scenarios:
        s = summary[sc.name]
        if not s.get("good"):
            lines.append(f"| {sc.label} | {sc.concurrency} | FAILED: {s['errors'][:1]} | | | | | | | | | | |")
            continue
        is_cb = sc.client == "codeartsbuild"
        lines.append("| {} | {} | **{}** | {}–{} | {} | {} | {:.2f} | {} | {} | {:.0%} / {:.0%} | {} | {} | {} |".format(
            sc.label, sc.concurrency, fmt_int(s["rate"]), fmt_int(s["rate_min"]), fmt_int(s["rate_max"]),
            fmt_1(s["cpu_us"]), fmt_1(s["loop_cpu_us"]) if is_cb else "", s["faults"], fmt_1(s["maxrss_kb"] / 1024),
            fmt_1(s["server_cpu_us"]), s["others_cpu0"], s["others_cpu1"], ctx.rejected.get(sc.name, 0),
            ratio(s["rate"], baseline_for(summary, "wrk", sc.concurrency)) if is_cb else "",
            ratio(s["rate"], baseline_for(summary, "curl", sc.concurrency)) if is_cb else ""))
    return "\n".join(lines)


def verdict(ok):
    return "**met**" if ok else "**not met**"


def round_ratios(runs, a, b):
    """a's rate over b's, round by round, in the rounds where neither run was disturbed or failed:
    how much the ratio of the medians can be trusted."""
    out = []
    for x, y in zip(runs.get(a, []), runs.get(b, [])):
        if all("error" not in r and not r.get("loaded") for r in (x, y)):
            out.append(x["rate"] / y["rate"])
    if not out:
        return "no undisturbed round", None, None
    return f"rounds: {min(out):.2f}–{max(out):.2f}", min(out), max(out)


def ratio_verdict(ratio, threshold, lo, hi):
    """met / not met, or undecided when the undisturbed rounds fall on both sides of the threshold."""
    if lo is not None and lo < threshold <= hi:
        return f"**{'met' if ratio >= threshold else 'not met'}, undecided**: the rounds fall on both sides"
    return verdict(ratio >= threshold)


def targets_table(summary, startup, walk, runs):
    rows = ["| target (issue 6) | measured | |", "|---|---:|---|"]

    def get(name, key):
        return summary.get(name, {}).get(key)

    f16, w16, c16 = get("cb-fetch16", "rate"), get("wrk-c16", "rate"), get("curl-par16", "rate")
    if f16 and w16:
        spread, lo, hi = round_ratios(runs, "cb-fetch16", "wrk-c16")
        rows.append(f"| fetch, concurrency 16 >= 0.4 x wrk -c16 | {f16 / w16:.2f} x ({fmt_int(f16)} vs "
                    f"{fmt_int(w16)}/s; {spread}) | {ratio_verdict(f16 / w16, 0.4, lo, hi)} |")
    if f16 and c16:
        rows.append(f"| (for scale) fetch 16 vs curl --parallel-max 16 (issue: about 1.5 x) | {f16 / c16:.2f} x | |")
    cpu16, wrk_cpu16 = get("cb-fetch16", "cpu_us"), get("wrk-c16", "cpu_us")
    if cpu16:
        rows.append(f"| fetch 16: client CPU <= 25 µs per record | {cpu16:.1f} µs | {verdict(cpu16 <= 25)} |")
    if cpu16 and wrk_cpu16:
        rows.append(f"| (for scale) that CPU over wrk -c16's own, {wrk_cpu16:.1f} µs per request here (the issue's 25 µs "
                    f"is 3.6 x its wrk's 7 µs) | {cpu16 / wrk_cpu16:.1f} x | |")
    seq, w1 = get("cb-seq", "rate"), get("wrk-c1", "rate")
    if seq and w1:
        spread, lo, hi = round_ratios(runs, "cb-seq", "wrk-c1")
        rows.append(f"| record_info loop >= 0.8 x wrk -c1 | {seq / w1:.2f} x ({fmt_int(seq)} vs {fmt_int(w1)}/s; "
                    f"{spread}) | {ratio_verdict(seq / w1, 0.8, lo, hi)} |")
    if startup:
        rows.append(f"| require + first record_info < 5 ms (warm server) | {startup['total_ms']:.1f} ms "
                    f"| {verdict(startup['total_ms'] < 5)} |")
    if walk:
        rows.append(f"| RSS growth walking {walk['builds']:,} builds < 16 MB | {walk['growth_kb'] / 1024:.1f} MB "
                    f"(peak {walk['peak_growth_kb'] / 1024:.1f} MB) | {verdict(walk['growth_kb'] < 16 * 1024)} |")
    return "\n".join(rows)


def write_plot(ctx, summary, png):
    """records/s against concurrency, one line per client (bench/plot.gp draws it)."""
    series = [("wrk", [f"wrk-c{c}" for c in CONCURRENCIES]),
              ("curl CLI", ["curl-seq"] + [f"curl-par{c}" for c in CONCURRENCIES[1:]]),
              ("codeartsbuild fetch", [f"cb-fetch{c}" for c in CONCURRENCIES]),
              ("codeartsbuild record_info loop", ["cb-seq"]),
              ("codeartsbuild records()", ["cb-records16"]),
              ("codeartsbuild fetch, AK/SK", ["cb-fetch16-aksk"])]
    dat = h.OUT / "plot.dat"
    with open(dat, "w") as f:
        for title, names in series:
            f.write(f'"{title}"\n')
            for name in names:
                s = summary.get(name, {})
                sc = next((x for x in ctx.scenarios if x.name == name), None)
                if sc and s.get("rate"):
                    f.write(f"{sc.concurrency} {s['rate']:.0f} {s['rate_min']:.0f} {s['rate_max']:.0f}\n")
            f.write("\n\n")
    title = f"records/s against concurrency ({ctx.machine['cores']} cores: nginx on CPU 0, client on CPU 1)"
    subprocess.run(["gnuplot", "-e", f"datafile='{dat}'; blocks={len(series)}; outfile='{png}'; plottitle='{title}'",
                    str(h.BENCH / "plot.gp")], check=True)


def round_speeds(ctx, summary, runs):
    """'round 1: 1.00, round 2: 0.98, ...': 1.00 is a typical round, 1.40 one where runs needed 40 %
    more CPU per record than their scenario's median."""
    out = []
    for i in range(ctx.runs):
        ratios = [runs[sc.name][i]["cpu_us_per_record"] / summary[sc.name]["cpu_us"] for sc in ctx.scenarios
                  if i < len(runs.get(sc.name, [])) and "error" not in runs[sc.name][i]]
        if ratios:
            out.append(f"round {i + 1}: {statistics.median(ratios):.2f}")
    return ", ".join(out)


def display_path(path):
    path = Path(path).resolve()
    return str(path.relative_to(h.ROOT)) if h.ROOT in path.parents else str(path)


def write_report(ctx, summary, startup, walk, path, runs, more=""):
    """RESULTS.md: the plain-HTTP part, then `more` (the TLS and distance parts, bench/distance.py)."""
    m = ctx.machine
    v = m["versions"]
    short = [f"{sc.label} ({summary[sc.name]['shortest_s']:.2f} s)" for sc in ctx.scenarios
             if summary[sc.name].get("good") and summary[sc.name]["shortest_s"] < 0.5]
    others1 = [summary[sc.name]["others_cpu1"] for sc in ctx.scenarios if summary[sc.name].get("good")]
    others0 = [summary[sc.name]["others_cpu0"] for sc in ctx.scenarios if summary[sc.name].get("good")]
    spreads = [(s["rate_max"] - s["rate_min"]) / s["rate"] for s in summary.values() if s.get("good")]
    loaded = sum(s.get("loaded_runs", 0) for s in summary.values())
    sizes = h.document_sizes(ctx.www)
    text = f"""# Benchmark results

Written by `make bench` (`bench/run.py`) on {ctx.started} UTC, commit `{m['commit']}`{
    " plus uncommitted changes to " + ", ".join(m['csrc_lua_modified']) if m['csrc_lua_modified'] else ""};
{ctx.runs} runs of each scenario, in rounds. **These are one run's numbers on a shared, loaded machine: read the spread
columns before comparing two figures, and treat a target met or missed by less than the spread as
undecided.** Raw numbers of every run: `{display_path(ctx.raw_path)}`.

"""
    if not summary:
        text += "## Plain HTTP\n\nNot measured (`--only` left it out, and there were no earlier results).\n\n"
    else:
        text += f"""## Machine and load

- {m['cpu']}, {m['cores']} cores ({m['virt']}), {m['memory_gb']} GB; {m['os']}, Linux {m['kernel']}.
- nginx-light {v['nginx']} (one worker, pinned to CPU 0), wrk {v['wrk']}, h2load {v.get('h2load', '?')}, {v['curl'].split(' (')[0]},
  {v['lua']}, lua-cjson {v['lua-cjson']}, {v['openssl']}; module built with {v['gcc']}, `-O2 -g`.
- Load average before: {' '.join(ctx.load_before)}, after: {' '.join(ctx.load_after)}. {
    "Other processes ran on the same two CPUs during this run" if sum(ctx.rejected.values()) + loaded else
    "No run was disturbed by other processes enough to be run again"}. The harness waited before each run
  (up to {ctx.quiet_wait:.0f} s) for both CPUs to be at most {ctx.quiet:.0%} busy with other work, and ran again any run
  during which other processes used more than {ctx.max_others:.0%} of CPU 0 or CPU 1: {sum(ctx.rejected.values())} runs were
  thrown away and run again, {loaded} were kept although disturbed (no retry left), {ctx.waited:.0f} s went in
  waiting (in all parts). In the runs kept, other processes used a median {statistics.median(others1):.0%} of CPU 1 (the client's)
  and {statistics.median(others0):.0%} of CPU 0 (nginx's); per scenario in the table.
- Still, the median spread (max - min) / median of a scenario's runs is {statistics.median(spreads):.0%}: {
    "the disturbed runs kept, and " if loaded else ""}rounds in which no other process used our CPUs but every
  client needed more CPU per record than in the other rounds (the VM's host is shared as well).
  How fast each round ran, as the median over all scenarios of a run's CPU per record over its
  scenario's median: {round_speeds(ctx, summary, runs)}. Compare within a round
  (`{display_path(ctx.raw_path)}`) when in doubt.
{"- Runs shorter than 0.5 s (raise `--count`): " + ", ".join(short) if short else
 "- Every run lasted at least 0.5 s."}

## What was measured

- Data: {2 * ctx.builds:,} record-info documents (v3 envelope `{{success, message, err_code, result}}`, as
  the emulator and the real API send them), {sizes['mean']:.0f} bytes on average, half in camelCase and half
  in snake_case keys, served as static files by nginx (`open_file_cache`, keep-alive, `X-Request-Id` on
  every answer). Every client reads the same {ctx.count:,} paths per run: half from each spelling.
- wrk: `-t1`, `{ctx.wrk_seconds}` s per run, the paths in turn (`bench/wrk_paths.lua`), no parsing: the
  server's ceiling. curl: one process reading a list of {ctx.count:,} URLs (`-K`), static headers,
  bodies to /dev/null, sequential or `--parallel --parallel-max N`.
- codeartsbuild (`bench/client.lua`): a client with `token` auth (nginx does not check it),
  `retries = 0`, its `concurrency` >= the walk's; every record decoded, normalised and checked
  (`rec.buildNo` must be the number asked for). The AK/SK row signs every request as well. The
  `MALLOC_TOP_PAD_` row is an experiment (bench/PROFILE.md): the same walk with glibc told to keep
  64 MiB at the top of the heap instead of giving it back to the kernel after each GC cycle.
- records/s: the median of {ctx.runs} runs (wrk: its own count and duration; curl: process wall time, start-up
  included; codeartsbuild: the measured loop, client made before the clock starts). Client CPU:
  user + system time of the whole process (wait4) per record; "of which loop" is the loop alone
  (`os.clock`). Page faults: minor faults of the whole process (wait4) per record. Peak RSS: the
  process's maximum resident set (`/usr/bin/time`). nginx CPU: the
  worker's utime + stime over the run, per record. "others on CPU 0 / 1": what other processes used of
  nginx's CPU and of the client's during the kept runs (median; clock-tick resolution), "rerun": runs
  thrown away because that was above the limit. "x wrk" and "x curl": the codeartsbuild rate over
  wrk's and curl's at the same concurrency, from this same run.

## Results

{results_table(ctx, summary)}

![records/s against concurrency](results.png)

## Targets

{targets_table(summary, startup, walk, runs)}

"""
    if startup:
        text += f"""## Start-up

`require "codeartsbuild"`, `cb.new{{...}}` and the first `record_info` on the warm server (its
connection set-up included), in a fresh `{h.LUA}` process each time, {startup['runs']} times: median
**{startup['total_ms']:.2f} ms** (min {startup['total_ms_min']:.2f}, max {startup['total_ms_max']:.2f}), of which
`require` {startup['require_ms']:.2f} ms; {startup['cpu_ms']:.2f} ms of CPU. The whole process, interpreter start and
exit included, took {startup['process_ms']:.1f} ms against {startup['bare_interpreter_ms']:.1f} ms for `{h.LUA} -e ''`.

"""
    if walk:
        text += f"""## Walking {walk['builds']:,} builds

`client:records(job, {{ from = 1, to = {walk['builds']:,}, concurrency = 16 }})` against an nginx location that
answers any build number with a valid record of that number (one document, its `buildNo` filled
in by nginx: {walk['builds']:,} files would not fit this machine's descriptor limit with the cache
above). RSS read from `/proc/self/status` before the walk (after `require`, `cb.new` and a full GC)
and at the end, {len(walk['runs'])} runs: growth **{walk['growth_kb'] / 1024:.1f} MB** (median; the largest sample during the
walk {walk['peak_growth_kb'] / 1024:.1f} MB above the start), {fmt_int(walk['rate'])} records/s (not comparable with the table:
every record is the same document, so its strings already exist and nginx reads no file).
RSS at the start, end and peak of each run (KB): {"; ".join(f"{r['rss_start_kb']} / {r['rss_end_kb']} / {r['rss_peak_kb']}"
                                                    for r in walk['runs'])}.

"""
    text += more + """## Reproduce

```sh
make bench                      # installs what it needs (Debian), builds, measures, writes this report
make bench BENCH_FLAGS="--only distance"   # the distance part again; the other tables stay as they were
python3 bench/run.py --runs 3 --only wrk-c16 cb-fetch16     # a subset, quicker (--list: the names)
python3 bench/run.py --from-json build/bench/results.json   # the report again, measuring nothing
python3 bench/harness.py serve  # the same nginx (plain and TLS) and data set, to try a client by hand
```

The profile of where the client's time goes is in `bench/PROFILE.md`; the instruction-count micro
benchmark of signing and normalisation is `make bench-micro`.
"""
    path.write_text(text)


def kept_logs_section(report):
    """The "Logs" section bench/logs.lua's tables were pasted into: run.py does not measure it, and
    keeps it as it was."""
    if not report.exists():
        return ""
    found = re.search(r"^## Logs:.*?(?=^## )", report.read_text(), re.S | re.M)
    return found.group(0) if found else ""


# ---------------------------------------------------------------------------------------------------

PARTS = ("plain", "tls", "distance")
PLAIN_KEYS = ("machine", "started", "count", "builds", "settings", "scenarios", "rejected_runs", "waited_s",
              "runs", "summary", "startup", "walk", "load_before", "load_after")


def check_tools():
    missing = [t for t in ("nginx", "wrk", "h2load", "curl", "openssl", "gnuplot", "taskset", h.LUA)
               if not shutil.which(t)]
    if not Path("/usr/bin/time").exists():
        missing.append("/usr/bin/time")
    if missing:
        sys.exit("bench: missing " + ", ".join(missing) + " (make bench installs them)")
    if not (h.MODULE_DIR / "codeartsbuild" / "core.so").exists():
        sys.exit(f"bench: {h.MODULE_DIR}/codeartsbuild/core.so is not built (make)")
    if not h.LatencyProxy.BINARY.exists():
        sys.exit(f"bench: {h.LatencyProxy.BINARY} is not built (make bench builds it)")


def selection(args, all_scenarios):
    """(plain scenarios, parts) that --only asks for: part names (plain, tls, distance) or names of
    the plain table's scenarios; nothing: everything. Start-up and the long walk go with "plain"."""
    only = args.only or list(PARTS)
    unknown = [n for n in only if n not in PARTS and n not in {sc.name for sc in all_scenarios}]
    if unknown:
        sys.exit(f"bench: --only {' '.join(unknown)}: no such part or scenario (see --list)")
    parts = [p for p in PARTS if p in only]
    plain = [sc for sc in all_scenarios if "plain" in parts or sc.name in only]
    return plain, parts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each plain scenario (median; default 3)")
    ap.add_argument("--count", type=int, default=20000,
                    help="records per curl/codeartsbuild run, plain and TLS (default 20000)")
    ap.add_argument("--builds", type=int, default=h.DEFAULT_BUILDS, help="documents per job on the server")
    ap.add_argument("--wrk-seconds", type=int, default=2, help="duration of a wrk run")
    ap.add_argument("--startup-runs", type=int, default=10)
    ap.add_argument("--walk-builds", type=int, default=100000)
    ap.add_argument("--walk-runs", type=int, default=2)
    ap.add_argument("--tls-runs", type=int, default=3, help="runs of each TLS scenario (default 3)")
    ap.add_argument("--rtt", type=float, nargs="+", default=[20, 80],
                    help="round trips of the distance part, ms (default 20 80)")
    ap.add_argument("--distance-runs", type=int, default=3, help="runs of each distance walk (default 3)")
    ap.add_argument("--first-runs", type=int, default=5, help="runs of each first-record scenario (default 5)")
    ap.add_argument("--only", nargs="*",
                    help="parts (plain, tls, distance) or plain scenario names (see --list); a plain scenario "
                         "named alone skips start-up and the walk; into the default report, the parts not "
                         "measured come from the last build/bench/results.json")
    ap.add_argument("--list", action="store_true", help="list the scenarios")
    ap.add_argument("--report", default=str(h.BENCH / "RESULTS.md"), help="where to write the report")
    ap.add_argument("--timeout", type=int, default=300, help="seconds before a client run is killed")
    ap.add_argument("--quiet", type=float, default=0.2,
                    help="before each run, wait until other processes use at most this share of CPU 0 and of CPU 1")
    ap.add_argument("--quiet-wait", type=float, default=5, help="seconds to wait for that before one run, at most")
    ap.add_argument("--max-others", type=float, default=0.25,
                    help="a run during which other processes used more of CPU 0 or CPU 1 than this is run again")
    ap.add_argument("--retries", type=int, default=2, help="times a disturbed run is run again, at most")
    ap.add_argument("--quiet-budget", type=float, default=150,
                    help="seconds of waiting for quiet in all, at most; after that, runs are kept as they come")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: write the report and plot again from a results.json")
    args = ap.parse_args()
    if args.count < 2000:
        ap.error("--count: at least 2000 records per run")
    if min(args.runs, args.tls_runs, args.distance_runs, args.first_runs) < 1:
        ap.error("runs: at least 1")

    sys.modules.setdefault("run", sys.modules[__name__])  # bench/distance.py imports this script as `run`
    import distance

    all_scenarios = scenarios()
    if args.list:
        for sc in all_scenarios:
            print(f"{sc.name:18} {sc.label}")
        print("parts: " + " ".join(PARTS) + f"; TLS: {' '.join(sc.name for sc in distance.tls_scenarios())}; "
              f"distance: {' '.join(sc.name for sc in distance.walk_scenarios() + distance.first_scenarios())}")
        return
    report = Path(args.report).resolve()
    report.parent.mkdir(parents=True, exist_ok=True)
    # The raw results of the report in bench/ go to build/bench/results.json; those of any other
    # report (a subset, a try) next to it, so that they never overwrite the others.
    raw_path = h.OUT / "results.json" if report == h.BENCH / "RESULTS.md" else report.with_suffix(".json")
    if args.from_json:
        raw = json.loads(Path(args.from_json).read_text())
    else:
        raw = measure(args, all_scenarios, distance)
        # A part not measured this time keeps its last results (--only distance: the plain and TLS
        # tables stay as they were, and say when they were measured).
        if raw_path.exists():
            last = json.loads(raw_path.read_text())
            if not raw["runs"] and last.get("runs"):
                raw.update({k: last[k] for k in PLAIN_KEYS if k in last})
            for part in ("tls", "distance"):
                raw[part] = raw.get(part) or last.get(part)
        raw_path.write_text(json.dumps(raw, indent=1, default=str))
    ctx = context_from_raw(raw, all_scenarios, args)
    ctx.raw_path = Path(args.from_json) if args.from_json else raw_path
    summary = {name: summarise(runs) for name, runs in raw["runs"].items()}
    startup, walk = raw["startup"], raw["walk"]
    png = report.parent / "results.png"
    if summary:
        write_plot(ctx, summary, png)
    write_report(ctx, summary, startup, walk, report, raw["runs"],
                 distance.report(raw, summary, report.parent / "distance.png") + kept_logs_section(report))
    print(f"bench: wrote {report}, {png}" + ("" if args.from_json else f" and {raw_path}"))
    print(targets_table(summary, startup, walk, raw["runs"]))
    failed = [name for name, s in summary.items() if s["good"] < s["runs"]]
    for part in ("tls", "distance"):
        for runs in distance_runs(raw.get(part)):
            failed += [name for name, rs in runs.items() if any("error" in x for x in rs)]
    if failed:
        print("bench: runs failed in " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


def distance_runs(part):
    """The {name: runs} tables of a TLS or distance part of the raw results."""
    if not part:
        return []
    if "runs" in part:
        return [part["runs"]]
    return [t[kind] for t in part["rtts"].values() for kind in ("walk", "first", "cache") if kind in t]


def measure(args, all_scenarios, distance):
    """Runs everything --only selects; returns the raw results (build/bench/results.json)."""
    check_tools()
    ctx = Context()
    ctx.scenarios, parts = selection(args, all_scenarios)
    ctx.runs, ctx.count, ctx.builds, ctx.wrk_seconds, ctx.timeout = (args.runs, args.count, args.builds,
                                                                      args.wrk_seconds, args.timeout)
    started = now_utc()
    machine = h.machine_info()
    h.OUT.mkdir(parents=True, exist_ok=True)
    ctx.www = h.OUT / "www"
    h.generate_data(ctx.www, ctx.builds)

    ctx.work = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    results, startup, walk, out = {}, None, None, {}
    ctx.waited, ctx.rejected = 0.0, {}
    try:
        ctx.paths = h.paths_for(ctx.count, ctx.builds)
        ctx.paths_file = ctx.work / "paths.txt"
        ctx.paths_file.write_text("\n".join(ctx.paths) + "\n")
        load_before = h.loadavg()
        with h.Nginx(ctx.www, tls=True) as server:
            ctx.server = server
            h.log(f"bench: nginx at {server.endpoint}, TLS {server.tls['h1']} and {server.tls['h2']} "
                  f"(worker {server.worker_pid}); warming up")
            h.run_client(Wrk("warm", "wrk", 16, "").argv(ctx))
            if ctx.scenarios:
                results, _ = run_rounds(ctx, ctx.scenarios, ctx.runs, args)
            rejected = dict(ctx.rejected)
            if "plain" in parts:
                h.log("bench: start-up")
                startup = measure_startup(ctx, args.startup_runs, args)
                h.log(f"bench: walking {args.walk_builds:,} builds, {args.walk_runs} times")
                walk = measure_walk(ctx, args.walk_builds, args.walk_runs, args)
            load_after = h.loadavg()
            if "tls" in parts:
                out["tls"] = distance.measure_tls(ctx, args)
            if "distance" in parts:
                out["distance"] = distance.measure_distance(ctx, args)
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)
    return dict(out, **{
        "machine": machine, "started": started, "count": args.count, "builds": ctx.builds,
        "settings": {"runs": ctx.runs, "wrk_seconds": ctx.wrk_seconds, "quiet": args.quiet,
                     "quiet_wait": args.quiet_wait, "max_others": args.max_others},
        "scenarios": [sc.name for sc in ctx.scenarios], "rejected_runs": rejected, "waited_s": ctx.waited,
        "runs": results, "summary": {name: summarise(runs) for name, runs in results.items()},
        "startup": startup, "walk": walk, "load_before": load_before, "load_after": load_after,
    })


def context_from_raw(raw, all_scenarios, args):
    """What the report needs, from the raw results (settings missing from older files: the options')."""
    ctx = Context()
    names = raw.get("scenarios") or list(raw["summary"])
    ctx.scenarios = [sc for sc in all_scenarios if sc.name in names]
    settings = raw.get("settings", {})
    ctx.runs = settings.get("runs", args.runs)
    ctx.wrk_seconds = settings.get("wrk_seconds", args.wrk_seconds)
    ctx.quiet = settings.get("quiet", args.quiet)
    ctx.quiet_wait = settings.get("quiet_wait", args.quiet_wait)
    ctx.max_others = settings.get("max_others", args.max_others)
    ctx.count, ctx.builds, ctx.started, ctx.machine = raw["count"], raw["builds"], raw["started"], raw["machine"]
    ctx.load_before, ctx.load_after = raw["load_before"], raw["load_after"]
    ctx.rejected, ctx.waited = raw["rejected_runs"], raw["waited_s"]
    ctx.www = h.OUT / "www"
    return ctx


if __name__ == "__main__":
    main()
