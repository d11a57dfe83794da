"""The names the workflows and the activities share, typed: each activity with its argument and
result types, each signal with its argument type, and the error types activities raise on purpose.

A workflow calls `await self._call(REGISTER_CASE, arg)` and gets a `RegisterCaseResult` back
(mypy checks both); an activity is defined with `@activity.defn(name=REGISTER_CASE.name)`; a
signal is sent with `await send(handle, BATCH_DELIVERED, data)` and received by
`@workflow.signal(name=BATCH_DELIVERED.name)`. The strings are what the histories hold: never
rename one (running cases would stop finding their activities and signals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from rules.deadlines import CalendarSnapshot
from workflows.models import (
    ArbitrationOverdue,
    ArbitrationRecord,
    ArbitrationStep,
    BatchDelivered,
    BatchEnqueue,
    CaseSnapshot,
    DigestItem,
    DigestRequest,
    DocumentIssued,
    DocumentRequest,
    NotificationRequest,
    NotificationSent,
    RegisterCaseInput,
    RegisterCaseResult,
    ScoreRequest,
    TriageOutcome,
    TriageRequest,
)

A = TypeVar("A")
R = TypeVar("R")


@dataclass(frozen=True)
class ActivityName(Generic[A, R]):
    """An activity: its registered name, what it takes and what it returns (`None`: nothing)."""

    name: str
    arg: type[A]
    result: type[R] | None


@dataclass(frozen=True)
class SignalName(Generic[A]):
    """A signal one workflow (or activity, or the engine) sends another, and what it carries."""

    name: str
    arg: type[A]


# --- activities (activities/petition.py) ------------------------------------------------------
REGISTER_CASE: Final = ActivityName[RegisterCaseInput, RegisterCaseResult](
    "register_case", RegisterCaseInput, RegisterCaseResult
)
TRIAGE_PETITION: Final = ActivityName[TriageRequest, TriageOutcome]("triage_petition", TriageRequest, TriageOutcome)
SAVE_CASE: Final = ActivityName[CaseSnapshot, None]("save_case", CaseSnapshot, None)
ISSUE_DOCUMENT: Final = ActivityName[DocumentRequest, DocumentIssued]("issue_document", DocumentRequest, DocumentIssued)
SEND_NOTIFICATION: Final = ActivityName[NotificationRequest, NotificationSent](
    "send_notification", NotificationRequest, NotificationSent
)
SEND_FALLBACK_NOTIFICATION: Final = ActivityName[NotificationRequest, NotificationSent](
    "send_fallback_notification", NotificationRequest, NotificationSent
)
RECORD_SCORE: Final = ActivityName[ScoreRequest, None]("record_score", ScoreRequest, None)
RESOLVE_OFFICIALS: Final = ActivityName[str, list[str]]("resolve_officials", str, list[str])
ENQUEUE_BATCH: Final = ActivityName[BatchEnqueue, None]("enqueue_batch", BatchEnqueue, None)
SEND_DIGEST: Final = ActivityName[DigestRequest, NotificationSent]("send_digest", DigestRequest, NotificationSent)
RECORD_ARBITRATION: Final = ActivityName[ArbitrationRecord, None]("record_arbitration", ArbitrationRecord, None)
CALENDAR_IS_PUBLISHED: Final = ActivityName[CalendarSnapshot, bool]("calendar_is_published", CalendarSnapshot, bool)

ACTIVITIES: Final[tuple[ActivityName[Any, Any], ...]] = (
    REGISTER_CASE,
    TRIAGE_PETITION,
    SAVE_CASE,
    ISSUE_DOCUMENT,
    SEND_NOTIFICATION,
    SEND_FALLBACK_NOTIFICATION,
    RECORD_SCORE,
    RESOLVE_OFFICIALS,
    ENQUEUE_BATCH,
    SEND_DIGEST,
    RECORD_ARBITRATION,
    CALENDAR_IS_PUBLISHED,
)

# --- signals ------------------------------------------------------------------------------------
# petition -> its arbitration track (workflows/arbitration.py)
ARBITRATION_RECORD: Final = SignalName[ArbitrationStep]("record", ArbitrationStep)
ARBITRATION_STOP: Final = SignalName[str]("stop", str)  # the outcome the petition closed with
# arbitration track -> petition; digest -> petition; the engine (`starter.py calendar push`) -> petition
ARBITRATION_OVERDUE: Final = SignalName[ArbitrationOverdue]("arbitration_overdue", ArbitrationOverdue)
BATCH_DELIVERED: Final = SignalName[BatchDelivered]("batch_delivered", BatchDelivered)
RELOAD_CALENDAR: Final = SignalName[CalendarSnapshot]("reload_calendar", CalendarSnapshot)
# enqueue_batch -> the unit's digest (workflows/digest.py), with signal-with-start
DIGEST_ADD_CASE: Final = SignalName[DigestItem]("add_case", DigestItem)

# --- error types activities raise on purpose (ApplicationError.type) ---------------------------
# save_case found no row for the case (deleted, or a database restored from an older backup): not
# worth retrying; the workflow registers the case again (idempotent) and saves once more.
CASE_NOT_REGISTERED: Final = "CaseNotRegistered"
# An action the rules or the actor's role do not allow now (update validators and handlers).
ACTION_REFUSED: Final = "ActionRefused"


async def send(handle: Any, signal: SignalName[A], arg: A) -> None:
    """Send `signal` with `arg` (typed) through a child or external workflow handle."""
    await handle.signal(signal.name, arg)
