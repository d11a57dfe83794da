"""Every benchmark with modest sizes (about 4 minutes), one after another, and a summary of every figure (`make bench`).

    .venv/bin/python bench/run_all.py [--full] [--skip NAME ...]

Each benchmark runs as its own subprocess (a fresh interpreter, its own dev server in a temporary
data folder); its output is shown as it runs, and the machine-readable last lines are collected at
the end. `--full` uses the documented sizes of docs/benchmarks.md instead of the modest ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (script, modest arguments, documented arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "micro": ("bench/micro.py", ["--repeats", "3", "--scenario-runs", "2"], []),
    "triage": ("bench/triage_speed.py", ["--rounds", "3"], ["--rounds", "5"]),
    "throughput": ("bench/throughput.py", ["--count", "100", "--rounds", "2"], ["--count", "200"]),
    "escalation": ("bench/escalation_latency.py", ["--rate", "5", "--duration", "15"], ["--rate", "5", "--duration", "30"]),
    "surge": ("bench/deadline_surge.py", ["--cases", "300", "--calibrate", "50"], ["--cases", "1000"]),
    "ledger": ("bench/ledger_bench.py", ["--single", "300", "--batches", "10", "--leaves", "100000", "--db-leaves", "10000"], []),
    # A tenth of the year on each database (PostgreSQL skipped when none answers); --full: 245,000 cases.
    "cockpit": ("bench/cockpit.py", ["--cases", "25000", "--db", "both"], []),
    # The fault drill at the CI's size (tests/test_chaos.py, ~2.5 min); --full: 1,000 cases, 100 kills, 3 restarts.
    "chaos": ("bench/chaos.py", ["--cases", "40", "--kills", "5", "--restarts", "1"], []),
}


def run_one(name: str, script: str, args: list[str]) -> tuple[int, str, float]:
    print(f"\n=== {name}: {script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, script, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.strip():
            last = line.strip()
    rc = proc.wait()
    return rc, last, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the documented sizes (takes much longer)")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(BENCHMARKS), help="benchmarks to leave out")
    args = parser.parse_args(argv)
    summary: list[tuple[str, int, str, float]] = []
    for name, (script, modest, full) in BENCHMARKS.items():
        if name in args.skip:
            continue
        if not (ROOT / script).exists():
            print(f"\n=== {name}: {script} is not there; skipped", flush=True)
            continue
        rc, last, took = run_one(name, script, full if args.full else modest)
        summary.append((name, rc, last, took))
    print("\n=== summary")
    for name, rc, last, took in summary:
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"{name:11s} {status:16s} {took:6.0f}s  {last}")
    return 0 if all(rc == 0 for _, rc, _, _ in summary) else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
