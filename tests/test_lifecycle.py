"""The statutory life of a petition, driven through the scenario runner (real worker, real
workflows and activities, time-skipping server): every deadline fires when it should and not
when it shouldn't, and every outcome of the contract is reachable."""

from __future__ import annotations

from datetime import datetime

from rules.vocabulary import DeadlineName
from tests.scenario_helpers import at, due_after, kinds, offset, one, run, step


async def test_mediation_success_closes_mediated_with_two_points() -> None:
    r = await run([step("P2D", "accept", unit="青山区人社局"), step("P5D", "mediation_result", success=True, fulfilled=True)])
    assert r["status"] == "completed" and r["outcome"] == "mediated"
    assert one(r, "stage", stage="accepted")["offset_s"] == 2 * 86400
    assert one(r, "document", document="acceptance_notice")["ledger_index"] >= 0
    one(r, "document", document="mediation_agreement")
    score = one(r, "score", rule="mediation_success")
    assert score == {**score, "unit": "青山区人社局", "points": 2, "offset_s": 5 * 86400}
    assert one(r, "stage", stage="closed")["outcome"] == "mediated"
    assert not kinds(r, "overdue")


async def test_mediation_window_lapses_into_ordinary_handling() -> None:
    r = await run([step("P1D", "accept", unit="青山区人社局")], until="P20D")
    accepted = datetime.fromisoformat(one(r, "stage", stage="accepted")["at"])
    overdue = one(r, "overdue", deadline="mediation_window")
    assert overdue["offset_s"] == offset(r, due_after(accepted, DeadlineName.mediation_window))
    alert = one(r, "notification", tier="overdue", deadline="mediation_window")
    assert alert["recipient_role"] == "unit_leader"
    missed = one(r, "score", rule="mediation_window_missed")
    assert missed["points"] == 0
    handling = [e for e in kinds(r, "stage", stage="handling") if e.get("after") == "mediation_window_missed"]
    assert handling and r["status"] == "running"


async def test_mediation_window_not_missed_when_mediation_is_recorded_in_time() -> None:
    r = await run(
        [step("P1D", "accept", unit="青山区人社局"), step("P3D", "mediation_result", success=False)], until="P20D"
    )
    assert not kinds(r, "overdue", deadline="mediation_window")
    assert not kinds(r, "score", rule="mediation_window_missed")
    assert one(r, "stage", stage="mediation", success=False)


async def test_ineligible_case_has_no_mediation_window() -> None:
    r = await run([step("P1D", "accept", unit="青山区人社局")], until="P20D", disputed_amount=50001)
    assert not kinds(r, "stage", stage="mediation")
    assert not kinds(r, "overdue", deadline="mediation_window")


async def test_amount_of_exactly_fifty_thousand_is_eligible() -> None:
    r = await run([step("P1D", "accept", unit="青山区人社局")], until="P3D", disputed_amount=50000)
    one(r, "stage", stage="mediation")


async def test_acceptance_overdue_fires_at_fifteen_days_and_not_when_accepted() -> None:
    late = await run([], until="P25D")
    due = due_after(datetime.fromisoformat(late["intake_at"]), DeadlineName.acceptance)
    assert one(late, "overdue", deadline="acceptance")["offset_s"] == offset(late, due)
    one(late, "notification", tier="overdue", deadline="acceptance")

    in_time = await run([step("P14D", "accept", unit="青山区人社局")], until="P25D")
    assert not kinds(in_time, "overdue", deadline="acceptance")


async def test_handling_overdue_and_one_extension() -> None:
    plain = await run([step("P1D", "accept", unit="青山区人社局", disputed_amount=90000)], until="P70D")
    accepted = datetime.fromisoformat(one(plain, "stage", stage="accepted")["at"])
    assert one(plain, "overdue", deadline="handling")["offset_s"] == offset(plain, due_after(accepted, DeadlineName.handling))

    extended = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P40D", "extend", days=30, approved_by="区人社局局长", reason="需要补充调查取证"),
            step("P41D", "extend", days=5, approved_by="区人社局局长", reason="再次延期"),
        ],
        until="P75D",
    )
    one(extended, "document", document="extension_notice")
    assert not kinds(extended, "overdue", deadline="handling")
    refused = one(extended, "rejected", action="extend")
    assert "规则最多允许延期 1 次" in refused["error"]


async def test_extension_over_thirty_days_is_refused() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P2D", "extend", days=31, approved_by="局长", reason="复杂"),
        ],
        until="P3D",
    )
    assert "延期最多 30 日，本次申请延期 31 日" in one(r, "rejected", action="extend")["error"]
    assert not kinds(r, "document", document="extension_notice")


async def test_opinion_without_review_closes_resolved_after_thirty_days() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="经调查，公司应于十日内支付拖欠工资。"),
        ],
        until="P80D",
    )
    opinion_at = datetime.fromisoformat(one(r, "stage", stage="opinion_issued")["at"])
    one(r, "document", document="handling_opinion")
    closed = one(r, "stage", stage="closed")
    assert closed["outcome"] == "resolved" and r["outcome"] == "resolved"
    assert closed["offset_s"] == offset(r, due_after(opinion_at, DeadlineName.review_request))
    assert not kinds(r, "overdue", deadline="handling")


async def test_review_then_final_after_review() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="意见"),
            step("P30D", "request_review"),
            step("P45D", "review_decision", text="维持原办理意见。"),
        ],
        until="P120D",
    )
    assert len(kinds(r, "stage", stage="review")) == 2  # requested, then decided
    one(r, "document", document="review_opinion")
    assert r["outcome"] == "final_after_review"
    assert not kinds(r, "overdue")


async def test_review_decision_overdue_fires() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="意见"),
            step("P30D", "request_review"),
        ],
        until="P70D",
    )
    requested = datetime.fromisoformat(kinds(r, "stage", stage="review")[0]["at"])
    due = due_after(requested, DeadlineName.review_decision)
    assert one(r, "overdue", deadline="review_decision")["offset_s"] == offset(r, due)


async def test_re_review_is_final_and_its_decision_can_be_overdue() -> None:
    final = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="意见"),
            step("P30D", "request_review"),
            step("P40D", "review_decision", text="维持"),
            step("P50D", "request_re_review"),
            step("P60D", "re_review_decision", text="复核维持，终结。"),
            step("P61D", "request_review"),
        ],
        until="P100D",
    )
    assert final["outcome"] == "final_after_re_review"
    one(final, "document", document="re_review_opinion")
    assert one(final, "rejected", action="request_review")["error"] == "案件已办结（复核终结），不再接受任何操作。"

    late = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="意见"),
            step("P30D", "request_review"),
            step("P40D", "review_decision", text="维持"),
            step("P50D", "request_re_review"),
        ],
        until="P95D",
    )
    one(late, "overdue", deadline="re_review_decision")
    assert late["status"] == "running"


async def test_failed_mediation_then_review_costs_one_point_once() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局"),
            step("P3D", "mediation_result", success=False),
            step("P20D", "issue_opinion", text="意见"),
            step("P25D", "request_review"),
            step("P30D", "review_decision", text="维持"),
            step("P35D", "request_re_review"),
        ],
        until="P40D",
    )
    assert one(r, "score", rule="mediation_failed_review")["points"] == -1


async def test_review_without_failed_mediation_costs_nothing() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P20D", "issue_opinion", text="意见"),
            step("P25D", "request_review"),
        ],
        until="P30D",
    )
    assert not kinds(r, "score")


async def test_not_accepted_and_redirected_close_with_their_notices() -> None:
    refused = await run([step("P3D", "not_accept", reason="不属于本机关职权范围")])
    assert refused["outcome"] == "not_accepted"
    one(refused, "document", document="not_accepted_notice")

    redirected = await run([step("P3D", "redirect", route="litigation")], category="law_litigation")
    assert redirected["outcome"] == "redirected"
    one(redirected, "document", document="redirect_notice")
    one(redirected, "stage", stage="redirected", route="litigation")


async def test_withdrawal_stops_every_clock() -> None:
    r = await run([step("P1D", "accept", unit="青山区人社局"), step("P2D", "withdraw", reason="已私下和解")], until="P90D")
    assert r["outcome"] == "withdrawn"
    assert not kinds(r, "overdue")
    assert r["events"][-1]["kind"] == "stage" and r["events"][-1]["outcome"] == "withdrawn"


async def test_repeat_visits_make_a_nail_case_on_the_fifth() -> None:
    r = await run([step(f"P{d}D", "repeat_visit") for d in (1, 2, 3, 4)], until="P5D")
    visits = kinds(r, "visit")
    assert [v["visits"] for v in visits if not v.get("nail_case")] == [2, 3, 4, 5]
    nail = [v for v in visits if v.get("nail_case")]
    assert len(nail) == 1 and nail[0]["visits"] == 5 and nail[0]["backlog_register"]


async def test_four_visits_are_not_a_nail_case() -> None:
    r = await run([step(f"P{d}D", "repeat_visit") for d in (1, 2, 3)], until="P5D")
    assert not [v for v in kinds(r, "visit") if v.get("nail_case")]


async def test_actions_refused_in_the_wrong_state_leave_nothing_behind() -> None:
    r = await run(
        [
            step("PT1H", "mediation_result", success=True, fulfilled=True),
            step("PT2H", "issue_opinion", text="意见"),
            step("PT3H", "request_review"),
            step("PT4H", "review_decision", text="x"),
            step("PT5H", "request_re_review"),
            step("PT6H", "re_review_decision", text="x"),
            step("PT7H", "extend", days=5, approved_by="a", reason="b"),
            step("PT8H", "report_progress", substantive=True),
            step("PT9H", "risk_resolved"),
            step("P1D", "accept", unit="青山区人社局"),
            step("P2D", "accept", unit="青山区人社局"),
            step("P2D", "not_accept", reason="重复"),
        ],
        until="P3D",
    )
    refused = [e["action"] for e in kinds(r, "rejected")]
    assert refused == [
        "mediation_result",
        "issue_opinion",
        "request_review",
        "review_decision",
        "request_re_review",
        "re_review_decision",
        "extend",
        "report_progress",
        "risk_resolved",
        "accept",
        "not_accept",
    ]
    assert kinds(r, "rejected")[0]["error"] == "案件受理后才能记录调解结果。"
    assert all(e["error"].endswith("。") for e in kinds(r, "rejected"))
    assert r["events"][-1]["kind"] == "rejected"
    # nothing but the one acceptance happened
    assert [e["stage"] for e in kinds(r, "stage")] == ["registered", "triaged", "accepted", "mediation"]
    assert len(kinds(r, "document")) == 1


async def test_review_request_after_the_window_is_refused() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P2D", "issue_opinion", text="意见"),
            step("P40D", "request_review"),
        ],
        until="P45D",
    )
    assert r["outcome"] == "resolved"
    assert one(r, "rejected", action="request_review")["offset_s"] == 40 * 86400
    assert not kinds(r, "stage", stage="review")


async def test_offsets_follow_the_steps() -> None:
    r = await run([step("P2DT3H", "accept", unit="青山区人社局")], until="P3D")
    assert one(r, "stage", stage="accepted")["offset_s"] == 2 * 86400 + 3 * 3600
    assert at(r, "P2DT3H") <= datetime.fromisoformat(one(r, "stage", stage="accepted")["at"])
