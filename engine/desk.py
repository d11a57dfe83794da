"""The intake desk's operations, shared by starter.py, the worker's samples, the scenario runner
and the tests: register a petition, act on a case, read a case's history.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.db import CaseRow, RefusalRow, TimelineRow, get_engine
from engine.config import Settings
from rules.access import may
from rules.deadlines import SHANGHAI, CalendarSnapshot, HolidayCalendar
from rules.ruleset import RuleSet, load_rules
from rules.vocabulary import MAX_CONTENT_CHARS
from workflows.models import (
    ACTION_INPUTS,
    PETITION_WORKFLOW,
    ActionResult,
    Actor,
    CaseStart,
    Intake,
    describe_validation_error,
)


class InputError(ValueError):
    """Bad input from an operator: the message is a sentence naming the field."""


class Refused(Exception):
    """The rules refused an action at this moment; nothing changed in the case."""

    def __init__(self, case_id: str, action: str, error: str) -> None:
        super().__init__(error)
        self.case_id, self.action, self.error = case_id, action, error


class Registration(BaseModel):
    case_id: str
    repeat_visit: bool
    visits: int | None = None
    prior_final_case: str | None = None


MAX_TITLE_CHARS = 200


def parse_intake(data: Any) -> Intake:
    if not isinstance(data, dict):
        raise InputError("An intake record is a JSON object with the fields of the scenario contract's `petition`.")
    try:
        intake = Intake.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, "intake")) from exc
    if len(intake.content) > MAX_CONTENT_CHARS:
        raise InputError(
            f"intake field 'content': is {len(intake.content):,} characters long; a petition's content may be at most "
            f"{MAX_CONTENT_CHARS:,} characters. Register the gist and attach the rest as documents."
        )
    if len(intake.title) > MAX_TITLE_CHARS:
        raise InputError(
            f"intake field 'title': is {len(intake.title):,} characters long; a title may be at most {MAX_TITLE_CHARS} characters."
        )
    return intake


def parse_action(action: str, data: Any) -> BaseModel:
    model = ACTION_INPUTS.get(action)
    if model is None:
        raise InputError(f"Unknown action '{action}'; the actions are: {', '.join(ACTION_INPUTS)}.")
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, f"{action} data")) from exc


_NORMALISE = re.compile(r"[\s\W_]+", re.UNICODE)


def matter_key(settings: Settings, intake: Intake) -> str:
    """Same petitioner + same matter, as a keyed hash: no readable PII in the key.

    The petitioner is the first petitioner's identity number (else name + phone); the matter
    is the locality and the title with spaces and punctuation removed.
    """
    p = intake.petitioners[0]
    who = p.id_number or f"{p.name}|{p.phone or ''}"
    what = f"{intake.locality}|{_NORMALISE.sub('', intake.title)}"
    return hmac.new(settings.matter_key_secret(), f"{who}|{what}".encode(), hashlib.sha256).hexdigest()[:32]


def new_case_id(now: datetime | None = None) -> str:
    local = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    return f"XF-{local:%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"


def load_calendar(settings: Settings, name: str = "official") -> HolidayCalendar:
    if name == "weekends_only":
        return HolidayCalendar.weekends_only()
    path = settings.calendar_file
    # Parsed once per version of the file (an operator's edit changes its mtime), not per intake.
    return _calendar_at(str(path), path.stat().st_mtime_ns)


def published_calendar_snapshot(settings: Settings, year: int | None = None) -> CalendarSnapshot:
    """The calendar file as `calendar push` sends it: two years back, three ahead."""
    this_year = year or datetime.now(UTC).astimezone(SHANGHAI).year
    return load_calendar(settings).to_snapshot(range(this_year - 2, this_year + 3))


def is_published_calendar(settings: Settings, snapshot: CalendarSnapshot) -> bool:
    """True when `snapshot` is what `calendar push` sends from the calendar file (this year's or,
    across new year's night, last year's range): the check that makes a forged push harmless."""
    this_year = datetime.now(UTC).astimezone(SHANGHAI).year
    return any(snapshot == published_calendar_snapshot(settings, y) for y in (this_year, this_year - 1))


@lru_cache(maxsize=8)
def _calendar_at(path: str, mtime_ns: int) -> HolidayCalendar:
    return HolidayCalendar.load(Path(path))


async def register(
    client: Client,
    settings: Settings,
    intake: Intake,
    *,
    task_queue: str | None = None,
    calendar: str = "official",
    rules: RuleSet | None = None,
    use_search_attributes: bool = True,
    case_id: str | None = None,
    actor: Actor,
) -> Registration:
    """Register a petition: a repeat visit joins its open case, anything else starts a case.

    `actor` is the signed-in operator (engine/staff.py); other roles are refused.
    """
    if not may(actor.role, "register"):
        raise Refused("", "register", f"The role '{actor.role.value}' may not register petitions; it belongs to: operator.")
    key = matter_key(settings, intake)
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        open_case = s.exec(select(CaseRow).where(CaseRow.matter_key == key, CaseRow.status == "open")).first()
        final_case = s.exec(
            select(CaseRow).where(CaseRow.matter_key == key, CaseRow.outcome == "final_after_re_review")
        ).first()
    if open_case is not None:
        try:
            result = await act(client, settings, open_case.case_id, "repeat_visit", {}, actor=actor)
            visits = next((e.data.get("visits") for e in result.events if e.kind == "visit"), None)
            return Registration(case_id=open_case.case_id, repeat_visit=True, visits=visits)
        except Refused:
            pass  # it closed meanwhile: this visit starts a case of its own
    rule_set = rules or load_rules(settings.rules_file)
    cal = load_calendar(settings, calendar)
    year = datetime.now(UTC).astimezone(SHANGHAI).year
    cid = case_id or new_case_id()
    start = CaseStart(
        case_id=cid,
        intake=intake,
        rules=rule_set,
        calendar=cal.to_snapshot(range(year - 1, year + 3)),
        matter_key=key,
        prior_final_case=final_case.case_id if final_case is not None else None,
        use_search_attributes=use_search_attributes,
        registered_by=actor,
    )
    await client.start_workflow(PETITION_WORKFLOW, start, id=cid, task_queue=task_queue or settings.task_queue)
    return Registration(case_id=cid, repeat_visit=False, prior_final_case=start.prior_final_case)


def _record_refusal(settings: Settings, case_id: str, action: str, error: str, actor: Actor) -> None:
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        s.add(RefusalRow(case_id=case_id, action=action, error=error, actor=actor.record()))
        s.commit()


def _case_outcome(settings: Settings, case_id: str) -> str | None:
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        return row.outcome if row else None


async def act(client: Client, settings: Settings, case_id: str, action: str, data: Any, *, actor: Actor) -> ActionResult:
    """Send one action to a case as `actor` (the signed-in account: the case's validator checks its
    role and unit). Refusals raise `Refused` (and are recorded); bad data `InputError`."""
    payload = parse_action(action, data).model_copy(update={"by": actor})
    handle = client.get_workflow_handle(case_id)
    try:
        return await handle.execute_update(action, payload, result_type=ActionResult)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = getattr(cause, "message", None) or str(cause or err)
        _record_refusal(settings, case_id, action, message, actor)
        raise Refused(case_id, action, message) from err
    except RPCError as err:
        text = str(err)
        if "completed" in text or "not found" in text.lower() or "closed" in text:
            outcome = _case_outcome(settings, case_id)
            if outcome is None and "not found" in text.lower():
                raise InputError(f"There is no case '{case_id}'.") from err
            message = f"The case is closed ({outcome or 'closed'}); no further action is accepted on it."
            _record_refusal(settings, case_id, action, message, actor)
            raise Refused(case_id, action, message) from err
        raise


def history(settings: Settings, case_id: str) -> dict[str, Any]:
    """The case's timeline in the scenario contract's vocabulary, refusals included."""
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        if row is None:
            raise InputError(f"There is no case '{case_id}'.")
        events = s.exec(select(TimelineRow).where(TimelineRow.case_id == case_id).order_by(TimelineRow.seq)).all()  # type: ignore[arg-type]
        refusals = s.exec(select(RefusalRow).where(RefusalRow.case_id == case_id).order_by(RefusalRow.id)).all()  # type: ignore[arg-type]
    t0 = _aware(row.registered_at)
    out = [{"offset_s": e.offset_s, "kind": e.kind, **e.data, "at": _aware(e.at).isoformat()} for e in events]
    for r in refusals:
        at = _aware(r.at)
        out.append(
            {
                "offset_s": int((at - t0).total_seconds()),
                "kind": "rejected",
                "action": r.action,
                "error": r.error,
                "at": at.isoformat(),
                **({"by": r.actor} if r.actor else {}),
            }
        )
    out.sort(key=lambda e: e["offset_s"])
    return {
        "case_id": case_id,
        "status": "completed" if row.status == "closed" else "running",
        "stage": row.stage,
        "outcome": row.outcome,
        "category": row.category,
        "risk": row.risk,
        "unit": row.unit,
        "visits": row.visits,
        "nail_case": row.nail_case,
        "rules_version": row.rules_version,
        "events": out,
    }


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
