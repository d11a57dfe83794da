"""How fast triage classifies, on one core, and what a very long text costs.

    python bench/triage_speed.py [--rounds 5]

Classifies every petition of the corpus (title + content, no operator fields) with the shipped
model, in one process and one thread (`taskset`-style pinning is not needed: the classifier is
pure Python + numpy on one thread; BLAS threads are capped at 1 here). Prints the median over
rounds of petitions per second and of the per-petition time, then the time for a 20,000-character
content (the intake limit) and a 1 MB one (read only up to the limit).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.triage import TriageInput, load_triage  # noqa: E402
from rules.triage_model import load_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    triage = load_triage()
    load_s = time.perf_counter() - t
    items = [TriageInput(title=ex.title, content=ex.content, locality=ex.locality or "青山区") for ex in load_corpus()]
    chars = statistics.median(len(i.content) for i in items)
    triage.classify(items[0])  # warm
    rates, per = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        for item in items:
            triage.classify(item)
        took = time.perf_counter() - t
        rates.append(len(items) / took)
        per.append(1000 * took / len(items))
    long_times = {}
    for n in (20_000, 1_000_000):
        text = ("我反映一下小区路灯的问题,晚上出行很不方便。" * (n // 22 + 1))[:n]
        t = time.perf_counter()
        r = triage.classify(TriageInput(title="路灯", content=text, locality="青山区"))
        long_times[n] = (time.perf_counter() - t, r.truncated)
    print(f"model {triage.model.version}; loaded in {load_s:.2f} s")
    print(f"{len(items)} petitions (median {chars:.0f} characters), {args.rounds} rounds, one thread")
    print(f"  median {statistics.median(rates):.0f} petitions/s  ({statistics.median(per):.2f} ms each; rounds: "
          + ", ".join(f"{r:.0f}" for r in rates) + ")")
    for n, (s, truncated) in long_times.items():
        print(f"  {n:>9,} characters: {1000 * s:.0f} ms{' (read up to the limit)' if truncated else ''}")
    print(json.dumps({"petitions_per_s": round(statistics.median(rates)), "ms_each": round(statistics.median(per), 2),
                      "ms_20k": round(1000 * long_times[20_000][0]), "ms_1mb": round(1000 * long_times[1_000_000][0])}))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
