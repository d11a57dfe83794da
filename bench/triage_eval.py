"""Leave-one-writer-out evaluation of triage, printed as the markdown tables of docs/triage.md.

    python bench/triage_eval.py                 # every writer held out in turn (about 2-4 minutes, 2 processes)
    python bench/triage_eval.py --writers w09 w10 --errors   # only these folds, and list their misses
    python bench/triage_eval.py --agreement     # the blind relabelling's agreement with the writers

For each writer: train a model on every other writer (thresholds and temperatures chosen on those
writers' own writer-grouped folds), then classify the held-out writer's items. Nothing about the
held-out writer is used to build its fold's model, so the figures are what a new hand would get.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.triage import DEFAULT_ROUTING, RoutingFile  # noqa: E402
from rules.triage_model import (  # noqa: E402
    DEFAULT_CORPUS,
    CueBook,
    Example,
    Featuriser,
    Prepared,
    leave_one_writer_out,
    load_corpus,
    load_toml,
    metrics,
    prepare,
)
from rules.vocabulary import Category, Risk  # noqa: E402

GOALS = {"category_accuracy": 0.94, "high_recall": 0.97, "high_precision": 0.75, "medium_recall": 0.80}
# The categories' Chinese names, as routing.toml gives them.
CAT_CN = {c.value: r.name for c, r in load_toml(DEFAULT_ROUTING, RoutingFile).categories.items()}

_prep: Prepared | None = None
_cues: CueBook | None = None


def _fold(writer: str) -> tuple[str, list[int], list[tuple[str, str]], dict[str, Any]]:
    assert _prep is not None and _cues is not None
    test, pred, model = leave_one_writer_out(_prep, _cues, writer)
    return writer, test, [(c.value, r.value) for c, r in pred], model.thresholds.model_dump()


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def agreement(corpus: list[Example]) -> str:
    """Blind relabelling (relabel*.jsonl: id = writer:line) against the writers' own labels."""
    by_key = {}
    counters: Counter[str] = Counter()
    for path in sorted(DEFAULT_CORPUS.glob("w*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                ex = Example.model_validate_json(line)
                by_key[f"{ex.writer}:{n}"] = ex
    rows = []
    for path in sorted(DEFAULT_CORPUS.glob("relabel*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        return "(no relabel*.jsonl in the corpus folder)"
    for r in rows:
        ex = by_key[r["id"]]
        counters["n"] += 1
        counters["category"] += r["category"] == ex.category.value
        counters["risk"] += r["risk"] == ex.risk.value
        counters["high_either"] += r["risk"] == "high" or ex.risk == Risk.high
        counters["high_both"] += r["risk"] == "high" and ex.risk == Risk.high
        counters["risk_off_by_two"] += {r["risk"], ex.risk.value} == {"high", "low"}
    risks = ["high", "medium", "low"]
    po = counters["risk"] / counters["n"]
    a = Counter(r["risk"] for r in rows)
    b = Counter(by_key[r["id"]].risk.value for r in rows)
    pe = sum(a[k] * b[k] for k in risks) / counters["n"] ** 2
    kappa = (po - pe) / (1 - pe) if pe < 1 else 1.0
    n = counters["n"]
    return (
        f"| items relabelled blind | {n} |\n|---|---|\n"
        f"| category agreement | {pct(counters['category'] / n)} |\n"
        f"| risk agreement | {pct(po)} (Cohen's κ {kappa:.2f}) |\n"
        f"| high risk: both said high / either said high | {counters['high_both']} / {counters['high_either']} |\n"
        f"| high vs low (two tiers apart) | {counters['risk_off_by_two']} |"
    )


def main(argv: list[str] | None = None) -> int:
    global _prep, _cues
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", nargs="*", default=None, help="hold out only these writers")
    parser.add_argument("--errors", action="store_true", help="list the held-out items the model got wrong")
    parser.add_argument("--agreement", action="store_true", help="only the blind relabelling agreement")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    corpus = load_corpus()
    if args.agreement:
        print(agreement(corpus))
        return 0
    t0 = time.perf_counter()
    _cues = CueBook()
    _prep = prepare(corpus, Featuriser(), _cues)
    writers = args.writers or sorted({ex.writer for ex in corpus})
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:  # fork: the prepared corpus is shared, not pickled
        results = list(pool.map(_fold, writers))
    took = time.perf_counter() - t0

    all_truth, all_pred = [], []
    lines = ["| held-out writer | register | items | category | high recall | high precision | medium recall | high called low | thresholds (high / medium) |",
             "|---|---|---|---|---|---|---|---|---|"]
    registers = _registers()
    errors = []
    for writer, test, pred, th in results:
        truth = [_prep.items[i] for i in test]
        typed = [(Category(c), Risk(r)) for c, r in pred]
        m = metrics(truth, typed)
        all_truth += truth
        all_pred += typed
        lines.append(
            f"| {writer} | {registers.get(writer, '')} | {m.n} | {pct(m.category_accuracy)} | {pct(m.high_recall)} ({m.highs}) "
            f"| {pct(m.high_precision)} | {pct(m.medium_recall)} | {m.high_missed_as_low} | {th['high']:.2f} / {th['medium']:.2f} |"
        )
        for ex, (c, r) in zip(truth, typed, strict=True):
            if c != ex.category or r != ex.risk:
                errors.append((writer, ex, c, r))
    m = metrics(all_truth, all_pred)
    out = ["## Leave-one-writer-out", "", *lines, "",
           "| all held-out items | goal | measured |", "|---|---|---|"]
    for key, goal in GOALS.items():
        got = getattr(m, key)
        out.append(f"| {key.replace('_', ' ')} | ≥ {pct(goal)} | **{pct(got)}** {'✓' if got >= goal else '✗'} |")
    out.append(f"| high risks called low | 0 | {m.high_missed_as_low} of {m.highs} |")
    out.append(f"| risk tier accuracy | | {pct(m.risk_accuracy)} |")
    out += ["", "### Per category (held-out items)", "", "| category | items | accuracy | high recall |", "|---|---|---|---|"]
    for c in Category:
        rows = [(t, p) for t, p in zip(all_truth, all_pred, strict=True) if t.category == c]
        if rows:
            mc = metrics([t for t, _ in rows], [p for _, p in rows])
            out.append(f"| {CAT_CN[c.value]} | {len(rows)} | {pct(mc.category_accuracy)} | {pct(mc.high_recall)} ({mc.highs}) |")
    out += ["", "### Category confusion (rows: label, columns: triage)", ""]
    cats = [c for c in Category]
    out.append("| | " + " | ".join(CAT_CN[c.value] for c in cats) + " |")
    out.append("|---" * (len(cats) + 1) + "|")
    for a in cats:
        cnt = Counter(p[0] for t, p in zip(all_truth, all_pred, strict=True) if t.category == a)
        out.append(f"| {CAT_CN[a.value]} | " + " | ".join(str(cnt[b]) for b in cats) + " |")
    out += ["", "### Risk confusion (rows: label, columns: triage)", "", "| | high | medium | low |", "|---|---|---|---|"]
    for a in (Risk.high, Risk.medium, Risk.low):
        cnt = Counter(p[1] for t, p in zip(all_truth, all_pred, strict=True) if t.risk == a)
        out.append(f"| {a.value} | {cnt[Risk.high]} | {cnt[Risk.medium]} | {cnt[Risk.low]} |")
    out.append("")
    out.append(f"{len(results)} folds, {len(all_truth)} held-out items, {took:.0f} s.")
    print("\n".join(out))
    if args.errors:
        print("\n## Misses\n")
        for writer, ex, c, r in errors:
            print(f"- {writer} [{ex.category.value}/{ex.risk.value} -> {c.value}/{r.value}] {ex.title}：{ex.content[:160]}")
    print(json.dumps({"items": len(all_truth), **{k: round(getattr(m, k), 4) for k in GOALS}, "seconds": round(took)}))
    return 0


def _registers() -> dict[str, str]:
    path = DEFAULT_CORPUS / "writers.json"
    if path.exists():
        return {k: v["short"] for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    return {}


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
