"""Helpers for tests that drive whole petition lives through the scenario runner."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from engine.config import RULES_DIR
from engine.desk import parse_intake
from engine.scenario import Scenario, parse_duration, run_scenario
from rules.deadlines import HolidayCalendar, compute_deadline
from rules.ruleset import RuleSet, load_rules
from rules.vocabulary import DeadlineName

WAGES: dict[str, Any] = {
    "channel": "visit",
    "office_level": "county",
    "locality": "青山区",
    "petitioners": [{"name": "赵某", "id_number": "110101199001011237", "phone": "13800000000"}],
    "title": "装修公司拖欠工资",
    "content": "我在某装修公司做油漆工四个月,公司拖欠工资2.6万元,有考勤表和老板写的欠条。",
    "category": "labor_social_security",
    "risk": "medium",
    "disputed_amount": 26000,
    "facts_clear": True,
}

RULES: RuleSet = load_rules(RULES_DIR / "default.toml")
WEEKENDS = HolidayCalendar.weekends_only()


def petition(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p.update(changes)
    return p


def step(after: str, action: str, **data: Any) -> dict[str, Any]:
    return {"after": after, "action": action, "data": data}


async def run(
    steps: list[dict[str, Any]] | None = None,
    until: str = "P200D",
    notify_adapter: str = "recording",
    **petition_changes: Any,
) -> dict[str, Any]:
    spec = Scenario.model_validate(
        {"petition": petition(**petition_changes), "steps": steps or [], "until": until, "calendar": "weekends_only"}
    )
    return await run_scenario(spec, parse_intake(spec.petition), notify_adapter=notify_adapter)


def kinds(result: dict[str, Any], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in result["events"] if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def one(result: dict[str, Any], kind: str, **match: Any) -> dict[str, Any]:
    found = kinds(result, kind, **match)
    assert len(found) == 1, f"expected one {kind} {match}, got {found}"
    return found[0]


def t0(result: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(result["intake_at"])


def due_after(start: datetime, name: DeadlineName, extra: int = 0) -> datetime:
    rule = RULES.deadline(name)
    return compute_deadline(start, rule.length + extra, rule.unit, WEEKENDS).due


def at(result: dict[str, Any], after: str) -> datetime:
    return t0(result) + parse_duration(after)


class _Offset(int):
    """An expected offset: a timer fires a few milliseconds after its instant, and the timeline
    rounds to whole seconds, so an event at the instant may read one second later (when the
    intake's fraction of a second is near .5). Equal to the exact offset or the next second."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and 0 <= other - int(self) <= 1

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = int.__hash__


def offset(result: dict[str, Any], instant: datetime) -> int:
    return _Offset(round((instant - t0(result)).total_seconds()))


__all__ = ["timedelta"]
