"""Micro benchmarks: the deadline calculator, and the scenario runner's wall time per scenario.

    .venv/bin/python bench/micro.py [--seconds 1.0] [--repeats 5] [--scenario-runs 3] [--skip-scenarios]

1. `rules.deadlines.compute_deadline` with the official holiday calendar: computations per second
   for each unit (days, working days, minutes) and for a mix, over random start instants in
   2025-2026; median of the repeats. Goal >= 100,000/s.
2. `python starter.py scenario FILE` for every tests/scenarios/*.json, each as a fresh subprocess
   (interpreter, imports, time-skipping test server, worker, run), a few times; the median wall
   time per scenario. Goal < 3 s. The same interpreter importing the modules a scenario needs,
   and doing nothing else, is timed as the floor.

The last line is machine-readable: micro deadlines/s=X scenario_median_s=Y
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_parser, exit_with, median  # noqa: E402
from engine.config import PROJECT_DIR  # noqa: E402
from rules.deadlines import HolidayCalendar, compute_deadline  # noqa: E402
from rules.vocabulary import DeadlineUnit  # noqa: E402

_UNITS = {
    "days (15)": (15, DeadlineUnit.days),
    "working_days (5)": (5, DeadlineUnit.working_days),
    "minutes (30)": (30, DeadlineUnit.minutes),
}


def _starts(n: int, rng: random.Random) -> list[datetime]:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    return [base + timedelta(seconds=rng.randrange(2 * 365 * 86400)) for _ in range(n)]


def deadline_rate(cases: list[tuple[datetime, int, DeadlineUnit]], calendar: HolidayCalendar, seconds: float) -> float:
    """compute_deadline calls per second, cycling through `cases` for about `seconds`."""
    done = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for start, length, unit in cases:
            compute_deadline(start, length, unit, calendar)
        done += len(cases)
        elapsed = time.perf_counter() - t0
    return done / elapsed


def bench_deadlines(seconds: float, repeats: int) -> float:
    calendar = HolidayCalendar.load(PROJECT_DIR / "rules" / "calendar" / "cn_holidays.toml")
    rng = random.Random(5)
    starts = _starts(2000, rng)
    suites = {name: [(s, length, unit) for s in starts] for name, (length, unit) in _UNITS.items()}
    mix = [(s, *_UNITS[rng.choice(list(_UNITS))]) for s in starts]
    suites["mix (1/3 each)"] = mix
    result = 0.0
    for name, cases in suites.items():
        rates = [deadline_rate(cases, calendar, seconds) for _ in range(repeats)]
        print(f"compute_deadline {name:18s}: median {median(rates):>10,.0f}/s  (best {max(rates):,.0f}, worst {min(rates):,.0f}; {repeats} runs)")
        if name.startswith("mix"):
            result = median(rates)
    return result


def _timed(cmd: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - t0, proc.returncode, proc.stderr[-500:]


def bench_scenarios(runs: int) -> float:
    files = sorted((PROJECT_DIR / "tests" / "scenarios").glob("*.json"))
    floor_cmd = [sys.executable, "-c", "import starter, engine.scenario, engine.servers, worker"]
    floor = [_timed(floor_cmd)[0] for _ in range(runs)]
    print(f"floor: interpreter + imports of a scenario run: median {median(floor):.2f}s")
    medians = []
    for f in files:
        times = []
        for _ in range(runs):
            took, rc, err = _timed([sys.executable, "starter.py", "scenario", str(f.relative_to(PROJECT_DIR))])
            if rc != 0:
                print(f"scenario {f.name} failed (exit {rc}): {err}")
                return float("nan")
            times.append(took)
        medians.append(median(times))
        print(
            f"scenario {f.name:28s}: median {median(times):.2f}s  (runs: {', '.join(f'{t:.2f}' for t in times)}; goal < 3 s)"
        )
    return median(medians) if medians else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per deadline measurement")
    parser.add_argument("--repeats", type=int, default=5, help="deadline measurements per unit")
    parser.add_argument("--scenario-runs", type=int, default=3, help="subprocess runs per scenario")
    parser.add_argument("--skip-scenarios", action="store_true")
    args = parser.parse_args(argv)
    rate = bench_deadlines(args.seconds, args.repeats)
    scen = float("nan") if args.skip_scenarios else bench_scenarios(args.scenario_runs)
    print(f"micro deadlines/s={rate:.0f} scenario_median_s={scen:.2f}")
    return 0


if __name__ == "__main__":
    exit_with(main)
