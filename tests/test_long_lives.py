"""Long lives and lost rows (issue 12, "the house"): a case whose history grows long continues as new
and resumes exactly (stage, clocks with their original due instants, timeline, visits, keys, the
read model); a case whose database row disappeared registers itself again instead of retrying
"case not registered" forever. Real worker and activities on the time-skipping server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.db import CaseRow, IntakeRow, PetitionerRow, TimelineRow, as_utc, get_engine
from engine.desk import load_calendar, matter_key, new_case_id, parse_intake, register
from engine.scenario import SCENARIO_DESK, act_scripted
from rules.vocabulary import DeadlineName, Stage
from tests.conftest import Harness, time_skipping_server
from tests.scenario_helpers import RULES, due_after, petition
from worker import SANDBOX, WORKFLOWS
from workflows.models import CaseStart, CaseState, Timeline
from workflows.names import CASE_NOT_REGISTERED, REGISTER_CASE, SAVE_CASE
from workflows.patches import CONTINUE_AS_NEW, REREGISTER_LOST_CASE

UNIT = "青山区人社局"


@pytest.fixture(scope="module")
async def env(payload_key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own. On the session's server the week-long skip
    below hung ("Timeout expired" on the test server's sleep) when an earlier test had left an
    accepted case whose worker was gone and whose mediation window fell inside that week; alone,
    or after tests without such a case, it passed. Not diagnosed further: a test-server matter
    (its clock, see engine/simulate.py SimClock), not the engine's; the real server has no such clock."""
    async with time_skipping_server(payload_key_file, tmp_path_factory.mktemp("long-lives-server")) as environment:
        yield environment
VISIT = {"channel": "visit", "persons": 1}


async def _start(h: Harness, continue_as_new_after: int | None) -> WorkflowHandle[Any, Any]:
    """A medium-risk wage petition (weekends-only calendar), started as the intake desk starts one,
    with the case's own continue-as-new limit."""
    intake = parse_intake(petition())
    case_id = new_case_id()
    start = CaseStart(
        case_id=case_id,
        intake=intake,
        rules=RULES,
        calendar=load_calendar(h.settings, "weekends_only").to_snapshot(),
        matter_key=matter_key(h.settings, intake),
        registered_by=SCENARIO_DESK,
        continue_as_new_after=continue_as_new_after,
    )
    return await h.env.client.start_workflow("PetitionWorkflow", start, id=case_id, task_queue=h.task_queue)


async def _state(h: Harness, case_id: str) -> CaseState:
    return await h.env.client.get_workflow_handle(case_id).query("state", result_type=CaseState)


async def _triaged(h: Harness, case_id: str) -> CaseState:
    for _ in range(200):
        state = await _state(h, case_id)
        if state.stage != Stage.registered:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} was never triaged")


async def _settled(h: Harness, case_id: str) -> list[TimelineRow]:
    """The case's timeline rows once the database holds every event of the workflow's timeline."""
    engine = get_engine(h.settings.resolved_database_url())
    for _ in range(200):
        events = (await h.env.client.get_workflow_handle(case_id).query("timeline", result_type=Timeline)).events
        with Session(engine) as s:
            rows = list(s.exec(select(TimelineRow).where(TimelineRow.case_id == case_id).order_by(TimelineRow.seq)).all())  # type: ignore[arg-type]
        if len(rows) == len(events):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id}: the database never caught up with the timeline")


async def _history(h: Harness, case_id: str, run_id: str | None = None) -> list[HistoryEvent]:
    handle = h.env.client.get_workflow_handle(case_id, run_id=run_id)
    return [e async for e in handle.fetch_history_events()]


async def _replays(h: Harness, case_id: str, run_id: str | None = None) -> None:
    """The run's history replays against today's code (the new paths are deterministic)."""
    history = await h.env.client.get_workflow_handle(case_id, run_id=run_id).fetch_history()
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=SANDBOX, data_converter=h.env.client.data_converter)
    await replayer.replay_workflow(history)


async def _runs(h: Harness, case_id: str, first_run: str | None) -> list[str]:
    """The case's runs in order, following each continue-as-new to the next."""
    runs = [first_run or ""]
    while True:
        last = (await _history(h, case_id, runs[-1]))[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        runs.append(last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id)


def _scheduled(events: list[HistoryEvent], activity: str) -> int:
    return sum(
        1
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    )


def _marker(events: list[HistoryEvent], patch_id: str) -> bool:
    return any(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and patch_id.encode() in e.marker_recorded_event_attributes.SerializeToString()
        for e in events
    )


# --------------------------------------------------------------------------------------------
# Continue-as-new
# --------------------------------------------------------------------------------------------


async def test_a_nail_case_continues_as_new_and_resumes_exactly(harness: Harness) -> None:
    h = harness
    handle = await _start(h, continue_as_new_after=60)
    case_id, first_run = handle.id, handle.result_run_id
    await _triaged(h, case_id)
    await h.env.sleep(timedelta(days=1))
    await act_scripted(h.env.client, h.settings, case_id, "accept", {"unit": UNIT})
    before = await _state(h, case_id)
    assert before.stage == Stage.mediation
    armed = {d.name: d for d in before.deadlines}
    window, handling = armed[DeadlineName.mediation_window], armed[DeadlineName.handling]
    assert window.due == due_after(window.started_at, DeadlineName.mediation_window)

    visits = 30
    for _ in range(visits):
        await act_scripted(h.env.client, h.settings, case_id, "repeat_visit", VISIT)
    await _settled(h, case_id)

    desc = await h.env.client.get_workflow_handle(case_id).describe()
    assert desc.run_id != first_run, "the case never continued as new"
    runs = await _runs(h, case_id, first_run)
    assert len(runs) >= 3 and runs[-1] == desc.run_id  # 30 visits: more than one continue-as-new
    first_history = await _history(h, case_id, first_run)
    assert _marker(first_history, CONTINUE_AS_NEW)
    for run in runs[1:]:
        # Nothing was registered, triaged or notified again: each new run resumed; none grew long.
        events = await _history(h, case_id, run)
        assert _scheduled(events, REGISTER_CASE.name) == 0 and _scheduled(events, "triage_petition") == 0
        assert len(events) < 60 + 20

    after = await _state(h, case_id)
    assert after.visits == 1 + visits and after.nail_case
    assert after.stage == Stage.mediation and after.unit == UNIT and after.registered_at == before.registered_at
    # The clocks came over with their start and due instants: no deadline was reset.
    assert {d.name: (d.started_at, d.due, d.status) for d in after.deadlines} == {
        d.name: (d.started_at, d.due, d.status) for d in before.deadlines
    }

    # The mediation window, armed before the continue-as-new, lapses at its own instant after it.
    now = await h.env.get_current_time()
    await h.env.sleep(window.due - now + timedelta(hours=1))
    rows = await _settled(h, case_id)
    timeline = (await h.env.client.get_workflow_handle(case_id).query("timeline", result_type=Timeline)).events
    overdue = [e for e in timeline if e.kind == "overdue" and e.data.get("deadline") == "mediation_window"]
    assert len(overdue) == 1 and overdue[0].data["due"] == window.due.isoformat()
    assert timedelta(0) <= overdue[0].at - window.due < timedelta(minutes=1)
    assert [e for e in timeline if e.kind == "score" and e.data["rule"] == "mediation_window_missed"]
    final = await _state(h, case_id)
    assert final.stage == Stage.handling
    assert {d.name: d.due for d in final.deadlines}[DeadlineName.handling] == handling.due

    # The timeline is whole, in order, each visit once; the read model holds exactly it.
    assert [e.seq for e in timeline] == list(range(1, len(timeline) + 1))
    assert [e.data["visits"] for e in timeline if e.kind == "visit" and not e.data.get("nail_case")] == list(
        range(2, visits + 2)
    )
    assert [(r.seq, r.kind) for r in rows] == [(e.seq, e.kind) for e in timeline]
    engine = get_engine(h.settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        assert row is not None
        assert (row.visits, row.nail_case, row.stage, row.status, row.unit) == (1 + visits, True, "handling", "open", UNIT)
        assert row.next_deadline == DeadlineName.handling.value and as_utc(row.next_due) == handling.due  # type: ignore[arg-type]
        assert row.overdue and row.overdue_deadline == DeadlineName.mediation_window.value
        assert s.exec(select(func.count()).select_from(IntakeRow).where(IntakeRow.case_id == case_id)).one() == 1 + visits
    for run in runs:
        await _replays(h, case_id, run)


async def test_no_continue_as_new_below_the_limit(harness: Harness) -> None:
    h = harness
    handle = await _start(h, continue_as_new_after=5000)
    case_id, first_run = handle.id, handle.result_run_id
    await _triaged(h, case_id)
    for _ in range(6):
        await act_scripted(h.env.client, h.settings, case_id, "repeat_visit", VISIT)
    await _settled(h, case_id)
    desc = await h.env.client.get_workflow_handle(case_id).describe()
    assert desc.run_id == first_run
    assert not _marker(await _history(h, case_id), CONTINUE_AS_NEW)
    state = await _state(h, case_id)
    assert state.visits == 7 and state.nail_case


# --------------------------------------------------------------------------------------------
# A lost case row: registered again, not retried forever
# --------------------------------------------------------------------------------------------


async def test_a_case_whose_row_was_deleted_registers_again_at_its_next_save(harness: Harness) -> None:
    h = harness
    reg = await register(h.env.client, h.settings, parse_intake(petition()), task_queue=h.task_queue, actor=SCENARIO_DESK)
    case_id = reg.case_id
    await _triaged(h, case_id)
    kept = await _settled(h, case_id)
    engine = get_engine(h.settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        assert row is not None and row.stage == Stage.triaged.value
        s.delete(row)  # a database restored from an older backup, or a careless DELETE
        s.commit()

    result = await act_scripted(h.env.client, h.settings, case_id, "accept", {"unit": UNIT})
    assert result.stage == Stage.mediation

    rows = await _settled(h, case_id)
    assert len(rows) > len(kept)
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        assert row is not None, "the case's row did not come back"
        assert (row.stage, row.status, row.unit, row.mediation_eligible) == ("mediation", "open", UNIT, True)
        assert row.accepted_at is not None  # the cockpit's columns, projected again
        # Registered once as an intake, its petitioner once.
        assert s.exec(select(func.count()).select_from(IntakeRow).where(IntakeRow.case_id == case_id)).one() == 1
        assert s.exec(select(func.count()).select_from(PetitionerRow).where(PetitionerRow.case_id == case_id)).one() == 1

    events = await _history(h, case_id)
    failed = [
        e.activity_task_failed_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    # One attempt of the save, refused for good (not retried), then register_case again and the save.
    assert len(failed) == 1
    assert failed[0].failure.application_failure_info.type == CASE_NOT_REGISTERED
    assert failed[0].failure.application_failure_info.non_retryable
    assert _scheduled(events, REGISTER_CASE.name) == 2
    assert _marker(events, REREGISTER_LOST_CASE)
    assert _scheduled(events, SAVE_CASE.name) >= 3
    state = await _state(h, case_id)
    assert isinstance(state.registered_at, datetime)
    await _replays(h, case_id)
