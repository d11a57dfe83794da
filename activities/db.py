"""The engine's tables (SQLModel) and the database engine. Tables never travel through Temporal.

SQLite file under the data folder by default, PostgreSQL by URL (PETITION_DATABASE_URL).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, event
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, create_engine


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


class DocumentRow(SQLModel, table=True):
    __tablename__ = "documents"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    case_id: str = Field(index=True)
    kind: str
    sha256: str = Field(index=True)
    path: str
    ledger_index: int
    verification_code: str
    issued_at: datetime


class ScoreEventRow(SQLModel, table=True):
    """The HR assessment stream: appended exactly once per (case, rule, occurrence); `id` is the cursor."""

    __tablename__ = "score_events"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    case_id: str = Field(index=True)
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


Index("ix_cases_matter_open", CaseRow.matter_key, CaseRow.status)

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
