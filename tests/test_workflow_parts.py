"""The petition workflow's parts on their own (issue 12, "the house"): the typed activity and signal
names agree with what is registered, the clocks are pure computation, the ladder's steps, the
notices' wording, and the one state model travels through JSON whole (continue-as-new)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.workflow import _Definition as WorkflowDefinition

from activities.petition import PetitionActivities
from rules import ladder
from rules.deadlines import compute_deadline
from rules.lifecycle import CaseFacts
from rules.vocabulary import Category, DeadlineName, DocumentKind, NotificationTier, Risk, Stage
from tests.scenario_helpers import RULES, WEEKENDS, petition
from workflows import case_model, clocks, notices
from workflows.arbitration import ArbitrationWorkflow
from workflows.digest import BatchDigestWorkflow
from workflows.models import ACTION_INPUTS, CaseModel, CaseStart, Intake, TimelineEvent
from workflows.names import (
    ACTIVITIES,
    ARBITRATION_OVERDUE,
    ARBITRATION_RECORD,
    ARBITRATION_STOP,
    BATCH_DELIVERED,
    DIGEST_ADD_CASE,
    RELOAD_CALENDAR,
)
from workflows.petition import PetitionWorkflow

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # a Monday morning in Shanghai


def test_every_typed_activity_is_registered_with_its_types() -> None:
    defined = {}
    for fn in PetitionActivities.__dict__.values():
        defn = getattr(fn, "__temporal_activity_definition", None)
        if defn is not None:
            defined[defn.name] = defn
    assert set(defined) == {a.name for a in ACTIVITIES}
    for a in ACTIVITIES:
        d = activity._Definition.from_callable(defined[a.name].fn)
        assert d is not None and d.arg_types == [a.arg], a.name
        assert d.ret_type in ((a.result,) if a.result is not None else (None, type(None))), a.name


@pytest.mark.parametrize(
    ("workflow", "signals"),
    [
        (PetitionWorkflow, {ARBITRATION_OVERDUE, BATCH_DELIVERED, RELOAD_CALENDAR}),
        (ArbitrationWorkflow, {ARBITRATION_RECORD, ARBITRATION_STOP}),
        (BatchDigestWorkflow, {DIGEST_ADD_CASE}),
    ],
)
def test_every_typed_signal_is_received_with_its_type(workflow: Any, signals: set[Any]) -> None:
    defn = WorkflowDefinition.from_class(workflow)
    assert defn is not None
    assert set(defn.signals) == {s.name for s in signals}
    for s in signals:
        assert defn.signals[s.name].arg_types == [s.arg], s.name


def test_clocks_are_computed_from_their_start_rule_pauses_and_calendar() -> None:
    handling = clocks.arm(DeadlineName.handling, T0, RULES, WEEKENDS)
    rule = RULES.deadline(DeadlineName.handling)
    assert handling.due == compute_deadline(T0, rule.length, rule.unit, WEEKENDS).due
    clocks.extend(handling, 30, RULES, WEEKENDS, T0 + timedelta(days=40))
    assert handling.due == compute_deadline(T0, rule.length + 30, rule.unit, WEEKENDS).due
    before = handling.due
    clocks.pause(handling, T0 + timedelta(days=41))
    clocks.resume(handling, RULES, WEEKENDS, T0 + timedelta(days=51))
    assert handling.status == "running" and handling.due > before  # the paused days are added

    acceptance = clocks.arm(DeadlineName.acceptance, T0, RULES, WEEKENDS)
    review = clocks.arm(DeadlineName.review_request, T0, RULES, WEEKENDS)
    all_ = {c.name: c for c in (handling, acceptance, review)}
    assert clocks.next_due(all_) == acceptance.due
    assert [c.name for c in clocks.by_due(all_)] == sorted(all_, key=lambda n: all_[n].due)
    assert clocks.petitioner_waits_on(all_) is acceptance
    assert clocks.has_lapsed(acceptance, acceptance.due) and not clocks.has_lapsed(acceptance, acceptance.due - timedelta(seconds=1))
    assert clocks.finish(acceptance) and not clocks.finish(acceptance) and acceptance.status == "met"
    review.status = "overdue"
    assert clocks.first_overdue(all_) is review and clocks.any_overdue(all_)
    clocks.stop_all(all_)
    assert handling.status == "stopped" and clocks.next_due(all_) is None


def test_the_ladder_climbs_from_warning_to_accountability() -> None:
    assert ladder.next_step(DeadlineName.risk_warning, False, 0, RULES) == ladder.SUPERVISION
    assert ladder.next_step(DeadlineName.supervision, False, 0, RULES) == ladder.ACCOUNTABILITY
    assert ladder.next_step(DeadlineName.supervision, True, 0, RULES) == ladder.SUPERVISION
    used = RULES.ladder.supervision_rearms
    assert ladder.next_step(DeadlineName.supervision, True, used, RULES) == ladder.ACCOUNTABILITY
    assert ladder.next_step(DeadlineName.handling, True, 0, RULES) is None
    assert ladder.LETTER[ladder.WARNING] == DocumentKind.risk_warning_letter
    assert ladder.progress_counts(True, ladder.SUPERVISION) and not ladder.progress_counts(True, ladder.WARNING)
    assert ladder.clock_status_at_end(ladder.RESOLVED) == "met" and ladder.clock_status_at_end(ladder.CASE_CLOSED) == "stopped"


def test_notices_say_what_is_known() -> None:
    assert notices.subject(NotificationTier.immediate, "XF-1", "拖欠工资").endswith("信访事项 XF-1：拖欠工资")
    assert "待分拣" in notices.body("XF-1", "青山区", None, None) and "风险未定" in notices.body("XF-1", "青山区", None, None)
    body = notices.body("XF-1", "青山区", Category.labor_social_security, Risk.high, notices.overdue_request(DeadlineName.handling))
    assert "已逾期" in body and "labor" not in body and "high" not in body
    assert notices.undelivered_subject("S").startswith("[未送达]")


def test_the_state_model_travels_whole_and_derives_state_snapshot_and_facts() -> None:
    start = CaseStart(
        case_id="XF-20260302-ABCDEF12",
        intake=Intake.model_validate(petition()),
        rules=RULES,
        calendar=WEEKENDS.to_snapshot(),
        matter_key="k",
    )
    m = case_model.new_case(start)
    assert (m.category, m.risk, m.stage) == (Category.labor_social_security, Risk.medium, Stage.registered)
    m.registered_at, m.ready, m.stage, m.unit, m.visits = T0, True, Stage.handling, "青山区人社局", 7
    m.clocks[DeadlineName.handling] = clocks.arm(DeadlineName.handling, T0, RULES, WEEKENDS)
    clocks.pause(m.clocks[DeadlineName.handling], T0 + timedelta(days=3))
    m.clocks[DeadlineName.acceptance] = clocks.arm(DeadlineName.acceptance, T0, RULES, WEEKENDS)
    m.events.append(TimelineEvent(seq=1, at=T0, offset_s=0, kind="visit", data={"visits": 2, "channel": "visit"}))
    m.ladder.step, m.occurrences["doc:acceptance_notice"], m.search_attributes["PetitionOverdue"] = "warning", 1, False

    carried = CaseStart.model_validate_json(start.model_copy(update={"carried": m}).model_dump_json()).carried
    assert carried == m

    facts = case_model.facts(m)
    assert isinstance(facts, CaseFacts) and facts.paused == frozenset({DeadlineName.handling})
    assert facts.due == {DeadlineName.acceptance: m.clocks[DeadlineName.acceptance].due} and facts.ladder_stage == "warning"
    snap = case_model.snapshot(m, start.case_id, T0)
    assert snap.next_deadline == DeadlineName.acceptance and snap.visits == 7 and snap.events == []
    state = case_model.case_state(m, start, WEEKENDS.name)
    assert state.visits == 7 and state.registered_at == T0 and len(state.deadlines) == 2
    assert state.petitioners[0]["id_number"] != petition()["petitioners"][0]["id_number"]  # masked
    assert isinstance(CaseModel.model_validate(m.model_dump()), CaseModel)


def test_every_action_is_an_update_with_a_validator_and_a_handler() -> None:
    defn = WorkflowDefinition.from_class(PetitionWorkflow)
    assert defn is not None and set(defn.updates) == set(ACTION_INPUTS)
    for name, model in ACTION_INPUTS.items():
        update = defn.updates[name]
        assert update.arg_types == [model] and update.validator is not None, name
        assert callable(getattr(PetitionWorkflow, f"_do_{name}", None)), name
