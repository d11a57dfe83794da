"""The case's statutory clocks: deterministic computation over `ClockState`, nothing else.

A clock's due instant is always recomputed from its start, its rule, its extension days, its
pauses and the case's calendar (`rules.deadlines.compute_deadline`), never patched onto a timer.
Time is an argument (`now`): no workflow call here, so the functions run the same in a workflow,
a replay and a unit test. The petition workflow waits for `next_due(...)` and lapses what
`lapsed(...)` returns, in order of due instants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from rules.deadlines import HolidayCalendar, Pause, compute_deadline
from rules.lifecycle import PETITIONER_PERIODS
from rules.ruleset import RuleSet
from rules.vocabulary import DeadlineName
from workflows.models import ClockState, DeadlineView

Clocks = Mapping[DeadlineName, ClockState]

# Notices' own periods are computed when the notice is sent; a new calendar does not move them.
_NOT_RECOMPUTED_ON_RELOAD = frozenset({DeadlineName.notify_immediate, DeadlineName.notify_priority})


def arm(name: DeadlineName, started_at: datetime, rules: RuleSet, calendar: HolidayCalendar) -> ClockState:
    """A new running clock for period `name`, starting at `started_at`."""
    rule = rules.deadline(name)
    d = compute_deadline(started_at, rule.length, rule.unit, calendar)
    return ClockState(name=name, started_at=started_at, extra=0, due=d.due, provisional=d.provisional)


def recompute(clock: ClockState, rules: RuleSet, calendar: HolidayCalendar, now: datetime) -> None:
    """Its due instant again, from its start, rule, extension days, pauses and the calendar."""
    rule = rules.deadline(clock.name)
    open_pause = bool(clock.pauses) and clock.pauses[-1].end is None
    d = compute_deadline(
        clock.started_at,
        rule.length + clock.extra,
        rule.unit,
        calendar,
        pauses=clock.pauses,
        as_of=now if open_pause else None,
    )
    clock.due, clock.provisional = d.due, d.provisional


def finish(clock: ClockState | None) -> bool:
    """The period was met (a running or paused clock stops counting). True if that changed it."""
    if clock is not None and clock.status in ("running", "paused"):
        clock.status = "met"
        return True
    return False


def stop_all(clocks: Clocks) -> None:
    """The case closed: every clock still counting stops."""
    for clock in clocks.values():
        if clock.status in ("running", "paused"):
            clock.status = "stopped"


def pause(clock: ClockState, now: datetime) -> None:
    clock.pauses.append(Pause(start=now))
    clock.status = "paused"


def resume(clock: ClockState, rules: RuleSet, calendar: HolidayCalendar, now: datetime) -> None:
    clock.pauses[-1] = Pause(start=clock.pauses[-1].start, end=now)
    clock.status = "running"
    recompute(clock, rules, calendar, now)


def extend(clock: ClockState, days: int, rules: RuleSet, calendar: HolidayCalendar, now: datetime) -> None:
    clock.extra += days
    recompute(clock, rules, calendar, now)


def reload_calendar(clocks: Clocks, rules: RuleSet, calendar: HolidayCalendar, now: datetime) -> list[dict[str, str]]:
    """A new holiday calendar: every running period is recomputed; returns the ones that moved."""
    changed = []
    for clock in clocks.values():
        if clock.status == "running" and clock.name not in _NOT_RECOMPUTED_ON_RELOAD:
            before = clock.due
            recompute(clock, rules, calendar, now)
            if clock.due != before:
                changed.append({"deadline": clock.name.value, "due": clock.due.isoformat()})
    return changed


def running(clocks: Clocks) -> list[ClockState]:
    return [c for c in clocks.values() if c.status == "running"]


def next_due(clocks: Clocks) -> datetime | None:
    """The earliest due instant of the running clocks (what the workflow's timer waits for)."""
    return min((c.due for c in running(clocks)), default=None)


def by_due(clocks: Clocks) -> list[ClockState]:
    """Every clock in order of its due instant: the order in which lapsed ones are handled (each
    is checked again when its turn comes: handling one may close the case or stop others)."""
    return sorted(clocks.values(), key=lambda c: c.due)


def has_lapsed(clock: ClockState, now: datetime) -> bool:
    return clock.status == "running" and clock.due <= now


def petitioner_waits_on(clocks: Clocks) -> ClockState | None:
    """The next period the petitioner waits on (acceptance, mediation, handling, review…), if any."""
    waiting = [c for c in running(clocks) if c.name in PETITIONER_PERIODS]
    return min(waiting, key=lambda c: c.due, default=None)


def first_overdue(clocks: Clocks) -> ClockState | None:
    """The period that ran out first, of those still out."""
    return min((c for c in clocks.values() if c.status == "overdue"), key=lambda c: c.due, default=None)


def any_overdue(clocks: Clocks) -> bool:
    return any(c.status == "overdue" for c in clocks.values())


def overdue_names(clocks: Clocks) -> list[DeadlineName]:
    return [c.name for c in clocks.values() if c.status == "overdue"]


def paused_names(clocks: Clocks) -> frozenset[DeadlineName]:
    return frozenset(c.name for c in clocks.values() if c.status == "paused")


def running_due(clocks: Clocks) -> dict[DeadlineName, datetime]:
    return {c.name: c.due for c in running(clocks)}


def views(clocks: Iterable[ClockState]) -> list[DeadlineView]:
    return [
        DeadlineView(name=c.name, started_at=c.started_at, due=c.due, provisional=c.provisional, status=c.status)
        for c in clocks
    ]
