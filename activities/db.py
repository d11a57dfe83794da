"""The engine's tables (SQLModel) and the database engine. Tables never travel through Temporal.

SQLite file under the data folder by default, PostgreSQL by URL (PETITION_DATABASE_URL).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, col, create_engine


def _utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """A datetime read back from the database: SQLite returns them naive, and they are UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class CaseRow(SQLModel, table=True):
    """One petition case: what a supervisor lists and filters on. No petitioner PII here."""

    __tablename__ = "cases"

    case_id: str = Field(primary_key=True)
    matter_key: str = Field(index=True)
    status: str = Field(default="open", index=True)
    stage: str = "registered"
    outcome: str | None = None
    category: str | None = Field(default=None, index=True)
    risk: str | None = None
    unit: str | None = Field(default=None, index=True)
    locality: str
    channel: str
    office_level: str
    title: str
    person_count: int = 1
    visits: int = 1
    nail_case: bool = False
    mediation_eligible: bool = False
    mediation_succeeded: bool = False
    overdue: bool = False
    next_deadline: str | None = None  # the period the petitioner waits on now, and when it ends
    next_due: datetime | None = None
    next_due_provisional: bool = False
    rules_version: str
    registered_at: datetime
    closed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=_utcnow)
    # What the cockpit counts, projected from the timeline as it is saved (`project_events`).
    repeat: bool = False  # an earlier case on the same matter exists (重复信访)
    accepted_at: datetime | None = None
    answered_at: datetime | None = None  # the handling opinion (答复)
    acceptance_late: bool = False  # the acceptance period ran out before acceptance
    handling_late: bool = False
    review_late: bool = False  # a review or re-review decision period ran out
    reviewed: bool = False  # 复查 requested
    re_reviewed: bool = False  # 复核 requested
    ladder: str | None = None  # warning | supervision | accountability, while the ladder runs
    ladder_end: str | None = None  # how it ended: resolved | accountability | …
    leader: str | None = None  # 领导包案
    overdue_deadline: str | None = None  # the period that ran out first, of those still out
    overdue_since: datetime | None = None  # when it ran out
    urgent_notice_s: int | None = None  # seconds from registration to the first immediate notice


class IntakeRow(SQLModel, table=True):
    """One petition as it came in: a new case, or another visit on an open one (the cockpit's
    registrations by channel, as batches 批次 and person-times 人次). No personal data."""

    __tablename__ = "intakes"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # case_id:visits, so a retried save never counts twice
    case_id: str = Field(index=True)
    at: datetime
    channel: str
    persons: int = 1
    repeat: bool = False
    locality: str


class PetitionerRow(SQLModel, table=True):
    """Petitioners' personal data, kept only here (and in the documents addressed to them)."""

    __tablename__ = "petitioners"
    __table_args__ = (UniqueConstraint("case_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    position: int
    name: str
    id_number: str | None = None
    phone: str | None = None


class TimelineRow(SQLModel, table=True):
    """The case history the supervision office inspects; one row per timeline event."""

    __tablename__ = "timeline"

    case_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    at: datetime
    offset_s: int
    kind: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class _OncePerKey(SQLModel):
    """A row an activity appends exactly once: a retried activity finds it by its idempotency key
    (and the unique key refuses a second insert); `id` orders the rows as they were appended."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    case_id: str = Field(index=True)


class DocumentRow(_OncePerKey, table=True):
    """A document as issued: its text file (`path`: the canonical body, then the verification
    footer), the body's SHA-256 and its place in the log. With the text file this is everything its
    PDF is drawn from (`activities.documents.DocumentRef`), so a lost PDF is rendered again."""

    __tablename__ = "documents"

    kind: str
    sha256: str = Field(index=True)
    path: str
    ledger_index: int
    verification_code: str
    issued_at: datetime


class ScoreEventRow(_OncePerKey, table=True):
    """The HR assessment stream: appended exactly once per (case, rule, occurrence); `id` is the cursor."""

    __tablename__ = "score_events"

    unit: str = Field(index=True)
    rule: str
    points: int
    official: str | None = None
    note: str = ""
    occurred_at: datetime
    rules_version: str
    recorded_at: datetime = Field(default_factory=_utcnow)


class ArbitrationRow(SQLModel, table=True):
    """The arbitration green channel's track per case, for the return-to-court rate (回流率)."""

    __tablename__ = "arbitration_tracks"

    case_id: str = Field(primary_key=True)
    unit: str = Field(index=True)
    workers: int | None = None
    amount: float | None = None
    status: str = "open"
    outcome: str | None = None
    started_at: datetime
    updated_at: datetime


class RefusalRow(SQLModel, table=True):
    """Actions the rules refused: the only trace a refused action leaves."""

    __tablename__ = "refusals"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    action: str
    error: str
    at: datetime = Field(default_factory=_utcnow)
    actor: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # who tried


class StaffRow(SQLModel, table=True):
    """A staff account (engine/staff.py): role and unit decide what it may do (rules/access.py)."""

    __tablename__ = "staff"

    username: str = Field(primary_key=True)
    display_name: str
    role: str
    unit: str | None = None
    password_hash: str  # Argon2id
    disabled: bool = False
    created_at: datetime = Field(default_factory=_utcnow)
    created_by: str | None = None


class StaffTokenRow(SQLModel, table=True):
    """A sign-in: a web session or the CLI's token file. Only the token's SHA-256 is stored."""

    __tablename__ = "staff_tokens"

    token_sha256: str = Field(primary_key=True)
    username: str = Field(index=True)
    kind: str  # session | cli
    created_at: datetime = Field(default_factory=_utcnow)
    expires_at: datetime | None = None


class TriageDecisionRow(SQLModel, table=True):
    """What triage suggested for a case and what was decided (operator overrides), for drift reports.

    The title and content are kept with personal data masked: a later `flag_major_risk` turns the
    case into a labelled example (a correction) and needs the text.
    """

    __tablename__ = "triage_decisions"

    case_id: str = Field(primary_key=True)
    decided_at: datetime = Field(index=True)
    model_version: str
    locality: str
    title_masked: str
    content_masked: str
    suggested_category: str
    suggested_risk: str
    suggested_unit: str
    category: str
    risk: str
    unit: str
    category_source: str
    risk_source: str


class TriageCorrectionRow(SQLModel, table=True):
    """An operator's or the supervision office's correction of triage: a labelled example for training.

    One row per (case, field, source): an override at intake (`intake`) or a later major-risk flag
    (`flag_major_risk`). `category` and `risk` are the corrected labels of the whole petition.
    """

    __tablename__ = "triage_corrections"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    case_id: str = Field(index=True)
    field: str  # category | risk | unit
    source: str  # intake | flag_major_risk
    suggested: str
    corrected: str
    category: str
    risk: str
    locality: str
    title_masked: str
    content_masked: str
    model_version: str
    at: datetime = Field(index=True)


class CaseTally(SQLModel, table=True):
    """The cockpit's running totals of cases, per registration month (Shanghai), locality,
    category and risk: what a case contributes (`case_tally`) is moved here in the same
    transaction that saves its row, so a year's overview reads a few thousand rows, not 245,000."""

    __tablename__ = "tally_cases"

    month: str = Field(primary_key=True)  # YYYY-MM
    locality: str = Field(primary_key=True)
    category: str = Field(primary_key=True)  # "" while untriaged
    risk: str = Field(primary_key=True)
    cases: int = 0
    nail_cases: int = 0
    nail_resolved: int = 0
    closed: int = 0
    cycle_days: float = 0.0  # summed over the closed ones
    mediation_eligible: int = 0
    mediated: int = 0
    reviews: int = 0
    re_reviews: int = 0
    accepted: int = 0
    accepted_on_time: int = 0
    answered: int = 0
    answered_on_time: int = 0
    reviews_on_time: int = 0
    urgent_notified: int = 0
    urgent_within_deadline: int = 0
    urgent_seconds: int = 0


class IntakeTally(SQLModel, table=True):
    """Registrations per Shanghai day, locality, channel and repeat: batches and person-times."""

    __tablename__ = "tally_intakes"

    day: str = Field(primary_key=True)  # YYYY-MM-DD
    locality: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    repeat: bool = Field(primary_key=True)
    batches: int = 0
    persons: int = 0


class DocumentTally(SQLModel, table=True):
    """Documents issued per Shanghai month, locality and kind."""

    __tablename__ = "tally_documents"

    month: str = Field(primary_key=True)
    locality: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    documents: int = 0


Index("ix_cases_matter_open", CaseRow.matter_key, CaseRow.status)
Index("ix_cases_open_overdue", col(CaseRow.status), col(CaseRow.overdue))
Index("ix_score_events_at", col(ScoreEventRow.occurred_at), col(ScoreEventRow.rule))
Index("ix_arbitration_started", col(ArbitrationRow.started_at))
# The case list filters a period (and a locality) first.
Index("ix_cases_registered", col(CaseRow.registered_at), col(CaseRow.locality))
# The cockpit for one locality (bench/cockpit.py; SQLite otherwise scans every case or sorts all of a
# locality's): its open and overdue counts and red alerts; its case list newest first, with the
# category checked in the index; the case list by category newest first; the leaders' packages.
Index("ix_cases_locality_open", col(CaseRow.locality), col(CaseRow.status), col(CaseRow.overdue))
Index("ix_cases_locality_registered", col(CaseRow.locality), col(CaseRow.registered_at), col(CaseRow.category))
Index("ix_cases_category_registered", col(CaseRow.category), col(CaseRow.registered_at))
Index("ix_cases_leader", col(CaseRow.leader), col(CaseRow.registered_at))


def project_events(row: CaseRow, events: list[Any]) -> list[IntakeRow]:
    """Apply new timeline events to the cockpit's columns of a case row.

    The projection reads only the events (kind and data), so a retried save, which applies the
    same events again, gives the same row. Returns the repeat visits to record as intakes.
    """
    intakes: list[IntakeRow] = []
    for e in events:
        d = e.data
        if e.kind == "stage":
            stage = d.get("stage")
            if stage == "accepted" and row.accepted_at is None:
                row.accepted_at = e.at
            elif stage == "opinion_issued" and row.answered_at is None:
                row.answered_at = e.at
            elif stage == "review" and d.get("action") == "request_review":
                row.reviewed = True
            elif stage == "re_review" and d.get("action") == "request_re_review":
                row.re_reviewed = True
        elif e.kind == "overdue":
            deadline = d.get("deadline")
            if deadline == "acceptance":
                row.acceptance_late = True
            elif deadline == "handling":
                row.handling_late = True
            elif deadline in ("review_decision", "re_review_decision"):
                row.review_late = True
        elif e.kind == "ladder":
            step = d.get("ladder")
            if step in ("warning", "supervision", "accountability"):
                row.ladder = step
            elif step == "ended":
                row.ladder_end = d.get("how")
                row.ladder = None if d.get("how") != "accountability" else "accountability"
        elif e.kind == "leader":
            row.leader = d.get("leader")
        elif e.kind == "notification" and d.get("tier") == "immediate" and row.urgent_notice_s is None:
            if d.get("delivered", True):
                row.urgent_notice_s = max(0, int((e.at - as_utc(row.registered_at)).total_seconds()))
        elif e.kind == "visit" and d.get("channel") and not d.get("nail_case"):
            intakes.append(
                IntakeRow(
                    key=f"{row.case_id}:{d.get('visits')}", case_id=row.case_id, at=e.at, channel=d["channel"],
                    persons=int(d.get("persons") or 1), repeat=True, locality=row.locality,
                )
            )
    return intakes


_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the starter read while the worker writes; a busy timeout instead of "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _owner_only_file(url: str) -> None:
    """Create an SQLite database file readable by its owner only (its WAL files inherit the mode)."""
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:" and not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def get_engine(url: str) -> Engine:
    """One engine per URL per process, with the tables created."""
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            _owner_only_file(url)
            # hide_parameters: a failing statement's message must not carry the values (PII) it held.
            engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        SQLModel.metadata.create_all(engine)
        _engines[url] = engine
    return engine


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


# ---------------------------------------------------------------------------------------------
# The cockpit's tallies: kept in step with the rows, rebuilt from them when needed
# ---------------------------------------------------------------------------------------------

URGENT_NOTICE_S = 30 * 60  # the immediate tier's deadline: a high-risk notice within it is on time


def local_day(dt: datetime) -> str:
    from rules.deadlines import SHANGHAI

    return as_utc(dt).astimezone(SHANGHAI).strftime("%Y-%m-%d")


def case_tally(row: CaseRow) -> tuple[tuple[str, str, str, str], dict[str, float]]:
    """What one case adds to the tally: its key and its counts."""
    closed = row.status == "closed"
    cycle = (as_utc(row.closed_at) - as_utc(row.registered_at)).total_seconds() / 86400 if closed and row.closed_at else 0.0
    urgent = row.urgent_notice_s
    key = (local_day(row.registered_at)[:7], row.locality, row.category or "", row.risk or "")
    return key, {
        "cases": 1,
        "nail_cases": int(row.nail_case),
        "nail_resolved": int(row.nail_case and closed),
        "closed": int(closed),
        "cycle_days": cycle,
        "mediation_eligible": int(row.mediation_eligible),
        "mediated": int(row.mediation_succeeded),
        "reviews": int(row.reviewed),
        "re_reviews": int(row.re_reviewed),
        "accepted": int(row.accepted_at is not None),
        "accepted_on_time": int(row.accepted_at is not None and not row.acceptance_late),
        "answered": int(row.answered_at is not None),
        "answered_on_time": int(row.answered_at is not None and not row.handling_late),
        "reviews_on_time": int(row.reviewed and not row.review_late),
        "urgent_notified": int(urgent is not None),
        "urgent_within_deadline": int(urgent is not None and urgent <= URGENT_NOTICE_S),
        "urgent_seconds": urgent or 0,
    }


def _upsert(s: Any, table: Any, key: dict[str, Any], counts: dict[str, float]) -> None:
    """Add `counts` to the tally row at `key`, creating it if needed (one statement, no race)."""
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = insert(table).values(**key, **counts)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={k: getattr(table.c, k) + stmt.excluded[k] for k in counts}
    )
    s.execute(stmt)


def move_case_tally(s: Any, before: tuple[Any, dict[str, float]] | None, after: tuple[Any, dict[str, float]]) -> None:
    """Move a case's contribution from what it was (`before`, None for a new case) to what it is."""
    changes: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for sign, part in ((-1, before), (1, after)):
        if part is None:
            continue
        key, counts = part
        acc = changes.setdefault(key, dict.fromkeys(counts, 0))
        for k, v in counts.items():
            acc[k] += sign * v
    table = CaseTally.__table__  # type: ignore[attr-defined]
    for key in sorted(changes):  # a fixed order: two saves never wait on each other in a cycle
        counts = {k: v for k, v in changes[key].items() if v}
        if counts:
            _upsert(s, table, dict(zip(("month", "locality", "category", "risk"), key, strict=True)), counts)


def count_intake(s: Any, intake: IntakeRow) -> None:
    key = {"day": local_day(intake.at), "locality": intake.locality, "channel": intake.channel, "repeat": intake.repeat}
    _upsert(s, IntakeTally.__table__, key, {"batches": 1, "persons": intake.persons})  # type: ignore[attr-defined]


def count_document(s: Any, doc: DocumentRow, locality: str) -> None:
    key = {"month": local_day(doc.issued_at)[:7], "locality": locality, "kind": doc.kind}
    _upsert(s, DocumentTally.__table__, key, {"documents": 1})  # type: ignore[attr-defined]


def rebuild_tallies(engine: Engine) -> None:
    """Recompute every tally from the rows (after loading rows directly, or to check the tallies)."""
    from sqlalchemy import select

    cases_t = CaseRow.__table__  # type: ignore[attr-defined]
    intakes_t = IntakeRow.__table__  # type: ignore[attr-defined]
    docs_t = DocumentRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for table in (CaseTally, IntakeTally, DocumentTally):
            conn.execute(table.__table__.delete())  # type: ignore[union-attr]
        cases: dict[tuple[str, str, str, str], dict[str, float]] = {}
        localities: dict[str, str] = {}
        for row in conn.execute(select(cases_t)):  # rows read like CaseRow (attribute access)
            key, counts = case_tally(row)  # type: ignore[arg-type]
            localities[row.case_id] = row.locality
            acc = cases.setdefault(key, dict.fromkeys(counts, 0))
            for k, v in counts.items():
                acc[k] += v
        intakes: dict[tuple[str, str, str, bool], list[int]] = {}
        for at, locality, channel, repeat, persons in conn.execute(
            select(intakes_t.c.at, intakes_t.c.locality, intakes_t.c.channel, intakes_t.c.repeat, intakes_t.c.persons)
        ):
            acc2 = intakes.setdefault((local_day(at), locality, channel, bool(repeat)), [0, 0])
            acc2[0] += 1
            acc2[1] += persons
        docs: dict[tuple[str, str, str], int] = {}
        for case_id, kind, issued_at in conn.execute(select(docs_t.c.case_id, docs_t.c.kind, docs_t.c.issued_at)):
            k3 = (local_day(issued_at)[:7], localities.get(case_id, ""), kind)
            docs[k3] = docs.get(k3, 0) + 1
        if cases:
            conn.execute(
                CaseTally.__table__.insert(),  # type: ignore[attr-defined]
                [dict(zip(("month", "locality", "category", "risk"), k, strict=True), **v) for k, v in cases.items()],
            )
        if intakes:
            conn.execute(
                IntakeTally.__table__.insert(),  # type: ignore[attr-defined]
                [{"day": k[0], "locality": k[1], "channel": k[2], "repeat": k[3], "batches": v[0], "persons": v[1]} for k, v in intakes.items()],
            )
        if docs:
            conn.execute(
                DocumentTally.__table__.insert(),  # type: ignore[attr-defined]
                [{"month": k[0], "locality": k[1], "kind": k[2], "documents": v} for k, v in docs.items()],
            )
