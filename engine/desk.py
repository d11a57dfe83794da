"""The intake desk's operations, shared by starter.py, the worker's samples, the scenario runner
and the tests: register a petition, act on a case, read a case's history.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import CaseRow, RefusalRow, TimelineRow, as_utc, get_engine
from engine.config import Settings
from rules.access import may
from rules.deadlines import SHANGHAI, CalendarSnapshot, HolidayCalendar
from rules.ruleset import RuleSet, load_rules
from rules.vocabulary import MAX_CONTENT_CHARS, MAX_INPUT_BYTES
from rules.vocabulary import MAX_TITLE_CHARS as MAX_TITLE_CHARS  # checked by the Intake model
from workflows.models import (
    ACTION_INPUTS,
    PETITION_WORKFLOW,
    ActionResult,
    Actor,
    CaseStart,
    Intake,
    describe_validation_error,
    printable,
)


class InputError(ValueError):
    """Bad input from an operator: the message is a sentence naming the field."""


class NoWorker(Exception):
    """The engine answers but no worker serves the case: nothing was sent."""


# Long enough for a restarted worker to take over a case whose previous worker died (Temporal
# first tries the dead worker's sticky queue, for up to 10 s), short enough to answer an operator.
WORKER_PROBE = timedelta(seconds=30)


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


# A petition's case number (new_case_id): anything else (a digest's or an arbitration's workflow id)
# is not a case an operator may act on or read.
CASE_ID = re.compile(r"XF-[0-9]{8}-[0-9A-F]{8}")


def check_case_id(case_id: str) -> str:
    """`case_id` if it is a case number; InputError with a sentence otherwise (nothing is contacted)."""
    if not isinstance(case_id, str) or not CASE_ID.fullmatch(case_id):
        shown = printable(case_id, 60) if isinstance(case_id, str) else _json_kind(case_id)
        raise InputError(f"'{shown}' is not a case number; a case number looks like XF-20260315-1A2B3C4D.")
    return case_id


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    found = (name for kind, name in kinds.items() if isinstance(value, kind))
    return next(found, "null" if value is None else "that")


def read_json_input(source: str) -> Any:
    """The JSON in file `source` (or stdin for "-"): at most MAX_INPUT_BYTES of UTF-8 (a BOM is
    allowed); anything else is refused with a sentence naming the input, having read no more than
    the limit and one byte."""
    name = "stdin" if source == "-" else printable(source, 120)
    raw = _read_bytes(source, name, MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(
            f"{name}: is larger than {MAX_INPUT_BYTES:,} bytes; a petition's record is a few kilobytes "
            "(register the gist and attach long material as documents)."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = f"0x{raw[exc.start]:02x} at offset {exc.start:,}"
        raise InputError(f"{name}: is not UTF-8 text (byte {byte}); save it as UTF-8.") from None
    return parse_json_text(text, name)


def _read_bytes(source: str, name: str, limit: int) -> bytes:
    if source == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            return bytes(stream.read(limit))
        return sys.stdin.read(limit).encode("utf-8", "surrogatepass")  # a text-only stdin (tests)
    try:
        with Path(source).open("rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, not a file; name the JSON file.") from None
    except PermissionError:
        raise InputError(f"{name}: cannot be read (permission denied).") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror or type(exc).__name__}).") from None


def parse_json_text(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except RecursionError:
        what = "a petition's record or an action's data"
        raise InputError(f"{name}: is nested too deeply to be {what}.") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise InputError(f"{name}: holds a number with too many digits to be read.") from None


def parse_intake(data: Any) -> Intake:
    """An Intake from an operator's record, or InputError with one sentence per problem, each naming
    the field. The Intake model holds the rules (so every entry point applies them) but for the
    content's length, which is the desk's: cases started another way must still decode."""
    if not isinstance(data, dict):
        raise InputError(
            "An intake record is a JSON object with the fields of the scenario contract's `petition`, "
            f"not {_json_kind(data)}."
        )
    try:
        intake = Intake.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, "intake")) from exc
    if len(intake.content) > MAX_CONTENT_CHARS:
        raise InputError(
            f"intake field 'content': is {len(intake.content):,} characters long; a petition's content may be at most "
            f"{MAX_CONTENT_CHARS:,} characters. Register the gist and attach the rest as documents."
        )
    return intake


def parse_action(action: str, data: Any) -> BaseModel:
    model = ACTION_INPUTS.get(action)
    if model is None:
        raise InputError(f"Unknown action '{printable(action)}'; the actions are: {', '.join(ACTION_INPUTS)}.")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{action} data is a JSON object of the action's fields, not {_json_kind(data)}.")
    try:
        return model.model_validate(data)
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
            came = {"channel": intake.channel.value, "persons": len(intake.petitioners)}
            result = await act(client, settings, open_case.case_id, "repeat_visit", came, actor=actor)
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


async def act(
    client: Client,
    settings: Settings,
    case_id: str,
    action: str,
    data: Any,
    *,
    actor: Actor,
    worker_wait: timedelta = WORKER_PROBE,
) -> ActionResult:
    """Send one action to a case as `actor` (the signed-in account: the case's validator checks its
    role and unit). Refusals raise `Refused` (and are recorded); bad data `InputError`."""
    check_case_id(case_id)
    payload = parse_action(action, data).model_copy(update={"by": actor})
    handle = client.get_workflow_handle(case_id)
    try:
        # An update sent while no worker runs would wait, then be applied whenever a worker comes
        # back, long after the operator gave up (a "ghost" action). So first make sure the case is
        # being served: a query needs a worker too, and it can time out harmlessly.
        try:
            await handle.query("state", rpc_timeout=worker_wait)
        except RPCError as err:
            # The server answers DEADLINE_EXCEEDED, or the client's own deadline says "Timeout expired".
            if err.status != RPCStatusCode.DEADLINE_EXCEEDED and "timeout expired" not in str(err).lower():
                raise
            raise NoWorker(
                f"No worker answered for case {case_id} within {worker_wait.seconds} s, so the action "
                f"'{action}' was not sent (it would otherwise be applied whenever a worker comes back). "
                "Start the worker (`make run` or `python worker.py`) and send it again."
            ) from None
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
    check_case_id(case_id)
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        if row is None:
            raise InputError(f"There is no case '{case_id}'.")
        events = s.exec(select(TimelineRow).where(TimelineRow.case_id == case_id).order_by(TimelineRow.seq)).all()  # type: ignore[arg-type]
        refusals = s.exec(select(RefusalRow).where(RefusalRow.case_id == case_id).order_by(RefusalRow.id)).all()  # type: ignore[arg-type]
    t0 = as_utc(row.registered_at)
    out = [{"offset_s": e.offset_s, "kind": e.kind, **e.data, "at": as_utc(e.at).isoformat()} for e in events]
    for r in refusals:
        at = as_utc(r.at)
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

