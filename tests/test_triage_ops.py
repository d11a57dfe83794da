"""Triage inside the engine, through the desk, the worker and the reports starter.py prints:
operators' overrides and supervision flags become labelled examples with personal data masked,
the drift report counts them, very long content is refused at intake, and a 1 MB content that
reaches the worker another way is read only up to the bound while other cases go on."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from engine.desk import InputError, history, parse_intake, register
from engine.reports import triage_corrections, triage_drift
from engine.scenario import SCENARIO_DESK, act_scripted
from rules.vocabulary import MAX_CONTENT_CHARS
from tests.conftest import Harness
from tests.scenario_helpers import petition
from workflows.models import Intake, mask_personal_data

PERSON = {"name": "钱小红", "id_number": "110101199001011237", "phone": "13912345678"}
CONTENT = (
    "我叫钱小红,身份证110101199001011237,电话13912345678。"
    "我在某装修公司做油漆工四个月,公司拖欠工资2.6万元,有考勤表和老板写的欠条。"
)


async def _triaged(h: Harness, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    for _ in range(200):
        state = await handle.query("state")
        if state["stage"] != "registered":
            return dict(state)
        await h.env.sleep(timedelta(seconds=1))
    raise AssertionError("the case never got past registration")


def test_intake_refuses_content_past_the_bound_naming_the_field() -> None:
    with pytest.raises(InputError) as info:
        parse_intake(petition(content="路灯坏了。" * 5000))
    message = str(info.value)
    assert message.startswith("信访事项记录字段“content”（主要内容）：有 25,000 个字符") and f"{MAX_CONTENT_CHARS:,}" in message
    assert parse_intake(petition(content="灯" * MAX_CONTENT_CHARS)).content == "灯" * MAX_CONTENT_CHARS
    with pytest.raises(InputError, match="信访事项记录字段“title”"):
        parse_intake(petition(title="标题" * 101))


def test_masking_keeps_the_petition_and_drops_the_person() -> None:
    masked = mask_personal_data(CONTENT, [PERSON["name"]])
    for secret in PERSON.values():
        assert secret not in masked
    assert "某某" in masked and "[身份证号]" in masked and "[电话]" in masked and "拖欠工资2.6万元" in masked


async def test_overrides_and_flags_become_masked_examples_and_drift(harness: Harness) -> None:
    h = harness
    c = h.env.client
    # 1. The operator calls it an environment case of high risk: two fields overridden at intake.
    overridden = parse_intake(petition(petitioners=[PERSON], content=CONTENT, category="environment", risk="high"))
    a = await register(c, h.settings, overridden, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    # 2. The operator agrees with triage: no correction.
    agreed = parse_intake(petition(title="社保断缴", content="公司两年没给我交社保。", category=None, risk=None))
    b = await register(c, h.settings, agreed, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    # 3. A low-risk case the supervision office later flags as a major risk.
    low = parse_intake(petition(title="路灯不亮", content="小区门口路灯坏了两个月。", category=None, risk=None,
                                disputed_amount=None, petitioners=[{"name": "孙某"}]))
    f = await register(c, h.settings, low, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    for case in (a, b, f):
        await _triaged(h, c.get_workflow_handle(case.case_id))
    triaged = next(e for e in history(h.settings, f.case_id)["events"] if e.get("stage") == "triaged")
    assert triaged["risk"] != "high"
    await act_scripted(c, h.settings, f.case_id, "flag_major_risk", {"reason": "督查发现该路段夜间多次发生事故"})
    for _ in range(50):
        if any(e.get("ladder") == "flagged" for e in history(h.settings, f.case_id)["events"]):
            break
        await h.env.sleep(timedelta(seconds=1))

    examples = triage_corrections(h.settings)
    assert len(examples) == 2
    by_title = {e["title"]: e for e in examples}
    ex = by_title["装修公司拖欠工资"]
    assert ex["writer"] == "corrections" and (ex["category"], ex["risk"]) == ("environment", "high")
    assert "category:labor_social_security->environment(intake)" in ex["why"]
    assert "->high(intake)" in ex["why"]
    for secret in PERSON.values():
        assert secret not in ex["content"], "personal data must be masked in a training example"
    assert "拖欠工资2.6万元" in ex["content"]
    flagged = by_title["路灯不亮"]
    assert flagged["risk"] == "high" and "(flag_major_risk)" in flagged["why"]

    drift = triage_drift(h.settings)
    assert sum(r["cases"] for r in drift) == 3
    assert sum(r["overridden"] for r in drift) == 2
    assert sum(r["category"] for r in drift) == 1 and sum(r["risk"] for r in drift) == 1
    assert sum(r["flagged"] for r in drift) == 1
    labour = [r for r in drift if r["suggested_category"] == "labor_social_security"]
    assert sum(r["cases"] for r in labour) == 2 and sum(r["overridden"] for r in labour) == 1
    assert all(r["models"][0].startswith("triage-model ") for r in drift)


async def test_a_1mb_content_is_read_up_to_the_bound_and_other_cases_go_on(harness: Harness) -> None:
    h = harness
    c = h.env.client
    # Not through parse_intake (which refuses it): a client that starts cases another way.
    huge = Intake.model_validate(petition(content="我反映一下小区路灯的问题。" * (1_000_000 // 13), category=None, risk=None))
    normal = parse_intake(petition(title="楼道灯", content="楼道灯坏了。", category=None, risk=None))
    big, small = await asyncio.gather(
        register(c, h.settings, huge, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK),
        register(c, h.settings, normal, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK),
    )
    small_state = await _triaged(h, c.get_workflow_handle(small.case_id))
    big_state = await _triaged(h, c.get_workflow_handle(big.case_id))
    assert small_state["stage"] == "triaged" and big_state["stage"] == "triaged"
    triaged = next(e for e in history(h.settings, big.case_id)["events"] if e.get("stage") == "triaged")
    assert triaged["reasons"][0].startswith("内容共 ") and "只分析前" in triaged["reasons"][0]
