"""The intake desk's operations, shared by starter.py, the worker's samples, the scenario runner
and the tests: register a petition, act on a case, read a case's history.
"""

from __future__ import annotations

import asyncio
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
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import Priority
from temporalio.service import RPCError, RPCStatusCode

from activities.db import CaseRow, RefusalRow, TimelineRow, as_utc, get_engine
from engine.config import Settings
from rules.access import ROLE_CN, may
from rules.deadlines import SHANGHAI, CalendarSnapshot, HolidayCalendar
from rules.lifecycle import closed_refusal
from rules.ruleset import RuleSet, load_rules
from rules.vocabulary import ACTION_CN, MAX_CONTENT_CHARS, MAX_INPUT_BYTES, Risk, StaffRole
from rules.vocabulary import MAX_TITLE_CHARS as MAX_TITLE_CHARS  # checked by the Intake model
from workflows.models import (
    ACTION_INPUTS,
    PETITION_WORKFLOW,
    URGENT_PRIORITY,
    ActionResult,
    Actor,
    CaseStart,
    Intake,
    describe_validation_error,
    printable,
)
from workflows.validation_messages import field_problem, json_kind


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
        shown = printable(case_id, 60) if isinstance(case_id, str) else json_kind(case_id)
        raise InputError(f"“{shown}”不是案件编号；案件编号形如 XF-20260315-1A2B3C4D。")
    return case_id


def read_json_input(source: str) -> Any:
    """The JSON in file `source` (or stdin for "-"): at most MAX_INPUT_BYTES of UTF-8 (a BOM is
    allowed); anything else is refused with a sentence naming the input, having read no more than
    the limit and one byte."""
    name = "stdin" if source == "-" else printable(source, 120)
    raw = _read_bytes(source, name, MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(
            f"{name}：超过 {MAX_INPUT_BYTES:,} 字节；一件信访事项的记录只有几 KB"
            "（请登记主要内容，较长的材料作为附件文书）。"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = f"第 {exc.start:,} 字节处的 0x{raw[exc.start]:02x}"
        raise InputError(f"{name}：不是 UTF-8 文本（{byte}）；请另存为 UTF-8 编码。") from None
    return parse_json_text(text, name)


def _read_bytes(source: str, name: str, limit: int) -> bytes:
    if source == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            return bytes(stream.read(limit))
        return sys.stdin.read(limit).encode("utf-8", "surrogatepass")  # a text-only stdin (tests)
    return read_file(Path(source), name, limit, folder="是文件夹，不是文件；请指定 JSON 文件")


def read_file(path: Path, name: str, limit: int = -1, *, folder: str) -> bytes:
    """A file's bytes (at most `limit`), or an InputError that names it (`name`) and says why not;
    `folder` is what to say when the path is a folder."""
    try:
        with path.open("rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise InputError(f"{name}：文件不存在。") from None
    except IsADirectoryError:
        raise InputError(f"{name}：{folder}。") from None
    except PermissionError:
        raise InputError(f"{name}：无法读取（没有读取权限）。") from None
    except OSError as exc:
        raise InputError(f"{name}：无法读取（{exc.strerror or type(exc).__name__}）。") from None


def parse_json_text(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}：不是有效的 JSON（第 {exc.lineno} 行：{exc.msg}）。") from None
    except RecursionError:
        what = "信访事项记录或操作数据"
        raise InputError(f"{name}：嵌套层数过多，不可能是{what}。") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise InputError(f"{name}：含有位数过多、无法读取的数字。") from None


def parse_intake(data: Any) -> Intake:
    """An Intake from an operator's record, or InputError with one sentence per problem, each naming
    the field. The Intake model holds the rules (so every entry point applies them) but for the
    content's length, which is the desk's: cases started another way must still decode."""
    if not isinstance(data, dict):
        raise InputError(
            f"信访事项记录应为 JSON 对象（字段同场景约定中的 `petition`），而不是{json_kind(data)}。"
        )
    try:
        intake = Intake.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, "intake")) from exc
    if len(intake.content) > MAX_CONTENT_CHARS:
        raise InputError(
            field_problem(
                "intake",
                ("content",),
                f"有 {len(intake.content):,} 个字符，信访事项的主要内容最多 {MAX_CONTENT_CHARS:,} 个字符；"
                "请登记主要内容，其余材料作为附件文书",
            )
        )
    return intake


def parse_action(action: str, data: Any) -> BaseModel:
    model = ACTION_INPUTS.get(action)
    if model is None:
        raise InputError(f"未知的操作“{printable(action)}”；可用的操作有：{', '.join(ACTION_INPUTS)}。")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{action} 的数据应为由该操作的字段组成的 JSON 对象，而不是{json_kind(data)}。")
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
        raise Refused("", "register", f"“{ROLE_CN[actor.role]}”角色无权登记信访事项；只有“{ROLE_CN[StaffRole.operator]}”角色可以。")
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
    # Stated high risk at intake: the case's workflow tasks and activities are served ahead of any
    # backlog (a deadline surge), so its SMS does not wait behind it (workflows.models.URGENT_PRIORITY).
    priority = URGENT_PRIORITY if intake.risk == Risk.high else Priority.default
    await client.start_workflow(
        PETITION_WORKFLOW, start, id=cid, task_queue=task_queue or settings.task_queue, priority=priority
    )
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


# The server's answers that mean "not now" rather than "no": the case's workflow task is being
# retried after its worker died (FAILED_PRECONDITION "Workflow Task in failed state"), the server
# is restarting or overloaded, or a call outlived its deadline. `act` tries again, with the same
# update id, until the action's deadline.
TRANSIENT = frozenset(
    {
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
    }
)
# ... of which these say the server did not take the update in (it was not applied). After the
# others (a lost connection, a timeout) it may have been: only the same update id can tell.
NOT_ADMITTED = frozenset({RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.RESOURCE_EXHAUSTED})
# Waits between attempts (seconds); the last one repeats until the deadline.
RETRY_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)
# The least an attempt is given, even when the action's deadline is nearer (a served case answers
# an update in milliseconds; a shorter wait would only turn a slow answer into an unknown one).
MIN_ATTEMPT = timedelta(seconds=2)

# A request id: what an operator (or a form) sends again to mean "the same action".
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class EngineBusy(Exception):
    """The engine did not take an action before its deadline: the case's worker is recovering or
    the server is restarting. `maybe_applied` False: nothing was applied. True: whether it was is
    not known (an attempt went unanswered, or the case accepted it and is still at it). Sending
    it again with the same `request_id` never applies it twice."""

    def __init__(self, message: str, *, case_id: str, action: str, request_id: str, maybe_applied: bool) -> None:
        super().__init__(message)
        self.case_id, self.action, self.request_id, self.maybe_applied = case_id, action, request_id, maybe_applied


def new_request_id() -> str:
    """A request id for one operator action: made once per intention (a form, a command), reused
    by every attempt to send it."""
    return uuid.uuid4().hex


def check_request_id(request_id: object, name: str = "--request-id") -> str:
    """`request_id` if it is one; InputError with a sentence naming `name` otherwise."""
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        shown = printable(request_id, 70) if isinstance(request_id, str) else json_kind(request_id)
        raise InputError(f"{name}“{shown}”不是有效的请求编号：应为 1 至 64 个英文字母、数字或 . _ : -，以字母或数字开头。")
    return request_id


def update_id(action: str, request_id: str) -> str:
    """The Temporal update id of `action` sent with `request_id`: the server answers an update
    whose id it has already run (in this run of the case) with that first outcome, instead of
    running it again. The action is part of it, so one request id never merges two actions."""
    return f"{action}:{request_id}"


async def act(
    client: Client,
    settings: Settings,
    case_id: str,
    action: str,
    data: Any,
    *,
    actor: Actor,
    worker_wait: timedelta | None = None,
    request_id: str | None = None,
) -> ActionResult:
    """Send one action to a case as `actor` (the signed-in account: the case's validator checks its
    role and unit). Refusals raise `Refused` (and are recorded); bad data `InputError`.

    The action has `worker_wait` (WORKER_PROBE unless given) to be taken: first a worker must answer for the case (else
    `NoWorker`, nothing sent), then the update is sent, and sent again with backoff while the
    server answers "not now" (`TRANSIENT`); past the deadline `EngineBusy`. Every attempt carries
    the same update id (`request_id`, made here when not given: give the same one to send the same
    action again), so an attempt that took effect is answered with its outcome, never run twice
    nor refused as if it came second."""
    check_case_id(case_id)
    worker_wait = worker_wait or WORKER_PROBE
    rid = check_request_id(request_id) if request_id is not None else new_request_id()
    payload = parse_action(action, data).model_copy(update={"by": actor})
    handle = client.get_workflow_handle(case_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + worker_wait.total_seconds()

    def left() -> timedelta:
        return timedelta(seconds=max(deadline - loop.time(), 0.0))

    unknown = False  # an earlier attempt went unanswered: it may have reached the case
    accepted = False  # the case accepted the update (validated, in its history): it will be applied
    attempt = 0
    while True:
        sent = False
        try:
            # An update sent while no worker runs would wait, then be applied whenever a worker
            # comes back, long after the operator gave up (a "ghost" action). So first make sure
            # the case is being served: a query needs a worker too, and it can time out harmlessly.
            try:
                await handle.query("state", rpc_timeout=max(left(), timedelta(seconds=0.1)))
            except RPCError as err:
                # The server answers DEADLINE_EXCEEDED, or the client's own deadline says "Timeout expired".
                if err.status != RPCStatusCode.DEADLINE_EXCEEDED and "timeout expired" not in str(err).lower():
                    raise
                if attempt > 0:  # the engine answered "not now" before: it is recovering, not absent
                    raise _busy(case_id, action, rid, worker_wait, accepted=accepted, unknown=unknown) from None
                raise NoWorker(
                    f"案件 {case_id} 在 {worker_wait.seconds} 秒内没有工作进程应答，操作“{ACTION_CN.get(action, action)}”"
                    "没有发出（否则会在工作进程恢复后才被执行）。请启动工作进程（`make run` 或 `python worker.py`）后再发送。"
                ) from None
            sent = True
            update = await handle.start_update(
                action,
                payload,
                id=update_id(action, rid),
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=ActionResult,
                rpc_timeout=max(left(), MIN_ATTEMPT),
            )
            accepted = True
            return await update.result(rpc_timeout=max(left(), MIN_ATTEMPT))
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = getattr(cause, "message", None) or str(cause or err)
            _record_refusal(settings, case_id, action, message, actor)
            raise Refused(case_id, action, message) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller cancelled the action: not a timeout to retry
            unknown = unknown or sent
        except RPCError as err:
            text = str(err)
            if "completed" in text or "not found" in text.lower() or "closed" in text:
                outcome = _case_outcome(settings, case_id)
                if outcome is None and "not found" in text.lower():
                    raise InputError(f"没有案件“{case_id}”。") from err
                message = closed_refusal(outcome)
                _record_refusal(settings, case_id, action, message, actor)
                raise Refused(case_id, action, message) from err
            if err.status not in TRANSIENT:
                raise
            # FAILED_PRECONDITION, RESOURCE_EXHAUSTED: the server did not take this attempt in
            unknown = unknown or (sent and err.status not in NOT_ADMITTED)
        if loop.time() >= deadline:
            raise _busy(case_id, action, rid, worker_wait, accepted=accepted, unknown=unknown)
        pause = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)]
        attempt += 1
        await asyncio.sleep(min(pause, left().total_seconds()))


def _busy(
    case_id: str, action: str, request_id: str, worker_wait: timedelta, *, accepted: bool, unknown: bool
) -> EngineBusy:
    """The refusal of an action the engine did not take before its deadline, saying whether it
    may have been applied, and how to send it again safely."""
    name = ACTION_CN.get(action, action)
    again = f"用同一请求编号 {request_id} 重新发送（命令行：--request-id {request_id}）不会重复办理"
    if accepted:
        said = (f"引擎正在恢复：案件 {case_id} 已接受操作“{name}”，但在 {worker_wait.seconds} 秒内没有办完；"
                f"工作进程恢复后会办完，结果见案件的办理经过。{again}，只会取回结果。")  # fmt: skip
    elif unknown:
        said = (f"引擎忙或正在恢复：案件 {case_id} 在 {worker_wait.seconds} 秒内没有确认操作“{name}”，"
                f"无法确定它是否已生效，请查看案件的办理经过。{again}。")  # fmt: skip
    else:
        said = (f"引擎忙或正在恢复（例如案件 {case_id} 的工作进程刚刚中断，引擎正在重试）：操作“{name}”"
                f"在 {worker_wait.seconds} 秒内没有被引擎接收，没有生效。请稍后再发送（{again}）。")  # fmt: skip
    return EngineBusy(said, case_id=case_id, action=action, request_id=request_id, maybe_applied=accepted or unknown)


def history(settings: Settings, case_id: str) -> dict[str, Any]:
    """The case's timeline in the scenario contract's vocabulary, refusals included."""
    check_case_id(case_id)
    engine = get_engine(settings.resolved_database_url())
    with Session(engine) as s:
        row = s.get(CaseRow, case_id)
        if row is None:
            raise InputError(f"没有案件“{case_id}”。")
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

