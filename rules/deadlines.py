"""Counting deadlines the way Chinese law counts periods (Civil Code arts. 201-203).

Pure: no I/O, no clock, no time-zone database at call time (only `HolidayCalendar.load` reads a
file). Safe to call from Temporal workflow code; the calendar travels in the workflow input as a
`CalendarSnapshot`.

- the day of the triggering event is not counted;
- a day period ends at 24:00 Asia/Shanghai of its last day; a last day that is a rest day (a
  weekend or a statutory holiday) rolls to the next working day; a make-up working weekend day
  (调休上班) is a working day;
- a working-day period counts working days after the start day;
- minute and hour periods are plain durations;
- a pause (e.g. waiting for the petitioner's materials) extends the period by the paused time.

Time zone: Asia/Shanghai has been a fixed UTC+8 with no daylight saving since 1991, so `SHANGHAI`
is a fixed offset rather than a zoneinfo zone; this keeps the hot path free of tz-database
look-ups (and of the tzdata files). Instants before 1991 are therefore read as UTC+8 too.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator

from rules.vocabulary import DeadlineUnit

__all__ = [
    "DEFAULT_CALENDAR_PATH",
    "SHANGHAI",
    "WEEKENDS_ONLY",
    "CalendarFileError",
    "CalendarSnapshot",
    "Deadline",
    "HolidayCalendar",
    "Pause",
    "compute_deadline",
    "next_local_time",
]

# Fixed UTC+8: Asia/Shanghai has had no DST and no offset change since 1991 (see module docstring).
SHANGHAI = timezone(timedelta(hours=8), "CST")

DEFAULT_CALENDAR_PATH = Path(__file__).resolve().parent / "calendar" / "cn_holidays.toml"
WEEKENDS_ONLY = "weekends_only"
OFFICIAL = "official"

_DAY = timedelta(days=1)
_OFFSET = timedelta(hours=8)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CalendarFileError(ValueError):
    """A calendar file that cannot be used; the message names the file, the year and the field."""


class CalendarSnapshot(BaseModel):
    """A calendar as plain JSON data, to travel inside a Temporal workflow input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    official_years: list[int]
    rest_days: list[str]  # ISO dates
    working_days: list[str]  # ISO dates


@dataclass(frozen=True)
class HolidayCalendar:
    """Which days are rest days.

    A day is a rest day if it is a Saturday or Sunday and not a make-up working day, or if it is
    a listed weekday rest day. Years in `official_years` follow a State Council schedule; any
    other year is *provisional* (weekends only, until its schedule is added) — except for the
    deliberate `weekends_only()` calendar, which is never provisional.
    """

    rest_days: frozenset[date] = frozenset()  # weekday rest days (holidays, substitute days off)
    working_days: frozenset[date] = frozenset()  # make-up working weekend days (调休上班)
    official_years: frozenset[int] = frozenset()
    name: str = OFFICIAL
    # Derived, for speed: ordinals whose status differs from the plain weekend rule.
    _flipped: frozenset[int] = field(init=False, repr=False, compare=False, default=frozenset())
    _never_provisional: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        for attr in ("rest_days", "working_days", "official_years"):
            value = getattr(self, attr)
            if not isinstance(value, frozenset):
                object.__setattr__(self, attr, frozenset(value))
        bad = sorted(d for d in self.working_days if d.weekday() < 5)
        if bad:
            raise ValueError(
                f"calendar {self.name!r}: make-up working days must be Saturdays or Sundays, not "
                + ", ".join(f"{d.isoformat()} ({_WEEKDAY_NAMES[d.weekday()]})" for d in bad)
            )
        both = sorted(self.rest_days & self.working_days)
        if both:
            raise ValueError(
                f"calendar {self.name!r}: listed both as rest day and as working day: "
                + ", ".join(d.isoformat() for d in both)
            )
        if self.name == WEEKENDS_ONLY and (self.rest_days or self.working_days or self.official_years):
            raise ValueError(f"calendar {WEEKENDS_ONLY!r} must list no days and no official years")
        flipped = {d.toordinal() for d in self.rest_days if d.weekday() < 5}
        flipped |= {d.toordinal() for d in self.working_days}
        object.__setattr__(self, "_flipped", frozenset(flipped))
        object.__setattr__(self, "_never_provisional", self.name == WEEKENDS_ONLY)

    # -- queries ---------------------------------------------------------------------------------

    def _rest_ordinal(self, o: int) -> bool:
        # date.toordinal(): 0001-01-01 (a Monday) is 1, so o % 7 == 6 is a Saturday, 0 a Sunday.
        return (o % 7 in (0, 6)) != (o in self._flipped)

    def is_rest_day(self, d: date) -> bool:
        return self._rest_ordinal(d.toordinal())

    def is_provisional(self, d: date) -> bool:
        return not self._never_provisional and d.year not in self.official_years

    def _span_provisional(self, first: int, last: int) -> bool:
        """Whether any day with ordinal in [first, last] lies in a non-official year."""
        if self._never_provisional:
            return False
        y0 = date.fromordinal(first).year
        y1 = date.fromordinal(last).year
        years = self.official_years
        if y0 == y1:
            return y0 not in years
        return any(y not in years for y in range(y0, y1 + 1))

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def weekends_only(cls) -> HolidayCalendar:
        """Saturdays and Sundays only, by choice: never provisional."""
        return cls(name=WEEKENDS_ONLY)

    @classmethod
    def load(cls, path: Path) -> HolidayCalendar:
        """Parse a calendar TOML file (format: rules/calendar/cn_holidays.toml).

        Raises `CalendarFileError` (a ValueError) naming the file, the year and the field.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CalendarFileError(f"{path}: cannot read the calendar file: {exc}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CalendarFileError(f"{path}: not valid TOML: {exc}") from exc
        return cls._from_toml_data(data, str(path))

    @classmethod
    def _from_toml_data(cls, data: dict[str, Any], source: str) -> HolidayCalendar:
        unknown = sorted(set(data) - {"meta", "years"})
        if unknown:
            raise CalendarFileError(
                f"{source}: unknown top-level key(s) {unknown}; expected [meta] and [years.YYYY]"
            )
        if "meta" in data and not isinstance(data["meta"], dict):
            raise CalendarFileError(f"{source}: 'meta' must be a table")
        years = data.get("years")
        if not isinstance(years, dict) or not years:
            raise CalendarFileError(f"{source}: no [years.YYYY] sections")
        rest: set[date] = set()
        work: set[date] = set()
        official: set[int] = set()
        for key, section in years.items():
            if not re.fullmatch(r"\d{4}", key) or not 1991 <= int(key) <= 2999:
                raise CalendarFileError(
                    f"{source}: [years.{key}]: the section name must be a year, e.g. [years.2027]"
                )
            year = int(key)
            where = f"{source}: year {year}"
            if not isinstance(section, dict):
                raise CalendarFileError(f"{where}: must be a table [years.{year}]")
            extra = sorted(set(section) - {"official", "rest_days", "working_days"})
            if extra:
                raise CalendarFileError(
                    f"{where}: unknown field(s) {extra}; expected official, rest_days, working_days"
                )
            flag = section.get("official")
            if not isinstance(flag, bool):
                raise CalendarFileError(
                    f"{where}, field 'official': must be true or false "
                    f"(true once the State Council schedule for {year} is entered)"
                )
            year_rest = _parse_days(section.get("rest_days", []), year, f"{where}, field 'rest_days'")
            year_work = _parse_days(section.get("working_days", []), year, f"{where}, field 'working_days'")
            for d in year_work:
                if d.weekday() < 5:
                    raise CalendarFileError(
                        f"{where}, field 'working_days': {d.isoformat()} is a {_WEEKDAY_NAMES[d.weekday()]}; "
                        "a make-up working day (调休上班) must be a Saturday or Sunday"
                    )
            both = sorted(set(year_rest) & set(year_work))
            if both:
                raise CalendarFileError(
                    f"{where}, fields 'rest_days' and 'working_days': "
                    f"{', '.join(d.isoformat() for d in both)} listed in both"
                )
            rest.update(year_rest)
            work.update(year_work)
            if flag:
                official.add(year)
        return cls(frozenset(rest), frozenset(work), frozenset(official), OFFICIAL)

    def to_snapshot(self, years: range | None = None) -> CalendarSnapshot:
        """A compact JSON-able copy, optionally limited to `years` (e.g. range(2026, 2028))."""

        def keep(d: date) -> bool:
            return years is None or d.year in years

        return CalendarSnapshot(
            name=self.name,
            official_years=sorted(y for y in self.official_years if years is None or y in years),
            rest_days=sorted(d.isoformat() for d in self.rest_days if keep(d)),
            working_days=sorted(d.isoformat() for d in self.working_days if keep(d)),
        )

    @classmethod
    def from_snapshot(cls, snap: CalendarSnapshot) -> HolidayCalendar:
        return cls(
            rest_days=frozenset(date.fromisoformat(s) for s in snap.rest_days),
            working_days=frozenset(date.fromisoformat(s) for s in snap.working_days),
            official_years=frozenset(snap.official_years),
            name=snap.name,
        )


def _parse_days(value: object, year: int, where: str) -> list[date]:
    if not isinstance(value, list):
        raise CalendarFileError(f'{where}: must be a list of dates like ["{year}-10-01"]')
    out: list[date] = []
    seen: set[date] = set()
    for item in value:
        if isinstance(item, datetime) or not isinstance(item, str | date):
            raise CalendarFileError(f"{where}: {item!r} is not a date written YYYY-MM-DD")
        if isinstance(item, str):
            try:
                if not _ISO_DATE.fullmatch(item):
                    raise ValueError
                d = date.fromisoformat(item)
            except ValueError:
                raise CalendarFileError(f"{where}: {item!r} is not a valid date written YYYY-MM-DD") from None
        else:
            d = item
        if d.year != year:
            raise CalendarFileError(f"{where}: {d.isoformat()} is not in {year}")
        if d in seen:
            raise CalendarFileError(f"{where}: {d.isoformat()} is listed twice")
        seen.add(d)
        out.append(d)
    return out


class Pause(BaseModel):
    """A clock pause, e.g. waiting for the petitioner's materials. `end=None`: still paused."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Pause:
        if self.end is not None and self.end < self.start:
            raise ValueError("a pause cannot end before it starts")
        return self


class Deadline(BaseModel):
    """A computed deadline.

    `due` is an aware UTC instant; for day and working-day units it is 24:00 Asia/Shanghai of
    `last_day`, i.e. 16:00 UTC of that day. With a pause still open (`paused=True`), `due` is
    computed as if the pause ended at `as_of`: it moves later as the pause goes on.
    """

    model_config = ConfigDict(frozen=True)

    due: AwareDatetime
    last_day: date | None
    provisional: bool
    paused: bool = False


def _require_aware(value: datetime, what: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")


def _paused_spans(
    start: datetime, pauses: Iterable[Pause], as_of: datetime | None
) -> tuple[list[tuple[datetime, datetime]], bool]:
    """The paused spans clipped to [start, ...), merged where they overlap, and whether one is open."""
    spans: list[tuple[datetime, datetime]] = []
    still_open = False
    for p in pauses:
        end = p.end
        if end is None:
            if as_of is None:
                raise ValueError("a pause is still open: pass as_of (the time to count it up to)")
            still_open = True
            end = as_of
        begin = p.start if p.start > start else start
        if end > begin:
            spans.append((begin, end))
    spans.sort()
    merged: list[tuple[datetime, datetime]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return merged, still_open


def _ceil_days(span: timedelta) -> int:
    return -((-span) // _DAY)


def _local_day_start_utc(o: int) -> datetime:
    """00:00 Asia/Shanghai of the local day with ordinal `o`, as a UTC instant."""
    return datetime.fromordinal(o).replace(tzinfo=UTC) - _OFFSET


def _working_time(calendar: HolidayCalendar, begin: datetime, end: datetime) -> timedelta:
    """How much of [begin, end) falls on working days (local Asia/Shanghai days)."""
    total = timedelta()
    o = begin.astimezone(SHANGHAI).toordinal()
    last = end.astimezone(SHANGHAI).toordinal()
    while o <= last:
        if not calendar._rest_ordinal(o):
            day_start = _local_day_start_utc(o)
            lo = max(begin, day_start)
            hi = min(end, day_start + _DAY)
            if hi > lo:
                total += hi - lo
        o += 1
    return total


def compute_deadline(
    start: datetime,
    length: int,
    unit: DeadlineUnit,
    calendar: HolidayCalendar,
    pauses: Sequence[Pause] = (),
    as_of: datetime | None = None,
) -> Deadline:
    """When a period of `length` `unit`s that starts at `start` ends.

    - days: the start day (in Asia/Shanghai) is not counted; the last day is start day + length,
      rolled forward to the first working day if it is a rest day; due 24:00 of the last day.
    - working_days: the `length`-th working day after the start day; due 24:00 of that day.
    - minutes / hours: due = start + length, exactly.

    Pauses are clipped to begin no earlier than `start`, overlapping pauses are merged, and an
    open pause (end None) is counted up to `as_of` (required then; the result has paused=True).
    - minutes / hours: the exact total paused time is added.
    - days: ceil(total paused time / 24 h) calendar days are added to `length` before the
      rollover (so any pause, however short, adds at least one day).
    - working_days: for each (merged) pause, the time it spends on working days (local
      Asia/Shanghai days that are not rest days) is measured, divided by 24 h and rounded up;
      these whole working days are added to `length`. A pause lying entirely on rest days adds
      nothing; a pause of two hours on a Monday adds one working day; Friday 18:00 to Monday
      09:00 spends 6 h + 9 h on working days and adds one.

    `provisional` is True when any day from start day + 1 to the last day lies in a year that
    is not official in `calendar` (never for `HolidayCalendar.weekends_only()`, or for minutes
    and hours, which look at no day). Raises ValueError on naive datetimes or length <= 0.
    """
    _require_aware(start, "start")
    if as_of is not None:
        _require_aware(as_of, "as_of")
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ValueError(f"length must be a positive whole number, not {length!r}")

    if pauses:
        spans, still_open = _paused_spans(start, pauses, as_of)
    else:
        spans, still_open = [], False

    if unit == DeadlineUnit.minutes or unit == DeadlineUnit.hours:
        duration = timedelta(minutes=length) if unit == DeadlineUnit.minutes else timedelta(hours=length)
        for begin, end in spans:
            duration += end - begin
        return Deadline.model_construct(
            due=(start + duration).astimezone(UTC), last_day=None, provisional=False, paused=still_open
        )

    start_ord = start.astimezone(SHANGHAI).toordinal()
    rest = calendar._rest_ordinal
    if unit == DeadlineUnit.days:
        extra = _ceil_days(sum((end - begin for begin, end in spans), timedelta())) if spans else 0
        o = start_ord + length + extra
        while rest(o):
            o += 1
    elif unit == DeadlineUnit.working_days:
        n = length
        for begin, end in spans:
            n += _ceil_days(_working_time(calendar, begin, end))
        o = start_ord
        while n:
            o += 1
            if not rest(o):
                n -= 1
    else:
        raise ValueError(f"unknown deadline unit {unit!r}")

    last = date.fromordinal(o)
    return Deadline.model_construct(
        due=datetime(last.year, last.month, last.day, 16, tzinfo=UTC),  # 24:00 Shanghai
        last_day=last,
        provisional=calendar._span_provisional(start_ord + 1, o),
        paused=still_open,
    )


def next_local_time(after: datetime, hh: int, mm: int) -> datetime:
    """HH:MM Asia/Shanghai on the calendar day after `after`'s local day, as a UTC instant.

    Used for the next day's batch (次日批量分转): always the next calendar day, even if HH:MM of
    `after`'s own day is still ahead.
    """
    _require_aware(after, "after")
    if not (0 <= hh <= 23 and 0 <= mm <= 59):
        raise ValueError(f"not a time of day: {hh:02d}:{mm:02d}")
    d = date.fromordinal(after.astimezone(SHANGHAI).toordinal() + 1)
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=SHANGHAI).astimezone(UTC)
