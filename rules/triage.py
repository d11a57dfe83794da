"""Explainable triage (智能分拣): category, risk tier and responsible unit for an intake record.

Everything the classifier knows is data a person can read and change: `triage_terms.toml`
(weighted terms, contextual patterns, risk cues, extractors) and `routing.toml` (units and
leaders). This module only adds the words up, so every decision comes with the terms that made it.

Pure: no I/O after loading, no clock, no randomness. The two files are read once per `Triage`.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

import jieba
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.ruleset import RuleFileError, load_rules
from rules.vocabulary import Category, Risk

RULES_DIR = Path(__file__).resolve().parent
DEFAULT_TERMS = RULES_DIR / "triage_terms.toml"
DEFAULT_ROUTING = RULES_DIR / "routing.toml"

# jieba announces its dictionary loading on the root of its own logger; triage must stay quiet.
jieba.setLogLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------
# The models that cross the boundary (the activity and starter build these).
# ---------------------------------------------------------------------------------------------


class TriageInput(BaseModel):
    """An intake record as triage sees it; any field the operator filled in wins."""

    title: str
    content: str
    locality: str
    category: Category | None = None
    risk: Risk | None = None
    responsible_unit: str | None = None
    disputed_amount: float | None = None
    worker_count: int | None = None


class TriageResult(BaseModel):
    """What triage decided and why."""

    category: Category
    risk: Risk
    unit: str
    reasons: list[str]
    category_source: str  # "operator" | "classifier"
    risk_source: str  # "operator" | "classifier"
    statutory_channel: bool  # law_litigation: belongs to a statutory channel (诉访分离)
    collective_wage_arrears: bool  # labour category, wage arrears, worker_count >= threshold
    worker_count: int | None
    amount: float | None
    model_version: str


# ---------------------------------------------------------------------------------------------
# The shape of triage_terms.toml
# ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {pattern!r}") from exc
    return pattern


class TermGroup(_Strict):
    weight: float
    words: list[str] = Field(min_length=1)

    @field_validator("words")
    @classmethod
    def _non_blank(cls, words: list[str]) -> list[str]:
        blank = [w for w in words if not w.strip()]
        if blank:
            raise ValueError("a word may not be empty")
        return words


class PatternCue(_Strict):
    pattern: str
    weight: float
    why: str

    @field_validator("pattern")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _compile(value)


class CategorySpec(_Strict):
    label: str
    terms: list[TermGroup] = []
    patterns: list[PatternCue] = []

    @model_validator(mode="after")
    def _no_duplicates(self) -> CategorySpec:
        seen: set[str] = set()
        for group in self.terms:
            for word in group.words:
                if word in seen:
                    raise ValueError(f"word {word!r} is listed twice")
                seen.add(word)
        return self


class Scoring(_Strict):
    min_score: float = Field(ge=0)
    tie_order: list[Category]

    @field_validator("tie_order")
    @classmethod
    def _every_category(cls, order: list[Category]) -> list[Category]:
        missing = [c.value for c in Category if c not in order]
        if missing or len(order) != len(set(order)):
            raise ValueError(f"must list every category exactly once; missing: {', '.join(missing) or 'none'}")
        return order


class RiskGroup(_Strict):
    label: str
    cap: float = Field(gt=0)
    # A group whose max_tier is medium can raise a case to medium but never, alone or together
    # with other such groups, to high: several reasons for attention are not a threat.
    max_tier: Literal[Risk.high, Risk.medium] = Risk.high
    terms: list[TermGroup] = []
    patterns: list[PatternCue] = []


NumericField = Literal["worker_count", "amount", "group_size"]


class NumericCue(_Strict):
    group: str
    field: NumericField
    at_least: float
    weight: float
    why: str
    requires_wage_arrears: bool = False


class RiskSpec(_Strict):
    high_at: float
    medium_at: float
    groups: dict[str, RiskGroup]
    numeric: list[NumericCue] = []

    @model_validator(mode="after")
    def _consistent(self) -> RiskSpec:
        if not self.high_at > self.medium_at > 0:
            raise ValueError("thresholds must satisfy high_at > medium_at > 0")
        unknown = sorted({n.group for n in self.numeric if n.group not in self.groups})
        if unknown:
            raise ValueError(f"numeric cues name unknown groups: {', '.join(unknown)}")
        return self


class WageArrearsSpec(_Strict):
    words: list[str] = []
    patterns: list[str] = []

    @field_validator("patterns")
    @classmethod
    def _valid(cls, patterns: list[str]) -> list[str]:
        return [_compile(p) for p in patterns]


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
        _compile(self.number)
        _compile(self.amount_skip_before)
        for p in [*self.workers, *self.group_size, *(a.pattern for a in self.amounts)]:
            expanded = _compile(p.replace("{num}", f"(?:{self.number})"))
            if "(?P<n>" not in expanded:
                raise ValueError(f"pattern needs a named group (?P<n>...): {p!r}")
        return self


class TermsFile(_Strict):
    version: str
    description: str = ""
    scoring: Scoring
    categories: dict[Category, CategorySpec]
    risk: RiskSpec
    wage_arrears: WageArrearsSpec
    extract: ExtractSpec

    @model_validator(mode="after")
    def _every_category(self) -> TermsFile:
        missing = [c.value for c in Category if c not in self.categories]
        if missing:
            raise ValueError(f"every category needs an entry; missing: {', '.join(missing)}")
        return self


# ---------------------------------------------------------------------------------------------
# The shape of routing.toml
# ---------------------------------------------------------------------------------------------


class CategoryRoute(_Strict):
    name: str
    unit: str


class Variant(_Strict):
    category: Category
    unit: str
    why: str
    words: list[str] = Field(min_length=1)
    versus: list[str] = []


class Township(_Strict):
    suffixes: list[str]
    unit: str
    units_by_suffix: dict[str, str] = {}


class DefaultLeaders(_Strict):
    principal_leader: str
    deputy_leader: str
    unit_leader: str


class LocalityLeaders(_Strict):
    principal_leader: str | None = None
    deputy_leader: dict[Category, str] = {}


class RoutingFile(_Strict):
    version: str
    categories: dict[Category, CategoryRoute]
    variants: list[Variant] = []
    township: Township
    overrides: dict[str, dict[Category, str]] = {}
    default_leaders: DefaultLeaders
    leaders: dict[str, LocalityLeaders] = {}
    unit_leaders: dict[str, str] = {}

    @model_validator(mode="after")
    def _complete(self) -> RoutingFile:
        missing = [c.value for c in Category if c not in self.categories]
        if missing:
            raise ValueError(f"every category needs a unit; missing: {', '.join(missing)}")
        return self


M = TypeVar("M", bound=BaseModel)


def _load_toml(path: Path, model: type[M]) -> M:
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
# The classifier
# ---------------------------------------------------------------------------------------------


class _Hit(BaseModel):
    """One cue that matched: the word or matched text, its weight and why it counts."""

    text: str
    weight: float
    why: str = ""

    def show(self) -> str:
        note = f", {self.why}" if self.why else ""
        return f"{self.text}({self.weight:+.1f}{note})"


class _Extracted(BaseModel):
    worker_count: int | None = None
    worker_text: str = ""
    amount: float | None = None
    amount_text: str = ""
    group_size: int | None = None
    group_text: str = ""


def _fmt_amount(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


class Triage:
    """The classifier, loaded once from its two data files."""

    def __init__(
        self,
        terms_path: Path | None = None,
        routing_path: Path | None = None,
        collective_min_workers: int = 5,
    ) -> None:
        self.terms_path = terms_path or DEFAULT_TERMS
        self.routing_path = routing_path or DEFAULT_ROUTING
        self.terms = _load_toml(self.terms_path, TermsFile)
        self.routing = _load_toml(self.routing_path, RoutingFile)
        if collective_min_workers < 1:
            raise ValueError("collective_min_workers must be at least 1")
        self.collective_min_workers = collective_min_workers
        self.model_version = f"{self.terms.version} / {self.routing.version}"

        num = f"(?:{self.terms.extract.number})"
        self._workers = [re.compile(p.replace("{num}", num)) for p in self.terms.extract.workers]
        self._groups = [re.compile(p.replace("{num}", num)) for p in self.terms.extract.group_size]
        self._amounts = [re.compile(a.pattern.replace("{num}", num)) for a in self.terms.extract.amounts]
        skip = self.terms.extract.amount_skip_before
        self._amount_skip = re.compile(skip) if skip else None
        self._wage_patterns = [re.compile(p) for p in self.terms.wage_arrears.patterns]

        # A private jieba dictionary: our words are added to it, not to the process-wide default.
        self._tokenizer = jieba.Tokenizer()
        for word in sorted(self._all_words()):
            self._tokenizer.add_word(word, freq=200000)
        self._tokenizer.initialize()

    def _all_words(self) -> set[str]:
        words: set[str] = set(self.terms.wage_arrears.words)
        for spec in self.terms.categories.values():
            for group in spec.terms:
                words.update(group.words)
        for risk_group in self.terms.risk.groups.values():
            for group in risk_group.terms:
                words.update(group.words)
        for variant in self.routing.variants:
            words.update(variant.words)
            words.update(variant.versus)
        return words

    # -- text ------------------------------------------------------------------------------

    def tokens(self, text: str) -> set[str]:
        """The words jieba finds, with the parts of long words (search mode: 拖欠工资 -> 拖欠, 工资)."""
        return {t.strip() for t in self._tokenizer.cut_for_search(text) if t.strip()}

    @staticmethod
    def _term_hits(text: str, tokens: set[str], groups: Iterable[TermGroup], why: str = "") -> list[_Hit]:
        """The listed words found in the text, each stretch of text counted once (longest word first).

        A word is found when jieba yields it as a word; a word of three or more characters is also
        found inside a longer run (饮用水 in 饮用水源地), where jieba's segmentation may have cut
        it differently. Within one list, a word inside a longer word that matched at the same
        place does not count again (物业 inside 物业公司).
        """
        candidates = [
            (w, g.weight) for g in groups for w in g.words if w in tokens or (len(w) >= 3 and w in text)
        ]
        candidates.sort(key=lambda wg: -len(wg[0]))
        covered = [False] * len(text)
        hits = []
        for word, weight in candidates:
            fresh = False
            start = text.find(word)
            while start != -1:
                end = start + len(word)
                if not any(covered[start:end]):
                    fresh = True
                    for i in range(start, end):
                        covered[i] = True
                start = text.find(word, start + 1)
            if fresh:
                hits.append(_Hit(text=word, weight=weight, why=why))
        return hits

    @staticmethod
    def _pattern_hits(text: str, cues: Iterable[PatternCue], why_prefix: str = "") -> list[_Hit]:
        hits = []
        for cue in cues:
            m = re.search(cue.pattern, text)
            if m:
                why = f"{why_prefix}{cue.why}" if why_prefix else cue.why
                hits.append(_Hit(text=m.group(0), weight=cue.weight, why=why))
        return hits

    def _extract(self, text: str) -> _Extracted:
        out = _Extracted()
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

    def wage_arrears(self, text: str, tokens: set[str] | None = None) -> str | None:
        """The words that show unpaid wages, or None."""
        toks = tokens if tokens is not None else self.tokens(text)
        for word in self.terms.wage_arrears.words:
            if word in toks or word in text:
                return word
        for rx in self._wage_patterns:
            m = rx.search(text)
            if m:
                return m.group(0)
        return None

    # -- category --------------------------------------------------------------------------

    def score_categories(self, text: str, tokens: set[str]) -> dict[Category, tuple[float, list[_Hit]]]:
        """Every category's score and the cues behind it."""
        out: dict[Category, tuple[float, list[_Hit]]] = {}
        for category, spec in self.terms.categories.items():
            hits = self._term_hits(text, tokens, spec.terms) + self._pattern_hits(text, spec.patterns)
            out[category] = (sum(h.weight for h in hits), hits)
        return out

    def _choose_category(self, scores: dict[Category, tuple[float, list[_Hit]]]) -> tuple[Category, str]:
        order = {c: i for i, c in enumerate(self.terms.scoring.tie_order)}
        ranked = sorted(scores, key=lambda c: (-scores[c][0], order[c]))
        best = ranked[0]
        best_score, hits = scores[best]
        runner = ranked[1]
        runner_note = f"; next {runner.value} {scores[runner][0]:.1f}" if scores[runner][0] > 0 else ""
        if best_score < self.terms.scoring.min_score:
            shown = f" (best was {best.value} {best_score:.1f})" if best_score > 0 else ""
            return Category.other, (
                f"category other: no category reached {self.terms.scoring.min_score:.1f}{shown}"
            )
        positives = sorted((h for h in hits if h.weight > 0), key=lambda h: -h.weight)
        negatives = [h for h in hits if h.weight < 0]
        shown_hits = ", ".join(h.show() for h in [*positives, *negatives])
        # Counter-cues that held another category back are part of the explanation too.
        against = [
            f"{h.show()} against {c.value}"
            for c in ranked[1:]
            for h in scores[c][1]
            if h.weight < 0 and any(x.weight > 0 for x in scores[c][1])
        ]
        counter = f"; counter-cues: {'; '.join(against)}" if against else ""
        return best, f"category {best.value} {best_score:.1f}: {shown_hits}{runner_note}{counter}"

    # -- risk ------------------------------------------------------------------------------

    def _risk(
        self, text: str, tokens: set[str], worker_count: int | None, amount: float | None,
        group_size: int | None, wage: bool,
    ) -> tuple[Risk, str]:
        spec = self.terms.risk
        values: dict[str, float | None] = {"worker_count": worker_count, "amount": amount, "group_size": group_size}
        total = 0.0
        toward_high = 0.0
        parts: list[str] = []
        for name, group in spec.groups.items():
            hits = self._term_hits(text, tokens, group.terms) + self._pattern_hits(text, group.patterns)
            for cue in spec.numeric:
                value = values[cue.field]
                if cue.group != name or value is None or value < cue.at_least:
                    continue
                if cue.requires_wage_arrears and not wage:
                    continue
                fmt = _fmt_amount if cue.field == "amount" else (lambda v: f"{v:.0f}")
                hits.append(_Hit(text=f"{cue.field}={fmt(value)}≥{fmt(cue.at_least)}", weight=cue.weight, why=cue.why))
            if not hits:
                continue
            raw = sum(h.weight for h in hits)
            got = min(group.cap, raw)
            total += got
            if group.max_tier == Risk.high:
                toward_high += got
            capped = f", capped at {group.cap:g}" if raw > group.cap else ""
            parts.append(f"{group.label} +{got:g} [{', '.join(h.show() for h in hits)}{capped}]")
        if toward_high >= spec.high_at:
            tier = Risk.high
        elif total >= spec.medium_at:
            tier = Risk.medium
        else:
            tier = Risk.low
        limits = f"high at {spec.high_at:g} from threat/group/arrears cues, medium at {spec.medium_at:g}"
        if not parts:
            return tier, f"risk {tier.value} 0 ({limits}): no risk cues"
        return tier, f"risk {tier.value} {total:g} ({limits}): " + "; ".join(parts)

    # -- routing ---------------------------------------------------------------------------

    def _unit(self, locality: str, category: Category, tokens: set[str]) -> tuple[str, str]:
        r = self.routing
        override = r.overrides.get(locality, {}).get(category)
        if override:
            return override, f"unit {override}: override for {category.value} in {locality}"
        for suffix in r.township.suffixes:
            if locality.endswith(suffix):
                unit = r.township.units_by_suffix.get(suffix, r.township.unit).format(locality=locality)
                return unit, f"unit {unit}: {locality} is a township ({suffix}), its government handles it"
        for variant in r.variants:
            if variant.category != category:
                continue
            mine = [w for w in variant.words if w in tokens]
            theirs = [w for w in variant.versus if w in tokens]
            if len(mine) > len(theirs):
                unit = variant.unit.format(locality=locality)
                return unit, f"unit {unit}: {variant.why} ({', '.join(mine)})"
        unit = r.categories[category].unit.format(locality=locality)
        return unit, f"unit {unit}: default for {category.value} in {locality}"

    def principal_leader(self, locality: str) -> str:
        entry = self.routing.leaders.get(locality)
        if entry is not None and entry.principal_leader:
            return entry.principal_leader
        return self.routing.default_leaders.principal_leader.format(locality=locality)

    def deputy_leader(self, locality: str, category: Category) -> str:
        entry = self.routing.leaders.get(locality)
        if entry is not None and category in entry.deputy_leader:
            return entry.deputy_leader[category]
        name = self.routing.categories[category].name
        return self.routing.default_leaders.deputy_leader.format(locality=locality, category=name)

    def unit_leader(self, unit: str) -> str:
        return self.routing.unit_leaders.get(unit) or self.routing.default_leaders.unit_leader.format(unit=unit)

    # -- the whole decision ----------------------------------------------------------------

    def classify(self, item: TriageInput) -> TriageResult:
        text = f"{item.title}。{item.content}"
        tokens = self.tokens(text)
        reasons: list[str] = []

        scores = self.score_categories(text, tokens)
        suggested, why = self._choose_category(scores)
        if item.category is not None:
            category, category_source = item.category, "operator"
            reasons.append(f"category {category.value} given by the operator")
            if suggested != category:
                reasons.append(f"classifier would say {why.removeprefix('category ')}")
        else:
            category, category_source = suggested, "classifier"
            reasons.append(why)

        found = self._extract(text)
        if item.worker_count is not None:
            worker_count: int | None = item.worker_count
            reasons.append(f"worker count {worker_count} given at intake")
        else:
            worker_count = found.worker_count
            if worker_count is not None:
                reasons.append(f"worker count {worker_count} read from '{found.worker_text}'")
        if item.disputed_amount is not None:
            amount: float | None = item.disputed_amount
            reasons.append(f"amount {_fmt_amount(item.disputed_amount)} yuan given at intake")
        else:
            amount = found.amount
            if amount is not None:
                reasons.append(f"amount {_fmt_amount(amount)} yuan read from '{found.amount_text}'")

        wage_words = self.wage_arrears(text, tokens)
        if item.risk is not None:
            risk, risk_source = item.risk, "operator"
            reasons.append(f"risk {risk.value} given by the operator")
        else:
            risk, why_risk = self._risk(text, tokens, worker_count, amount, found.group_size, wage_words is not None)
            risk_source = "classifier"
            reasons.append(why_risk)

        if item.responsible_unit:
            unit = item.responsible_unit
            reasons.append(f"unit {unit} given by the operator")
        else:
            unit, why_unit = self._unit(item.locality, category, tokens)
            reasons.append(why_unit)

        statutory = category == Category.law_litigation
        if statutory:
            reasons.append("statutory channel: a law & litigation matter goes to its legal channel (诉访分离)")

        collective = (
            category == Category.labor_social_security
            and wage_words is not None
            and worker_count is not None
            and worker_count >= self.collective_min_workers
        )
        if collective:
            reasons.append(
                f"collective wage arrears: {worker_count} workers (at least {self.collective_min_workers}), "
                f"'{wage_words}' -> arbitration green channel + judicial confirmation"
            )

        return TriageResult(
            category=category,
            risk=risk,
            unit=unit,
            reasons=reasons,
            category_source=category_source,
            risk_source=risk_source,
            statutory_channel=statutory,
            collective_wage_arrears=collective,
            worker_count=worker_count,
            amount=amount,
            model_version=self.model_version,
        )


def _default_collective_min() -> int:
    try:
        return load_rules(RULES_DIR / "default.toml").arbitration.collective_wage_min_workers
    except (OSError, ValueError):
        return 5


@lru_cache(maxsize=1)
def load_triage() -> Triage:
    """The default classifier (rules/triage_terms.toml + rules/routing.toml), built once per process."""
    return Triage(collective_min_workers=_default_collective_min())
