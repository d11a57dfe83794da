"""Escalation: risk-tiered notices, undeliverable notices, and the three-letters ladder — each path
seen firing and seen not firing."""

from __future__ import annotations

from datetime import datetime, timedelta

from rules.deadlines import SHANGHAI
from rules.vocabulary import DeadlineName
from tests.scenario_helpers import due_after, kinds, offset, one, run, step


async def test_high_risk_sms_to_principal_leader_within_thirty_minutes() -> None:
    r = await run([], until="PT1H", risk="high")
    sms = one(r, "notification", tier="immediate")
    assert sms["recipient_role"] == "principal_leader" and sms["channel"] == "sms" and sms["delivered"]
    assert sms["offset_s"] <= 30 * 60
    assert not kinds(r, "notification", tier="priority") and not kinds(r, "notification", tier="batch")


async def test_medium_risk_push_to_deputy_leader_within_two_hours() -> None:
    r = await run([], until="PT3H", risk="medium")
    push = one(r, "notification", tier="priority")
    assert push["recipient_role"] == "deputy_leader" and push["channel"] == "push"
    assert push["offset_s"] <= 2 * 3600
    assert not kinds(r, "notification", tier="immediate")
    assert not kinds(r, "ladder")  # medium risk starts no ladder


async def test_low_risk_goes_out_in_the_next_mornings_batch() -> None:
    r = await run([], until="P2D", risk="low")
    batch = one(r, "notification", tier="batch")
    assert batch["recipient_role"] == "handling_unit" and batch["channel"] == "batch"
    sent = datetime.fromisoformat(batch["at"]).astimezone(SHANGHAI)
    intake = datetime.fromisoformat(r["intake_at"]).astimezone(SHANGHAI)
    assert sent.date() == intake.date() + timedelta(days=1)
    assert (sent.hour, sent.minute) == (9, 0)
    assert not kinds(r, "notification", tier="immediate") and not kinds(r, "notification", tier="priority")


async def test_low_risk_batch_has_not_gone_out_before_the_next_morning() -> None:
    r = await run([], until="PT1M", risk="low")
    assert not kinds(r, "notification", tier="batch")


async def test_undeliverable_priority_notice_is_retried_until_its_deadline_then_escalates() -> None:
    r = await run([], until="PT3H", risk="medium", notify_adapter="failing")
    failed = one(r, "notification", tier="priority")
    assert (failed["channel"], failed["adapter"], failed["delivered"]) == ("push", "failing", False)
    assert failed["gave_up"] == "deadline" and failed["attempts"] > 100  # a minute apart for 2 h
    alert = one(r, "notification", tier="overdue", deadline="notify_priority")
    assert alert["recipient_role"] == "supervision_office" and alert["delivered"]
    # what really carried it: a line in the duty log, by the recording adapter (not a push, not an SMS)
    assert (alert["channel"], alert["adapter"]) == ("duty_log", "recording")
    assert 2 * 3600 - 120 <= alert["offset_s"] <= 2 * 3600


def _ladder(r: dict[str, object]) -> list[str]:
    return [e["ladder"] for e in kinds(r, "ladder")]  # type: ignore[arg-type]


async def test_major_risk_left_alone_climbs_warning_supervision_accountability() -> None:
    r = await run([step("P1D", "accept", unit="东湖镇政府")], until="P60D", risk="high", locality="东湖镇")
    assert _ladder(r) == ["warning", "supervision", "accountability", "ended"]
    warning = one(r, "document", document="risk_warning_letter")
    assert warning["offset_s"] == 0
    intake = datetime.fromisoformat(r["intake_at"])
    warning_due = due_after(intake, DeadlineName.risk_warning)
    assert one(r, "overdue", deadline="risk_warning")["offset_s"] == offset(r, warning_due)
    supervision = one(r, "document", document="supervision_letter")
    assert supervision["offset_s"] == offset(r, warning_due)
    supervision_due = due_after(warning_due, DeadlineName.supervision)
    assert one(r, "document", document="accountability_letter")["offset_s"] == offset(r, supervision_due)
    assert len(kinds(r, "document", document="petitioner_notice")) == 3  # one with each letter
    assert one(r, "score", rule="accountability")["points"] < 0
    officials = kinds(r, "score", rule="accountability_official")
    assert [o["official"] for o in officials] == ["东湖镇镇长", "东湖镇分管信访工作副镇长"]


async def test_resolving_the_risk_stops_the_ladder() -> None:
    r = await run(
        [step("P1D", "accept", unit="东湖镇政府"), step("P10D", "risk_resolved", note="已责令养殖场停排整改")],
        until="P60D",
        risk="high",
    )
    assert _ladder(r) == ["warning", "ended"]
    assert not kinds(r, "document", document="supervision_letter")
    assert not kinds(r, "overdue", deadline="risk_warning")


async def test_resolving_under_supervision_prevents_accountability() -> None:
    r = await run([step("P20D", "risk_resolved", note="化解")], until="P60D", risk="high")
    one(r, "document", document="supervision_letter")
    assert not kinds(r, "document", document="accountability_letter")
    assert not kinds(r, "score", rule="accountability")


async def test_substantive_progress_re_arms_supervision_once() -> None:
    r = await run(
        [step("P20D", "report_progress", substantive=True, note="已制定整改方案"),
         step("P35D", "report_progress", substantive=True, note="整改进行中")],
        until="P80D",
        risk="high",
    )
    assert len(kinds(r, "document", document="supervision_letter")) == 2
    letters = kinds(r, "document", document="supervision_letter")
    second_due = due_after(datetime.fromisoformat(letters[1]["at"]), DeadlineName.supervision)
    # the re-arm happens once: the second deadline ends in accountability despite more progress
    assert one(r, "document", document="accountability_letter")["offset_s"] == offset(r, second_due)


async def test_progress_under_the_warning_letter_changes_nothing() -> None:
    r = await run([step("P5D", "report_progress", substantive=True, note="进展")], until="P60D", risk="high")
    assert len(kinds(r, "document", document="supervision_letter")) == 1
    one(r, "document", document="accountability_letter")
    assert one(r, "ladder", ladder="progress")["counts"] is False


async def test_non_substantive_progress_does_not_re_arm() -> None:
    r = await run([step("P20D", "report_progress", substantive=False, note="正在研究")], until="P60D", risk="high")
    assert len(kinds(r, "document", document="supervision_letter")) == 1
    one(r, "document", document="accountability_letter")


async def test_supervision_office_can_flag_a_major_risk_later() -> None:
    r = await run(
        [step("P1D", "accept", unit="青山区人社局"), step("P10D", "flag_major_risk", reason="工人扬言集体上访")],
        until="P60D",
        disputed_amount=90000,
    )
    warning = one(r, "document", document="risk_warning_letter")
    assert warning["offset_s"] == 10 * 86400
    assert _ladder(r)[:2] == ["flagged", "warning"]
    flagged_at = datetime.fromisoformat(warning["at"])
    assert one(r, "overdue", deadline="risk_warning")["offset_s"] == offset(
        r, due_after(flagged_at, DeadlineName.risk_warning)
    )


async def test_no_ladder_without_a_major_risk() -> None:
    r = await run([step("P1D", "accept", unit="青山区人社局")], until="P60D", disputed_amount=90000)
    assert not kinds(r, "ladder")
    assert not kinds(r, "document", document="risk_warning_letter")


async def test_flagging_twice_is_refused_and_closing_ends_the_ladder() -> None:
    r = await run(
        [
            step("P1D", "flag_major_risk", reason="风险"),
            step("P2D", "flag_major_risk", reason="再次"),
            step("P3D", "withdraw", reason="撤回"),
        ],
        until="P60D",
    )
    assert "已因重大风险进入“三函”督办程序" in one(r, "rejected", action="flag_major_risk")["error"]
    assert _ladder(r) == ["flagged", "warning", "ended"]
    assert not kinds(r, "document", document="supervision_letter")


async def test_letters_carry_the_handling_opinion_when_there_is_one() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P2D", "issue_opinion", text="意见"),
            step("P3D", "flag_major_risk", reason="风险"),
        ],
        until="P4D",
    )
    opinion = one(r, "document", document="handling_opinion")
    notice = one(r, "document", document="petitioner_notice")
    assert notice["offset_s"] == 3 * 86400 and opinion["sha256"]
