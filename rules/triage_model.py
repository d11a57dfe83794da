"""The learned part of triage: cue families, features, the model file, training, evaluation by writer.

Three things live here, each small:

- `CueBook` reads `triage_cues.toml`: the rubric's cue families as patterns over meaning, with
  negation and hypotheticals. A cue hit is an explanation for the operator, a feature for the
  model and, for a `high` family, a floor under the risk.
- `Featuriser` turns a text into what the linear models read: character 1–3-grams of the
  normalised text (digits folded to 0, so 12名 and 35名 share 00名), jieba words, and the cue hits.
- `TriageModel` is the model file (`rules/triage_model.json`): two linear models (category and
  risk) as plain numbers with their vocabulary, temperature and thresholds. Inference is numpy
  only; scikit-learn is needed only to train (`starter.py triage train`).

Training is deterministic: the same corpus, cue file and parameters give the same file, byte for
byte, and the model's version is a hash of those inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.ruleset import RuleFileError
from rules.vocabulary import MAX_CONTENT_CHARS, Category, Risk

RULES_DIR = Path(__file__).resolve().parent
DEFAULT_CUES = RULES_DIR / "triage_cues.toml"
DEFAULT_MODEL = RULES_DIR / "triage_model.json"
DEFAULT_CORPUS = RULES_DIR / "triage_corpus"

# What the model reads of a text. A real letter never comes near this; intake refuses longer content
# (engine.desk), and anything longer that reaches triage another way is read only this far.
MAX_ANALYSED = MAX_CONTENT_CHARS
FEATURE_VERSION = "chars1-3+jieba+title-words+cues/2"

RISK_ORDER = {Risk.low: 0, Risk.medium: 1, Risk.high: 2}
RISK_CN = {Risk.high: "高", Risk.medium: "中", Risk.low: "低"}


# ---------------------------------------------------------------------------------------------
# Numbers written by people: 12, 2.6, 十三万四千, 二十多, 一万二, 上百
# ---------------------------------------------------------------------------------------------

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")


def parse_number(text: str) -> float | None:
    """The value of a number as written, taking the lower bound of an approximate one.

    几 before a unit is 2 (几十 -> 20), after one it is 1 (十几 -> 11); 上/数 before a unit is 1/2;
    two digits in a row are a range and take the first (七八千 -> 7000); a digit right after a unit
    is the next lower unit (一万二 -> 12000, 三千五 -> 3500). A bare 几 is no number.
    """
    s = text.strip().translate(_FULLWIDTH)
    if not s:
        return None
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", s):
        return float(s)
    if s.startswith("上"):
        s = "一" + s[1:]
    elif s.startswith("数"):
        s = "几" + s[1:]
    if not any(ch in _DIGITS or ch in _UNITS or ch == "万" for ch in s.replace("几", "")):
        return None
    total = 0.0
    section = 0.0
    digit: float | None = None
    last_unit = 1
    after_zero = False
    for i, ch in enumerate(s):
        if ch == "几":
            nxt = s[i + 1] if i + 1 < len(s) else ""
            value = 2.0 if nxt in _UNITS or nxt == "万" else 1.0
            if digit is None:
                digit = value
        elif ch in _DIGITS:
            if _DIGITS[ch] == 0:
                after_zero = True
                continue
            if digit is None:
                digit = float(_DIGITS[ch])
        elif ch in _UNITS:
            section += (digit if digit is not None else 1.0) * _UNITS[ch]
            digit = None
            last_unit = _UNITS[ch]
            after_zero = False
        elif ch == "万":
            section += digit or 0.0
            total += (section or 1.0) * 10000
            section = 0.0
            digit = None
            last_unit = 10000
            after_zero = False
        else:
            return None
    if digit is not None:
        section += digit if after_zero or last_unit == 1 else digit * (last_unit // 10)
    return total + section


# ---------------------------------------------------------------------------------------------
# Cue families (triage_cues.toml)
# ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}): {p!r}") from exc
    return patterns


class Grammar(_Strict):
    negation_window: int = Field(ge=0)
    negators: list[str]
    adjacent_negators: list[str] = []
    hypotheticals: list[str]


class CueSpec(_Strict):
    id: str
    label: str
    tier: Literal[Risk.high, Risk.medium]
    patterns: list[str] = Field(min_length=1)
    exclude: list[str] = []
    near: list[str] = []
    window: int = Field(default=30, ge=1)
    hypothetical: Literal["keep", "downgrade"] = "keep"
    downgrade_to: Literal[Risk.medium, Risk.low] = Risk.medium

    _v_patterns = field_validator("patterns", "exclude", "near")(_check_patterns)


class NumericSpec(_Strict):
    high_wage_workers: int = Field(ge=1)
    high_wage_amount: float = Field(gt=0)
    group_at_least: int = Field(ge=2)


class WageArrearsSpec(_Strict):
    words: list[str] = []
    patterns: list[str] = []

    _v_patterns = field_validator("patterns")(_check_patterns)


class AmountPattern(_Strict):
    pattern: str


class ExtractSpec(_Strict):
    number: str
    workers: list[str]
    group_size: list[str] = []
    amounts: list[AmountPattern]
    amount_skip_before: str = ""

    @model_validator(mode="after")
    def _valid(self) -> ExtractSpec:
        _check_patterns([self.number, self.amount_skip_before])
        for p in [*self.workers, *self.group_size, *(a.pattern for a in self.amounts)]:
            expanded = _check_patterns([p.replace("{num}", f"(?:{self.number})")])[0]
            if "(?P<n>" not in expanded:
                raise ValueError(f"pattern needs a named group (?P<n>...): {p!r}")
        return self


class CueFile(_Strict):
    version: str
    grammar: Grammar
    cues: list[CueSpec]
    numeric: NumericSpec
    wage_arrears: WageArrearsSpec
    extract: ExtractSpec

    @model_validator(mode="after")
    def _unique(self) -> CueFile:
        ids = [c.id for c in self.cues]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"cue ids must be unique; repeated: {', '.join(dup)}")
        return self


def load_toml(path: Path, model: type[Any]) -> Any:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"entry '{'.'.join(str(p) for p in e['loc']) or '(top level)'}': {e['msg']}" for e in exc.errors()
        )
        raise RuleFileError(f"{path}: {details}") from exc


@dataclass(frozen=True)
class CueHit:
    """One cue found in a text: which family, the words, and at what tier it counts."""

    cue: str
    label: str
    text: str
    tier: Risk
    note: str = ""  # why it counts less ("假设", ...) or "" when it counts as written

    def feature(self) -> str:
        return f"cue:{self.cue}" if not self.note else f"cue:{self.cue}:{self.tier.value}"

    def show(self) -> str:
        return f"{self.label}「{self.text}」" + (f"（{self.note}）" if self.note else "")


@dataclass(frozen=True)
class Silenced:
    cue: str
    label: str
    text: str
    why: str

    def show(self) -> str:
        return f"{self.label}「{self.text}」不计（{self.why}）"


@dataclass
class Extracted:
    """Numbers read from the text: workers owed wages, people in a group, the sum in dispute."""

    worker_count: int | None = None
    worker_text: str = ""
    amount: float | None = None
    amount_text: str = ""
    group_size: int | None = None
    group_text: str = ""
    wage_words: str | None = None


_CLAUSE_END = re.compile(r"[。！？!?；;\n]")


class CueBook:
    """The cue families of triage_cues.toml, compiled once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or DEFAULT_CUES
        self.spec: CueFile = load_toml(self.path, CueFile)
        self.version = self.spec.version
        g = self.spec.grammar
        self._negators = re.compile("|".join(map(re.escape, sorted(g.negators, key=len, reverse=True))))
        adj = sorted(g.adjacent_negators, key=len, reverse=True)
        self._adjacent = re.compile("(?:" + "|".join(map(re.escape, adj)) + ")$") if adj else None
        self._hypo = re.compile("|".join(map(re.escape, sorted(g.hypotheticals, key=len, reverse=True))))
        self._cues = [
            (
                c,
                re.compile("|".join(f"(?:{p})" for p in c.patterns)),
                re.compile("|".join(f"(?:{p})" for p in c.exclude)) if c.exclude else None,
                re.compile("|".join(f"(?:{p})" for p in c.near)) if c.near else None,
            )
            for c in self.spec.cues
        ]
        self.feature_names = sorted(
            {f"cue:{c.id}" for c in self.spec.cues}
            | {f"cue:{c.id}:{c.downgrade_to.value}" for c in self.spec.cues if c.hypothetical == "downgrade"}
            | {"cue:numeric_wage_scale", "cue:numeric_group"}
        )
        ex = self.spec.extract
        num = f"(?:{ex.number})"
        self._workers = [re.compile(p.replace("{num}", num)) for p in ex.workers]
        self._groups = [re.compile(p.replace("{num}", num)) for p in ex.group_size]
        self._amounts = [re.compile(a.pattern.replace("{num}", num)) for a in ex.amounts]
        self._amount_skip = re.compile(ex.amount_skip_before) if ex.amount_skip_before else None
        self._wage_patterns = [re.compile(p) for p in self.spec.wage_arrears.patterns]

    # -- numbers ---------------------------------------------------------------------------

    def extract(self, text: str) -> Extracted:
        text = fold(text)
        out = Extracted()
        best_workers = self._largest(text, self._workers)
        if best_workers:
            out.worker_count, out.worker_text = int(best_workers[0]), best_workers[1]
        best_group = self._largest(text, self._groups)
        if best_group:
            out.group_size, out.group_text = int(best_group[0]), best_group[1]
        best_amount: tuple[float, str] | None = None
        for rx in self._amounts:
            for m in rx.finditer(text):
                if self._amount_skip and self._amount_skip.search(text[: m.start()]):
                    continue  # a unit price (每亩4.2万元) is not the sum in dispute
                value = parse_number(m.group("n"))
                if value is None:
                    continue
                unit = m.groupdict().get("unit")
                value *= {"万": 10000, "千": 1000}.get(unit or "", 1)
                if best_amount is None or value > best_amount[0]:
                    best_amount = (value, m.group(0))
        if best_amount:
            out.amount, out.amount_text = best_amount
        out.wage_words = self.wage_arrears(text)
        return out

    @staticmethod
    def _largest(text: str, patterns: list[re.Pattern[str]]) -> tuple[float, str] | None:
        best: tuple[float, str] | None = None
        for rx in patterns:
            for m in rx.finditer(text):
                value = parse_number(m.group("n"))
                if value is not None and value >= 1 and (best is None or value > best[0]):
                    best = (value, m.group(0))
        return best

    def wage_arrears(self, text: str) -> str | None:
        """The words that show unpaid wages, or None."""
        for word in self.spec.wage_arrears.words:
            if word in text:
                return word
        for rx in self._wage_patterns:
            m = rx.search(text)
            if m:
                return m.group(0)
        return None

    def numeric_hits(self, workers: int | None, amount: float | None, group: int | None, wage: bool) -> list[CueHit]:
        """The rubric's numbers: hundreds of workers or millions of yuan of unpaid wages (high); a group (medium)."""
        n = self.spec.numeric
        hits = []
        people = max(workers or 0, group or 0)
        if wage and (people >= n.high_wage_workers or (amount or 0) >= n.high_wage_amount):
            shown = f"{people} 人" if people >= n.high_wage_workers else f"{(amount or 0):,.0f} 元"
            hits.append(CueHit("numeric_wage_scale", "大规模欠薪", shown, Risk.high))
        if people >= n.group_at_least:
            hits.append(CueHit("numeric_group", "群体人数", f"{people} 人", Risk.medium))
        return hits

    def _negated(self, text: str, start: int) -> str | None:
        """The negation right before `start` in its clause: a negator within the window, or a
        single-character one right before it (未造成, 没受伤)."""
        c_lo, _ = self._clause(text, start, start)
        before = text[max(c_lo, start - self.spec.grammar.negation_window) : start]
        m = self._negators.search(before)
        if m:
            return m.group(0)
        if self._adjacent is not None:
            m2 = self._adjacent.search(text[max(c_lo, start - 1) : start])
            if m2:
                return m2.group(0)
        return None

    @staticmethod
    def _clause(text: str, start: int, end: int) -> tuple[int, int]:
        left = max((m.end() for m in _CLAUSE_END.finditer(text, 0, start)), default=0)
        m = _CLAUSE_END.search(text, end)
        return left, (m.start() if m else len(text))

    def find(self, text: str) -> tuple[list[CueHit], list[Silenced]]:
        """Every cue family that fires in `text` (one hit per family: the strongest), and those silenced."""
        text = fold(text)
        hits: dict[str, CueHit] = {}
        silenced: dict[str, Silenced] = {}
        for spec, rx, exclude, near in self._cues:
            excluded = [(m.start(), m.end()) for m in exclude.finditer(text)] if exclude else []
            for m in rx.finditer(text):
                s, e = m.start(), m.end()
                if any(a < e and s < b for a, b in excluded):
                    continue
                if near is not None:
                    lo, hi = max(0, s - spec.window), min(len(text), e + spec.window)
                    if not any(
                        (n.start() >= e or n.end() <= s) and self._negated(text, n.start()) is None
                        for n in near.finditer(text, lo, hi)
                    ):
                        continue  # the context the family needs is not there (or is negated: 没有人受伤)
                c_lo, c_hi = self._clause(text, s, e)
                neg = self._negated(text, s)
                if neg:
                    silenced.setdefault(spec.id, Silenced(spec.id, spec.label, m.group(0), f"前有否定「{neg}」"))
                    continue
                tier, note = spec.tier, ""
                if spec.hypothetical == "downgrade":
                    hypo = self._hypo.search(text, c_lo, c_hi)
                    if hypo:
                        tier, note = spec.downgrade_to, f"假设「{hypo.group(0)}」，按{RISK_CN[spec.downgrade_to]}计"
                hit = CueHit(spec.id, spec.label, m.group(0), tier, note)
                old = hits.get(spec.id)
                if old is None or RISK_ORDER[hit.tier] > RISK_ORDER[old.tier]:
                    hits[spec.id] = hit
        for cid in hits:
            silenced.pop(cid, None)
        return list(hits.values()), list(silenced.values())


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_DIGIT = re.compile(r"[0-9]")
_PUNCT = set("，。！？、；：“”‘’（）《》【】,.!?;:\"'()[]<>-—…· ")


def fold(text: str) -> str:
    """Full-width forms folded (NFKC) and Latin lower-cased: what cues and extractors read."""
    return unicodedata.normalize("NFKC", text).lower()


def normalise(text: str) -> str:
    """Full-width forms folded (NFKC), Latin lower-cased, digits to 0, runs of space to one."""
    return _SPACE.sub(" ", _DIGIT.sub("0", fold(text))).strip()


class Featuriser:
    """Text -> the terms the linear models read. Deterministic; loads jieba's dictionary once."""

    def __init__(self) -> None:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # its dictionary loading must not chatter on stderr
        self._tok = jieba.Tokenizer()
        self._tok.initialize()

    def terms(self, text: str, title: str = "") -> list[str]:
        """Character 1-3-grams and jieba words of the whole text, plus the title's words marked
        `t:` (a form's title names the matter more often than the body does)."""
        return self.analyse(text, title)[0]

    def analyse(self, text: str, title: str = "") -> tuple[list[str], list[str]]:
        """The terms (as `terms`) and jieba's words of the normalised text, from one segmentation:
        the words are what routing variants look for."""
        t = normalise(text)
        words = [w.strip() for w in self._tok.lcut(t) if w.strip()]
        out: list[str] = []
        n = len(t)
        for i in range(n):
            c = t[i]
            if c in _PUNCT:
                continue
            out.append(c)
            if i + 1 < n:
                out.append(t[i : i + 2])
                if i + 2 < n:
                    out.append(t[i : i + 3])
        out.extend("w:" + w for w in words if len(w) >= 2 and not all(ch in _PUNCT for ch in w))
        if title:
            out.extend("t:" + w for w in self._tok.lcut(normalise(title)) if len(w.strip()) >= 2)
        return out, words


def show_term(term: str) -> str:
    if term.startswith("t:"):
        return f"标题「{term[2:]}」"
    if term.startswith("w:"):
        return f"「{term[2:]}」"
    return f"“{term}”"


# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------


class LinearHead(BaseModel):
    """One multinomial logistic model over [tf-idf terms | cue features], as plain numbers."""

    classes: list[str]
    intercept: list[float]
    coef: list[list[float]]  # [class][term]
    cue_coef: dict[str, list[float]]  # cue feature -> [class]; the readable part
    temperature: float = 1.0


class RiskThresholds(BaseModel):
    high: float  # P(high) at or above this is high (cost-sensitive: chosen for recall)
    medium: float  # else P(high)+P(medium) at or above this is medium


class TriageModel(BaseModel):
    """rules/triage_model.json."""

    format: int = 1
    version: str
    feature_version: str
    cues_version: str
    corpus: dict[str, Any]
    params: dict[str, Any]
    out_of_fold: dict[str, Any] = {}
    terms: list[str]
    idf: list[float]
    category: LinearHead
    risk: LinearHead
    thresholds: RiskThresholds

    @classmethod
    def load(cls, path: Path | None = None) -> TriageModel:
        p = path or DEFAULT_MODEL
        try:
            return cls.model_validate_json(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RuleFileError(f"{p}: cannot be read: {exc}; rebuild it with `python starter.py triage train`") from exc
        except ValidationError as exc:
            raise RuleFileError(f"{p}: not a triage model file: {exc.errors()[0]['msg']}") from exc

    def dump(self, path: Path) -> None:
        data = self.model_dump(mode="json")
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
        # One term list per line would be unreadable; the header fields come first for a person.
        path.write_text(text + "\n", encoding="utf-8")


def tfidf_vector(terms: Iterable[str], index: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A text's sparse tf-idf vector (sublinear tf, L2-normalised): column indices and values."""
    counts = Counter(index[t] for t in terms if t in index)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    val = (1.0 + np.log(tf)) * idf[idx]
    norm = float(np.sqrt(np.dot(val, val)))
    return idx, (val / norm if norm > 0 else val)


@dataclass
class _Head:
    classes: list[str]
    W: np.ndarray  # (k, n_terms)
    C: np.ndarray  # (k, n_cues)
    b: np.ndarray  # (k,)
    T: float


@dataclass
class Scored:
    probs: dict[str, float]
    top: str
    evidence: list[tuple[str, float]] = field(default_factory=list)  # strongest terms for `top`


class Scorer:
    """A loaded model, ready to score texts (numpy only)."""

    def __init__(self, model: TriageModel, cues: CueBook) -> None:
        self.model = model
        self.index = {t: i for i, t in enumerate(model.terms)}
        self.idf = np.asarray(model.idf, dtype=np.float64)
        self.cue_features = cues.feature_names
        self.cat = self._head(model.category)
        self.risk = self._head(model.risk)

    def _head(self, h: LinearHead) -> _Head:
        W = np.asarray(h.coef, dtype=np.float64)
        C = np.zeros((len(h.classes), len(self.cue_features)))
        for j, name in enumerate(self.cue_features):
            if name in h.cue_coef:
                C[:, j] = h.cue_coef[name]
        return _Head(h.classes, W, C, np.asarray(h.intercept, dtype=np.float64), h.temperature)

    def vector(self, terms: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        return tfidf_vector(terms, self.index, self.idf)

    def cue_vector(self, hits: Sequence[CueHit]) -> np.ndarray:
        v = np.zeros(len(self.cue_features))
        names = {h.feature() for h in hits}
        for j, name in enumerate(self.cue_features):
            if name in names:
                v[j] = 1.0
        return v

    def score(self, head: Literal["category", "risk"], idx: np.ndarray, val: np.ndarray, cue: np.ndarray) -> Scored:
        h = self.cat if head == "category" else self.risk
        logits = (h.W[:, idx] @ val if len(idx) else np.zeros(len(h.classes))) + h.C @ cue + h.b
        z = logits / h.T
        z = z - z.max()
        p = np.exp(z)
        p = p / p.sum()
        k = int(np.argmax(p))
        evidence: list[tuple[str, float]] = []
        if len(idx):
            # What pushed the winning class above the others: its weight minus the classes' mean.
            # Single characters carry weight but explain nothing to a person: shown are words and n-grams.
            rel = (h.W[k, idx] - h.W[:, idx].mean(axis=0)) * val
            order = np.argsort(-rel)
            for o in order:
                term = self.model.terms[int(idx[o])]
                if rel[o] <= 0 or len(evidence) == 5:
                    break
                if len(term.removeprefix("w:").removeprefix("t:")) >= 2:
                    evidence.append((term, float(rel[o])))
        return Scored({c: float(p[i]) for i, c in enumerate(h.classes)}, h.classes[k], evidence)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


class Example(BaseModel):
    """One labelled petition of the corpus (rules/triage_corpus/*.jsonl)."""

    model_config = ConfigDict(extra="ignore")

    writer: str
    title: str
    content: str
    locality: str = ""
    category: Category
    risk: Risk
    why: str = ""

    @property
    def text(self) -> str:
        return f"{self.title}。{self.content}"


def load_corpus(folder: Path | None = None) -> list[Example]:
    """Every `*.jsonl` in the corpus folder (writers' files and exported corrections), in name order."""
    d = folder or DEFAULT_CORPUS
    out: list[Example] = []
    for path in sorted(d.glob("*.jsonl")):
        if path.name.startswith("relabel"):
            continue  # the second writer's blind labels: for agreement, not training
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                ex = Example.model_validate_json(line)
            except ValidationError as exc:
                raise RuleFileError(f"{path}:{n}: not a labelled petition: {exc.errors()[0]['msg']}") from exc
            out.append(ex)
    return out


def corpus_digest(items: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in items:
        h.update(json.dumps(ex.model_dump(mode="json"), ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Training (scikit-learn, imported only here)
# ---------------------------------------------------------------------------------------------

DEFAULT_PARAMS: dict[str, Any] = {
    "C_category": 20.0,
    "C_risk": 4.0,
    "min_df": 2,
    "max_terms": 60000,
    "cue_scale": 1.0,
    "inner_folds": 4,
    "high_recall_target": 0.98,
    "medium_recall_target": 0.92,
    "seed": 20261201,
    "cue_floors": True,
}


def _tfidf(docs: list[list[str]], min_df: int, max_terms: int) -> tuple[list[str], np.ndarray]:
    df: Counter[str] = Counter()
    for terms in docs:
        df.update(set(terms))
    kept = [t for t, c in df.items() if c >= min_df]
    kept.sort(key=lambda t: (-df[t], t))
    kept = sorted(kept[:max_terms])
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept])
    return kept, idf


def _matrix(docs: list[list[str]], index: dict[str, int], idf: np.ndarray) -> Any:
    from scipy.sparse import csr_matrix

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, terms in enumerate(docs):
        idx, v = tfidf_vector(terms, index, idf)
        rows.extend([r] * len(idx))
        cols.extend(idx.tolist())
        vals.extend(v.tolist())
    return csr_matrix((vals, (rows, cols)), shape=(len(docs), len(index)))


@dataclass
class Prepared:
    """A corpus turned into features once, so folds only slice it."""

    items: list[Example]
    terms: list[list[str]]
    cues: np.ndarray  # (n, n_cue_features)
    floors: list[Risk | None]  # the strongest high-tier cue floor per item
    cue_names: list[str]  # the columns of `cues`


def prepare(items: Sequence[Example], featuriser: Featuriser, cues: CueBook) -> Prepared:
    terms, cue_rows, floors = [], [], []
    names = cues.feature_names
    for ex in items:
        text = ex.text[:MAX_ANALYSED]
        terms.append(featuriser.terms(text, ex.title))
        hits, _ = cues.find(text)
        x = cues.extract(text)
        hits += cues.numeric_hits(x.worker_count, x.amount, x.group_size, x.wage_words is not None)
        got = {h.feature() for h in hits}
        cue_rows.append([1.0 if n in got else 0.0 for n in names])
        floors.append(Risk.high if any(h.tier == Risk.high for h in hits) else None)
    return Prepared(list(items), terms, np.asarray(cue_rows).reshape(len(items), len(names)), floors, list(names))


def _fit(X: Any, y: list[str], C: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=seed)
    clf.fit(X, y)
    return clf


def _design(prep: Prepared, rows: Sequence[int], index: dict[str, int], idf: np.ndarray, cue_scale: float) -> Any:
    from scipy.sparse import csr_matrix, hstack

    X = _matrix([prep.terms[i] for i in rows], index, idf)
    return hstack([X, csr_matrix(prep.cues[list(rows)] * cue_scale)]).tocsr()


def _temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises out-of-fold log loss (a one-number calibration)."""
    best_t, best = 1.0, float("inf")
    for t in np.exp(np.linspace(math.log(0.25), math.log(4.0), 41)):
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float(np.mean(logp[np.arange(len(y)), y]))
        if loss < best - 1e-12:
            best, best_t = loss, float(t)
    return round(best_t, 4)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def choose_thresholds(p_high: np.ndarray, p_med_or_high: np.ndarray, truth: list[Risk], floors: list[Risk | None],
                      high_target: float, medium_target: float) -> RiskThresholds:
    """Cost-sensitive: the highest high-threshold that keeps high recall at the target, then the
    highest medium-threshold that keeps medium recall (medium or above) at its target."""
    is_high = np.array([t == Risk.high for t in truth])
    floor = np.array([f == Risk.high for f in floors])
    t_high = 0.05
    for t in np.round(np.arange(0.60, 0.04, -0.01), 2):
        caught = (p_high >= t) | floor
        if is_high.sum() == 0 or caught[is_high].mean() >= high_target:
            t_high = float(t)
            break
    not_high = ~((p_high >= t_high) | floor)
    is_med = np.array([t == Risk.medium for t in truth]) & not_high
    t_med = 0.2
    for t in np.round(np.arange(0.80, 0.09, -0.01), 2):
        if is_med.sum() == 0 or (p_med_or_high[is_med] >= t).mean() >= medium_target:
            t_med = float(t)
            break
    return RiskThresholds(high=t_high, medium=t_med)


def _writer_folds(writers: list[str], k: int) -> list[list[int]]:
    """Rows grouped by writer into k folds, writers dealt in name order (deterministic)."""
    names = sorted(set(writers))
    k = max(2, min(k, len(names)))
    fold_of = {w: i % k for i, w in enumerate(names)}
    return [[r for r, w in enumerate(writers) if fold_of[w] == f] for f in range(k)]


def train(prep: Prepared, rows: Sequence[int] | None = None, params: dict[str, Any] | None = None,
          cues_version: str = "") -> TriageModel:
    """Fit both heads on `rows` of `prep`; thresholds and temperatures from writer-grouped inner folds."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    rows = list(range(len(prep.items))) if rows is None else list(rows)
    items = [prep.items[r] for r in rows]
    cats = [c.value for c in Category]
    risks = [Risk.high.value, Risk.medium.value, Risk.low.value]

    def fit_all(fit_rows: list[int]) -> tuple[list[str], np.ndarray, Any, Any]:
        terms, idf = _tfidf([prep.terms[r] for r in fit_rows], p["min_df"], p["max_terms"])
        index = {t: i for i, t in enumerate(terms)}
        X = _design(prep, fit_rows, index, idf, p["cue_scale"])
        cat = _fit(X, [prep.items[r].category.value for r in fit_rows], p["C_category"], p["seed"])
        risk = _fit(X, [prep.items[r].risk.value for r in fit_rows], p["C_risk"], p["seed"])
        return terms, idf, cat, risk

    # Out-of-fold logits, grouped by writer: what the model does on hands it has not seen.
    oof_cat = np.zeros((len(rows), len(cats)))
    oof_risk = np.zeros((len(rows), len(risks)))
    writers = [ex.writer for ex in items]
    for fold in _writer_folds(writers, p["inner_folds"]):
        fit_rows = [rows[i] for i in range(len(rows)) if i not in set(fold)]
        terms, idf, cat, risk = fit_all(fit_rows)
        index = {t: i for i, t in enumerate(terms)}
        X = _design(prep, [rows[i] for i in fold], index, idf, p["cue_scale"])
        oof_cat[fold] = _ordered(cat, X, cats)
        oof_risk[fold] = _ordered(risk, X, risks)
    y_cat = np.array([cats.index(ex.category.value) for ex in items])
    y_risk = np.array([risks.index(ex.risk.value) for ex in items])
    t_cat = _temperature(oof_cat, y_cat)
    t_risk = _temperature(oof_risk, y_risk)
    pr = _softmax(oof_risk / t_risk)
    floors = [prep.floors[r] if p["cue_floors"] else None for r in rows]
    thresholds = choose_thresholds(
        pr[:, 0], pr[:, 0] + pr[:, 1], [ex.risk for ex in items], floors,
        p["high_recall_target"], p["medium_recall_target"],
    )

    terms, idf, cat, risk = fit_all(rows)
    n_terms = len(terms)
    names = prep.cue_names

    def head(clf: Any, classes: list[str], temperature: float) -> LinearHead:
        order = [list(clf.classes_).index(c) for c in classes]
        coef = clf.coef_[order]
        return LinearHead(
            classes=classes,
            intercept=[round(float(v), 5) for v in clf.intercept_[order]],
            coef=[[round(float(v), 4) for v in row[:n_terms]] for row in coef],
            cue_coef={n: [round(float(coef[k, n_terms + j]) * p["cue_scale"], 4) for k in range(len(classes))]
                      for j, n in enumerate(names)},
            temperature=temperature,
        )

    digest = corpus_digest(items)
    config = json.dumps({"params": p, "features": FEATURE_VERSION, "cues": cues_version}, sort_keys=True)
    version = "triage-model " + hashlib.sha256((digest + config).encode()).hexdigest()[:12]
    by_writer = Counter(ex.writer for ex in items)
    return TriageModel(
        version=version,
        feature_version=FEATURE_VERSION,
        cues_version=cues_version,
        corpus={
            "sha256": digest,
            "items": len(items),
            "writers": dict(sorted(by_writer.items())),
            "categories": dict(sorted(Counter(ex.category.value for ex in items).items())),
            "risks": dict(sorted(Counter(ex.risk.value for ex in items).items())),
        },
        params=p,
        out_of_fold={"temperature_category": t_cat, "temperature_risk": t_risk},
        terms=terms,
        idf=[round(float(v), 5) for v in idf],
        category=head(cat, cats, t_cat),
        risk=head(risk, risks, t_risk),
        thresholds=thresholds,
    )


def _ordered(clf: Any, X: Any, classes: list[str]) -> np.ndarray:
    """Decision values in `classes` order (logits of the multinomial model)."""
    dec = clf.decision_function(X)
    order = [list(clf.classes_).index(c) for c in classes]
    return np.asarray(dec)[:, order]


# ---------------------------------------------------------------------------------------------
# Deciding and evaluating
# ---------------------------------------------------------------------------------------------


def decide_risk(p_high: float, p_up: float, floor: bool, t: RiskThresholds) -> Risk:
    """High on a high-tier cue or P(high) >= t.high; else medium on P(high)+P(medium) >= t.medium."""
    if floor or p_high >= t.high:
        return Risk.high
    if p_up >= t.medium:
        return Risk.medium
    return Risk.low


def predict_prepared(scorer: Scorer, prep: Prepared, rows: Sequence[int]) -> list[tuple[Category, Risk]]:
    """The decisions for prepared rows (the same arithmetic as `Triage.classify`)."""
    out = []
    for r in rows:
        idx, val = scorer.vector(prep.terms[r])
        cue = prep.cues[r]
        cat = scorer.score("category", idx, val, cue)
        risk = scorer.score("risk", idx, val, cue)
        p_high = risk.probs[Risk.high.value]
        p_up = p_high + risk.probs[Risk.medium.value]
        floor = prep.floors[r] == Risk.high and scorer.model.params.get("cue_floors", True)
        out.append((Category(cat.top), decide_risk(p_high, p_up, floor, scorer.model.thresholds)))
    return out


@dataclass
class Metrics:
    n: int
    category_accuracy: float
    high_recall: float
    high_precision: float
    medium_recall: float
    highs: int
    high_missed_as_low: int
    risk_accuracy: float

    def row(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def metrics(truth: Sequence[Example], pred: Sequence[tuple[Category, Risk]]) -> Metrics:
    n = len(truth)
    cat_ok = sum(t.category == p[0] for t, p in zip(truth, pred, strict=True))
    highs = [p for t, p in zip(truth, pred, strict=True) if t.risk == Risk.high]
    called_high = [t for t, p in zip(truth, pred, strict=True) if p[1] == Risk.high]
    meds = [p for t, p in zip(truth, pred, strict=True) if t.risk == Risk.medium]
    return Metrics(
        n=n,
        category_accuracy=cat_ok / n if n else 0.0,
        high_recall=sum(p[1] == Risk.high for p in highs) / len(highs) if highs else 1.0,
        high_precision=sum(t.risk == Risk.high for t in called_high) / len(called_high) if called_high else 1.0,
        medium_recall=sum(p[1] == Risk.medium for p in meds) / len(meds) if meds else 1.0,
        highs=len(highs),
        high_missed_as_low=sum(p[1] == Risk.low for p in highs),
        risk_accuracy=sum(t.risk == p[1] for t, p in zip(truth, pred, strict=True)) / n if n else 0.0,
    )


def leave_one_writer_out(prep: Prepared, cues: CueBook, writer: str, params: dict[str, Any] | None = None
                         ) -> tuple[list[int], list[tuple[Category, Risk]], TriageModel]:
    """Train on every writer but `writer`, predict that writer's items."""
    test = [i for i, ex in enumerate(prep.items) if ex.writer == writer]
    fit = [i for i, ex in enumerate(prep.items) if ex.writer != writer]
    model = train(prep, fit, params, cues_version=cues.version)
    return test, predict_prepared(Scorer(model, cues), prep, test), model


def build_model(corpus: Path | None = None, cues_path: Path | None = None, out: Path | None = None,
                params: dict[str, Any] | None = None) -> TriageModel:
    """`starter.py triage train`: the corpus (writers' files and exported corrections) -> the model file."""
    items = load_corpus(corpus)
    if not items:
        raise RuleFileError(f"{corpus or DEFAULT_CORPUS}: no labelled petitions (*.jsonl) to train on")
    cues = CueBook(cues_path)
    model = train(prepare(items, Featuriser(), cues), params=params, cues_version=cues.version)
    model.dump(out or DEFAULT_MODEL)
    return model
