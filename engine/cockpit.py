"""The supervision cockpit's figures (数据驾驶舱): SQL aggregates over the engine's read model.

Never scans Temporal: every figure comes from the tables the workflows keep (activities/db.py),
whose cockpit columns are projected from each case's timeline as it is saved. The web app
(engine/web.py), the monthly brief (engine/brief.py) and bench/cockpit.py all read them here.

How each figure is counted (docs/cockpit.md says the same for a reader of the cockpit):
- a period is a calendar month, quarter or year in Asia/Shanghai;
- registrations (登记) are the intakes in the period: a new case or another visit on an open one,
  as batches (批次) and person-times (人次); repeat (重复) means an earlier case on the same matter;
- case figures (categories, nail cases, mediation, reviews, on-time rates, cycle, high-risk
  notices) count the cases registered in the period, as they stand now;
- letters, documents and officials held accountable count what was issued in the period;
- "overdue now" counts every open case with a period run out, whatever its registration date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, model_validator
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from activities.db import (
    ArbitrationRow,
    CaseRow,
    CaseTally,
    DocumentTally,
    IntakeTally,
    ScoreEventRow,
    as_utc,
    rebuild_tallies,
)
from rules.deadlines import SHANGHAI
from rules.vocabulary import MAX_NAME_CHARS, Category, Channel, DocumentKind, Risk, Stage

LETTER_KINDS = (DocumentKind.risk_warning_letter, DocumentKind.supervision_letter, DocumentKind.accountability_letter)

# ---------------------------------------------------------------------------------------------
# Periods
# ---------------------------------------------------------------------------------------------

PeriodKind = Literal["month", "quarter", "year"]
_PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(\d{1,2})))?$")


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    year: int
    number: int = 1  # the month (1–12) or the quarter (1–4); 1 for a year

    @property
    def first_day(self) -> date:
        month = {"year": 1, "quarter": 3 * self.number - 2, "month": self.number}[self.kind]
        return date(self.year, month, 1)

    @property
    def next_first_day(self) -> date:
        months = {"year": 12, "quarter": 3, "month": 1}[self.kind]
        m = self.first_day.month - 1 + months
        return date(self.year + m // 12, m % 12 + 1, 1)

    @property
    def start(self) -> datetime:
        """The first instant, in UTC (midnight in Shanghai)."""
        return datetime.combine(self.first_day, datetime.min.time(), SHANGHAI).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.next_first_day, datetime.min.time(), SHANGHAI).astimezone(UTC)

    @property
    def code(self) -> str:
        return {"year": f"{self.year}", "quarter": f"{self.year}-Q{self.number}", "month": f"{self.year}-{self.number:02d}"}[
            self.kind
        ]

    @property
    def label(self) -> str:
        return {"year": f"{self.year}年", "quarter": f"{self.year}年第{self.number}季度", "month": f"{self.year}年{self.number}月"}[
            self.kind
        ]

    def previous(self) -> Period:
        if self.kind == "year":
            return Period("year", self.year - 1)
        last = 12 if self.kind == "month" else 4
        return Period(self.kind, self.year - 1, last) if self.number == 1 else Period(self.kind, self.year, self.number - 1)


def parse_period(text: str) -> Period:
    """`2026` (a year), `2026-Q4` (a quarter) or `2026-11` (a month)."""
    m = _PERIOD.match(text.strip())
    if not m:
        raise ValueError(f"The period '{text}' is not a year (2026), a quarter (2026-Q4) or a month (2026-11).")
    year = int(m.group(1))
    if not 2000 <= year <= 2100:
        raise ValueError(f"The period's year {year} is outside 2000–2100.")
    if m.group(2):
        return Period("quarter", year, int(m.group(2)))
    if m.group(3):
        month = int(m.group(3))
        if not 1 <= month <= 12:
            raise ValueError(f"The period's month {month} is not between 1 and 12.")
        return Period("month", year, month)
    return Period("year", year)


def current_period(kind: PeriodKind = "month", now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    number = {"year": 1, "quarter": (local.month - 1) // 3 + 1, "month": local.month}[kind]
    return Period(kind, local.year, number)


def trend_buckets(p: Period) -> list[str]:
    """Every bucket of the overview's trend, in order: the days of a month (`2026-11-01`), the
    months of a quarter or a year (`2026-10`)."""
    if p.kind == "month":
        return [(p.first_day + timedelta(days=k)).isoformat() for k in range((p.next_first_day - p.first_day).days)]
    months = 12 if p.kind == "year" else 3
    first = p.first_day.month
    return [f"{p.year}-{m:02d}" for m in range(first, first + months)]


# ---------------------------------------------------------------------------------------------
# The overview
# ---------------------------------------------------------------------------------------------


class ChannelCount(BaseModel):
    channel: str
    batches: int
    persons: int


class Overview(BaseModel):
    period: str
    period_label: str
    locality: str | None
    # Registrations (intakes in the period)
    batches: int
    persons: int
    by_channel: list[ChannelCount]
    repeat: int
    repeat_share: float | None
    # Cases registered in the period
    cases: int
    by_category: dict[str, int]
    by_risk: dict[str, int]
    nail_cases: int
    nail_resolved: int
    nail_resolved_rate: float | None
    closed: int
    avg_cycle_days: float | None
    mediation_eligible: int
    mediated: int
    mediation_rate: float | None
    reviews: int
    re_reviews: int
    accepted: int
    accepted_on_time: int
    acceptance_on_time_rate: float | None
    answered: int
    answered_on_time: int
    handling_on_time_rate: float | None
    reviews_on_time: int
    review_on_time_rate: float | None
    high_risk: int
    urgent_notified: int
    urgent_within_deadline: int
    urgent_within_rate: float | None
    urgent_avg_s: float | None
    # Issued in the period
    letters: dict[str, int]
    officials_accountable: int
    documents: int
    arbitration_entries: int
    arbitration_concluded: int
    arbitration_to_court: int
    return_to_court_rate: float | None
    # Now
    overdue_now: int
    open_now: int
    trend: list[dict[str, Any]]  # registrations per month (a year, a quarter) or per day (a month)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _n(value: Any) -> int:
    return int(value or 0)


def _sum_if(cond: ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((cond, 1), else_=0))


def _months(period: Period) -> tuple[str, str]:
    """The first and last month (YYYY-MM) of a period, for the tallies."""
    last = period.next_first_day - timedelta(days=1)
    return period.first_day.strftime("%Y-%m"), last.strftime("%Y-%m")


def _days(period: Period) -> tuple[str, str]:
    return period.first_day.isoformat(), (period.next_first_day - timedelta(days=1)).isoformat()


def _in_period(column: Any, period: Period) -> ColumnElement[bool]:
    return sa.and_(column >= period.start, column < period.end)


def _in_locality(case_id: Any, locality: str | None) -> list[ColumnElement[bool]]:
    """Rows whose case is in the locality: each row's case looked up by its key (EXISTS), not the
    locality's case ids gathered first (IN), which on SQLite read every case of the year."""
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    return [sa.exists().where(c.case_id == case_id, c.locality == locality)] if locality else []


_CASE_COUNTS = [
    "cases", "nail_cases", "nail_resolved", "closed", "cycle_days", "mediation_eligible", "mediated", "reviews",
    "re_reviews", "accepted", "accepted_on_time", "answered", "answered_on_time", "reviews_on_time",
    "urgent_notified", "urgent_within_deadline", "urgent_seconds",
]


def overview(engine: Engine, period: Period, locality: str | None = None) -> Overview:
    """The cockpit's figures for a period (and a locality): from the tallies, which move with
    every saved case (activities/db.py), plus three small queries on the rows."""
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    it = IntakeTally.__table__.c  # type: ignore[attr-defined]
    ct = CaseTally.__table__.c  # type: ignore[attr-defined]
    dt = DocumentTally.__table__.c  # type: ignore[attr-defined]
    s = ScoreEventRow.__table__.c  # type: ignore[attr-defined]
    a = ArbitrationRow.__table__.c  # type: ignore[attr-defined]
    first_month, last_month = _months(period)
    first_day, last_day = _days(period)
    with engine.connect() as conn:
        # Registrations by channel, and repeats.
        iw = [it.day >= first_day, it.day <= last_day] + ([it.locality == locality] if locality else [])
        batches_by: dict[str, int] = {}
        persons_by: dict[str, int] = {}
        repeat = 0
        for channel, rep, n, p in conn.execute(
            sa.select(it.channel, it.repeat, sa.func.sum(it.batches), sa.func.sum(it.persons)).where(*iw).group_by(it.channel, it.repeat)
        ).all():
            batches_by[channel] = batches_by.get(channel, 0) + _n(n)
            persons_by[channel] = persons_by.get(channel, 0) + _n(p)
            repeat += _n(n) if rep else 0
        by_channel = [ChannelCount(channel=ch.value, batches=batches_by.get(ch.value, 0), persons=persons_by.get(ch.value, 0)) for ch in Channel]
        batches = sum(batches_by.values())

        # The cases registered in the period, by category and risk.
        cw = [ct.month >= first_month, ct.month <= last_month] + ([ct.locality == locality] if locality else [])
        tot: dict[str, float] = dict.fromkeys(_CASE_COUNTS, 0)
        by_category = {k.value: 0 for k in Category}
        by_risk = {k.value: 0 for k in Risk}
        for r in conn.execute(
            sa.select(ct.category, ct.risk, *[sa.func.sum(ct[k]) for k in _CASE_COUNTS]).where(*cw).group_by(ct.category, ct.risk)
        ).all():
            values = dict(zip(_CASE_COUNTS, r[2:], strict=True))
            for k, v in values.items():
                tot[k] += float(v or 0)
            n = _n(values["cases"])
            if r[0]:
                by_category[r[0]] = by_category.get(r[0], 0) + n
            if r[1]:
                by_risk[r[1]] = by_risk.get(r[1], 0) + n
        t = {k: int(v) for k, v in tot.items()}

        # What was issued in the period.
        dw = [dt.month >= first_month, dt.month <= last_month] + ([dt.locality == locality] if locality else [])
        docs: dict[str, int] = {k: _n(n) for k, n in conn.execute(sa.select(dt.kind, sa.func.sum(dt.documents)).where(*dw).group_by(dt.kind)).all()}
        officials = _n(
            conn.execute(
                sa.select(sa.func.count()).where(
                    _in_period(s.occurred_at, period), s.rule == "accountability_official", *_in_locality(s.case_id, locality)
                )
            ).scalar()
        )
        arb = conn.execute(
            sa.select(sa.func.count(), _sum_if(a.outcome.in_(("court", "resolved"))), _sum_if(a.outcome == "court")).where(
                _in_period(a.started_at, period), *_in_locality(a.case_id, locality)
            )
        ).one()

        # Now, whatever the period.
        nw = [c.status == "open"] + ([c.locality == locality] if locality else [])
        now_row = conn.execute(sa.select(sa.func.count(), _sum_if(c.overdue == sa.true())).where(*nw)).one()

        # The trend of registrations: per day in a month, per month otherwise.
        bucket = it.day if period.kind == "month" else sa.func.substr(it.day, 1, 7)
        trend = [
            {"bucket": str(b), "batches": _n(n), "persons": _n(p)}
            for b, n, p in conn.execute(
                sa.select(bucket, sa.func.sum(it.batches), sa.func.sum(it.persons)).where(*iw).group_by(bucket).order_by(bucket)
            ).all()
        ]

    return Overview(
        period=period.code,
        period_label=period.label,
        locality=locality,
        batches=batches,
        persons=sum(persons_by.values()),
        by_channel=by_channel,
        repeat=repeat,
        repeat_share=_rate(repeat, batches),
        cases=t["cases"],
        by_category=by_category,
        by_risk=by_risk,
        nail_cases=t["nail_cases"],
        nail_resolved=t["nail_resolved"],
        nail_resolved_rate=_rate(t["nail_resolved"], t["nail_cases"]),
        closed=t["closed"],
        avg_cycle_days=round(tot["cycle_days"] / t["closed"], 1) if t["closed"] else None,
        mediation_eligible=t["mediation_eligible"],
        mediated=t["mediated"],
        mediation_rate=_rate(t["mediated"], t["mediation_eligible"]),
        reviews=t["reviews"],
        re_reviews=t["re_reviews"],
        accepted=t["accepted"],
        accepted_on_time=t["accepted_on_time"],
        acceptance_on_time_rate=_rate(t["accepted_on_time"], t["accepted"]),
        answered=t["answered"],
        answered_on_time=t["answered_on_time"],
        handling_on_time_rate=_rate(t["answered_on_time"], t["answered"]),
        reviews_on_time=t["reviews_on_time"],
        review_on_time_rate=_rate(t["reviews_on_time"], t["reviews"]),
        high_risk=by_risk.get(Risk.high.value, 0),
        urgent_notified=t["urgent_notified"],
        urgent_within_deadline=t["urgent_within_deadline"],
        urgent_within_rate=_rate(t["urgent_within_deadline"], t["urgent_notified"]),
        urgent_avg_s=round(tot["urgent_seconds"] / t["urgent_notified"], 1) if t["urgent_notified"] else None,
        letters={k.value: docs.get(k.value, 0) for k in LETTER_KINDS},
        officials_accountable=officials,
        documents=sum(docs.values()),
        arbitration_entries=_n(arb[0]),
        arbitration_concluded=_n(arb[1]),
        arbitration_to_court=_n(arb[2]),
        return_to_court_rate=_rate(_n(arb[2]), _n(arb[1])),
        overdue_now=_n(now_row[1]),
        open_now=_n(now_row[0]),
        trend=trend,
    )


# ---------------------------------------------------------------------------------------------
# Heat maps, red alerts, leaders
# ---------------------------------------------------------------------------------------------


class HeatMap(BaseModel):
    rows: list[str]  # localities
    columns: list[str]  # categories or risks (codes)
    cells: list[list[int]]  # rows × columns
    by: Literal["category", "risk"]


def heatmap(engine: Engine, period: Period, by: Literal["category", "risk"] = "category") -> HeatMap:
    """Cases registered in the period, localities × categories (or × risk levels), busiest first."""
    ct = CaseTally.__table__.c  # type: ignore[attr-defined]
    col = ct.category if by == "category" else ct.risk
    first_month, last_month = _months(period)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ct.locality, col, sa.func.sum(ct.cases))
            .where(ct.month >= first_month, ct.month <= last_month)
            .group_by(ct.locality, col)
        ).all()
    columns = [k.value for k in (Category if by == "category" else Risk)]
    totals: dict[str, int] = {}
    for loc, _, n in rows:
        totals[loc] = totals.get(loc, 0) + _n(n)
    localities = sorted((loc for loc in totals if totals[loc]), key=lambda x: (-totals[x], x))
    index = {loc: k for k, loc in enumerate(localities)}
    cells = [[0] * len(columns) for _ in localities]
    for loc, key, n in rows:
        if key in columns and loc in index:
            cells[index[loc]][columns.index(key)] += _n(n)
    return HeatMap(rows=localities, columns=columns, cells=cells, by=by)


class Alert(BaseModel):
    case_id: str
    title: str
    locality: str
    unit: str | None
    leader: str | None
    category: str | None
    risk: str | None
    stage: str
    ladder: str | None
    reasons: list[str]  # high_risk | ladder | overdue
    overdue_deadline: str | None
    days_overdue: int | None
    registered_at: datetime


def red_alerts(
    engine: Engine, now: datetime | None = None, locality: str | None = None, limit: int = 200
) -> list[Alert]:
    """红色预警: open cases that are high-risk, on the ladder at supervision or accountability, or overdue.

    The most pressing first: the accountability step, then the supervision letter, then the
    longest overdue, then high risk.
    """
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    now = now or datetime.now(UTC)
    cond = sa.or_(c.risk == Risk.high.value, c.ladder.in_(("supervision", "accountability")), c.overdue == sa.true())
    where = [c.status == "open", cond] + ([c.locality == locality] if locality else [])
    rank = sa.case((c.ladder == "accountability", 0), (c.ladder == "supervision", 1), (c.overdue == sa.true(), 2), else_=3)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                c.case_id, c.title, c.locality, c.unit, c.leader, c.category, c.risk, c.stage, c.ladder, c.overdue,
                c.overdue_deadline, c.overdue_since, c.registered_at,
            )
            .where(*where)
            .order_by(rank, c.overdue_since.asc().nulls_last(), c.registered_at)
            .limit(limit)
        ).all()
    alerts = []
    for r in rows:
        reasons = []
        if r.ladder in ("supervision", "accountability"):
            reasons.append("ladder")
        if r.overdue:
            reasons.append("overdue")
        if r.risk == Risk.high.value:
            reasons.append("high_risk")
        days = None
        if r.overdue and r.overdue_since is not None:
            days = max(0, (now - as_utc(r.overdue_since)).days)
        alerts.append(
            Alert(
                case_id=r.case_id, title=r.title, locality=r.locality, unit=r.unit, leader=r.leader, category=r.category,
                risk=r.risk, stage=r.stage, ladder=r.ladder, reasons=reasons, overdue_deadline=r.overdue_deadline,
                days_overdue=days, registered_at=as_utc(r.registered_at),
            )
        )
    return alerts


class LeaderCase(BaseModel):
    case_id: str
    title: str
    locality: str
    unit: str | None
    stage: str
    status: str
    outcome: str | None
    overdue: bool
    ladder: str | None
    registered_at: datetime
    closed_at: datetime | None


class LeaderPackage(BaseModel):
    leader: str
    cases: list[LeaderCase]
    closed: int
    overdue: int

    @property
    def progress(self) -> float:
        return self.closed / len(self.cases) if self.cases else 0.0


def leader_packages(engine: Engine) -> list[LeaderPackage]:
    """领导包案: each leader's cases and how far they have come."""
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                c.leader, c.case_id, c.title, c.locality, c.unit, c.stage, c.status, c.outcome, c.overdue, c.ladder,
                c.registered_at, c.closed_at,
            )
            .where(c.leader.is_not(None))
            .order_by(c.leader, c.registered_at)
        ).all()
    packages: dict[str, list[LeaderCase]] = {}
    for r in rows:
        packages.setdefault(r.leader, []).append(
            LeaderCase(
                case_id=r.case_id, title=r.title, locality=r.locality, unit=r.unit, stage=r.stage, status=r.status,
                outcome=r.outcome, overdue=bool(r.overdue), ladder=r.ladder, registered_at=as_utc(r.registered_at),
                closed_at=as_utc(r.closed_at) if r.closed_at else None,
            )
        )
    return [
        LeaderPackage(
            leader=name, cases=cases, closed=sum(1 for x in cases if x.status == "closed"),
            overdue=sum(1 for x in cases if x.overdue and x.status == "open"),
        )
        for name, cases in sorted(packages.items())
    ]


# ---------------------------------------------------------------------------------------------
# The case list
# ---------------------------------------------------------------------------------------------


MAX_FILTER_CHARS = MAX_NAME_CHARS  # a text filter (a locality, a unit, a leader, a keyword)


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not (len(value) == 10 and value[4] == "-" and value[7] == "-"):
        raise ValueError("not a YYYY-MM-DD date")
    return value


_Text = Annotated[str, StringConstraints(max_length=MAX_FILTER_CHARS)]
_Day = Annotated[date, BeforeValidator(_iso_date)]  # a date, or one typed YYYY-MM-DD


class CaseFilter(BaseModel):
    """The case list's filters; every one optional. Dates are Shanghai calendar days, inclusive.

    Checked as they are given (a wrong stage or risk is an error, not an empty list) and held as the
    read model's columns hold them: an enum member as its value. The web's query parameters are
    these and a page (engine/web_cases.py CaseQuery).
    """

    model_config = ConfigDict(use_enum_values=True)

    # Whose: where it came from, who handles it, the leader in charge of it (包案).
    locality: _Text | None = None
    unit: _Text | None = None
    leader: _Text | None = None
    # What it is and where it stands.
    category: Category | None = None
    risk: Risk | None = None
    stage: Stage | Literal["open"] | None = None  # `open` / `closed`: every open / closed case
    ladder: Literal["warning", "supervision", "accountability", "any"] | None = None
    overdue: bool | None = None
    nail_case: bool | None = None
    # When it was registered; words in its title or its case id.
    date_from: _Day | None = None
    date_to: _Day | None = None
    text: _Text | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> CaseFilter:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_order")
        return self

    def conditions(self) -> list[ColumnElement[bool]]:
        c = CaseRow.__table__.c  # type: ignore[attr-defined]
        w: list[ColumnElement[bool]] = []
        if self.locality:
            w.append(c.locality == self.locality)
        if self.unit:
            w.append(c.unit == self.unit)
        if self.stage in ("open", Stage.closed.value):
            w.append(c.status == ("open" if self.stage == "open" else "closed"))
        elif self.stage:
            w.append(sa.and_(c.stage == self.stage, c.status == "open"))
        if self.risk:
            w.append(c.risk == self.risk)
        if self.ladder == "any":
            w.append(c.ladder.is_not(None))
        elif self.ladder:
            w.append(c.ladder == self.ladder)
        if self.overdue is not None:
            w.append(sa.and_(c.overdue == sa.true(), c.status == "open") if self.overdue else c.overdue == sa.false())
        if self.category:
            w.append(c.category == self.category)
        if self.leader:
            w.append(c.leader == self.leader)
        if self.nail_case is not None:
            w.append(c.nail_case == sa.true() if self.nail_case else c.nail_case == sa.false())
        if self.date_from:
            w.append(c.registered_at >= datetime.combine(self.date_from, datetime.min.time(), SHANGHAI).astimezone(UTC))
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), datetime.min.time(), SHANGHAI).astimezone(UTC)
            w.append(c.registered_at < end)
        if self.text:
            like = f"%{self.text.replace('%', '').replace('_', '')}%"
            w.append(sa.or_(c.title.like(like), c.case_id.like(like)))
        return w


def case_list(
    engine: Engine, flt: CaseFilter, *, unit_only: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[CaseRow], int]:
    """The cases a filter selects, newest first, and how many there are in all.

    `unit_only` restricts to one unit's cases (a unit account sees its own only).
    """
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    where = flt.conditions() + ([c.unit == unit_only] if unit_only else [])
    from sqlmodel import Session, select

    with Session(engine) as s:
        total = _n(s.exec(sa.select(sa.func.count()).select_from(CaseRow).where(*where)).scalar())  # type: ignore[call-overload]
        rows = list(
            s.exec(
                select(CaseRow).where(*where).order_by(c.registered_at.desc()).offset(offset).limit(limit)
            ).all()
        )
    return rows, total


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """The localities, units and leaders present, for the filters' drop-downs."""
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {
            "localities": [r[0] for r in conn.execute(sa.select(c.locality).distinct().order_by(c.locality)).all()],
            "units": [r[0] for r in conn.execute(sa.select(c.unit).where(c.unit.is_not(None)).distinct().order_by(c.unit)).all()],
            "leaders": [r[0] for r in conn.execute(sa.select(c.leader).where(c.leader.is_not(None)).distinct().order_by(c.leader)).all()],
        }


# ---------------------------------------------------------------------------------------------
# Rows put in directly
# ---------------------------------------------------------------------------------------------


def store_rows(engine: Engine, rows: Iterable[Any]) -> None:
    """Put read-model rows (cases, intakes, documents, score events, arbitrations) straight into
    their tables and rebuild the tallies from them, as the workflows would have kept them: demo
    data (docs/screenshots) and the tests' fixtures."""
    from sqlmodel import Session

    with Session(engine) as s:
        s.add_all(rows)
        s.commit()
    rebuild_tallies(engine)
