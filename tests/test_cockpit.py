"""The cockpit's figures come from the read model the workflows keep: whole petition lives run on
the time-skipping server, then the overview, the red alerts and the leaders' packages are read
back, and the running tallies must equal the ones rebuilt from the rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from activities.db import CaseRow, CaseTally, DocumentTally, IntakeTally, get_engine, rebuild_tallies
from engine.cockpit import (
    CaseFilter,
    Period,
    case_list,
    current_period,
    heatmap,
    leader_packages,
    overview,
    parse_period,
    red_alerts,
)
from engine.config import Settings
from engine.desk import parse_intake
from engine.scenario import Scenario, run_scenario
from rules.access import action_refusal
from rules.vocabulary import StaffRole
from tests.scenario_helpers import petition, step

SCENARIOS = Path(__file__).parent / "scenarios"


async def _keep(tmp_path: Path, spec: dict[str, Any]) -> tuple[dict[str, Any], sa.Engine]:
    scenario = Scenario.model_validate(spec)
    keep = tmp_path / "engine"
    result = await run_scenario(scenario, parse_intake(scenario.petition), keep=keep)
    return result, get_engine(Settings(data_dir=keep).resolved_database_url())


def _tallies(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with engine.connect() as conn:
        for table in (CaseTally, IntakeTally, DocumentTally):
            t = table.__table__  # type: ignore[attr-defined]
            rows = conn.execute(sa.select(t).order_by(*t.primary_key.columns)).all()
            # Zero rows are what a moved contribution leaves behind; a rebuild has none.
            out[t.name] = [
                tuple(round(v, 6) if isinstance(v, float) else v for v in r)
                for r in rows
                if any(v for k, v in r._mapping.items() if k not in t.primary_key.columns and k != "repeat")
            ]
    return out


def assert_tallies_match_the_rows(engine: sa.Engine) -> None:
    running = _tallies(engine)
    rebuild_tallies(engine)
    assert running == _tallies(engine)


def _period() -> Period:
    return current_period("month")


async def test_a_reviewed_case_counts_its_review_its_re_review_and_the_late_decision(tmp_path: Path) -> None:
    result, engine = await _keep(tmp_path, json.loads((SCENARIOS / "review-path.json").read_text()))
    with Session(engine) as s:
        row = s.get(CaseRow, result["case_id"])
        assert row is not None
        assert (row.reviewed, row.re_reviewed, row.acceptance_late, row.handling_late, row.review_late) == (
            True, True, False, False, True,
        )  # fmt: skip
        assert row.accepted_at is not None and row.answered_at is not None
        # The re-review decision is still awaited after its period ran out: overdue, since its due date.
        assert row.overdue and row.overdue_deadline == "re_review_decision"
        due = next(e["due"] for e in result["events"] if e["kind"] == "overdue")
        assert row.overdue_since is not None and row.overdue_since.isoformat()[:19] == due[:19]
    o = overview(engine, _period())
    assert (o.batches, o.cases, o.reviews, o.re_reviews) == (1, 1, 1, 1)
    assert [c.batches for c in o.by_channel if c.channel == "letter"] == [1]
    assert o.acceptance_on_time_rate == 1.0 and o.handling_on_time_rate == 1.0 and o.review_on_time_rate == 0.0
    assert o.overdue_now == 1 and o.open_now == 1
    assert o.by_category["urban_construction_transport"] == 1
    alerts = red_alerts(engine)
    assert [(a.case_id, a.reasons, a.overdue_deadline) for a in alerts] == [
        (result["case_id"], ["overdue"], "re_review_decision")
    ]
    assert alerts[0].days_overdue is not None and alerts[0].days_overdue >= 0
    assert_tallies_match_the_rows(engine)


async def test_the_ladder_counts_its_letters_the_officials_and_the_urgent_notice(tmp_path: Path) -> None:
    result, engine = await _keep(tmp_path, json.loads((SCENARIOS / "high-risk-ladder.json").read_text()))
    o = overview(engine, _period())
    assert o.letters == {"risk_warning_letter": 1, "supervision_letter": 1, "accountability_letter": 1}
    assert o.officials_accountable == 2
    assert o.high_risk == 1 and o.urgent_notified == 1 and o.urgent_within_deadline == 1
    assert o.urgent_avg_s is not None and o.urgent_avg_s < 60
    assert o.documents == len([e for e in result["events"] if e["kind"] == "document"])
    alert = next(a for a in red_alerts(engine) if a.case_id == result["case_id"])
    assert alert.ladder == "accountability" and "ladder" in alert.reasons and "high_risk" in alert.reasons
    heat = heatmap(engine, _period(), by="risk")
    assert heat.rows == ["东湖镇"] and heat.cells[0][heat.columns.index("high")] == 1
    assert_tallies_match_the_rows(engine)


async def test_repeat_visits_count_as_batches_and_person_times_and_a_leader_takes_the_case(tmp_path: Path) -> None:
    spec = {
        "petition": petition(channel="online"),
        "steps": [
            step("P1D", "repeat_visit", channel="visit", persons=3),
            step("P2D", "assign_leader", leader="市委常委 王某某"),
            step("P3D", "accept", unit="青山区人社局"),
            step("P5D", "mediation_result", success=True, fulfilled=True),
        ],
        "until": "P10D",
        "calendar": "weekends_only",
    }
    result, engine = await _keep(tmp_path, spec)
    assert not [e for e in result["events"] if e["kind"] == "rejected"]
    o = overview(engine, _period())
    channels = {c.channel: (c.batches, c.persons) for c in o.by_channel}
    assert channels["online"] == (1, 1) and channels["visit"] == (1, 3)
    assert (o.batches, o.persons, o.repeat, o.cases) == (2, 4, 1, 1)
    assert o.mediated == 1 and o.mediation_rate == 1.0 and o.closed == 1 and o.avg_cycle_days is not None
    [package] = leader_packages(engine)
    assert package.leader == "市委常委 王某某" and package.closed == 1 and package.progress == 1.0
    rows, total = case_list(engine, CaseFilter(leader="市委常委 王某某", stage="closed"))
    assert total == 1 and rows[0].case_id == result["case_id"]
    assert case_list(engine, CaseFilter(leader="市委常委 王某某", stage="open"))[1] == 0
    assert_tallies_match_the_rows(engine)


async def test_a_unit_may_not_name_the_package_leader(tmp_path: Path) -> None:
    spec = {
        "petition": petition(),
        "steps": [step("P1D", "withdraw"), step("P2D", "assign_leader", leader="市委常委 王某某")],
        "until": "P3D",
        "calendar": "weekends_only",
    }
    result, engine = await _keep(tmp_path, spec)
    [refused] = [e for e in result["events"] if e["kind"] == "rejected"]
    assert refused["action"] == "assign_leader" and "案件已办结" in refused["error"]
    assert leader_packages(engine) == []
    assert action_refusal("assign_leader", StaffRole.unit, "青山区人社局", "青山区人社局")
    assert action_refusal("assign_leader", StaffRole.operator, None, "青山区人社局")
    assert action_refusal("assign_leader", StaffRole.supervision, None, "青山区人社局") is None


def test_periods_are_shanghai_calendar_months_quarters_and_years() -> None:
    q = parse_period("2026-Q4")
    assert (q.first_day.isoformat(), q.next_first_day.isoformat(), q.label) == ("2026-10-01", "2027-01-01", "2026年第4季度")
    assert q.start.isoformat() == "2026-09-30T16:00:00+00:00"
    assert parse_period("2026-01").previous().code == "2025-12"
    assert parse_period("2026").previous().label == "2025年"
    for bad in ("2026-13", "26", "2026-Q5", "1999"):
        with pytest.raises(ValueError):
            parse_period(bad)
