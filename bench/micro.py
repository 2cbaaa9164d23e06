#!/usr/bin/env python3
"""Instruction counts of the C hot path (`make bench-micro`): signing one request, decoding and
normalising one record, under callgrind.

    python3 bench/micro.py BINARY [--n 5000] [--annotate] [--time]

BINARY is bench/micro.c built against the module's objects (the Makefile does it). It runs once
under `valgrind --tool=callgrind`; each operation's N iterations are dumped on their own (see
micro.c), and this prints Ir (instructions executed) per operation: the dump's total divided by N,
minus the same for an empty operation. Instruction counts do not depend on the machine's load; they
are not time (cache misses and branch mispredictions are not in them). `sign` is exact run to run;
`decode` and `normalise_*` move by up to 3 % (Lua seeds its string hashes afresh in every process,
and the collector's steps fall differently), so a change beyond that is real. The previous run's figures (build/bench/micro.json) are shown alongside.
--annotate also prints each operation's most expensive functions (self cost, per operation).
--time also runs the binary natively, pinned to CPU 1, 5 times, and prints the median wall time
per operation: what the instructions cost on this machine, as noisy as the machine is.
"""

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import harness as h

RESULTS = h.OUT / "micro.json"


def documents(directory):
    """A camelCase and a snake_case v3 document of one build (61), as the emulator renders them."""
    job = h.make_job(h.CAMEL_JOB, 100)
    record = h.emulator.DataSet(1).record(job, 61)
    paths = []
    for spelling in ("camel", "snake"):
        path = directory / f"{spelling}.json"
        path.write_bytes(h.envelope(h.emulator.render_record(record, spelling, "v3")))
        paths.append(path)
    return paths


def dump_name(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"desc: Trigger: Client Request: (\S+)", line)
            if m:
                return m.group(1)
    return None


def top_functions(self_cost, n, count=10):
    """The functions with the most instructions of their own (self cost), per operation."""
    rows = sorted(self_cost.items(), key=lambda kv: -kv[1])[:count]
    return [(ir / n, f"{fn} ({obj})") for (fn, obj, _file), ir in rows]


def native_times(binary, n, camel, snake, runs=5):
    """Median wall time per operation (ns) over `runs` native runs pinned to CPU 1, empty loop
    subtracted."""
    samples = {}
    for _ in range(runs):
        out = subprocess.run(["taskset", "-c", h.CLIENT_CPU, str(Path(binary).resolve()), str(n), str(camel),
                              str(snake)], capture_output=True, text=True, check=True).stdout
        for name, value in re.findall(r"^(\w+) ([\d.]+) ns$", out, re.M):
            samples.setdefault(name, []).append(float(value))
    medians = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
    empty = medians.pop("empty", 0.0)
    return {name: v - empty for name, v in medians.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--n", type=int, default=5000, help="iterations of each operation (default 5000)")
    ap.add_argument("--annotate", action="store_true", help="the top functions (self cost) of each operation")
    ap.add_argument("--time", action="store_true", help="also the wall time per operation, natively")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("bench-micro: valgrind is missing (apt-get install valgrind)")

    work = Path(tempfile.mkdtemp(prefix="cb-bench-micro-"))
    try:
        camel, snake = documents(work)
        run = subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no", "--compress-strings=no",
                              f"--callgrind-out-file={work}/cg.out", str(Path(args.binary).resolve()),
                              str(args.n), str(camel), str(snake)], capture_output=True, text=True, cwd=work)
        if run.returncode != 0:
            sys.exit(f"bench-micro: the driver failed:\n{run.stdout}{run.stderr[-3000:]}")
        parsed = {dump_name(p): h.parse_callgrind(p) for p in sorted(work.glob("cg.out.[0-9]*")) if dump_name(p)}
        per_op = {name: total / args.n for name, (_self, _inc, total) in parsed.items()}
        empty = per_op.pop("empty", 0.0)
        result = {name: ir - empty for name, ir in per_op.items()}
        tops = {name: top_functions(parsed[name][0], args.n) for name in result} if args.annotate else {}
        ns = native_times(args.binary, max(args.n, 20000), camel, snake) if args.time else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    commit = h.command_output(["git", "-C", str(h.ROOT), "rev-parse", "--short", "HEAD"])
    print(f"instructions (Ir) per operation, callgrind, {args.n} iterations each, empty loop "
          f"({empty:.0f} Ir) subtracted; commit {commit}")
    header = f"{'operation':18} {'Ir/op':>10}" + (f" {'ns/op':>8}" if ns else "")
    if previous:
        header += f" {'previous':>10} {'change':>8}   (previous: {previous['when']}, {previous['commit']})"
    print(header)
    for name, ir in result.items():
        line = f"{name:18} {ir:10,.0f}" + (f" {ns.get(name, 0):8,.0f}" if ns else "")
        old = previous and previous["ir_per_op"].get(name)
        if old:
            line += f" {old:10,.0f} {(ir - old) / old:+8.1%}"
        print(line)
        for cost, fn in tops.get(name, []):
            print(f"    {cost:10,.0f}  {fn}")
    h.OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "n": args.n, "empty": empty, "ir_per_op": result, "ns_per_op": ns}, indent=1))


if __name__ == "__main__":
    main()
