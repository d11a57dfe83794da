"""Measure the triage classifier on the labelled set and print the results as markdown.

    python bench/triage_eval.py                    # the tables in docs/triage.md
    python bench/triage_eval.py --errors train     # also list the misclassified training lines

The labelled set is tests/data/triage_labelled.jsonl. Every 5th line (line numbers 5, 10, 15, ...)
is held out: the terms were tuned by looking at training errors only, so the held-out figures
are the honest estimate of how the classifier does on petitions it has not seen.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rules.triage import Triage, TriageInput, load_triage  # noqa: E402
from rules.vocabulary import Category, Risk  # noqa: E402

LABELLED = ROOT / "tests" / "data" / "triage_labelled.jsonl"
HELD_OUT_EVERY = 5


@dataclass(frozen=True)
class Row:
    line: int
    split: str  # "train" | "held-out"
    title: str
    content: str
    locality: str
    category: Category
    risk: Risk
    hard: bool


@dataclass(frozen=True)
class Prediction:
    row: Row
    category: Category
    risk: Risk


def load_rows(path: Path = LABELLED) -> list[Row]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        d = json.loads(line)
        rows.append(
            Row(
                line=n,
                split="held-out" if n % HELD_OUT_EVERY == 0 else "train",
                title=d["title"],
                content=d["content"],
                locality=d["locality"],
                category=Category(d["expected_category"]),
                risk=Risk(d["expected_risk"]),
                hard=bool(d.get("hard", False)),
            )
        )
    return rows


def predict(rows: list[Row], triage: Triage | None = None) -> list[Prediction]:
    t = triage or load_triage()
    out = []
    for r in rows:
        res = t.classify(TriageInput(title=r.title, content=r.content, locality=r.locality))
        out.append(Prediction(row=r, category=res.category, risk=res.risk))
    return out


@dataclass(frozen=True)
class Metrics:
    n: int
    category_accuracy: float
    risk_accuracy: float
    high_recall: float
    high_precision: float
    hard_accuracy: float
    hard_n: int


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def metrics(preds: list[Prediction]) -> Metrics:
    n = len(preds)
    cat_ok = sum(p.category == p.row.category for p in preds)
    risk_ok = sum(p.risk == p.row.risk for p in preds)
    true_high = [p for p in preds if p.row.risk == Risk.high]
    pred_high = [p for p in preds if p.risk == Risk.high]
    hard = [p for p in preds if p.row.hard]
    return Metrics(
        n=n,
        category_accuracy=_ratio(cat_ok, n),
        risk_accuracy=_ratio(risk_ok, n),
        high_recall=_ratio(sum(p.risk == Risk.high for p in true_high), len(true_high)),
        high_precision=_ratio(sum(p.row.risk == Risk.high for p in pred_high), len(pred_high)),
        hard_accuracy=_ratio(sum(p.category == p.row.category for p in hard), len(hard)),
        hard_n=len(hard),
    )


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion: how far a measured rate can be trusted."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def report(preds: list[Prediction], version: str) -> str:
    splits = {"train": [p for p in preds if p.row.split == "train"], "held-out": [p for p in preds if p.row.split == "held-out"]}
    splits["all"] = preds
    out: list[str] = []
    out.append(f"Model: `{version}`; labelled set: {len(preds)} petitions "
               f"({len(splits['train'])} train, {len(splits['held-out'])} held out: every {HELD_OUT_EVERY}th line).\n")

    out.append("### Summary\n")
    out.append("| split | n | category accuracy | hard cases (n) | risk tier accuracy | high-risk recall | high-risk precision |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, ps in splits.items():
        m = metrics(ps)
        out.append(f"| {name} | {m.n} | {_pct(m.category_accuracy)} | {_pct(m.hard_accuracy)} ({m.hard_n}) | "
                   f"{_pct(m.risk_accuracy)} | {_pct(m.high_recall)} | {_pct(m.high_precision)} |")
    out.append("")
    held = splits["held-out"]
    ok = sum(p.category == p.row.category for p in held)
    lo, hi = wilson(ok, len(held))
    highs = [p for p in held if p.row.risk == Risk.high]
    hok = sum(p.risk == Risk.high for p in highs)
    hlo, hhi = wilson(hok, len(highs))
    out.append(
        f"Held-out, with 95% Wilson intervals: category accuracy {ok}/{len(held)} ({_pct(lo)}–{_pct(hi)}); "
        f"high-risk recall {hok}/{len(highs)} ({_pct(hlo)}–{_pct(hhi)}).\n"
    )

    out.append("### Category accuracy per category (recall: share of each true category classified correctly)\n")
    out.append("| category | train | held-out | all |")
    out.append("|---|---:|---:|---:|")
    for c in Category:
        cells = []
        for name in ("train", "held-out", "all"):
            ps = [p for p in splits[name] if p.row.category == c]
            ok = sum(p.category == c for p in ps)
            cells.append(f"{_pct(_ratio(ok, len(ps)))} ({ok}/{len(ps)})")
        out.append(f"| {c.value} | " + " | ".join(cells) + " |")
    out.append("")

    for name in ("held-out", "all"):
        out.append(f"### Category confusion ({name}; rows: labelled, columns: predicted)\n")
        short = {c: c.value.split("_")[0] for c in Category}
        out.append("| labelled \\ predicted | " + " | ".join(short[c] for c in Category) + " |")
        out.append("|---|" + "---:|" * len(Category))
        cat_counts = Counter((p.row.category, p.category) for p in splits[name])
        for c in Category:
            out.append(f"| {c.value} | " + " | ".join(str(cat_counts[(c, d)] or "·") for d in Category) + " |")
        out.append("")

    for name in ("held-out", "all"):
        out.append(f"### Risk confusion ({name}; rows: labelled, columns: predicted)\n")
        out.append("| labelled \\ predicted | high | medium | low |")
        out.append("|---|---:|---:|---:|")
        risk_counts = Counter((p.row.risk, p.risk) for p in splits[name])
        for r in Risk:
            out.append(f"| {r.value} | " + " | ".join(str(risk_counts[(r, s)] or "·") for s in Risk) + " |")
        out.append("")
    return "\n".join(out)


def errors(preds: list[Prediction], split: str) -> str:
    out = [f"### Errors ({split})\n"]
    for p in preds:
        if p.row.split != split and split != "all":
            continue
        if p.category != p.row.category or p.risk != p.row.risk:
            what = []
            if p.category != p.row.category:
                what.append(f"category {p.row.category.value} -> {p.category.value}")
            if p.risk != p.row.risk:
                what.append(f"risk {p.row.risk.value} -> {p.risk.value}")
            out.append(f"- line {p.row.line}: {'; '.join(what)} — {p.row.title}: {p.row.content[:60]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", choices=["train", "held-out", "all"], help="also list the misclassified lines of a split")
    args = ap.parse_args(argv)
    triage = load_triage()
    preds = predict(load_rows(), triage)
    sys.stdout.write(report(preds, triage.model_version) + "\n")
    if args.errors:
        sys.stdout.write(errors(preds, args.errors) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
