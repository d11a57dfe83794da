"""Moving deadlines: a pause while waiting for the petitioner extends a period by the paused time,
and a newly published holiday schedule recomputes provisional deadlines of running cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.desk import load_calendar, parse_intake, published_calendar_snapshot, register
from engine.scenario import SCENARIO_DESK, act_scripted
from rules.deadlines import SHANGHAI, CalendarSnapshot, HolidayCalendar
from rules.vocabulary import DeadlineName
from tests.conftest import Harness
from tests.scenario_helpers import RULES, WEEKENDS, kinds, offset, one, petition, run, step


async def test_a_paused_handling_period_is_extended_by_the_pause() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P10D", "pause_clock", deadline="handling", reason="等待信访人补充劳动合同"),
            step("P30D", "resume_clock", deadline="handling"),
        ],
        until="P90D",
    )
    accepted = datetime.fromisoformat(one(r, "stage", stage="accepted")["at"])
    paused = datetime.fromisoformat(one(r, "info", clock_paused="handling")["at"])
    resumed = datetime.fromisoformat(one(r, "info", clock_resumed="handling")["at"])
    # 20 days paused: the period runs 60 + 20 days (then rolls past a weekend if need be)
    from rules.deadlines import Pause, compute_deadline

    rule = RULES.deadline(DeadlineName.handling)
    expected = compute_deadline(accepted, rule.length, rule.unit, WEEKENDS, pauses=[Pause(start=paused, end=resumed)]).due
    assert expected - accepted >= timedelta(days=80)
    assert one(r, "overdue", deadline="handling")["offset_s"] == offset(r, expected)


async def test_no_overdue_while_paused() -> None:
    r = await run(
        [step("P1D", "accept", unit="青山区人社局", disputed_amount=90000), step("P50D", "pause_clock", deadline="handling")],
        until="P120D",
    )
    assert not kinds(r, "overdue", deadline="handling")


async def test_pause_refused_for_the_petitioners_window_and_resume_when_not_paused() -> None:
    r = await run(
        [
            step("P1D", "accept", unit="青山区人社局", disputed_amount=90000),
            step("P2D", "resume_clock", deadline="handling"),
            step("P3D", "issue_opinion", text="意见"),
            step("P4D", "pause_clock", deadline="review_request"),
        ],
        until="P5D",
    )
    errors = {e["action"]: e["error"] for e in kinds(r, "rejected")}
    assert errors["resume_clock"] == "办理期限没有暂停，无需恢复。"
    assert errors["pause_clock"] == "只有这些期限可以暂停计时：受理期限、办理期限、复核期限、复查期限。"


async def test_publishing_next_years_schedule_recomputes_provisional_deadlines(harness: Harness, tmp_path: Path) -> None:
    h = harness
    # A calendar file whose schedules stop long ago, so this case's deadlines are provisional
    # whatever the day the test runs.
    (tmp_path / "old.toml").write_text('[years.2015]\nofficial = true\nrest_days = ["2015-01-01"]\nworking_days = []\n')
    h.settings.calendar_file = tmp_path / "old.toml"
    official = load_calendar(h.settings)
    reg = await register(h.env.client, h.settings, parse_intake(petition(disputed_amount=90000)), task_queue=h.task_queue, actor=SCENARIO_DESK)
    handle = h.env.client.get_workflow_handle(reg.case_id)
    for _ in range(100):
        if (await handle.query("state"))["stage"] != "registered":
            break
        await h.env.sleep(timedelta(seconds=1))
    await act_scripted(h.env.client, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"})
    state = await handle.query("state")
    handling = next(d for d in state["deadlines"] if d["name"] == "handling")
    due = datetime.fromisoformat(handling["due"])
    last_day = (due - timedelta(seconds=1)).astimezone(SHANGHAI).date()
    assert handling["provisional"] is True
    # The next year's schedule arrives, making the provisional last day a holiday.
    year = last_day.year
    rest = {last_day + timedelta(days=i) for i in range(3) if (last_day + timedelta(days=i)).weekday() < 5}
    published = HolidayCalendar(
        rest_days=frozenset(official.rest_days | rest),
        working_days=official.working_days,
        official_years=frozenset(official.official_years | {year - 1, year}),
        name=official.name,
    )
    # The operator adds it to the calendar file, then pushes (what `starter.py calendar push` sends).
    lines = []
    for y in sorted(published.official_years):
        rests = sorted(d.isoformat() for d in published.rest_days if d.year == y)
        lines.append(f"[years.{y}]\nofficial = true\nrest_days = {rests!r}\nworking_days = []\n".replace("'", '"'))
    h.settings.calendar_file.write_text("\n".join(lines))
    snapshot: CalendarSnapshot = published_calendar_snapshot(h.settings)
    await handle.signal("reload_calendar", snapshot)
    await h.env.sleep(timedelta(seconds=1))
    state = await handle.query("state")
    handling = next(d for d in state["deadlines"] if d["name"] == "handling")
    new_due = datetime.fromisoformat(handling["due"])
    assert handling["provisional"] is False
    assert new_due > due
    assert (new_due - timedelta(seconds=1)).astimezone(SHANGHAI).date() not in rest
    one(await _timeline(handle), "info", calendar_reloaded=True)


async def _timeline(handle: Any) -> dict[str, Any]:
    t = await handle.query("timeline")
    return {"events": [{"kind": e["kind"], **e["data"]} for e in t["events"]]}
