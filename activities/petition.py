"""Every side effect of a petition case: database, documents + ledger, notifications, scores.

Each activity carries an idempotency key (or writes rows keyed by case and sequence), so a
retried activity never duplicates what it did.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import multiprocessing
import os
import signal
import time
import tomllib
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.db import (
    ArbitrationRow,
    CaseRow,
    DocumentRow,
    IntakeRow,
    PetitionerRow,
    ScoreEventRow,
    TimelineRow,
    TriageCorrectionRow,
    TriageDecisionRow,
    as_utc,
    case_tally,
    count_document,
    count_intake,
    get_engine,
    move_case_tally,
    project_events,
)
from activities.documents import TEMPLATE_VERSION, DocumentRef, document_path, footer, keep_pdf, render_body
from activities.ledger import Ledger, make_entry, verification_code
from activities.notify import Notice, NotifyError, RecordingNotifier, build_notifier
from engine.config import RULES_DIR, Settings
from engine.logs import get_logger
from rules.deadlines import CalendarSnapshot
from rules.triage import Triage, TriageInput, TriageResult, load_triage
from rules.vocabulary import DocumentKind, Risk
from workflows import models
from workflows.names import (
    CALENDAR_IS_PUBLISHED,
    CASE_NOT_REGISTERED,
    DIGEST_ADD_CASE,
    ENQUEUE_BATCH,
    ISSUE_DOCUMENT,
    RECORD_ARBITRATION,
    RECORD_SCORE,
    REGISTER_CASE,
    RESOLVE_OFFICIALS,
    SAVE_CASE,
    SEND_DIGEST,
    SEND_FALLBACK_NOTIFICATION,
    SEND_NOTIFICATION,
    TRIAGE_PETITION,
)

log = get_logger(component="activities")


_PDF_POOL: ProcessPoolExecutor | None = None
_PDF_TASKS: set[asyncio.Task[None]] = set()  # PDFs being rendered by this process's activities


def _pdf_process_init(parent: int) -> None:
    """The PDF process holds none of its parent's output pipes (a caller reading the parent's
    output must see it end when the parent ends) and dies with its parent (which may leave by
    `os._exit`), instead of lingering."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        # The worker died while this process was still starting (seconds of imports): the signal
        # above will never come, and the call queue would be waited on forever (bench/chaos.py).
        os._exit(0)


def pdf_pool() -> ProcessPoolExecutor:
    """The one process that renders PDFs for this worker ("spawn": the worker process has threads),
    started on first use. One that died (killed, out of memory: its pool is broken) is replaced,
    for the activities' PDFs and the PDF keeper's (activities/documents.py) alike."""
    global _PDF_POOL
    if _PDF_POOL is not None and _PDF_POOL._broken:
        _PDF_POOL.shutdown(wait=False)
        _PDF_POOL = None
    if _PDF_POOL is None:
        _PDF_POOL = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_pdf_process_init,
            initargs=(os.getpid(),),
        )
    return _PDF_POOL


async def pdfs_written(timeout: float | None = None) -> None:
    """Wait for the PDFs this process's activities are still rendering (the scenario runner, tests,
    a worker stopping), or at most `timeout` seconds (the PDF keeper lets fresh documents go first)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while _PDF_TASKS:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        await asyncio.wait(list(_PDF_TASKS), timeout=left)


def digest_id_for(unit: str, batch_at: datetime) -> str:
    """One digest workflow per unit per batch instant; the unit's name is hashed into the id."""
    unit_hash = hashlib.sha256(unit.encode()).hexdigest()[:12]
    return f"digest-{unit_hash}-{batch_at.strftime('%Y%m%dT%H%M')}"


S = TypeVar("S")
A = TypeVar("A")
R = TypeVar("R")


def _in_thread(body: Callable[[S, A], R]) -> Callable[[S, A], Coroutine[Any, Any, R]]:
    """An activity whose body blocks (the database, CPU work), run in a thread of its own: the
    event loop goes on with other cases' activities and the worker's heartbeats meanwhile. Temporal
    reads the argument's and the result's types from `body`'s signature."""

    @functools.wraps(body)
    async def activity_in_thread(self: S, arg: A) -> R:
        return await asyncio.to_thread(body, self, arg)

    return activity_in_thread


class PetitionActivities:
    """The activities, bound to one process's settings, database, ledger, notifier and client."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        self.engine = get_engine(settings.resolved_database_url())
        self.ledger = Ledger(self.engine, settings.resolved_ledger_key_file())
        self.ledger._signing_key()  # the log's signing key exists from the worker's start (verify only reads)
        self.client = client
        self.notifier = build_notifier(settings)
        self.fallback = RecordingNotifier(settings.data_dir)
        self.triage = load_triage()
        self._triages: dict[int, Triage] = {}
        self._officials: dict[str, Any] | None = None
        # One writer at a time per process for the ledger (the ledger also serialises across processes).
        self._doc_lock = asyncio.Lock()

    def all(self) -> list[Any]:
        return [
            self.register_case,
            self.triage_petition,
            self.save_case,
            self.issue_document,
            self.send_notification,
            self.send_fallback_notification,
            self.record_score,
            self.resolve_officials,
            self.enqueue_batch,
            self.send_digest,
            self.record_arbitration,
            self.calendar_is_published,
        ]

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=REGISTER_CASE.name)
    @_in_thread
    def register_case(self, req: models.RegisterCaseInput) -> models.RegisterCaseResult:
        intake = req.intake
        with Session(self.engine) as s:
            if s.get(CaseRow, req.case_id) is not None:
                return models.RegisterCaseResult(case_id=req.case_id, created=False)
            lost = s.exec(select(IntakeRow).where(IntakeRow.key == f"{req.case_id}:1")).first()
            if lost is not None:
                return self._restore_case_row(s, req, lost)
            repeat = s.exec(select(CaseRow.case_id).where(CaseRow.matter_key == req.matter_key)).first() is not None
            first = IntakeRow(
                key=f"{req.case_id}:1", case_id=req.case_id, at=req.registered_at, channel=intake.channel.value,
                persons=len(intake.petitioners), repeat=repeat, locality=intake.locality,
            )
            row = CaseRow(
                repeat=repeat,
                case_id=req.case_id,
                matter_key=req.matter_key,
                locality=intake.locality,
                channel=intake.channel.value,
                office_level=intake.office_level.value,
                title=intake.title,
                person_count=len(intake.petitioners),
                rules_version=req.rules_version,
                registered_at=req.registered_at,
                category=intake.category.value if intake.category else None,
                risk=intake.risk.value if intake.risk else None,
                unit=intake.responsible_unit,
            )
            s.add(first)
            s.add(row)
            for i, p in enumerate(intake.petitioners):
                s.add(PetitionerRow(case_id=req.case_id, position=i, name=p.name, id_number=p.id_number, phone=p.phone))
            try:
                s.flush()  # a case registered meanwhile by a retry fails here, before any tally moves
                count_intake(s, first)
                move_case_tally(s, None, case_tally(row))
                s.commit()
            except IntegrityError:
                s.rollback()
                return models.RegisterCaseResult(case_id=req.case_id, created=False)
        log.info("case registered", case_id=req.case_id, channel=intake.channel.value, people=len(intake.petitioners))
        return models.RegisterCaseResult(case_id=req.case_id, created=True)

    def _restore_case_row(
        self, s: Session, req: models.RegisterCaseInput, first: IntakeRow
    ) -> models.RegisterCaseResult:
        """The case was registered once (its first intake is here) but its row is gone: deleted, or a
        database restored from an older backup. The workflow registers it again when `save_case`
        says so (CaseNotRegistered): the row comes back with the cockpit's columns projected from
        the timeline rows still here; the save that follows brings the rest. The intake is not
        counted again; missing petitioner rows are written again."""
        intake = req.intake
        row = CaseRow(
            repeat=first.repeat, case_id=req.case_id, matter_key=req.matter_key, locality=intake.locality,
            channel=intake.channel.value, office_level=intake.office_level.value, title=intake.title,
            person_count=len(intake.petitioners), rules_version=req.rules_version, registered_at=req.registered_at,
            category=intake.category.value if intake.category else None,
            risk=intake.risk.value if intake.risk else None, unit=intake.responsible_unit,
        )  # fmt: skip
        kept = s.exec(select(TimelineRow).where(TimelineRow.case_id == req.case_id).order_by(TimelineRow.seq)).all()  # type: ignore[arg-type]
        # SQLite gives its datetimes back naive (they are UTC); its repeat visits were counted already.
        project_events(row, [SimpleNamespace(kind=e.kind, data=e.data, at=as_utc(e.at)) for e in kept])
        s.add(row)
        have = set(s.exec(select(PetitionerRow.position).where(PetitionerRow.case_id == req.case_id)).all())
        for i, p in enumerate(intake.petitioners):
            if i not in have:
                s.add(PetitionerRow(case_id=req.case_id, position=i, name=p.name, id_number=p.id_number, phone=p.phone))
        try:
            s.flush()
            move_case_tally(s, None, case_tally(row))
            s.commit()
        except IntegrityError:
            s.rollback()  # restored meanwhile by another attempt
            return models.RegisterCaseResult(case_id=req.case_id, created=False)
        log.warning("case row restored", case_id=req.case_id, timeline_rows=len(kept))
        return models.RegisterCaseResult(case_id=req.case_id, created=True)

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=TRIAGE_PETITION.name)
    @_in_thread  # classifying is CPU work (bounded by MAX_ANALYSED characters)
    def triage_petition(self, req: models.TriageRequest) -> models.TriageOutcome:
        triage = self._triage_for(req.collective_min_workers)
        i = req.intake
        fields = i.model_dump(include=set(TriageInput.model_fields))
        result = triage.classify(TriageInput(**fields))
        self._record_triage(req, result)
        return models.TriageOutcome(
            **result.model_dump(),
            principal_leader=triage.principal_leader(i.locality),
            deputy_leader=triage.deputy_leader(i.locality, result.category),
        )

    def _record_triage(self, req: models.TriageRequest, r: TriageResult) -> None:
        """The decision for drift reports, and each operator override as a labelled example."""
        i = req.intake
        names = [p.name for p in i.petitioners]
        title, content = models.mask_personal_data(i.title, names), models.mask_personal_data(i.content, names)
        now = datetime.now(UTC)
        suggested = {
            "category": (r.suggested_category or r.category).value,
            "risk": (r.suggested_risk or r.risk).value,
            "unit": r.suggested_unit or r.unit,
        }
        given = {
            "category": i.category.value if i.category else None,
            "risk": i.risk.value if i.risk else None,
            "unit": i.responsible_unit,
        }
        with Session(self.engine) as s:
            if s.get(TriageDecisionRow, req.case_id) is not None:
                return  # a retried activity: recorded the first time
            s.add(
                TriageDecisionRow(
                    case_id=req.case_id, decided_at=now, model_version=r.model_version, locality=i.locality,
                    title_masked=title, content_masked=content,
                    suggested_category=suggested["category"], suggested_risk=suggested["risk"],
                    suggested_unit=suggested["unit"], category=r.category.value, risk=r.risk.value, unit=r.unit,
                    category_source=r.category_source, risk_source=r.risk_source,
                )
            )
            for field, value in given.items():
                if value is not None and value != suggested[field]:
                    s.add(
                        TriageCorrectionRow(
                            key=f"{req.case_id}:{field}:intake", case_id=req.case_id, field=field, source="intake",
                            suggested=suggested[field], corrected=value, category=r.category.value, risk=r.risk.value,
                            locality=i.locality, title_masked=title, content_masked=content,
                            model_version=r.model_version, at=now,
                        )
                    )
            try:
                s.commit()
            except IntegrityError:
                s.rollback()  # another attempt of this activity got there first

    def _triage_for(self, collective_min_workers: int) -> Triage:
        """The classifier with the case's own collective-arrears threshold (rules travel with the case)."""
        if self.triage.collective_min_workers != collective_min_workers:
            if collective_min_workers not in self._triages:
                self._triages[collective_min_workers] = Triage(collective_min_workers=collective_min_workers)
            return self._triages[collective_min_workers]
        return self.triage

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=SAVE_CASE.name)
    @_in_thread
    def save_case(self, snap: models.CaseSnapshot) -> None:
        with Session(self.engine) as s:
            row = s.get(CaseRow, snap.case_id)
            if row is None:
                # Retrying would not bring the row back: the workflow registers the case again
                # (idempotent) and saves once more (workflows/effects.py, `_persist`).
                raise ApplicationError(f"case {snap.case_id} is not registered", type=CASE_NOT_REGISTERED, non_retryable=True)
            before = case_tally(row)
            row.stage = snap.stage.value
            row.status = snap.status
            row.outcome = snap.outcome.value if snap.outcome else None
            row.category = snap.category.value if snap.category else row.category
            row.risk = snap.risk.value if snap.risk else row.risk
            row.unit = snap.unit or row.unit
            row.visits = snap.visits
            row.nail_case = snap.nail_case
            row.mediation_eligible = snap.mediation_eligible
            row.mediation_succeeded = snap.mediation_succeeded
            row.overdue = snap.overdue
            row.closed_at = snap.closed_at
            row.next_deadline = snap.next_deadline.value if snap.next_deadline else None
            row.next_due = snap.next_due
            row.next_due_provisional = snap.next_due_provisional
            row.overdue_deadline = snap.overdue_deadline.value if snap.overdue_deadline else None
            row.overdue_since = snap.overdue_due
            row.updated_at = datetime.now(row.registered_at.tzinfo)
            s.add(row)
            seqs = [e.seq for e in snap.events]
            existing: set[int] = set()
            if seqs:
                existing = set(
                    s.exec(
                        select(TimelineRow.seq).where(TimelineRow.case_id == snap.case_id, TimelineRow.seq.in_(seqs))  # type: ignore[attr-defined]
                    ).all()
                )
            fresh = [e for e in snap.events if e.seq not in existing]
            for visit in project_events(row, fresh):
                if s.exec(select(IntakeRow.id).where(IntakeRow.key == visit.key)).first() is None:
                    s.add(visit)
                    count_intake(s, visit)
            move_case_tally(s, before, case_tally(row))
            for e in snap.events:
                if e.seq not in existing:  # a retried save never duplicates an event
                    s.add(TimelineRow(case_id=snap.case_id, seq=e.seq, at=e.at, offset_s=e.offset_s, kind=e.kind, data=e.data))
                    if e.kind == "ladder" and e.data.get("ladder") == "flagged":
                        self._flag_correction(s, snap.case_id, e.at)
            s.commit()

    @staticmethod
    def _flag_correction(s: Session, case_id: str, at: datetime) -> None:
        """The supervision office flagged a major risk triage had not called high: a labelled example."""
        d = s.get(TriageDecisionRow, case_id)
        key = f"{case_id}:risk:flag_major_risk"
        if d is None or d.suggested_risk == Risk.high.value:
            return
        if s.exec(select(TriageCorrectionRow).where(TriageCorrectionRow.key == key)).first() is not None:
            return
        s.add(
            TriageCorrectionRow(
                key=key, case_id=case_id, field="risk", source="flag_major_risk", suggested=d.suggested_risk,
                corrected=Risk.high.value, category=d.category, risk=Risk.high.value, locality=d.locality,
                title_masked=d.title_masked, content_masked=d.content_masked, model_version=d.model_version, at=at,
            )
        )

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=ISSUE_DOCUMENT.name)
    async def issue_document(self, req: models.DocumentRequest) -> models.DocumentIssued:
        async with self._doc_lock:
            issued = await asyncio.to_thread(self._issue_document, req)
        # The PDF in the background: it takes about half a second, and neither the log's appends nor
        # the case's clock (a letter's time is when it is issued) should wait for it. The text is
        # the document; a retry of this activity writes a PDF that is missing.
        task = asyncio.create_task(self._issue_pdf(req, issued))
        _PDF_TASKS.add(task)
        task.add_done_callback(_PDF_TASKS.discard)
        return issued

    async def pdfs_written(self) -> None:
        await pdfs_written()

    async def _issue_pdf(self, req: models.DocumentRequest, issued: models.DocumentIssued) -> None:
        """The PDF beside the text file (to print, or to open on a phone and scan). The text is the
        document; a PDF that cannot be written is logged, never a failed activity. A retry writes a
        PDF that is missing. Rendered in a process of its own: it is CPU work (font subsetting), and
        in this process it would hold the interpreter while cases' clocks and other activities run."""
        try:
            text = Path(issued.path)
            doc = DocumentRef(text, req.kind, req.case_id, req.issued_at, issued.verification_code, issued.sha256)
            # The PDF is drawn from the text file just written; only without it (deleted since a
            # first attempt) is the body rendered again, which needs the fields and the addressee.
            body = None
            if not text.exists():
                body = await asyncio.to_thread(
                    lambda: render_body(req.kind, req.case_id, req.issued_at, self._fields(req), self._addressee(req.case_id))
                )
            await asyncio.get_running_loop().run_in_executor(
                pdf_pool(), functools.partial(keep_pdf, doc, self.settings.resolved_public_url(), body)
            )
        except Exception as err:
            log.error("document pdf not written", case_id=req.case_id, kind=req.kind.value, error=repr(err))

    def _addressee(self, case_id: str) -> str:
        with Session(self.engine) as s:
            people = s.exec(select(PetitionerRow).where(PetitionerRow.case_id == case_id).order_by(PetitionerRow.position)).all()  # type: ignore[arg-type]
        return "、".join(p.name for p in people) or "信访人"

    def _fields(self, req: models.DocumentRequest) -> dict[str, Any]:
        """The document's fields, with what the engine adds: the acceptance notice's query code."""
        if req.kind != DocumentKind.acceptance_notice:
            return req.fields
        url = f"{self.settings.resolved_public_url()}/q"
        return {"query_code": self.settings.query_code(req.case_id), "query_url": url, **req.fields}

    def _issue_document(self, req: models.DocumentRequest) -> models.DocumentIssued:
        with Session(self.engine) as s:
            done = s.exec(select(DocumentRow).where(DocumentRow.idempotency_key == req.idempotency_key)).first()
            if done is not None:
                return models.DocumentIssued(
                    kind=req.kind,
                    sha256=done.sha256,
                    ledger_index=done.ledger_index,
                    verification_code=done.verification_code,
                    path=done.path,
                )
        body = render_body(req.kind, req.case_id, req.issued_at, self._fields(req), self._addressee(req.case_id))
        digest = hashlib.sha256(body).hexdigest()
        entry = make_entry(
            document_sha256=digest,
            kind=req.kind.value,
            case_id=req.case_id,
            issued_at=req.issued_at,
            extra={"template_version": TEMPLATE_VERSION},
        )
        appended = self.ledger.append(entry, req.idempotency_key)
        code = verification_code(appended.index, digest)
        n = int(req.idempotency_key.rsplit(":", 1)[-1])
        path = document_path(self.settings.documents_dir, req.case_id, req.kind, n)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(body + footer(code, digest, self.settings.resolved_public_url()))
        os.replace(tmp, path)
        with Session(self.engine) as s:
            doc = DocumentRow(
                idempotency_key=req.idempotency_key,
                case_id=req.case_id,
                kind=req.kind.value,
                sha256=digest,
                path=str(path),
                ledger_index=appended.index,
                verification_code=code,
                issued_at=req.issued_at,
            )
            s.add(doc)
            try:
                s.flush()  # issued meanwhile by a retry: fails here, and the tally is not counted twice
                case = s.get(CaseRow, req.case_id)
                count_document(s, doc, case.locality if case else "")
                s.commit()
            except IntegrityError:
                s.rollback()
        log.info("document issued", case_id=req.case_id, kind=req.kind.value, ledger_index=appended.index)
        return models.DocumentIssued(kind=req.kind, sha256=digest, ledger_index=appended.index, verification_code=code, path=str(path))

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=SEND_NOTIFICATION.name)
    async def send_notification(self, req: models.NotificationRequest) -> models.NotificationSent:
        notifier = build_notifier(self.settings, req.channel) if self.settings.notify_adapter != "recording" else self.notifier
        return await self._deliver(notifier, req)

    @activity.defn(name=SEND_FALLBACK_NOTIFICATION.name)
    async def send_fallback_notification(self, req: models.NotificationRequest) -> models.NotificationSent:
        """The escalation path: the supervision office's duty log, which is always reachable."""
        return await self._deliver(self.fallback, req)

    async def _deliver(self, notifier: Any, req: models.NotificationRequest) -> models.NotificationSent:
        notice = Notice(
            **req.model_dump(exclude={"deadline"}), deadline=req.deadline.isoformat() if req.deadline else None
        )
        try:
            delivery = await notifier.send(notice)
        except NotifyError as err:
            attempt = activity.info().attempt if activity.in_activity() else 1
            log.warning(
                "notification not delivered", case_id=req.case_id, tier=req.tier.value, attempt=attempt, error=str(err)
            )
            # The case's timeline says which adapter tried and how often (workflows/petition.py).
            raise ApplicationError(
                str(err),
                {"adapter": getattr(notifier, "name", "?"), "attempt": attempt},
                type="NotDelivered",
                non_retryable=not err.retryable,
            ) from err
        log.info("notification sent", case_id=req.case_id, tier=req.tier.value, adapter=delivery.adapter)
        return models.NotificationSent.model_validate(delivery, from_attributes=True)  # what the workflow keeps of it

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=RECORD_SCORE.name)
    @_in_thread
    def record_score(self, req: models.ScoreRequest) -> None:
        with Session(self.engine) as s:
            exists = s.exec(select(ScoreEventRow.id).where(ScoreEventRow.idempotency_key == req.idempotency_key)).first()
            if exists is not None:
                return
            s.add(
                ScoreEventRow(
                    idempotency_key=req.idempotency_key,
                    case_id=req.case_id,
                    unit=req.unit,
                    rule=str(req.rule),
                    points=req.points,
                    official=req.official,
                    note=req.note,
                    occurred_at=req.occurred_at,
                    rules_version=req.rules_version,
                )
            )
            try:
                s.commit()
            except IntegrityError:  # a concurrent retry won the race: still exactly once
                s.rollback()

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=RESOLVE_OFFICIALS.name)
    async def resolve_officials(self, unit: str) -> list[str]:
        if self._officials is None:
            with open(RULES_DIR / "officials.toml", "rb") as fh:
                self._officials = tomllib.load(fh)
        units = self._officials.get("units", {})
        names = units.get(unit, {}).get("officials") or self._officials.get("default", {}).get("officials", [])
        return [str(n).replace("{unit}", unit) for n in names]

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=CALENDAR_IS_PUBLISHED.name)
    async def calendar_is_published(self, snapshot: CalendarSnapshot) -> bool:
        """Is this the holiday calendar the engine publishes? (a `reload_calendar` signal's check)"""
        from engine.desk import is_published_calendar

        return await asyncio.to_thread(is_published_calendar, self.settings, snapshot)

    @activity.defn(name=ENQUEUE_BATCH.name)
    async def enqueue_batch(self, req: models.BatchEnqueue) -> None:
        """Add a low-risk case to its unit's next-morning digest (signal-with-start)."""
        if self.client is None:
            raise ApplicationError("no Temporal client to start the daily digest", non_retryable=True)
        digest_id = digest_id_for(req.unit, req.batch_at)
        await self.client.start_workflow(
            models.DIGEST_WORKFLOW,
            models.DigestStart(digest_id=digest_id, unit=req.unit, batch_at=req.batch_at),
            id=digest_id,
            task_queue=req.task_queue,
            start_signal=DIGEST_ADD_CASE.name,
            start_signal_args=[models.DigestItem(case_id=req.case_id, title=req.title, token=req.token)],
        )

    @activity.defn(name=SEND_DIGEST.name)
    async def send_digest(self, req: models.DigestRequest) -> models.NotificationSent:
        lines = [f"{i + 1}. {item.case_id} {item.title}" for i, item in enumerate(req.items)]
        # The batch's own cases name it: a follow-up batch of the same size is another notice
        # (a key from the size alone made it a "duplicate" that was never sent).
        batch = hashlib.sha256("\n".join(item.case_id for item in req.items).encode()).hexdigest()[:16]
        notice = models.NotificationRequest(
            idempotency_key=f"{req.digest_id}:{batch}",
            case_id=req.items[0].case_id if req.items else req.digest_id,
            tier="batch",  # type: ignore[arg-type]
            recipient_role="handling_unit",  # type: ignore[arg-type]
            recipient=req.unit,
            channel="batch",  # type: ignore[arg-type]
            subject=f"【次日批量分转】{req.unit} {len(req.items)} 件低风险信访事项",
            body="\n".join(lines),
        )
        return await self._deliver(self.notifier, notice)

    # ---------------------------------------------------------------------------------------
    @activity.defn(name=RECORD_ARBITRATION.name)
    @_in_thread
    def record_arbitration(self, rec: models.ArbitrationRecord) -> None:
        with Session(self.engine) as s:
            row = s.get(ArbitrationRow, rec.case_id) or ArbitrationRow(
                case_id=rec.case_id, unit=rec.unit, workers=rec.workers, amount=rec.amount,
                started_at=rec.at, updated_at=rec.at,
            )
            row.status = rec.status
            row.outcome = rec.outcome or row.outcome
            row.updated_at = rec.at
            s.add(row)
            s.commit()
