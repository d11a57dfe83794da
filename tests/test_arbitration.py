"""Collective wage arrears (5 or more workers) go to the arbitration green channel right after
triage; arbitration first, court only when it fails."""

from __future__ import annotations

from tests.scenario_helpers import kinds, one, run, step

COLLECTIVE = {
    "title": "工地拖欠农民工工资",
    "content": "某建筑公司拖欠我们12名工人工资共计18万元,多次讨要无果。",
    "disputed_amount": 180000,
    "worker_count": 12,
}


async def test_collective_arrears_enter_arbitration_and_resolve_there() -> None:
    r = await run(
        [
            step("P1D", "arbitration", event="filed"),
            step("P2D", "accept", unit="青山区人社局"),
            step("P20D", "arbitration", event="settled"),
            step("P25D", "arbitration", event="confirmed"),
        ],
        until="P60D",
        **COLLECTIVE,
    )
    entered = [e for e in kinds(r, "stage", stage="arbitration") if e.get("track")]
    # At intake: the seconds triage takes on a loaded machine are not a day.
    assert entered and entered[0]["offset_s"] < 60 and entered[0]["workers"] == 12
    assert [e["step"] for e in kinds(r, "stage", stage="arbitration") if e.get("step")] == ["filed", "settled", "confirmed"]
    assert r["outcome"] == "resolved"
    assert not kinds(r, "overdue")


async def test_failed_arbitration_goes_to_court_as_a_redirect() -> None:
    r = await run(
        [step("P1D", "arbitration", event="filed"), step("P30D", "arbitration", event="failed"), step("P31D", "arbitration", event="court")],
        until="P60D",
        **COLLECTIVE,
    )
    assert r["outcome"] == "redirected"
    one(r, "document", document="redirect_notice")


async def test_court_before_arbitration_fails_is_refused() -> None:
    r = await run([step("P1D", "arbitration", event="court")], until="P2D", **COLLECTIVE)
    assert "下一步只能是：仲裁立案。" in one(r, "rejected", action="arbitration")["error"]


async def test_arbitration_deadlines_fire_when_nothing_happens() -> None:
    r = await run([step("P2D", "accept", unit="青山区人社局")], until="P10D", **COLLECTIVE)
    one(r, "overdue", deadline="arbitration_filing")
    late = await run([step("P1D", "arbitration", event="filed"), step("P2D", "accept", unit="青山区人社局")], until="P60D", **COLLECTIVE)
    assert not kinds(late, "overdue", deadline="arbitration_filing")
    one(late, "overdue", deadline="arbitration_decision")


async def test_four_workers_are_not_collective_and_have_no_arbitration_track() -> None:
    r = await run([step("P1D", "arbitration", event="filed")], until="P2D", **{**COLLECTIVE, "worker_count": 4, "content": "公司拖欠我们4名工人工资共计2万元。"})
    assert not [e for e in kinds(r, "stage", stage="arbitration") if e.get("track")]
    assert "本案不在仲裁绿色通道上（仅适用于 5 名及以上劳动者" in one(r, "rejected", action="arbitration")["error"]


async def test_mediated_case_stops_its_arbitration_track() -> None:
    r = await run(
        [step("P1D", "accept", unit="青山区人社局"), step("P3D", "mediation_result", success=True, fulfilled=True)],
        until="P30D",
        **COLLECTIVE,
    )
    assert r["outcome"] == "mediated"
    assert not kinds(r, "overdue", deadline="arbitration_filing")
