"""The intake desk through its public functions (what starter.py calls): repeat visits join the
open case, a matter finalised by re-review is not accepted again, the HR stream is exactly once,
and no personal data reaches workflow ids, search attributes or logs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from engine.desk import (
    InputError,
    Refused,
    act,
    check_request_id,
    history,
    new_request_id,
    parse_intake,
    register,
    update_id,
)
from engine.reports import assessment, score_events
from engine.scenario import SCENARIO_DESK, act_scripted, scenario_actor
from tests.conftest import Harness
from tests.scenario_helpers import petition


async def _settle(h: Harness, handle: WorkflowHandle[Any, Any]) -> None:
    """Let the case finish registration and triage."""
    for _ in range(100):
        state = await handle.query("state")
        if state["stage"] != "registered":
            return
        await h.env.sleep(timedelta(seconds=1))


async def test_repeat_visit_joins_the_open_case_and_the_fifth_makes_a_nail_case(harness: Harness) -> None:
    h = harness
    intake = parse_intake(petition())
    first = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    assert not first.repeat_visit
    await _settle(h, h.env.client.get_workflow_handle(first.case_id))
    # the same petitioner and matter, written a little differently
    again = parse_intake(petition(title="装修公司 拖欠工资！", channel="online"))
    visits = []
    for _ in range(4):
        reg = await register(h.env.client, h.settings, again, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
        assert reg.repeat_visit and reg.case_id == first.case_id
        visits.append(reg.visits)
    assert visits == [2, 3, 4, 5]
    hist = history(h.settings, first.case_id)
    assert hist["visits"] == 5 and hist["nail_case"] is True
    # another matter of the same petitioner is a case of its own
    other = await register(h.env.client, h.settings, parse_intake(petition(title="社保断缴")), task_queue=h.task_queue, actor=SCENARIO_DESK)
    assert not other.repeat_visit and other.case_id != first.case_id


async def test_matter_finalised_by_re_review_is_not_accepted_again(harness: Harness) -> None:
    h = harness
    c = h.env.client
    intake = parse_intake(petition(disputed_amount=90000))
    reg = await register(c, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    await _settle(h, c.get_workflow_handle(reg.case_id))
    for action, data in [
        ("accept", {"unit": "青山区人社局"}),
        ("issue_opinion", {"text": "意见"}),
        ("request_review", {}),
        ("review_decision", {"text": "维持"}),
        ("request_re_review", {}),
        ("re_review_decision", {"text": "终结"}),
    ]:
        await act_scripted(c, h.settings, reg.case_id, action, data)
    assert history(h.settings, reg.case_id)["outcome"] == "final_after_re_review"

    again = await register(c, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    assert again.case_id != reg.case_id and again.prior_final_case == reg.case_id
    await c.get_workflow_handle(again.case_id).result()
    hist = history(h.settings, again.case_id)
    assert hist["outcome"] == "not_accepted"
    notice = [e for e in hist["events"] if e.get("document") == "not_accepted_notice"]
    assert len(notice) == 1


async def test_score_stream_is_exactly_once_with_a_cursor(harness: Harness) -> None:
    h = harness
    c = h.env.client
    case_ids = []
    for n in range(3):
        reg = await register(c, h.settings, parse_intake(petition(title=f"拖欠工资{n}")), task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
        await _settle(h, c.get_workflow_handle(reg.case_id))
        await act_scripted(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"})
        case_ids.append(reg.case_id)
    await act_scripted(c, h.settings, case_ids[0], "mediation_result", {"success": True, "fulfilled": True})
    first, cursor = score_events(h.settings, 0)
    assert [(e["rule"], e["points"]) for e in first] == [("mediation_success", 2)]
    await act_scripted(c, h.settings, case_ids[1], "mediation_result", {"success": True, "fulfilled": True})
    second, cursor2 = score_events(h.settings, cursor)
    assert [e["case_id"] for e in second] == [case_ids[1]]
    assert score_events(h.settings, cursor2) == ([], cursor2)
    report = assessment(h.settings, int(first[0]["occurred_at"][:4]))
    unit = next(u for u in report["units"] if u["unit"] == "青山区人社局")
    assert unit["eligible"] == 3 and unit["mediated"] == 2 and unit["points"] == 4
    assert unit["mediation_rate"] == round(2 / 3, 4)
    assert report["mediation_rate_weight"] == 0.3


async def test_no_personal_data_in_ids_search_attributes_or_logs(harness: Harness, capsys: Any) -> None:
    h = harness
    intake = parse_intake(petition())
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, actor=SCENARIO_DESK)
    handle = h.env.client.get_workflow_handle(reg.case_id)
    await _settle(h, handle)
    desc = await handle.describe()
    exposed = json.dumps(
        {"id": desc.id, "sa": {k: str(v) for k, v in (desc.search_attributes or {}).items()}}, ensure_ascii=False
    )
    out = capsys.readouterr()
    person = intake.petitioners[0]
    for secret in (person.name, person.id_number, person.phone):
        assert secret and secret not in exposed
        assert secret not in out.out and secret not in out.err
    state = await handle.query("state")
    assert state["petitioners"][0]["name"] == "赵*"


# --- one operator action, one update id (issue 12: the fault drill's retried actions) -----------


def _refusals(h: Harness, case_id: str) -> list[dict[str, Any]]:
    return [e for e in history(h.settings, case_id)["events"] if e["kind"] == "rejected"]


async def test_the_same_request_sent_twice_acts_once_and_is_not_refused(harness: Harness) -> None:
    """A retried action whose first attempt took effect (its answer lost) is answered with the
    first attempt's outcome: one effect, no refusal recorded. With a new request id it is a second
    action, which the rules refuse, and the refusal is recorded."""
    h = harness
    c = h.env.client
    reg = await register(c, h.settings, parse_intake(petition()), task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    handle = c.get_workflow_handle(reg.case_id)
    await _settle(h, handle)
    actor = await scenario_actor(handle, "accept")
    first = await act(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"}, actor=actor, request_id="req-1")
    again = await act(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"}, actor=actor, request_id="req-1")
    assert again == first  # the first outcome, events and all
    accepted = [e for e in history(h.settings, reg.case_id)["events"] if e.get("stage") == "accepted"]
    assert len(accepted) == 1
    assert _refusals(h, reg.case_id) == []
    notices = [e for e in history(h.settings, reg.case_id)["events"] if e.get("document") == "acceptance_notice"]
    assert len(notices) == 1

    # another request: a second acceptance, refused by the rules and recorded
    with pytest.raises(Refused):
        await act(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"}, actor=actor, request_id="req-2")
    assert [r["action"] for r in _refusals(h, reg.case_id)] == ["accept"]
    # one request id never merges two actions: the same id for another action is that action
    opinion = await act(c, h.settings, reg.case_id, "issue_opinion", {"text": "经查，已责令支付。"},
                        actor=await scenario_actor(handle, "issue_opinion"), request_id="req-1")  # fmt: skip
    assert opinion.action == "issue_opinion" and opinion.stage != first.stage


async def test_without_a_request_id_each_call_is_its_own_action(harness: Harness) -> None:
    h = harness
    c = h.env.client
    reg = await register(c, h.settings, parse_intake(petition()), task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
    await _settle(h, c.get_workflow_handle(reg.case_id))
    await act_scripted(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"})
    with pytest.raises(Refused):
        await act_scripted(c, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"})
    assert [r["action"] for r in _refusals(h, reg.case_id)] == ["accept"]


def test_a_request_id_is_checked_before_anything_is_sent() -> None:
    assert check_request_id("web-3f2a_1:2.x") == "web-3f2a_1:2.x"
    for bad in ("", "-x", "a b", "请求", "x" * 65, "a\x00"):
        with pytest.raises(InputError, match="不是有效的请求编号"):
            check_request_id(bad)
    assert update_id("accept", "r1") != update_id("issue_opinion", "r1")
    assert new_request_id() != new_request_id()


async def test_calendar_push_reaches_every_open_case(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.reports import calendar_push

    h = harness
    reg = await register(h.env.client, h.settings, parse_intake(petition()), task_queue=h.task_queue, actor=SCENARIO_DESK)
    await _settle(h, h.env.client.get_workflow_handle(reg.case_id))

    async def connect(settings: Any) -> Any:
        return h.env.client

    monkeypatch.setattr("engine.servers.connect", connect)
    pushed = await calendar_push(h.settings)
    assert pushed["pushed"] == 1 and pushed["failed"] == []
