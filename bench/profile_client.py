#!/usr/bin/env python3
"""Where the client's time goes, on the concurrency-16 fetch of the benchmark, and at start-up
(bench/PROFILE.md is written from its output).

    python3 bench/profile_client.py [--mode fetch|records|seq] [--concurrency 16] [--auth token|aksk]
                                    [--small 2000] [--large 6000] [--perf-count 40000] [--skip perf strace]

Four views, each against the benchmark's nginx and data set (bench/harness.py):

1. callgrind, instructions per record. The driver (bench/client.lua fetch, concurrency 16) runs
   twice under callgrind, with `--small` and `--large` records; every figure is the difference of
   the two runs divided by the difference in records, so start-up (interpreter, require, OpenSSL
   and libcurl initialisation, the first connections) cancels out and what is left is the cost of
   one more record. Reported: the total; the self cost grouped by library, and within Lua by the
   interpreter's source file (lvm.c executes Lua code, lgc.c is the collector...); the top
   functions by self cost; and the inclusive cost of the client's main C entry points.
   When bench/debug-lua.sh has built build/bench/debug/lua5.4 and its cjson.so, those are used:
   Debian's are stripped, and then the Lua core and cjson show up as bare addresses. libcurl's
   internal functions are unnamed either way (no symbols): its exported entry points carry it.
2. perf (cpu-clock sampling: this VM has no hardware counters, so `perf stat -e instructions`
   does not work), uninstrumented runs of `--perf-count` records pinned to CPU 1: the share of the
   client's CPU time per library (the kernel included) and per function (self); then, from a run
   with DWARF call graphs, the inclusive share of the client's entry points and the kernel's paths.
3. strace -c: system calls per record (strace slows the run down; the counts are what matter).
4. start-up: perf stat (CPU time, page faults) of fresh processes that stop at each step on the
   way to the first record: the interpreter, loading libcrypto, loading libcurl, cjson, the core,
   the whole module, and bench/client.lua's start-up mode.

Raw outputs are kept in build/bench/profile/.
"""

import argparse
import collections
import shutil
import subprocess
import sys
from pathlib import Path

import harness as h

PROFILE_DIR = h.OUT / "profile"
DEBUG = h.OUT / "debug"

# Entry points whose inclusive cost per record is worth knowing (names as callgrind shows them).
ENTRY_POINTS = [
    ("client_poll", "client:poll() in C: runs the engine, builds every result"),
    ("cb_engine_run", "the engine: libcurl multi, timers, queue"),
    ("curl_multi_perform", "libcurl: drives the transfers"),
    ("curl_multi_poll", "libcurl: waits for sockets (poll)"),
    ("start_ready", "starts the attempts that may start: reset, options, headers"),
    ("request_headers", "builds the request headers (signs them with AK/SK)"),
    ("cb_sign", "SDK-HMAC-SHA256 signature"),
    ("curl_easy_reset", "easy handle reset before reuse"),
    ("configure", "curl_easy_setopt calls for an attempt"),
    ("curl_multi_add_handle", ""),
    ("curl_multi_remove_handle", ""),
    ("curl_multi_info_read", ""),
    ("append_result", "one poll() result table: outcome + id/job/build fields"),
    ("push_outcome", "decode + envelope checks + record"),
    ("decode_body", "the body as a Lua string + cjson decode"),
    ("cb_record_push", "record normalisation"),
    ("cb_envelope_failed", ""),
    ("client_submit", "client:submit() in C"),
    ("cb_engine_submit", ""),
    ("start_request", "path/query canonicalisation, submit"),
    ("luaC_step", "Lua's incremental collector (all its work)"),
    ("getenv", "environment look-ups (libcurl, per transfer)"),
    ("__isoc99_sscanf", "sscanf (libcurl's status-line parsing)"),
    ("malloc", ""), ("free", ""), ("realloc", ""),
]


def lua_binary():
    return DEBUG / "lua5.4" if (DEBUG / "lua5.4").exists() else Path(shutil.which(h.LUA))


def lua_env():
    env = h.lua_env()
    if (DEBUG / "lua" / "cjson.so").exists():
        env["LUA_CPATH"] = f"{h.MODULE_DIR}/?.so;{DEBUG}/lua/?.so;;"
    return env


def driver(server, count, args):
    return [str(h.BENCH / "client.lua"), args.mode, server.endpoint, f"count={count}",
            f"concurrency={args.concurrency}", f"auth={args.auth}"]


# ---------------------------------------------------------------------------------------------------
# callgrind

def group_of(fn, obj, file):
    """The line of the breakdown a function's own instructions go to."""
    if obj.startswith("lua5.4") or obj == "lua5.4":
        name = Path(file).name
        return {
            "lvm.c": "Lua: interpreter loop (Lua code: batch.lua, client.lua)",
            "lgc.c": "Lua: garbage collector", "ltable.c": "Lua: tables", "lstring.c": "Lua: strings",
            "lapi.c": "Lua: C API", "lmem.c": "Lua: allocator glue", "ldo.c": "Lua: calls, pcall",
            "lfunc.c": "Lua: closures, upvalues", "lobject.c": "Lua: string conversions",
            "ltm.c": "Lua: metamethods", "lauxlib.c": "Lua: auxiliary library", "ldebug.c": "Lua: debug info",
        }.get(name, f"Lua: {name or 'other'}")
    if "cjson" in obj:
        return "lua-cjson (decode)"
    if obj == "core.so":
        return "codeartsbuild core.so (our C)"
    if obj.startswith("libcurl"):
        return "libcurl"
    if obj.startswith(("libcrypto", "libssl")):
        return "OpenSSL"
    if obj.startswith("libc.so"):
        if fn.startswith(("_int_malloc", "_int_free", "malloc", "free", "realloc", "calloc", "_int_realloc",
                          "malloc_consolidate", "unlink_chunk", "tcache")):
            return "libc: malloc/free"
        if fn.startswith(("__mem", "__str", "mem", "str")):
            return "libc: mem*/str*"
        return "libc: other (" + fn + ")" if fn in ("getenv", "__vfscanf_internal") else "libc: other"
    if obj.startswith("ld-linux"):
        return "dynamic linker"
    return obj or "other"


def callgrind_profile(server, args):
    files = {}
    for count in (args.small, args.large):
        out = PROFILE_DIR / f"callgrind.{args.mode}{args.concurrency}.{args.auth}.{count}"
        files[count] = out
        if args.reuse and out.exists():
            continue
        h.log(f"profile: callgrind, {count} records")
        run = subprocess.run(["valgrind", "--tool=callgrind", "--compress-strings=no", f"--callgrind-out-file={out}",
                              str(lua_binary())] + driver(server, count, args),
                             capture_output=True, text=True, env=lua_env(), cwd=h.ROOT, timeout=3600)
        if run.returncode != 0:
            sys.exit(f"profile: the driver failed under callgrind:\n{run.stdout}{run.stderr[-2000:]}")
    n = args.large - args.small
    small_self, small_inc, small_total = h.parse_callgrind(files[args.small])
    large_self, large_inc, large_total = h.parse_callgrind(files[args.large])
    per_record = (large_total - small_total) / n
    self_cost = {k: (large_self[k] - small_self.get(k, 0)) / n for k in large_self}
    inclusive = {k: (large_inc[k] - small_inc.get(k, 0)) / n for k in large_inc}

    print(f"\n## callgrind: instructions per record, {args.mode} at concurrency {args.concurrency}, {args.auth} auth "
          f"(runs of {args.small} and {args.large} records; Lua: {lua_binary()})\n")
    print(f"total: {per_record:,.0f} Ir per record (user space; the kernel is in the perf view)\n")
    groups = collections.Counter()
    for (fn, obj, file), ir in self_cost.items():
        groups[group_of(fn, obj, file)] += ir
    print("| where (self cost) | Ir/record | share |\n|---|---:|---:|")
    for name, ir in groups.most_common():
        if ir >= per_record * 0.005:
            print(f"| {name} | {ir:,.0f} | {ir / per_record:.1%} |")
    rest = sum(ir for ir in groups.values() if ir < per_record * 0.005)
    print(f"| (smaller items) | {rest:,.0f} | {rest / per_record:.1%} |")

    print("\n| function (self cost) | library | Ir/record |\n|---|---|---:|")
    for (fn, obj, _file), ir in sorted(self_cost.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"| `{fn}` | {obj} | {ir:,.0f} |")

    print("\n| entry point (inclusive) | Ir/record | share | what |\n|---|---:|---:|---|")
    for name, what in ENTRY_POINTS:
        matches = [ir for (fn, _obj, _file), ir in inclusive.items() if fn == name]
        if matches:
            ir = max(0.0, max(matches))  # a function that does nothing per record can come out at -30
            print(f"| `{name}` | {ir:,.0f} | {ir / per_record:.1%} | {what} |")
    return per_record


# ---------------------------------------------------------------------------------------------------
# perf and strace

# Time shares (perf, inclusive) worth knowing: the client's own entry points and the kernel's.
PERF_ENTRY_POINTS = [
    "client_poll", "cb_engine_run", "curl_multi_perform", "__GI___poll", "start_ready", "request_headers",
    "curl_easy_reset", "push_outcome", "decode_body", "cb_record_push", "client_submit", "luaC_step",
    "lua_pushlstring", "luaH_resize", "_int_malloc", "_int_free", "do_syscall_64", "__x64_sys_sendto",
    "__x64_sys_recvfrom", "__x64_sys_poll", "exc_page_fault", "__brk", "flush_tlb_mm_range",
]


def perf_report(data, *args):
    out = subprocess.run(["perf", "report", "-i", str(data), "--stdio"] + list(args), capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if line.strip() and not line.startswith("#")]


def perf_record(server, args, data, extra):
    run = subprocess.run(["taskset", "-c", h.CLIENT_CPU, "perf", "record", "-q", "-e", "cpu-clock", "-o", str(data)] +
                         extra + ["--", str(lua_binary())] + driver(server, args.perf_count, args),
                         capture_output=True, text=True, env=lua_env(), cwd=h.ROOT, timeout=600)
    if run.returncode != 0:
        print(f"\n(perf record failed: {run.stderr.strip()[-500:]})")
        return None
    return h.last_json_line(run.stdout, "RESULT ")


def perf_profile(server, args):
    """Two recordings: plain samples at 4999 Hz for the self shares, then DWARF call graphs at
    999 Hz for the inclusive ones (copying the stack at each sample costs the client kernel time,
    so that recording overstates the kernel a little)."""
    data = PROFILE_DIR / f"perf.{args.mode}{args.concurrency}.{args.auth}.data"
    h.log(f"profile: perf record, {args.perf_count} records, twice")
    result = perf_record(server, args, data, ["-F", "4999"])
    if result is None:
        return
    print(f"\n## perf (cpu-clock samples at 4999 Hz), {args.perf_count} records: "
          f"{result['records'] / result['wall_s']:,.0f} records/s under perf, "
          f"{result['cpu_s'] * 1e6 / result['records']:.1f} µs of CPU per record in the loop\n")
    print("Time by library (self):\n```")
    print("\n".join(perf_report(data, "--no-children", "--sort", "dso", "--percent-limit", "0.5")))
    print("```\nTop functions (self):\n```")
    print("\n".join(perf_report(data, "--no-children", "--sort", "dso,sym", "--percent-limit", "0.7")[:args.top]))
    print("```")
    dwarf = PROFILE_DIR / f"perf-dwarf.{args.mode}{args.concurrency}.{args.auth}.data"
    if perf_record(server, args, dwarf, ["-F", "999", "--call-graph", "dwarf,8192"]) is None:
        return
    print("\n| function (inclusive: itself and what it calls; DWARF call graphs at 999 Hz) "
          "| share of the client's CPU time |\n|---|---:|")
    shares = {}
    for line in perf_report(dwarf, "--children", "--sort", "sym", "--percent-limit", "0.3", "-g", "none"):
        parts = line.split()
        if len(parts) >= 4 and parts[0].endswith("%"):
            shares.setdefault(parts[3], float(parts[0].rstrip("%")))
    for name in PERF_ENTRY_POINTS:
        if name in shares:
            print(f"| `{name}` | {shares[name]:.1f}% |")


STARTUP_STEPS = [
    ("the interpreter alone", ""),
    ("the interpreter + dlopen libcrypto.so.3", "assert(package.loadlib('{lib}/libcrypto.so.3', '*'))"),
    ("the interpreter + dlopen libcurl.so.4 (and its dependencies)", "assert(package.loadlib('{lib}/libcurl.so.4', '*'))"),
    ("the interpreter + require 'cjson'", "require 'cjson'"),
    ("the interpreter + require 'codeartsbuild.core'", "require 'codeartsbuild.core'"),
    ("the interpreter + require 'codeartsbuild'", "require 'codeartsbuild'"),
]


def startup_profile(server, args):
    """What a fresh process pays before its first record: perf stat of each step on its own."""
    lib = Path(subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip() or
               "x86_64-linux-gnu")
    lib = Path("/usr/lib") / lib
    print("\n## start-up: CPU time and page faults of a fresh process (perf stat, median of 7)\n")
    print("| process | CPU ms | page faults |\n|---|---:|---:|")
    steps = [(label, [h.LUA, "-e", code.format(lib=lib)]) for label, code in STARTUP_STEPS]
    steps.append(("bench/client.lua startup (require, new, first record_info)",
                  [h.LUA, str(h.BENCH / "client.lua"), "startup", server.endpoint]))
    for label, argv in steps:
        cpu, faults = [], []
        for _ in range(7):
            out = subprocess.run(["taskset", "-c", h.CLIENT_CPU, "perf", "stat", "-x,", "-e", "task-clock,page-faults",
                                  "--"] + argv, capture_output=True, text=True, env=h.lua_env(), cwd=h.ROOT).stderr
            for line in out.splitlines():
                parts = line.split(",")
                if len(parts) > 2 and parts[2].startswith("task-clock"):
                    cpu.append(float(parts[0]))
                elif len(parts) > 2 and parts[2].startswith("page-faults"):
                    faults.append(int(parts[0]))
        if cpu and faults:
            print(f"| {label} | {sorted(cpu)[len(cpu) // 2]:.1f} | {sorted(faults)[len(faults) // 2]} |")


def strace_profile(server, args):
    if not shutil.which("strace"):
        print("\n(strace is not installed: no system call counts)")
        return
    out = PROFILE_DIR / f"strace.{args.mode}{args.concurrency}.{args.auth}.txt"
    count = args.small
    h.log(f"profile: strace -c, {count} records")
    subprocess.run(["strace", "-c", "-f", "-o", str(out), str(lua_binary())] +
                   driver(server, count, args),
                   capture_output=True, text=True, env=lua_env(), cwd=h.ROOT, timeout=600)
    print(f"\n## strace -c: system calls per record ({count} records; start-up included)\n")
    print("| call | calls/record |\n|---|---:|")
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls = int(parts[3])
            if calls / count >= 0.05:
                print(f"| {parts[-1]} | {calls / count:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("fetch", "records", "seq"), default="fetch",
                    help="what bench/client.lua does (default fetch)")
    ap.add_argument("--auth", choices=("token", "aksk"), default="token")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--small", type=int, default=2000, help="records of the first callgrind run")
    ap.add_argument("--large", type=int, default=6000, help="records of the second callgrind run")
    ap.add_argument("--perf-count", type=int, default=40000, help="records of each perf run")
    ap.add_argument("--top", type=int, default=30, help="functions to list")
    ap.add_argument("--reuse", action="store_true", help="analyse the callgrind files of an earlier run again")
    ap.add_argument("--skip", nargs="*", default=[], choices=("callgrind", "perf", "strace", "startup"))
    args = ap.parse_args()
    if args.large <= args.small:
        ap.error("--large must be more than --small")
    for tool in ("valgrind", "callgrind_annotate", "perf"):
        if not shutil.which(tool):
            sys.exit(f"profile: {tool} is missing (apt-get install valgrind linux-perf)")
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    www = h.OUT / "www"
    h.generate_data(www, h.DEFAULT_BUILDS)
    with h.Nginx(www) as server:
        if "callgrind" not in args.skip:
            callgrind_profile(server, args)
        if "perf" not in args.skip:
            perf_profile(server, args)
        if "strace" not in args.skip:
            strace_profile(server, args)
        if "startup" not in args.skip:
            startup_profile(server, args)
    print(f"\n(raw data in {PROFILE_DIR})")


if __name__ == "__main__":
    main()
