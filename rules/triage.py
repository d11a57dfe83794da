"""Triage (智能分拣): category, risk tier and responsible unit for an intake record, with reasons.

Three sources, each a file a person can open:

- `triage_model.json`: two linear models learned from the labelled corpus (`triage_corpus/`,
  written by many independent writers; `starter.py triage train` rebuilds it). They read
  character n-grams, jieba words and the cue families below, and give calibrated probabilities.
- `triage_cues.toml`: the rubric's cue families (self-harm, injury, emergency care refused, a
  hazard over people, collective action, threats; groups, vulnerable people, wage arrears...)
  as patterns over meaning, with negation and hypotheticals. A high-tier cue is a floor: the
  rubric says a missed high risk costs far more than an over-cautious one.
- `routing.toml`: who handles it and who is told.

Risk is decided cost-sensitively: high when a high-tier cue fires or P(high) reaches the
model's `thresholds.high` (chosen on writers the model had not seen, for recall), else medium
when P(high)+P(medium) reaches `thresholds.medium`, else low.

Pure: no I/O after loading, no clock, no randomness. The files are read once per `Triage`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rules.ruleset import RuleFileError, load_rules, require_every
from rules.triage_model import (
    DEFAULT_CUES,
    DEFAULT_MODEL,
    MAX_ANALYSED,
    RISK_CN,
    CueBook,
    CueHit,
    Featuriser,
    Scored,
    Scorer,
    TriageModel,
    decide_risk,
    load_toml,
    normalise,
    parse_number,
    show_term,
)
from rules.vocabulary import Category, Risk

__all__ = ["MAX_ANALYSED", "Triage", "TriageInput", "TriageResult", "load_triage", "parse_number"]

_V = TypeVar("_V", Category, Risk)

RULES_DIR = Path(__file__).resolve().parent
DEFAULT_ROUTING = RULES_DIR / "routing.toml"



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
    """What triage decided and why (reasons in Chinese, for the operator).

    The triage activity's result (workflows.models.TriageOutcome) is this with the leaders added,
    and it is kept in workflow histories: a field added here needs a default (older histories lack
    it), and none may be renamed."""

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
    # What the classifier itself would say, whatever the operator gave: corrections and drift.
    suggested_category: Category | None = None
    suggested_risk: Risk | None = None
    suggested_unit: str | None = None
    cues: list[str] = Field(default_factory=list)
    truncated: bool = False


# ---------------------------------------------------------------------------------------------
# The shape of routing.toml
# ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        require_every(Category, self.categories, "category needs a unit")
        return self



def _fmt_amount(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _probs(scored: Scored, names: dict[str, str], k: int = 2) -> str:
    ranked = sorted(scored.probs.items(), key=lambda kv: -kv[1])[:k]
    return "，".join(f"{names.get(c, c)} {p:.2f}" for c, p in ranked)


def _evidence(scored: Scored) -> str:
    return "".join(show_term(t) for t, _ in scored.evidence[:4]) or "（无突出词语）"


def _operator_first(
    given: _V | None, suggested: _V, reasons: list[str], given_why: Callable[[_V], str], why: str, model_says: str
) -> tuple[_V, str]:
    """The operator's value when given, else the model's, and its source ("operator" | "classifier").
    The reasons say whose it is, and what the model would say (`model_says` + `why`) when it differs."""
    if given is None:
        reasons.append(why)
        return suggested, "classifier"
    reasons.append(given_why(given))
    if suggested != given:
        reasons.append(model_says + why)
    return given, "operator"


class Triage:
    """The classifier: model file + cue file + routing file, loaded once."""

    def __init__(
        self,
        model_path: Path | None = None,
        cues_path: Path | None = None,
        routing_path: Path | None = None,
        collective_min_workers: int = 5,
    ) -> None:
        if collective_min_workers < 1:
            raise ValueError("collective_min_workers must be at least 1")
        self.model_path = model_path or DEFAULT_MODEL
        self.cues_path = cues_path or DEFAULT_CUES
        self.routing_path = routing_path or DEFAULT_ROUTING
        self.cues = CueBook(self.cues_path)
        self.model = TriageModel.load(self.model_path)
        if self.model.cues_version != self.cues.version:
            raise RuleFileError(
                f"{self.model_path}: trained with cue file version '{self.model.cues_version}', but "
                f"{self.cues_path} is '{self.cues.version}'; rebuild the model with `python starter.py triage train`"
            )
        self.routing: RoutingFile = load_toml(self.routing_path, RoutingFile)
        self.collective_min_workers = collective_min_workers
        self.model_version = f"{self.model.version} / {self.cues.version} / {self.routing.version}"
        self.scorer = Scorer(self.model, self.cues)
        self.featuriser = Featuriser()
        self.category_names = {c.value: r.name for c, r in self.routing.categories.items()}

    # -- routing ---------------------------------------------------------------------------

    def _unit(self, locality: str, category: Category, tokens: set[str], text: str) -> tuple[str, str]:
        r = self.routing
        override = r.overrides.get(locality, {}).get(category)
        if override:
            return override, f"责任单位 {override}：{locality} 对 {self.category_names[category.value]} 的指定单位"
        for suffix in r.township.suffixes:
            if locality.endswith(suffix):
                unit = r.township.units_by_suffix.get(suffix, r.township.unit).format(locality=locality)
                return unit, f"责任单位 {unit}：{locality} 为乡镇街道（{suffix}），由其政府（办事处）办理"
        for variant in r.variants:
            if variant.category != category:
                continue
            mine = [w for w in variant.words if w in tokens or (len(w) >= 2 and w in text)]
            theirs = [w for w in variant.versus if w in tokens or (len(w) >= 2 and w in text)]
            if len(mine) > len(theirs):
                unit = variant.unit.format(locality=locality)
                return unit, f"责任单位 {unit}：{variant.why}（{'、'.join(mine)}）"
        unit = r.categories[category].unit.format(locality=locality)
        return unit, f"责任单位 {unit}：{locality} {self.category_names[category.value]} 默认单位"

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
        full = f"{item.title}。{item.content}"
        truncated = len(full) > MAX_ANALYSED
        text = full[:MAX_ANALYSED]
        reasons: list[str] = []
        if truncated:
            reasons.append(f"内容共 {len(full):,} 字，超过 {MAX_ANALYSED:,} 字，只分析前 {MAX_ANALYSED:,} 字")

        terms, words = self.featuriser.analyse(text, item.title[:MAX_ANALYSED])
        idx, val = self.scorer.vector(terms)
        found = self.cues.extract(text)
        worker_count = item.worker_count if item.worker_count is not None else found.worker_count
        amount = item.disputed_amount if item.disputed_amount is not None else found.amount
        hits, silenced = self.cues.find(text)
        hits += self.cues.numeric_hits(worker_count, amount, found.group_size, found.wage_words is not None)
        cue_vec = self.scorer.cue_vector(hits)

        # Category.
        cat = self.scorer.score("category", idx, val, cue_vec)
        suggested_category = Category(cat.top)
        names = self.category_names
        why_cat = (
            f"分类建议 {names[cat.top]}（{_probs(cat, names)}）：依据 {_evidence(cat)}"
        )
        category, category_source = _operator_first(
            item.category, suggested_category, reasons, lambda c: f"分类 {names[c.value]}：受理人员指定", why_cat, "模型"
        )

        # Numbers.
        if item.worker_count is not None:
            reasons.append(f"工人数 {worker_count}：受理时填写")
        elif found.worker_count is not None:
            reasons.append(f"工人数 {found.worker_count}：取自「{found.worker_text}」")
        if item.disputed_amount is not None:
            reasons.append(f"争议金额 {_fmt_amount(item.disputed_amount)} 元：受理时填写")
        elif found.amount is not None:
            reasons.append(f"争议金额 {_fmt_amount(found.amount)} 元：取自「{found.amount_text}」")

        # Risk.
        suggested_risk, why_risk = self._risk(idx, val, cue_vec, hits)
        risk, risk_source = _operator_first(
            item.risk, suggested_risk, reasons, lambda r: f"风险 {RISK_CN[r]}：受理人员指定", why_risk, "模型建议"
        )
        if silenced:
            reasons.append("未计线索：" + "；".join(s.show() for s in silenced))

        # Unit.
        suggested_unit, why_unit = self._unit(item.locality, category, set(words), normalise(text))
        if item.responsible_unit:
            unit = item.responsible_unit
            reasons.append(f"责任单位 {unit}：受理人员指定")
        else:
            unit = suggested_unit
            reasons.append(why_unit)

        statutory = category == Category.law_litigation
        if statutory:
            reasons.append("涉法涉诉：属法定途径（诉访分离），由责任单位导入诉讼、仲裁或行政复议")

        wage_words = found.wage_words
        collective = (
            category == Category.labor_social_security
            and wage_words is not None
            and worker_count is not None
            and worker_count >= self.collective_min_workers
        )
        if collective:
            reasons.append(
                f"集体欠薪：{worker_count} 名工人（不少于 {self.collective_min_workers} 名），「{wage_words}」"
                "→ 仲裁绿色通道 + 司法确认"
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
            suggested_category=suggested_category,
            suggested_risk=suggested_risk,
            suggested_unit=suggested_unit,
            cues=[h.show() for h in hits],
            truncated=truncated,
        )

    def _risk(self, idx: np.ndarray, val: np.ndarray, cue_vec: np.ndarray, hits: list[CueHit]) -> tuple[Risk, str]:
        scored = self.scorer.score("risk", idx, val, cue_vec)
        p_high = scored.probs[Risk.high.value]
        p_up = p_high + scored.probs[Risk.medium.value]
        t = self.model.thresholds
        floor = [h for h in hits if h.tier == Risk.high] if self.model.params.get("cue_floors", True) else []
        tier = decide_risk(p_high, p_up, bool(floor), t)
        parts = [f"风险 {RISK_CN[tier]}"]
        if floor:
            parts.append("高风险线索 " + "、".join(h.show() for h in floor) + "（线索即定为高）")
        others = [h for h in hits if h.tier != Risk.high]
        if others:
            parts.append("其他线索 " + "、".join(h.show() for h in others))
        parts.append(
            f"模型 P(高)={p_high:.2f}（阈值 {t.high:.2f}），P(中及以上)={p_up:.2f}（阈值 {t.medium:.2f}）"
        )
        if scored.evidence and tier == Risk(scored.top):
            parts.append(f"依据 {_evidence(scored)}")
        return tier, "；".join(parts)


def _default_collective_min() -> int:
    try:
        return load_rules(RULES_DIR / "default.toml").arbitration.collective_wage_min_workers
    except (OSError, ValueError):
        return 5


@lru_cache(maxsize=1)
def load_triage() -> Triage:
    """The default classifier (model, cues and routing in rules/), built once per process."""
    return Triage(collective_min_workers=_default_collective_min())
