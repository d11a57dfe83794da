"""Urgent notices do not wait behind a backlog (issue 12): a petition stated high risk at intake is
started with the urgent task priority (its workflow tasks and activities inherit it), and every
immediate notice (the high-risk SMS) is scheduled with it, also for a case whose high risk only
triage found. Checked in the histories the real worker writes; bench/deadline_surge.py --urgent
measures what it is worth under a surge."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.config import PROJECT_DIR
from engine.desk import parse_intake, register
from engine.scenario import SCENARIO_DESK
from tests.conftest import Harness
from tests.scenario_helpers import petition
from worker import SANDBOX, WORKFLOWS
from workflows.models import URGENT_PRIORITY
from workflows.petition import URGENT_NOTICE

HIGH_RISK_SAMPLE = PROJECT_DIR / "samples" / "02-pollution-high-risk.json"


async def _history_until_notified(h: Harness, case_id: str) -> list[HistoryEvent]:
    """The case's history once its first notice has been sent (the test server skips time)."""
    handle = h.env.client.get_workflow_handle(case_id)
    for _ in range(100):
        events = [e async for e in handle.fetch_history_events()]
        if any(_notice(events, completed=True)):
            return events
        await h.env.sleep(timedelta(seconds=1))
    raise AssertionError(f"{case_id}: no notice was sent")


def _notice(events: list[HistoryEvent], completed: bool = False) -> list[Any]:
    """The ActivityTaskScheduled attributes of send_notification (or, with completed, their completions)."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "send_notification"
    }
    if not completed:
        return list(scheduled.values())
    return [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]


def _started_priority(events: list[HistoryEvent]) -> int:
    return events[0].workflow_execution_started_event_attributes.priority.priority_key


def _patched(events: list[HistoryEvent], patch_id: str) -> bool:
    """Whether the history holds the marker of `workflow.patched(patch_id)`."""
    return any(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and patch_id.encode() in e.marker_recorded_event_attributes.SerializeToString()
        for e in events
    )


async def test_a_high_risk_petition_and_its_sms_run_at_the_urgent_priority(harness: Harness) -> None:
    h = harness
    intake = parse_intake(json.loads(HIGH_RISK_SAMPLE.read_text(encoding="utf-8")))
    assert intake.risk is not None and intake.risk.value == "high"
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, actor=SCENARIO_DESK)
    events = await _history_until_notified(h, reg.case_id)
    key = URGENT_PRIORITY.priority_key
    assert key == 1
    assert _started_priority(events) == key  # the case's workflow tasks and activities inherit it
    [sms] = _notice(events)
    # the immediate notice asks for it itself, on the worker's own task queue
    assert sms.priority.priority_key == key and sms.task_queue.name == h.task_queue
    assert _patched(events, URGENT_NOTICE)
    # the new path replays (the recorded histories of tests/test_replay.py keep the old one)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=h.env.client.data_converter, workflow_runner=SANDBOX)
    await replayer.replay_workflow(WorkflowHistory(reg.case_id, events))


async def test_a_high_risk_found_by_triage_still_sends_its_sms_at_the_urgent_priority(harness: Harness) -> None:
    h = harness
    data = json.loads(HIGH_RISK_SAMPLE.read_text(encoding="utf-8"))
    del data["risk"]  # not stated: triage reads the threat of a collective visit in the content
    reg = await register(h.env.client, h.settings, parse_intake(data), task_queue=h.task_queue, actor=SCENARIO_DESK)
    events = await _history_until_notified(h, reg.case_id)
    assert _started_priority(events) == 0  # the desk could not know: the default
    [sms] = _notice(events)
    assert sms.priority.priority_key == URGENT_PRIORITY.priority_key


async def test_a_medium_risk_petition_and_its_push_keep_the_default_priority(harness: Harness) -> None:
    h = harness
    intake = parse_intake(petition(risk="medium"))
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, actor=SCENARIO_DESK)
    events = await _history_until_notified(h, reg.case_id)
    assert _started_priority(events) == 0
    [push] = _notice(events)
    assert push.priority.priority_key == 0 and push.task_queue.name == h.task_queue
    assert not _patched(events, URGENT_NOTICE)  # asked only for an immediate notice
