"""Load and validate a rule set (a TOML file in rules/) against the vocabulary.

A rule set travels inside each case's workflow input, so a case keeps the exact rules it
started under: editing a file changes new cases only.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Container, Iterable
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.vocabulary import (
    DEADLINE_STARTS,
    Category,
    DeadlineName,
    DeadlineStart,
    DeadlineUnit,
    NotificationTier,
    NotifyChannel,
    RecipientRole,
    Risk,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def require_every(members: Iterable[StrEnum], given: Container[Any], needs: str) -> None:
    """A rule file's table must name every member of a vocabulary: ValueError("every {needs};
    missing: ...") naming the members it lacks."""
    missing = [m.value for m in members if m not in given]
    if missing:
        raise ValueError(f"every {needs}; missing: {', '.join(missing)}")


class DeadlineRule(_Strict):
    length: int = Field(gt=0)
    unit: DeadlineUnit
    starts: DeadlineStart


class ExtensionRule(_Strict):
    max_days: int = Field(gt=0)
    max_count: int = Field(ge=0)


class MediationRule(_Strict):
    civil_categories: list[Category]
    max_amount: float = Field(ge=0)
    requires_facts_clear: bool = True
    missing_amount_eligible: bool = True
    points_only_within_window: bool = True


class TierRule(_Strict):
    tier: NotificationTier
    recipient_role: RecipientRole
    channel: NotifyChannel
    within: DeadlineName | None = None


class OverdueNoticeRule(_Strict):
    recipient_role: RecipientRole
    channel: NotifyChannel


class NotificationRules(_Strict):
    batch_time: str
    fallback_channel: NotifyChannel
    tiers: dict[Risk, TierRule]
    overdue: OverdueNoticeRule

    @field_validator("batch_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must be a local time written HH:MM, e.g. 09:00")
        return value

    @model_validator(mode="after")
    def _every_risk(self) -> NotificationRules:
        require_every(Risk, self.tiers, "risk tier needs a rule")
        return self

    def batch_clock(self) -> time:
        hh, mm = self.batch_time.split(":")
        return time(int(hh), int(mm))


class ScoreRules(_Strict):
    mediation_success: int
    mediation_failed_review: int
    mediation_window_missed: int
    accountability: int
    mediation_rate_weight: float = Field(ge=0, le=1)


class RepeatVisitRules(_Strict):
    nail_case_threshold: int = Field(gt=1)


class LadderRules(_Strict):
    supervision_rearms: int = Field(ge=0)
    start_on_high_risk: bool = True


class ArbitrationRules(_Strict):
    collective_wage_min_workers: int = Field(gt=1)


class RuleSet(_Strict):
    """One complete, validated rule set."""

    version: str
    description: str = ""
    timezone: str = "Asia/Shanghai"
    deadlines: dict[DeadlineName, DeadlineRule]
    extension: ExtensionRule
    mediation: MediationRule
    notifications: NotificationRules
    scores: ScoreRules
    repeat_visits: RepeatVisitRules
    ladder: LadderRules
    arbitration: ArbitrationRules

    @field_validator("timezone")
    @classmethod
    def _shanghai(cls, value: str) -> str:
        if value != "Asia/Shanghai":
            raise ValueError(
                "the engine counts every period in Asia/Shanghai (UTC+8, no daylight saving; rules/deadlines.py); "
                f"'{value}' is not supported"
            )
        return value

    @model_validator(mode="after")
    def _every_deadline(self) -> RuleSet:
        require_every(DeadlineName, self.deadlines, "deadline needs a rule")
        wrong = [
            f"{name.value} starts at '{DEADLINE_STARTS[name].value}', not '{rule.starts.value}'"
            for name, rule in self.deadlines.items()
            if rule.starts != DEADLINE_STARTS[name]
        ]
        if wrong:
            raise ValueError("a period's start is the engine's, not a setting: " + "; ".join(wrong))
        return self

    def deadline(self, name: DeadlineName) -> DeadlineRule:
        return self.deadlines[name]


class RuleFileError(ValueError):
    """A rule file that cannot be used; the message names the file, the rule and the field."""


def _describe(error: Any) -> str:
    loc = [str(p) for p in error.get("loc", ())]
    rule = loc[0] if loc else "(top level)"
    where = ".".join(loc[1:]) if len(loc) > 1 else ""
    field = f", field '{where}'" if where else ""
    return f"rule '{rule}'{field}: {error.get('msg')}"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(_describe(e) for e in exc.errors())
        raise RuleFileError(f"{source}: {details}") from exc


def load_rules(path: Path) -> RuleSet:
    return parse_rules(path.read_text(encoding="utf-8"), str(path))
