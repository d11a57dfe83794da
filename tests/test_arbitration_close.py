"""A case on the arbitration green channel does not complete before its arbitration track: when it
closes (here: withdrawn), it tells the track to stop and waits for it to end, so no track outlives
its case (real worker and activities, time-skipping server)."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Replayer

from engine.desk import parse_intake, register
from engine.scenario import SCENARIO_DESK, act_scripted
from rules.vocabulary import Stage
from tests.conftest import Harness
from tests.scenario_helpers import petition
from worker import SANDBOX, WORKFLOWS
from workflows.models import CaseState
from workflows.patches import AWAIT_ARBITRATION_TRACK

COLLECTIVE = {
    "title": "工地拖欠农民工工资",
    "content": "某建筑公司拖欠我们12名工人工资共计18万元,多次讨要无果。",
    "disputed_amount": 180000,
    "worker_count": 12,
}


async def test_a_closing_case_waits_for_its_arbitration_track(harness: Harness) -> None:
    h = harness
    reg = await register(
        h.env.client, h.settings, parse_intake(petition(**COLLECTIVE)), task_queue=h.task_queue, actor=SCENARIO_DESK
    )
    handle = h.env.client.get_workflow_handle(reg.case_id)
    for _ in range(200):
        if (await handle.query("state", result_type=CaseState)).stage == Stage.arbitration:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the case never entered the arbitration green channel")

    await act_scripted(h.env.client, h.settings, reg.case_id, "withdraw", {"reason": "工资已结清"})
    await handle.result()
    child = h.env.client.get_workflow_handle(f"{reg.case_id}-arbitration")
    child_desc, case_desc = await child.describe(), await handle.describe()
    assert child_desc.status == WorkflowExecutionStatus.COMPLETED  # ended before the case completed
    assert await child.result() == "stopped:withdrawn"
    assert child_desc.close_time is not None and case_desc.close_time is not None
    assert child_desc.close_time <= case_desc.close_time

    events = [e async for e in handle.fetch_history_events()]
    kinds = [e.event_type for e in events]
    assert kinds.index(EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED) < kinds.index(
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    )
    assert any(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and AWAIT_ARBITRATION_TRACK.encode() in e.marker_recorded_event_attributes.SerializeToString()
        for e in events
    )
    replayer = Replayer(workflows=WORKFLOWS, workflow_runner=SANDBOX, data_converter=h.env.client.data_converter)
    await replayer.replay_workflow(await handle.fetch_history())
