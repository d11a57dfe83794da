"""Deadline counting (rules/deadlines.py) and the holiday calendar data (rules/calendar/)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.deadlines import (
    DEFAULT_CALENDAR_PATH,
    SHANGHAI,
    CalendarSnapshot,
    Deadline,
    HolidayCalendar,
    Pause,
    compute_deadline,
    next_local_time,
)
from rules.vocabulary import DeadlineUnit

DAYS = DeadlineUnit.days
WORKING_DAYS = DeadlineUnit.working_days
CAL = HolidayCalendar.load(DEFAULT_CALENDAR_PATH)
WEEKENDS = HolidayCalendar.weekends_only()


def sh(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    """A Shanghai local time."""
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def end_of(d: date) -> datetime:
    """24:00 Shanghai of local day d, in UTC."""
    return datetime(d.year, d.month, d.day, 16, tzinfo=UTC)


def last_day(
    start: datetime, length: int, unit: DeadlineUnit = DAYS, pauses: Sequence[Pause] = ()
) -> date | None:
    return compute_deadline(start, length, unit, CAL, pauses).last_day


# -- the calendar data -----------------------------------------------------------------------------


def test_real_calendar_file_loads() -> None:
    assert CAL.name == "official"
    assert CAL.official_years == frozenset(range(2015, 2027))
    # Spring Festival 2026: rest 02-15..02-23, make-up working days 02-14 and 02-28 (Saturdays).
    assert all(CAL.is_rest_day(date(2026, 2, d)) for d in range(15, 24))
    assert not CAL.is_rest_day(date(2026, 2, 14))
    assert not CAL.is_rest_day(date(2026, 2, 28))
    assert not CAL.is_rest_day(date(2026, 2, 24))
    # National Day 2026: rest 10-01..10-07, make-up 09-20 (Sunday) and 10-10 (Saturday).
    assert all(CAL.is_rest_day(date(2026, 10, d)) for d in range(1, 8))
    assert not CAL.is_rest_day(date(2026, 9, 20))
    assert not CAL.is_rest_day(date(2026, 10, 10))
    assert CAL.is_rest_day(date(2026, 10, 11))  # an ordinary Sunday
    assert not CAL.is_provisional(date(2026, 12, 31))
    assert CAL.is_provisional(date(2027, 1, 1))


@pytest.mark.parametrize("year", [2025, 2026])
def test_seeded_calendar_agrees_with_chinese_calendar(year: int) -> None:
    d = date(year, 1, 1)
    while d.year == year:
        assert CAL.is_rest_day(d) == (not chinese_calendar.is_workday(d)), d
        d += timedelta(days=1)


def test_weekends_only_calendar() -> None:
    assert WEEKENDS.name == "weekends_only"
    assert WEEKENDS.is_rest_day(date(2026, 2, 14))  # a make-up working day elsewhere, a Saturday here
    assert not WEEKENDS.is_rest_day(date(2026, 10, 1))
    assert not WEEKENDS.is_provisional(date(2027, 1, 1))
    assert not WEEKENDS.is_provisional(date(2015, 1, 1))


def test_snapshot_roundtrip_json_and_pickle() -> None:
    snap = CAL.to_snapshot()
    again = CalendarSnapshot.model_validate_json(snap.model_dump_json())
    assert HolidayCalendar.from_snapshot(again) == CAL
    assert pickle.loads(pickle.dumps(CAL)) == CAL
    restored = pickle.loads(pickle.dumps(CAL))
    assert restored.is_rest_day(date(2026, 2, 17)) and not restored.is_rest_day(date(2026, 2, 14))

    small = CAL.to_snapshot(range(2026, 2028))
    assert small.official_years == [2026]
    assert "2026-02-17" in small.rest_days and "2026-02-14" in small.working_days
    assert not any(s.startswith("2025") for s in small.rest_days + small.working_days)
    limited = HolidayCalendar.from_snapshot(small)
    assert limited.is_rest_day(date(2026, 10, 5)) and limited.is_provisional(date(2025, 10, 1))

    w = HolidayCalendar.from_snapshot(
        CalendarSnapshot.model_validate_json(WEEKENDS.to_snapshot().model_dump_json())
    )
    assert w == WEEKENDS and not w.is_provisional(date(2030, 1, 1))


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "broken_calendar.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (  # 2027-01-04 is a Monday: cannot be a make-up working day
            '[years.2027]\nofficial = true\nrest_days = ["2027-01-01"]\nworking_days = ["2027-01-04"]\n',
            "working_days",
            "Monday",
        ),
        ('[years.2027]\nofficial = true\nrest_days = ["2027-02-30"]\n', "rest_days", "2027-02-30"),
        ('[years.2027]\nofficial = true\nrest_days = ["2027/10/01"]\n', "rest_days", "2027/10/01"),
        ('[years.2027]\nofficial = true\nrest_days = ["2026-10-01"]\n', "rest_days", "not in 2027"),
        ('[years.2027]\nrest_days = ["2027-10-01"]\n', "official", "true or false"),
        ('[years.2027]\nofficial = true\nrestdays = ["2027-10-01"]\n', "restdays", "unknown"),
        (
            '[years.2027]\nofficial = true\nrest_days = ["2027-10-09"]\nworking_days = ["2027-10-09"]\n',
            "working_days",
            "both",
        ),
    ],
)
def test_broken_calendar_names_file_year_and_field(
    tmp_path: Path, body: str, field: str, detail: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ValueError) as err:
        HolidayCalendar.load(path)
    message = str(err.value)
    assert str(path) in message
    assert "2027" in message
    assert field in message
    assert detail in message


def test_calendar_file_that_is_not_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "[years.2027\nofficial = true\n")
    with pytest.raises(ValueError, match="broken_calendar.toml: not valid TOML"):
        HolidayCalendar.load(path)


def test_adding_a_year_makes_it_official(tmp_path: Path) -> None:
    text = DEFAULT_CALENDAR_PATH.read_text(encoding="utf-8")
    text += '\n[years.2027]\nofficial = true\nrest_days = ["2027-01-01"]\nworking_days = []\n'
    cal = HolidayCalendar.load(_write(tmp_path, text))
    # 2026-12-25 + 7 days = Friday 2027-01-01: provisional (a working day) before, a holiday after.
    before = compute_deadline(sh(2026, 12, 25), 7, DAYS, CAL)
    after = compute_deadline(sh(2026, 12, 25), 7, DAYS, cal)
    assert (before.last_day, before.provisional) == (date(2027, 1, 1), True)
    assert (after.last_day, after.provisional) == (date(2027, 1, 4), False)


# -- day periods -----------------------------------------------------------------------------------


def test_seven_days_ending_in_spring_festival_roll_to_first_working_day() -> None:
    # 2026-02-10 + 7 = 02-17 (Spring Festival); 02-18..02-23 are rest days too.
    dl = compute_deadline(sh(2026, 2, 10), 7, DAYS, CAL)
    assert dl == Deadline(
        due=datetime(2026, 2, 24, 16, tzinfo=UTC), last_day=date(2026, 2, 24), provisional=False
    )
    assert dl.due == sh(2026, 2, 25, 0, 0)  # 24:00 on the 24th is 00:00 on the 25th, Shanghai


@pytest.mark.parametrize(
    ("start", "last"),
    [
        (date(2026, 2, 7), date(2026, 2, 14)),  # Saturday make-up working day: no roll
        (date(2026, 2, 21), date(2026, 2, 28)),  # Saturday make-up working day: no roll
        (date(2026, 9, 13), date(2026, 9, 20)),  # Sunday make-up working day: no roll
        (date(2026, 10, 3), date(2026, 10, 10)),  # Saturday make-up working day: no roll
        (date(2026, 1, 31), date(2026, 2, 9)),  # an ordinary Saturday rolls to Monday
    ],
)
def test_make_up_working_day_does_not_roll(start: date, last: date) -> None:
    assert last_day(sh(start.year, start.month, start.day), 7) == last


def test_start_day_is_not_counted() -> None:
    assert last_day(sh(2026, 3, 2, 0, 0), 1) == date(2026, 3, 3)
    assert last_day(sh(2026, 3, 2, 23, 59), 1) == date(2026, 3, 3)


def test_midnight_shanghai_separates_adjacent_start_days() -> None:
    before = datetime(2026, 3, 5, 15, 59, tzinfo=UTC)  # 23:59 Thursday 03-05 in Shanghai
    after = datetime(2026, 3, 5, 16, 1, tzinfo=UTC)  # 00:01 Friday 03-06 in Shanghai
    assert compute_deadline(before, 15, DAYS, CAL).last_day == date(2026, 3, 20)  # Friday
    assert compute_deadline(after, 15, DAYS, CAL).last_day == date(2026, 3, 23)  # Sat 21 -> Mon 23
    # the same instant written in another zone counts the same
    assert compute_deadline(before.astimezone(SHANGHAI), 15, DAYS, CAL).last_day == date(2026, 3, 20)


def test_fifteen_days_across_national_day() -> None:
    # registered on Sunday 09-20 (a make-up working day): 09-20 + 15 = 10-05, rest until 10-07.
    dl = compute_deadline(sh(2026, 9, 20), 15, DAYS, CAL)
    assert dl.last_day == date(2026, 10, 8) and dl.due == end_of(date(2026, 10, 8))
    assert last_day(sh(2026, 9, 16), 15) == date(2026, 10, 8)
    assert last_day(sh(2026, 9, 10), 15) == date(2026, 9, 28)  # Friday 09-25 (Mid-autumn) isn't the last day


# -- working-day periods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "length", "last"),
    [
        (date(2026, 2, 10), 5, date(2026, 2, 24)),  # 11, 12, 13, 14 (make-up Sat), 24
        (date(2026, 2, 13), 5, date(2026, 2, 27)),  # 14 (make-up Sat), 24, 25, 26, 27
        (date(2026, 2, 14), 1, date(2026, 2, 24)),  # start day (a working Saturday) not counted
        (date(2026, 9, 28), 5, date(2026, 10, 10)),  # 29, 30, 8, 9, 10 (make-up Sat)
        (date(2026, 9, 18), 1, date(2026, 9, 20)),  # 19 is a Saturday; 20 a make-up Sunday
        (date(2026, 3, 5), 5, date(2026, 3, 12)),  # 6, 9, 10, 11, 12: an ordinary weekend
    ],
)
def test_working_days(start: date, length: int, last: date) -> None:
    dl = compute_deadline(sh(start.year, start.month, start.day), length, WORKING_DAYS, CAL)
    assert dl.last_day == last and dl.due == end_of(last) and not dl.provisional


# -- minutes and hours -----------------------------------------------------------------------------


def test_minutes_and_hours_are_plain_durations() -> None:
    start = sh(2026, 2, 17, 23, 50)  # a holiday, late at night: irrelevant for durations
    dl = compute_deadline(start, 30, DeadlineUnit.minutes, CAL)
    assert dl == Deadline(due=datetime(2026, 2, 17, 16, 20, tzinfo=UTC), last_day=None, provisional=False)
    assert dl.due.tzinfo is UTC
    assert compute_deadline(start, 2, DeadlineUnit.hours, CAL).due == start + timedelta(hours=2)
    assert not compute_deadline(sh(2026, 12, 31, 23, 0), 120, DeadlineUnit.minutes, CAL).provisional


# -- pauses ----------------------------------------------------------------------------------------


def test_pause_extends_day_period() -> None:
    start = sh(2026, 3, 2)  # Monday; 15 days -> Tuesday 03-17
    assert last_day(start, 15) == date(2026, 3, 17)
    fifty_one_hours = Pause(start=sh(2026, 3, 5, 9), end=sh(2026, 3, 7, 12))
    assert last_day(start, 15, pauses=[fifty_one_hours]) == date(2026, 3, 20)  # 3 days more
    one_hour = Pause(start=sh(2026, 3, 5, 9), end=sh(2026, 3, 5, 10))
    assert last_day(start, 15, pauses=[one_hour]) == date(2026, 3, 18)  # any pause adds a whole day
    one_day = Pause(start=sh(2026, 3, 5, 9), end=sh(2026, 3, 6, 9))
    assert last_day(start, 15, pauses=[one_day]) == date(2026, 3, 18)  # exactly 24 h: one day
    # two pauses add up: 20 h + 20 h -> 2 days
    two = [
        Pause(start=sh(2026, 3, 3, 0), end=sh(2026, 3, 3, 20)),
        Pause(start=sh(2026, 3, 5, 0), end=sh(2026, 3, 5, 20)),
    ]
    assert last_day(start, 15, pauses=two) == date(2026, 3, 19)


def test_pause_is_clipped_to_start_and_overlaps_merged() -> None:
    start = sh(2026, 3, 2, 10)
    before = Pause(start=sh(2026, 3, 1, 9), end=sh(2026, 3, 2, 9))
    assert last_day(start, 15, pauses=[before]) == date(2026, 3, 17)
    straddling = Pause(start=sh(2026, 3, 1, 9), end=sh(2026, 3, 2, 12))  # 2 h after start count
    assert last_day(start, 15, pauses=[straddling]) == date(2026, 3, 18)
    same = Pause(start=sh(2026, 3, 5, 0), end=sh(2026, 3, 6, 0))
    assert last_day(start, 15, pauses=[same, same]) == date(2026, 3, 18)  # not 2 days


def test_pause_that_pushes_into_a_holiday_rolls() -> None:
    # 02-03 + 10 = 02-13 (Friday, working); a 4-day pause pushes it to 02-17 -> 02-24.
    start = sh(2026, 2, 3)
    assert last_day(start, 10) == date(2026, 2, 13)
    assert last_day(start, 10, pauses=[Pause(start=sh(2026, 2, 5), end=sh(2026, 2, 9))]) == date(2026, 2, 24)


def test_open_pause_runs_until_as_of() -> None:
    start = sh(2026, 3, 2)
    pause = Pause(start=sh(2026, 3, 5, 9))
    dl = compute_deadline(start, 15, DAYS, CAL, [pause], as_of=sh(2026, 3, 6, 9))
    assert dl.paused and dl.last_day == date(2026, 3, 18)
    later = compute_deadline(start, 15, DAYS, CAL, [pause], as_of=sh(2026, 3, 6, 9, 1))
    assert later.paused and later.last_day == date(2026, 3, 19)
    # resumed: the same as a closed pause, and no longer paused
    closed = compute_deadline(start, 15, DAYS, CAL, [Pause(start=sh(2026, 3, 5, 9), end=sh(2026, 3, 6, 9))])
    assert not closed.paused and closed.last_day == date(2026, 3, 18)
    with pytest.raises(ValueError, match="as_of"):
        compute_deadline(start, 15, DAYS, CAL, [pause])


def test_pause_on_minutes() -> None:
    start = sh(2026, 3, 2, 10)
    pause = Pause(start=sh(2026, 3, 2, 10, 30), end=sh(2026, 3, 2, 10, 50))
    assert compute_deadline(start, 120, DeadlineUnit.minutes, CAL, [pause]).due == sh(2026, 3, 2, 12, 20)
    open_ = compute_deadline(
        start,
        30,
        DeadlineUnit.minutes,
        CAL,
        [Pause(start=sh(2026, 3, 2, 10, 10))],
        as_of=sh(2026, 3, 2, 10, 25),
    )
    assert open_.paused and open_.due == sh(2026, 3, 2, 10, 45)


def test_pause_on_working_days() -> None:
    start = sh(2026, 3, 2)  # Monday; 5 working days -> Monday 03-09
    wd = DeadlineUnit.working_days
    assert last_day(start, 5, wd) == date(2026, 3, 9)
    # Friday 18:00 -> Monday 09:00: 6 h + 9 h on working days -> one working day more
    p = Pause(start=sh(2026, 3, 6, 18), end=sh(2026, 3, 9, 9))
    assert last_day(start, 5, wd, pauses=[p]) == date(2026, 3, 10)
    # entirely on a weekend: nothing
    p = Pause(start=sh(2026, 3, 7, 10), end=sh(2026, 3, 8, 10))
    assert last_day(start, 5, wd, pauses=[p]) == date(2026, 3, 9)
    # two whole working days
    p = Pause(start=sh(2026, 3, 3, 0), end=sh(2026, 3, 5, 0))
    assert last_day(start, 5, wd, pauses=[p]) == date(2026, 3, 11)
    # across Spring Festival: only 02-13 (Fri) and 02-14 (make-up Sat) are working time -> +2,
    # so 1 + 2 working days after 02-12: 13, 14, 24
    p = Pause(start=sh(2026, 2, 13, 0), end=sh(2026, 2, 24, 0))
    assert last_day(sh(2026, 2, 12), 1, wd) == date(2026, 2, 13)
    assert last_day(sh(2026, 2, 12), 1, wd, pauses=[p]) == date(2026, 2, 24)
    p = Pause(start=sh(2026, 2, 13, 0), end=sh(2026, 2, 24, 0, 1))  # one minute into 02-24: +3
    assert last_day(sh(2026, 2, 12), 1, wd, pauses=[p]) == date(2026, 2, 25)


def test_pause_validation() -> None:
    with pytest.raises(ValueError):
        Pause(start=datetime(2026, 3, 2, 10))  # naive
    with pytest.raises(ValueError):
        Pause(start=sh(2026, 3, 2, 10), end=sh(2026, 3, 2, 9))


# -- provisional -----------------------------------------------------------------------------------


def test_provisional_in_an_unpublished_year() -> None:
    dl = compute_deadline(sh(2026, 12, 20), 15, DAYS, CAL)  # -> Monday 2027-01-04
    assert dl.last_day == date(2027, 1, 4) and dl.provisional
    assert not compute_deadline(sh(2026, 12, 10), 15, DAYS, CAL).provisional
    assert compute_deadline(sh(2026, 12, 30), 1, WORKING_DAYS, CAL).last_day == date(2026, 12, 31)
    assert not compute_deadline(sh(2026, 12, 30), 1, WORKING_DAYS, CAL).provisional
    assert compute_deadline(sh(2026, 12, 30), 2, WORKING_DAYS, CAL).provisional
    # the start day itself is not looked at
    # 2015-01-01 + 01-02 New Year, 01-03 Saturday, 01-04 a make-up working Sunday
    assert compute_deadline(sh(2014, 12, 31), 1, DAYS, CAL).last_day == date(2015, 1, 4)
    assert not compute_deadline(sh(2014, 12, 31), 1, DAYS, CAL).provisional
    # weekends_only is a choice, not a gap: never provisional
    w = compute_deadline(sh(2026, 12, 20), 15, DAYS, WEEKENDS)
    assert w.last_day == date(2027, 1, 4) and not w.provisional


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, -1])
def test_non_positive_length(length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        compute_deadline(sh(2026, 3, 2), length, DAYS, CAL)


def test_naive_datetimes_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(datetime(2026, 3, 2, 10), 15, DAYS, CAL)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_deadline(
            sh(2026, 3, 2), 15, DAYS, CAL, [Pause(start=sh(2026, 3, 3))], as_of=datetime(2026, 3, 4)
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        next_local_time(datetime(2026, 3, 2, 10), 9, 0)


# -- next day's batch ------------------------------------------------------------------------------


def test_next_local_time() -> None:
    assert next_local_time(sh(2026, 3, 2, 8, 0), 9, 0) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert next_local_time(sh(2026, 3, 2, 0, 30), 9, 0) == sh(2026, 3, 3, 9, 0)  # never the same day
    assert next_local_time(sh(2026, 3, 2, 23, 59), 9, 0) == sh(2026, 3, 3, 9, 0)
    # 16:30 UTC on 03-02 is already 00:30 on 03-03 in Shanghai
    assert next_local_time(datetime(2026, 3, 2, 16, 30, tzinfo=UTC), 9, 0) == sh(2026, 3, 4, 9, 0)
    assert next_local_time(sh(2026, 12, 31, 12), 9, 0).tzinfo is UTC
    assert next_local_time(sh(2026, 12, 31, 12), 9, 0) == sh(2027, 1, 1, 9, 0)
    with pytest.raises(ValueError):
        next_local_time(sh(2026, 3, 2), 24, 0)


# -- serialisation and purity ----------------------------------------------------------------------


def test_deadline_json_roundtrip() -> None:
    dl = compute_deadline(sh(2026, 2, 10), 7, DAYS, CAL)
    assert Deadline.model_validate_json(dl.model_dump_json()) == dl
    assert dl.model_dump(mode="json")["last_day"] == "2026-02-24"


@pytest.mark.parametrize("frozen_at", ["2020-01-01 12:00:00", "2031-07-15 03:00:00"])
def test_independent_of_system_clock(frozen_at: str) -> None:
    with freeze_time(frozen_at):
        got = (
            compute_deadline(sh(2026, 2, 10), 7, DAYS, CAL),
            compute_deadline(sh(2026, 9, 28), 5, WORKING_DAYS, CAL),
            compute_deadline(sh(2026, 12, 20), 15, DAYS, CAL),
            compute_deadline(
                sh(2026, 3, 2), 15, DAYS, CAL, [Pause(start=sh(2026, 3, 5, 9))], as_of=sh(2026, 3, 6, 9)
            ),
            next_local_time(sh(2026, 3, 2, 8), 9, 0),
        )
    assert got == (
        Deadline(due=end_of(date(2026, 2, 24)), last_day=date(2026, 2, 24), provisional=False),
        Deadline(due=end_of(date(2026, 10, 10)), last_day=date(2026, 10, 10), provisional=False),
        Deadline(due=end_of(date(2027, 1, 4)), last_day=date(2027, 1, 4), provisional=True),
        Deadline(due=end_of(date(2026, 3, 18)), last_day=date(2026, 3, 18), provisional=False, paused=True),
        datetime(2026, 3, 3, 1, 0, tzinfo=UTC),
    )


# -- properties ------------------------------------------------------------------------------------

starts = st.datetimes(
    min_value=datetime(2015, 1, 1), max_value=datetime(2026, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)
lengths = st.integers(min_value=1, max_value=90)


def _local_date(dt: datetime) -> date:
    return dt.astimezone(SHANGHAI).date()


@settings(max_examples=300, deadline=None)
@given(start=starts, length=lengths)
def test_property_day_periods(start: datetime, length: int) -> None:
    dl = compute_deadline(start, length, DAYS, CAL)
    assert dl.last_day is not None
    assert dl.due.tzinfo is UTC and dl.due.time() == time(16, 0)
    assert dl.due.date() == dl.last_day
    assert not CAL.is_rest_day(dl.last_day)
    nominal = _local_date(start) + timedelta(days=length)
    assert dl.last_day >= nominal
    d = nominal
    while d < dl.last_day:  # rollover goes to the FIRST working day
        assert CAL.is_rest_day(d)
        d += timedelta(days=1)
    assert dl.provisional == (dl.last_day.year > 2026)


@settings(max_examples=300, deadline=None)
@given(start=starts, length=lengths)
def test_property_working_day_periods(start: datetime, length: int) -> None:
    dl = compute_deadline(start, length, WORKING_DAYS, CAL)
    assert dl.last_day is not None
    assert (dl.due.hour, dl.due.minute) == (16, 0) and dl.due.date() == dl.last_day
    assert not CAL.is_rest_day(dl.last_day)
    d, count = _local_date(start), 0
    while d < dl.last_day:
        d += timedelta(days=1)
        count += not CAL.is_rest_day(d)
    assert count == length


@settings(max_examples=200, deadline=None)
@given(
    start=starts,
    length=lengths,
    unit=st.sampled_from(list(DeadlineUnit)),
    offset=st.integers(min_value=-3 * 86400, max_value=40 * 86400),
    duration=st.integers(min_value=0, max_value=20 * 86400),
)
def test_property_a_pause_never_shortens(
    start: datetime, length: int, unit: DeadlineUnit, offset: int, duration: int
) -> None:
    p_start = start + timedelta(seconds=offset)
    pause = Pause(start=p_start, end=p_start + timedelta(seconds=duration))
    plain = compute_deadline(start, length, unit, CAL)
    paused = compute_deadline(start, length, unit, CAL, [pause])
    assert paused.due >= plain.due
    if offset >= 0 and duration > 0:
        if unit in (DeadlineUnit.minutes, DeadlineUnit.hours):
            assert paused.due == plain.due + timedelta(seconds=duration)
        elif unit == DeadlineUnit.days:  # at least one more day is counted before the rollover
            assert paused.last_day is not None and plain.last_day is not None
            assert paused.last_day >= _local_date(start) + timedelta(days=length + 1)
