"""Every action carries its actor: each role's allowed and refused actions, through the intake
desk (what starter.py and the web app call) on the real worker; the refusal is a sentence and
the only trace; the timeline and the documents name who acted; signals that only the engine may
send are refused from anyone else."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from engine.desk import Refused, act, history, parse_intake, published_calendar_snapshot, register
from engine.scenario import SCENARIO_DESK
from rules.access import CASE_ACTIONS, action_refusal, may_view
from rules.vocabulary import StaffRole
from tests.conftest import Harness
from tests.scenario_helpers import petition
from workflows.models import Actor, ArbitrationOverdue, BatchDelivered, CaseState

UNIT = "青山区人社局"
CLERK = Actor(name="clerk01", role=StaffRole.operator)
QINGSHAN = Actor(name="wang.unit", role=StaffRole.unit, unit=UNIT)
OTHER_UNIT = Actor(name="li.unit", role=StaffRole.unit, unit="青山区住建局")
SUPERVISOR = Actor(name="zhao.sup", role=StaffRole.supervision)
HR = Actor(name="hr01", role=StaffRole.hr)
ADMIN = Actor(name="admin", role=StaffRole.admin)


async def _case(h: Harness, **changes: Any) -> tuple[str, WorkflowHandle[Any, Any]]:
    intake = parse_intake(petition(responsible_unit=UNIT, disputed_amount=90000, **changes))
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=CLERK)
    handle = h.env.client.get_workflow_handle(reg.case_id)
    for _ in range(100):
        if (await handle.query("state", result_type=CaseState)).stage != "registered":
            break
        await h.env.sleep(timedelta(seconds=1))
    return reg.case_id, handle


async def _refused(h: Harness, case_id: str, action: str, data: dict[str, Any], actor: Actor) -> str:
    before = history(h.settings, case_id)["events"]
    with pytest.raises(Refused) as err:
        await act(h.env.client, h.settings, case_id, action, data, actor=actor)
    after = history(h.settings, case_id)["events"]
    # nothing but the refusal: the same events, plus one `rejected` naming the actor
    assert [e for e in after if e["kind"] != "rejected"] == [e for e in before if e["kind"] != "rejected"]
    rejected = [e for e in after if e["kind"] == "rejected"][-1]
    assert rejected["action"] == action and rejected["error"] == err.value.error
    assert rejected["by"]["name"] == actor.name and rejected["by"]["role"] == actor.role.value
    return err.value.error


def test_the_role_table_is_total_and_units_act_on_their_own_cases_only() -> None:
    assert set(CASE_ACTIONS) == set(StaffRole)
    assert action_refusal("accept", StaffRole.unit, UNIT, UNIT) is None
    assert action_refusal("accept", StaffRole.unit, "青山区住建局", UNIT) == (
        f"本案属于{UNIT}；青山区住建局的工作人员只能办理本单位的案件。"
    )
    assert "上一级机关" in (action_refusal("review_decision", StaffRole.unit, UNIT, UNIT) or "")
    assert action_refusal("review_decision", StaffRole.unit, "市人社局", UNIT) is None
    assert "没有写明是谁办理的" in (action_refusal("accept", None, None, UNIT) or "")
    assert may_view(StaffRole.supervision, None, UNIT) and may_view(StaffRole.unit, UNIT, UNIT)
    assert not may_view(StaffRole.unit, "青山区住建局", UNIT) and not may_view(StaffRole.hr, None, UNIT)


async def test_each_role_is_allowed_its_actions_and_refused_the_rest(harness: Harness) -> None:
    h = harness
    c = h.env.client
    # Only an operator registers.
    for actor in (QINGSHAN, SUPERVISOR, HR, ADMIN):
        with pytest.raises(Refused, match="无权登记信访事项"):
            await register(c, h.settings, parse_intake(petition(title="另一件事")), task_queue=h.task_queue, actor=actor)
    case_id, handle = await _case(h)

    # operator: registration and the petitioner's requests, never a unit's decision
    assert await _refused(h, case_id, "accept", {"unit": UNIT}, CLERK) == (
        "“登记窗口”角色不能进行“受理”操作；这项操作只能由“责任单位”角色进行。"
    )
    # another unit's staff: not their case
    assert "只能办理本单位的案件" in await _refused(h, case_id, "accept", {"unit": UNIT}, OTHER_UNIT)
    # hr and admin act on no case
    assert "“组织人事”角色不能进行“受理”操作" in await _refused(h, case_id, "accept", {"unit": UNIT}, HR)
    assert "“系统管理员”角色不能进行“标记重大风险”操作" in await _refused(h, case_id, "flag_major_risk", {"reason": "x"}, ADMIN)
    # supervision flags risks, but does not accept
    assert "“督查室”角色不能进行“受理”操作" in await _refused(h, case_id, "accept", {"unit": UNIT}, SUPERVISOR)

    # the case's own unit accepts: the timeline and the acceptance notice name who acted
    result = await act(c, h.settings, case_id, "accept", {"unit": UNIT}, actor=QINGSHAN)
    assert result.stage == "handling"
    first = result.events[0]
    assert first.data["by"] == {"name": "wang.unit", "role": "unit", "unit": UNIT} and first.data["action"] == "accept"
    notice = next(e for e in result.events if e.kind == "document" and e.data["document"] == "acceptance_notice")
    text = (h.settings.documents_dir / case_id / "acceptance_notice-1.txt").read_text(encoding="utf-8")
    assert "经办人：wang.unit" in text, notice

    # supervision flags a major risk; the unit reports progress; the operator records a visit
    flagged = await act(c, h.settings, case_id, "flag_major_risk", {"reason": "扬言集体上访"}, actor=SUPERVISOR)
    assert flagged.events[0].data["by"]["role"] == "supervision"
    assert "“责任单位”角色不能进行“风险化解”操作" in await _refused(h, case_id, "risk_resolved", {}, QINGSHAN)
    await act(c, h.settings, case_id, "report_progress", {"substantive": True}, actor=QINGSHAN)
    visit = await act(c, h.settings, case_id, "repeat_visit", {}, actor=CLERK)
    assert visit.events[0].data["by"]["name"] == "clerk01"

    # the handling unit issues the opinion; its review belongs to the body one level up
    await act(c, h.settings, case_id, "issue_opinion", {"text": "已督促公司支付工资"}, actor=QINGSHAN)
    await act(c, h.settings, case_id, "request_review", {}, actor=CLERK)
    assert "复查、复核由上一级机关决定" in await _refused(h, case_id, "review_decision", {"text": "维持"}, QINGSHAN)
    city = Actor(name="city.reviewer", role=StaffRole.unit, unit="市人社局")
    done = await act(c, h.settings, case_id, "review_decision", {"text": "维持原意见"}, actor=city)
    assert done.events[0].data["by"]["unit"] == "市人社局"

    # the stored history (what the supervision office reads) keeps every actor
    events = history(h.settings, case_id)["events"]
    actors = {(e.get("action"), e["by"]["name"]) for e in events if "by" in e}
    assert {("accept", "wang.unit"), ("flag_major_risk", "zhao.sup"), ("repeat_visit", "clerk01"),
            ("review_decision", "city.reviewer"), ("accept", "clerk01")} <= actors  # fmt: skip
    registered = next(e for e in events if e.get("stage") == "registered")
    assert registered["by"]["name"] == "clerk01"


async def test_a_forged_calendar_changes_no_deadline_and_the_published_one_is_applied(harness: Harness) -> None:
    h = harness
    intake = parse_intake(petition(responsible_unit=UNIT))
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, actor=SCENARIO_DESK)
    handle = h.env.client.get_workflow_handle(reg.case_id)
    before = await handle.query("state", result_type=CaseState)
    while before.stage == "registered":
        await h.env.sleep(timedelta(seconds=1))
        before = await handle.query("state", result_type=CaseState)
    published = published_calendar_snapshot(h.settings)
    # A forger's calendar: every day of the next two years is a rest day.
    forged = published.model_copy(
        update={"rest_days": [f"{y}-{m:02d}-{d:02d}" for y in published.official_years for m in range(1, 13) for d in range(1, 29)]}
    )
    await handle.signal("reload_calendar", forged)
    await h.env.sleep(timedelta(seconds=5))
    after = await handle.query("state", result_type=CaseState)
    assert [(d.name, d.due) for d in after.deadlines] == [(d.name, d.due) for d in before.deadlines]
    refused = [e for e in history(h.settings, reg.case_id)["events"] if e["kind"] == "rejected"]
    assert refused and refused[-1]["action"] == "reload_calendar" and "not the published calendar" in refused[-1]["error"]

    # The published calendar is applied (what `starter.py calendar push` sends).
    await handle.signal("reload_calendar", published)
    await h.env.sleep(timedelta(seconds=5))
    infos = [e for e in history(h.settings, reg.case_id)["events"] if e.get("calendar_reloaded")]
    assert len(infos) == 1


async def test_engine_signals_from_anyone_else_are_refused(harness: Harness) -> None:
    h = harness
    case_id, handle = await _case(h)
    before = history(h.settings, case_id)["events"]
    await handle.signal(
        "batch_delivered",
        BatchDelivered(digest_id="digest-forged", delivered_at=before[0]["at"], recipient=UNIT, token="guess"),
    )
    await handle.signal("arbitration_overdue", ArbitrationOverdue(deadline="arbitration_filing", due=before[0]["at"]))
    await h.env.sleep(timedelta(seconds=5))
    events = history(h.settings, case_id)["events"]
    new = events[len(before) :]
    assert [e["kind"] for e in new] == ["rejected", "rejected"], new
    assert {e["action"] for e in new} == {"batch_delivered", "arbitration_overdue"}
    assert not [e for e in events if e["kind"] in ("overdue", "notification") and e.get("digest_id") == "digest-forged"]
