"""The case desk (案件办理台) of the web app: the case list, its exports, one case's page and the
actions a signed-in account may take on it. Chinese throughout; times in Asia/Shanghai.

    GET  /cases                        the list: filters as query parameters (locality, unit, stage,
                                       risk, ladder, overdue, category, leader, nail_case, date_from,
                                       date_to, text; `page=`), 50 a page, newest first
    GET  /cases.csv, /cases.xlsx       the same filters, every matching row (at most EXPORT_CAP):
                                       no personal data, Chinese headers, local times
    GET  /cases/{id}                   header facts, deadlines, the three letters (三函), the Chinese
                                       timeline, refused actions, documents, and one form per action
                                       the account may take now (the workflow's `available` query)
    GET  /cases/{id}/documents/{n}.txt the text of a document; …/{n}.pdf its PDF (when there is one)
    POST /cases/{id}/actions/{action}  one action, CSRF-checked, sent as the same Temporal update the
                                       CLI sends (engine.desk.act); a refusal shows the case page
                                       again (409) with the validator's sentence

Who sees what: roles with "view_cases" every case, a unit account ("view_own_unit") its own unit's
cases only (rules/access.py may_view); others are refused (403). Acting needs a case one may view:
the reviewing body's decisions (复查/复核决定) on another unit's case go through starter.py.

The list and the exports read the database only (engine/cockpit.py); the case page asks the engine
(`state`, `available`) with a short timeout and, without an engine, shows what the database has.
Times, periods, stages and the timeline's sentences are said as the CLI says them (engine/wording.py).
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import math
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticUndefined
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import CaseRow, DocumentRow, RefusalRow, TimelineRow
from activities.documents import pdf_path
from engine.cockpit import MAX_FILTER_CHARS, CaseFilter, case_list, filter_options
from engine.config import Settings
from engine.desk import (
    CASE_ID,
    EngineBusy,
    InputError,
    NoWorker,
    Refused,
    act,
    check_case_id,
    check_request_id,
    new_request_id,
    parse_action,
)
from engine.logs import get_logger
from engine.web import (
    Forbidden,
    SignInRequired,
    _db,
    _error,
    _foreign_origin,
    _page,
    _settings,
    content_disposition,
    current_actor,
    form_csrf_token,
)
from engine.wording import (
    actor_text,
    cn,
    days_left,
    document_title,
    due_time,
    event_text,
    local_time,
    stage_text,
    time_left,
    to_local,
)
from rules.access import CASE_ACTIONS, PERMISSIONS, ROLE_CN, may, may_view
from rules.deadlines import SHANGHAI
from rules.lifecycle import PAUSABLE
from rules.vocabulary import (
    ACTION_CN,
    ARBITRATION_EVENT_CN,
    CATEGORY_CN,
    CHANNEL_CN,
    DEADLINE_CN,
    DEADLINE_STATUS_CN,
    FIELD_CN,
    LADDER_CN,
    LADDER_END_CN,
    OFFICE_LEVEL_CN,
    REDIRECT_ROUTE_CN,
    RISK_CN,
    STAGE_CN,
    ArbitrationEvent,
    Category,
    Channel,
    DeadlineName,
    RedirectRoute,
    Risk,
    Stage,
)
from workflows.models import ACTION_INPUTS, Actor, CaseState, mask_personal_data, printable

PAGE_SIZE = 50
EXPORT_CAP = 300_000  # rows in one export; a city's whole year is about 245,000 cases
QUERY_TIMEOUT = timedelta(seconds=3)  # the case page's questions to the engine
MAX_DOCUMENT_VIEW = 200_000  # bytes of a document's text shown in the page (a document is a few KB)

log = get_logger(component="web_cases")
cases_router = APIRouter()

# ------------------------------------------------------------------------------------------------
# The desk's own words (times, stages, who acted and the timeline's sentences: engine/wording.py)
# ------------------------------------------------------------------------------------------------

LADDER_STEPS = ("warning", "supervision", "accountability")
LADDER_FILTER_CN = {**{step: LADDER_CN[step] for step in LADDER_STEPS}, "any": "任一环节"}
STAGE_FILTER_CN = {"open": "未办结（全部）", "closed": "已办结", **{s.value: STAGE_CN[s] for s in Stage if s != Stage.closed}}

# What an action form adds to a field's Chinese name (rules/vocabulary.py FIELD_CN): its unit, how to
# type it. A field FIELD_CN does not name shows its own name.
FORM_HINTS = {"disputed_amount": "（元）", "officials": "（每行一人）"}
LONG_TEXT_FIELDS = frozenset({"text", "reason", "note", "terms"})
ENUM_CN: dict[type[Enum], dict[Any, str]] = {
    RedirectRoute: REDIRECT_ROUTE_CN,
    Channel: CHANNEL_CN,
    DeadlineName: DEADLINE_CN,
    ArbitrationEvent: ARBITRATION_EVENT_CN,
    Category: CATEGORY_CN,
    Risk: RISK_CN,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _stage(row: Any) -> str:
    """A case row's stage, or its outcome once closed."""
    return stage_text(row.stage, row.outcome, row.status == "closed")


# ------------------------------------------------------------------------------------------------
# Who may see cases
# ------------------------------------------------------------------------------------------------


def case_viewer(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """A dependency: the signed-in account, if it may read cases (all, or its own unit's)."""
    if may(actor.role, "view_cases"):
        return actor
    if may(actor.role, "view_own_unit"):
        if not actor.unit:
            raise Forbidden("您的账号属于“责任单位”角色，但没有设置所属单位，暂时无法查看案件；请联系系统管理员。")
        return actor
    allowed = "、".join(
        ROLE_CN[r] + ("（本单位的案件）" if "view_own_unit" in p and "view_cases" not in p else "")
        for r, p in PERMISSIONS.items()
        if "view_cases" in p or "view_own_unit" in p
    )
    raise Forbidden(f"您当前的角色是“{ROLE_CN[actor.role]}”，无权查看案件；只有{allowed}可以。")


def _unit_only(actor: Actor) -> str | None:
    return None if may(actor.role, "view_cases") else actor.unit


# ------------------------------------------------------------------------------------------------
# The filters
# ------------------------------------------------------------------------------------------------

FILTER_CN = {
    "locality": "属地",
    "unit": "责任单位",
    "stage": "阶段",
    "risk": "风险",
    "ladder": "三函",
    "overdue": "超期",
    "category": "类别",
    "leader": "包案领导",
    "nail_case": "钉子案",
    "date_from": "登记日期（起）",
    "date_to": "登记日期（止）",
    "text": "关键词",
    "page": "页码",
}
_DATE_FORMAT = "应为 YYYY-MM-DD 格式的日期，例如 2026-12-01"
FILTER_EXPECTED = {
    "stage": "应为 open（未办结）、closed（已办结）或阶段代码之一：" + "、".join(s.value for s in Stage if s != Stage.closed),
    "risk": "应为 " + "、".join(f"{r.value}（{RISK_CN[r]}）" for r in Risk) + " 之一",
    "ladder": "应为 " + "、".join(f"{k}（{v}）" for k, v in LADDER_FILTER_CN.items()) + " 之一",
    "overdue": "应为 1（是）或 0（否）",
    "nail_case": "应为 1（是）或 0（否）",
    "category": "应为类别代码之一：" + "、".join(f"{c.value}（{CATEGORY_CN[c]}）" for c in Category),
    "date_from": _DATE_FORMAT,
    "date_to": _DATE_FORMAT,
    "page": "应为不小于 1 的整数",
}


class CaseQuery(CaseFilter):
    """The list's query parameters: the cockpit's filters and the page. An empty value means "any";
    spaces around a value are dropped."""

    model_config = ConfigDict(str_strip_whitespace=True)

    page: int = Field(default=1, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_any(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    def case_filter(self) -> CaseFilter:
        """The cockpit's filter alone (without the page)."""
        return CaseFilter(**self.model_dump(exclude={"page"}))

    def params(self) -> dict[str, str]:
        """The filters as query parameters (for links: pages, exports); `page` left out."""
        out: dict[str, str] = {}
        for k in CaseFilter.model_fields:
            v = getattr(self, k)
            if v is not None:
                out[k] = "1" if v is True else "0" if v is False else str(v)
        return out


def filter_error(exc: ValidationError) -> str:
    """One Chinese sentence per bad filter, each naming the field."""
    sentences = []
    for err in exc.errors():
        loc = err.get("loc", ())
        name = str(loc[0]) if loc else ""
        if not name:
            if "date_order" in str(err.get("msg", "")):
                sentences.append("筛选条件“登记日期（起）”（date_from）晚于“登记日期（止）”（date_to），请调换或更正。")
            else:
                sentences.append("筛选条件无效。")
            continue
        shown = printable(str(err.get("input", "")), 40)
        expected = FILTER_EXPECTED.get(name, f"最多 {MAX_FILTER_CHARS} 个字符")
        sentences.append(f"筛选条件“{FILTER_CN.get(name, name)}”（{name}）的值“{shown}”无效：{expected}。")
    return "".join(dict.fromkeys(sentences))


def _raw_params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in FILTER_CN}


def _parse_query(request: Request) -> CaseQuery:
    return CaseQuery.model_validate(_raw_params(request))


def _options(engine: Engine, unit_only: str | None) -> dict[str, list[str]]:
    """The drop-downs' localities, units and leaders: all of them, or a unit's own cases' only."""
    if unit_only is None:
        return filter_options(engine)
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    mine = c.unit == unit_only
    with engine.connect() as conn:
        return {
            "localities": [r[0] for r in conn.execute(sa.select(c.locality).where(mine).distinct().order_by(c.locality))],
            "units": [unit_only],
            "leaders": [
                r[0]
                for r in conn.execute(
                    sa.select(c.leader).where(mine, c.leader.is_not(None)).distinct().order_by(c.leader)
                )
            ],
        }


def _select_options(options: dict[str, list[str]]) -> dict[str, list[tuple[str, str]]]:
    return {
        "locality": [(x, x) for x in options["localities"]],
        "unit": [(x, x) for x in options["units"]],
        "stage": list(STAGE_FILTER_CN.items()),
        "risk": [(r.value, RISK_CN[r]) for r in Risk],
        "ladder": list(LADDER_FILTER_CN.items()),
        "overdue": [("1", "超期"), ("0", "未超期")],
        "category": [(c.value, CATEGORY_CN[c]) for c in Category],
        "leader": [(x, x) for x in options["leaders"]],
        "nail_case": [("1", "是"), ("0", "否")],
    }


# ------------------------------------------------------------------------------------------------
# Rows as the list and the exports show them
# ------------------------------------------------------------------------------------------------


def case_line(row: Any, now: datetime) -> dict[str, Any]:
    """One case of the list (a CaseRow, or a row of the same columns)."""
    nxt = None
    if row.status == "open" and row.next_deadline and row.next_due is not None:
        nxt = {
            "name": cn(DEADLINE_CN, row.next_deadline),
            "due": due_time(row.next_due),
            "days": time_left(row.next_due, now),
            "days_left": days_left(row.next_due, now),
            "provisional": bool(row.next_due_provisional),
        }
    over = None
    if row.overdue and row.status == "open":
        since = row.overdue_since
        over = {
            "name": cn(DEADLINE_CN, row.overdue_deadline, ""),
            "days": max(1, -days_left(since, now)) if since is not None else None,
            "since": due_time(since, empty=""),
        }
    return {
        "case_id": row.case_id,
        "title": row.title,
        "locality": row.locality,
        "unit": row.unit or "",
        "category": cn(CATEGORY_CN, row.category, ""),
        "risk": cn(RISK_CN, row.risk, ""),
        "risk_code": row.risk or "",
        "stage": _stage(row),
        "closed": row.status == "closed",
        "ladder": cn(LADDER_CN, row.ladder, ""),
        "leader": row.leader or "",
        "visits": row.visits,
        "nail_case": bool(row.nail_case),
        "registered": local_time(row.registered_at),
        "registered_at": to_local(row.registered_at),
        "closed_at": local_time(row.closed_at, empty=""),
        "next": nxt,
        "overdue": over,
    }


EXPORT_HEADERS = [
    "案件编号", "标题", "属地", "责任单位", "类别", "风险", "阶段", "三函", "包案领导", "来访次数", "钉子案",
    "登记时间", "办结时间", "下一期限", "期限届满", "剩余天数", "暂定", "超期", "超期期限", "超期天数",
]  # fmt: skip
_EXPORT_COLUMNS = (
    "case_id", "title", "locality", "unit", "category", "risk", "stage", "status", "outcome", "ladder", "leader",
    "visits", "nail_case", "registered_at", "closed_at", "next_deadline", "next_due", "next_due_provisional",
    "overdue", "overdue_deadline", "overdue_since",
)  # fmt: skip


def export_values(row: Any, now: datetime) -> list[Any]:
    """One exported row: no personal data (identity numbers, phones, e-mails in a title are masked)."""
    line = case_line(row, now)
    nxt, over = line["next"], line["overdue"]
    return [
        line["case_id"],
        mask_personal_data(line["title"]),
        line["locality"],
        line["unit"],
        line["category"],
        line["risk"],
        line["stage"],
        line["ladder"],
        line["leader"],
        line["visits"],
        "是" if line["nail_case"] else "否",
        line["registered_at"],
        to_local(row.closed_at),
        nxt["name"] if nxt else "",
        nxt["due"] if nxt else "",
        nxt["days_left"] if nxt else None,
        ("是" if nxt["provisional"] else "否") if nxt else "",
        "是" if over else "否",
        over["name"] if over else "",
        over["days"] if over else None,
    ]


def export_rows(engine: Engine, flt: CaseFilter, unit_only: str | None, cap: int = EXPORT_CAP) -> Iterator[Any]:
    """Every case the filter selects (newest first, at most `cap`), read in batches."""
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    where = flt.conditions() + ([c.unit == unit_only] if unit_only else [])
    stmt = (
        sa.select(*[c[name] for name in _EXPORT_COLUMNS])
        .where(*where)
        .order_by(c.registered_at.desc(), c.case_id)
        .limit(cap)
    )
    with engine.connect() as conn:
        yield from conn.execution_options(yield_per=2000).execute(stmt)


def _export_count(engine: Engine, flt: CaseFilter, unit_only: str | None) -> int:
    _, total = case_list(engine, flt, unit_only=unit_only, limit=0)
    return total


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    """A CSV field that a spreadsheet will not run as a formula (a title is the petitioner's text)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if not isinstance(value, str):
        return str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def _download_name(stem: str, suffix: str, now: datetime) -> str:
    """Content-Disposition: the Chinese name, stamped in local time, and an ASCII fallback."""
    stamp = now.astimezone(SHANGHAI).strftime("%Y%m%d-%H%M")
    return content_disposition(f"{stem}-{stamp}{suffix}", f"cases-{stamp}{suffix}")


def csv_chunks(rows: Iterator[Any], now: datetime) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADERS)
    yield ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM: Excel on Windows then reads UTF-8
    buf.seek(0)
    buf.truncate()
    n = 0
    for row in rows:
        writer.writerow([_csv_cell(v) for v in export_values(row, now)])
        n += 1
        if n % 500 == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


def xlsx_bytes(rows: Iterator[Any], now: datetime) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("案件列表")
    widths = [24, 40, 12, 20, 12, 6, 18, 12, 12, 8, 8, 18, 18, 16, 18, 10, 6, 6, 16, 10]
    for i, width in enumerate(widths):
        ws.column_dimensions[chr(ord("A") + i)].width = width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for name in EXPORT_HEADERS:
        cell = WriteOnlyCell(ws, value=name)
        cell.font = bold
        header.append(cell)
    ws.append(header)
    for row in rows:
        values: list[Any] = export_values(row, now)
        for i, value in enumerate(values):
            if isinstance(value, datetime):
                cell = WriteOnlyCell(ws, value=value.replace(tzinfo=None))  # Excel has no time zones
                cell.number_format = "yyyy-mm-dd hh:mm"
                values[i] = cell
            elif isinstance(value, str) and value.startswith(_FORMULA_START):
                cell = WriteOnlyCell(ws, value=value)
                cell.data_type = "s"  # text, never a formula (a title is the petitioner's text)
                values[i] = cell
        ws.append(values)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------
# The list and the exports
# ------------------------------------------------------------------------------------------------


def _list_page(
    request: Request,
    actor: Actor,
    *,
    status_code: int = 200,
    query: CaseQuery | None = None,
    error: str | None = None,
) -> Response:
    engine = _db(request)
    unit_only = _unit_only(actor)
    context: dict[str, Any] = {
        "actor": actor,
        "role_cn": ROLE_CN[actor.role],
        "error": error,
        "values": _raw_params(request) if query is None else query.params(),
        "options": _select_options(_options(engine, unit_only)),
        "labels": FILTER_CN,
        "unit_only": unit_only,
        "rows": None,
        "export_cap": f"{EXPORT_CAP:,}",
    }
    if query is not None:
        now = _now()
        offset = (query.page - 1) * PAGE_SIZE
        rows, total = case_list(engine, query.case_filter(), unit_only=unit_only, limit=PAGE_SIZE, offset=offset)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        params = query.params()

        def link(page: int) -> str:
            return "/cases?" + urlencode({**params, "page": str(page)})

        context.update(
            rows=[case_line(r, now) for r in rows],
            total=total,
            page=query.page,
            pages=pages,
            first=offset + 1 if rows else 0,
            last=offset + len(rows),
            prev_link=link(query.page - 1) if query.page > 1 else None,
            next_link=link(query.page + 1) if query.page < pages else None,
            first_link=link(1) if query.page > 2 else None,
            last_link=link(pages) if query.page < pages - 1 else None,
            qs=urlencode(params),
        )
    return _page(request, "cases.html", status_code, **context)


@cases_router.get("/cases")
def cases_page(request: Request, actor: Annotated[Actor, Depends(case_viewer)]) -> Response:
    try:
        query = _parse_query(request)
    except ValidationError as exc:
        return _list_page(request, actor, status_code=400, error=filter_error(exc))
    return _list_page(request, actor, query=query)


def _export_query(request: Request) -> CaseQuery | Response:
    try:
        return _parse_query(request)
    except ValidationError as exc:
        return _error(request, 400, "筛选条件无效", filter_error(exc))


@cases_router.get("/cases.csv")
def cases_csv(request: Request, actor: Annotated[Actor, Depends(case_viewer)]) -> Response:
    query = _export_query(request)
    if isinstance(query, Response):
        return query
    engine, flt, unit_only, now = _db(request), query.case_filter(), _unit_only(actor), _now()
    total = _export_count(engine, flt, unit_only)
    log.info("web_cases_export", username=actor.name, format="csv", rows=min(total, EXPORT_CAP), filters=query.params())
    return StreamingResponse(
        csv_chunks(export_rows(engine, flt, unit_only), now),
        media_type="text/csv; charset=utf-8",
        headers=_export_headers("信访案件", ".csv", now, total),
    )


@cases_router.get("/cases.xlsx")
async def cases_xlsx(request: Request, actor: Annotated[Actor, Depends(case_viewer)]) -> Response:
    query = _export_query(request)
    if isinstance(query, Response):
        return query
    engine, flt, unit_only, now = _db(request), query.case_filter(), _unit_only(actor), _now()
    total = await run_in_threadpool(_export_count, engine, flt, unit_only)
    log.info("web_cases_export", username=actor.name, format="xlsx", rows=min(total, EXPORT_CAP), filters=query.params())
    body = await run_in_threadpool(lambda: xlsx_bytes(export_rows(engine, flt, unit_only), now))
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=_export_headers("信访案件", ".xlsx", now, total),
    )


def _export_headers(stem: str, suffix: str, now: datetime, total: int) -> dict[str, str]:
    headers = {
        "Content-Disposition": _download_name(stem, suffix, now),
        "X-Total-Count": str(total),
        "X-Exported-Rows": str(min(total, EXPORT_CAP)),
    }
    if total > EXPORT_CAP:
        headers["X-Export-Truncated"] = "1"
    return headers


# ------------------------------------------------------------------------------------------------
# One case: what the engine says
# ------------------------------------------------------------------------------------------------


@dataclass
class EngineView:
    state: CaseState | None = None
    available: list[str] | None = None
    note: str | None = None  # why the engine's view is missing, in Chinese


ENGINE_ABSENT = "网页未连接到引擎：以下为数据库中的记录；办理操作需要引擎运行（make run 或 python worker.py）。"


async def ask_engine(client: Client | None, case_id: str, actor: Actor, want_actions: bool) -> EngineView:
    """The case's `state` and the actions `actor` may take now (`available`), each within
    QUERY_TIMEOUT; an unreachable engine or worker leaves them None with a sentence why."""
    if client is None:
        return EngineView(note=ENGINE_ABSENT)
    handle = client.get_workflow_handle(case_id)

    async def state() -> CaseState:
        return await handle.query("state", result_type=CaseState, rpc_timeout=QUERY_TIMEOUT)

    async def available() -> list[str] | None:
        if not want_actions:
            return None
        found = await handle.query("available", actor, result_type=list[str], rpc_timeout=QUERY_TIMEOUT)
        return [a for a in found if a in ACTION_INPUTS]

    seconds = int(QUERY_TIMEOUT.total_seconds())
    no_answer = f"引擎在 {seconds} 秒内没有应答（工作进程可能未运行）：以下期限取自数据库记录；办理操作需要引擎运行。"
    try:
        results = await asyncio.wait_for(
            asyncio.gather(state(), available(), return_exceptions=True), timeout=QUERY_TIMEOUT.total_seconds() + 2
        )
    except TimeoutError:
        return EngineView(note=no_answer)
    view = EngineView()
    st, av = results
    if isinstance(st, CaseState):
        view.state = st
    if isinstance(av, list):
        view.available = av
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is None:
        return view
    if isinstance(failure, RPCError):
        if failure.status == RPCStatusCode.NOT_FOUND:
            view.note = "引擎中找不到这个案件的工作流：以下为数据库中的记录，不能在此办理。"
        elif failure.status == RPCStatusCode.DEADLINE_EXCEEDED or "timeout expired" in str(failure).lower():
            view.note = no_answer
        else:
            view.note = "暂时无法连接引擎：以下为数据库中的记录；办理操作需要引擎正常运行。"
    elif isinstance(failure, WorkflowQueryFailedError | WorkflowQueryRejectedError):
        if view.state is not None:
            view.note = "引擎未能列出您现在可以办理的操作（工作进程的版本可能较旧）。"
        else:
            view.note = "引擎未能回答这个案件的查询：以下期限取自数据库记录。"
    elif isinstance(failure, Exception):
        log.warning("web_case_query_failed", case_id=case_id, error=type(failure).__name__)
        view.note = "暂时无法连接引擎：以下为数据库中的记录；办理操作需要引擎正常运行。"
    else:
        raise failure
    return view


# ------------------------------------------------------------------------------------------------
# One case: the action forms
# ------------------------------------------------------------------------------------------------


@dataclass
class FormField:
    name: str
    label: str
    kind: Literal["text", "textarea", "number", "checkbox", "select", "tristate", "lines"]
    required: bool
    value: Any = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    step: str = "1"


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the field's base type, whether None is allowed), through Optional and Annotated."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        annotation = rest[0] if len(rest) == 1 else str
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def form_fields(
    model: type[BaseModel], prefill: dict[str, Any] | None = None, choices: dict[str, list[str]] | None = None
) -> list[FormField]:
    """The form of an action's input model (its `by` is the signed-in account, never a field)."""
    out = []
    prefill = prefill or {}
    for name, info in model.model_fields.items():
        if name == "by":
            continue
        base, optional = _unwrap(info.annotation)
        required = info.is_required()
        default = None if info.default is PydanticUndefined else info.default
        value = prefill.get(name, default)
        label = FIELD_CN.get(name, name) + FORM_HINTS.get(name, "")
        if base is bool:
            if optional:
                shown = "" if value is None else ("1" if value else "0")
                out.append(FormField(name, label, "tristate", False, shown, [("", "（不填，按登记时的记录）"), ("1", "是"), ("0", "否")]))
            else:
                out.append(FormField(name, label, "checkbox", False, bool(value)))
        elif isinstance(base, type) and issubclass(base, Enum):
            names = ENUM_CN.get(base, {})
            allowed = (choices or {}).get(name)
            options = [(m.value, f"{names.get(m, m.value)}") for m in base if allowed is None or m.value in allowed]
            if optional or not required and default is None:
                options.insert(0, ("", "（不填）"))
            shown = value.value if isinstance(value, Enum) else (value or "")
            out.append(FormField(name, label, "select", required, shown, options))
        elif base in (int, float):
            shown = "" if value is None else value
            out.append(FormField(name, label, "number", required, shown, step="1" if base is int else "any"))
        elif get_origin(base) is list:
            shown = "\n".join(str(v) for v in value) if isinstance(value, list) else ""
            out.append(FormField(name, label, "lines", required, shown))
        else:
            kind: Literal["text", "textarea"] = "textarea" if name in LONG_TEXT_FIELDS else "text"
            out.append(FormField(name, label, kind, required, "" if value is None else value))
    return out


YES_NO = {"1": True, "0": False}  # a tri-state field's choices


def read_form(model: type[BaseModel], form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """A submitted action form, read once: the action's data (what the model validates,
    engine.desk.parse_action) and what was typed (to show again in a form that was refused)."""
    data: dict[str, Any] = {}
    typed: dict[str, Any] = {}
    for f in form_fields(model):
        raw = form.get(f.name)
        text = raw if isinstance(raw, str) else ""
        if f.kind == "checkbox":
            data[f.name] = typed[f.name] = bool(text)
        elif f.kind == "tristate":
            typed[f.name] = YES_NO.get(text)
            if text:
                data[f.name] = YES_NO.get(text, text)
        elif f.kind == "lines":
            typed[f.name] = text.splitlines()
            data[f.name] = [line.strip() for line in typed[f.name] if line.strip()]
        else:
            typed[f.name] = text
            if text.strip():
                data[f.name] = text
            elif f.required and f.kind in ("text", "textarea"):
                data[f.name] = ""  # the model's own sentence says what is missing
    return data, typed


def form_data(model: type[BaseModel], form: FormData) -> dict[str, Any]:
    """An action's data from its submitted form: what the model validates (engine.desk.parse_action)."""
    return read_form(model, form)[0]


def action_forms(
    actions: list[str], row: CaseRow, state: CaseState | None, typed: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    forms = []
    for action in ACTION_INPUTS:
        if action not in actions:
            continue
        prefill: dict[str, Any] = {}
        choices: dict[str, list[str]] = {}
        unit = (state.unit if state is not None else None) or row.unit
        if action == "accept" and unit:
            prefill["unit"] = unit
        if action in ("pause_clock", "resume_clock"):
            wanted = "running" if action == "pause_clock" else "paused"
            names = [d.name.value for d in (state.deadlines if state else []) if d.status == wanted and d.name in PAUSABLE]
            choices["deadline"] = names or [n.value for n in PAUSABLE]
            prefill["deadline"] = choices["deadline"][0]
        prefill.update(typed.get(action, {}))
        forms.append(
            {
                "action": action,
                "name": ACTION_CN.get(action, action),
                "fields": form_fields(ACTION_INPUTS[action], prefill, choices),
                "open": action in typed,
                # One operator intention, one update id: a double click or a resubmitted form
                # sends the same request again, which the engine answers without acting twice.
                "request_id": new_request_id(),
            }
        )
    return forms


# ------------------------------------------------------------------------------------------------
# One case: the page
# ------------------------------------------------------------------------------------------------


def _load_case(request: Request, case_id: str) -> CaseRow | None:
    try:
        check_case_id(case_id)
    except InputError:
        return None
    with Session(_db(request)) as s:
        return s.get(CaseRow, case_id)


def _no_case_sentence(case_id: str) -> str:
    return f"没有编号为“{printable(case_id, 40)}”的案件；案件编号形如 XF-20260315-1A2B3C4D。"


def _not_yours_sentence(actor: Actor) -> str:
    return f"这个案件不属于您的单位（{actor.unit or '未设置单位'}），您只能查看本单位的案件。"


def _no_case(request: Request, case_id: str) -> Response:
    return _error(request, 404, "没有这个案件", _no_case_sentence(case_id))


def _not_yours(request: Request, actor: Actor) -> Response:
    return _error(request, 403, "无权查看", _not_yours_sentence(actor))


def _deadlines(view: EngineView, row: CaseRow, now: datetime) -> tuple[list[dict[str, Any]], str]:
    """The case's periods: from the engine's state, else the database's next and overdue ones."""
    out = []
    if view.state is not None:
        for d in sorted(view.state.deadlines, key=lambda x: x.due):
            overdue = d.status == "overdue"
            counting = d.status in ("running", "paused", "overdue")
            out.append(
                {
                    "name": DEADLINE_CN.get(d.name, d.name.value),
                    "code": d.name.value,
                    "started": local_time(d.started_at, empty=""),
                    "due": due_time(d.due),
                    "days": time_left(d.due, now, overdue=overdue) if counting else "",
                    "provisional": d.provisional,
                    "status": DEADLINE_STATUS_CN.get(d.status, d.status),
                    "status_code": d.status,
                }
            )
        return out, "engine"
    if row.status == "open" and row.overdue and row.overdue_since is not None:
        since = row.overdue_since
        out.append(
            {
                "name": cn(DEADLINE_CN, row.overdue_deadline, "期限"), "code": row.overdue_deadline or "", "started": "",
                "due": due_time(since), "days": time_left(since, now, overdue=True), "provisional": False,
                "status": DEADLINE_STATUS_CN["overdue"], "status_code": "overdue",
            }
        )  # fmt: skip
    if row.status == "open" and row.next_deadline and row.next_due is not None:
        due = row.next_due
        out.append(
            {
                "name": cn(DEADLINE_CN, row.next_deadline), "code": row.next_deadline, "started": "",
                "due": due_time(due), "days": time_left(due, now), "provisional": bool(row.next_due_provisional),
                "status": DEADLINE_STATUS_CN["running"], "status_code": "running",
            }
        )  # fmt: skip
    return out, "database"


def _ladder(row: CaseRow, events: list[TimelineRow]) -> dict[str, Any] | None:
    """The three letters: when each was issued (the latest time), where the case stands."""
    ladder_events = [e for e in events if e.kind == "ladder"]
    if not ladder_events and not row.ladder and not row.ladder_end:
        return None
    latest: dict[str, TimelineRow] = {}
    for e in ladder_events:
        latest[str(e.data.get("ladder"))] = e
    steps = []
    for step in LADDER_STEPS:
        found = latest.get(step)
        detail = ""
        if found is not None and step != "accountability" and found.data.get("due"):
            detail = f"整改期限至 {due_time(found.data.get('due'))}"
        elif found is not None and step == "accountability":
            officials = found.data.get("officials")
            if isinstance(officials, list) and officials:
                detail = "建议问责：" + "、".join(str(o) for o in officials)
        steps.append(
            {
                "step": step,
                "name": LADDER_CN[step],
                "at": local_time(found.at) if found is not None else "",
                "unit": str(found.data.get("unit") or "") if found is not None else "",
                "detail": detail,
                "current": row.ladder == step,
            }
        )
    flagged = latest.get("flagged")
    ended = latest.get("ended")
    return {
        "steps": steps,
        "flagged": {"at": local_time(flagged.at), "reason": str(flagged.data.get("reason") or "")} if flagged else None,
        "ended": {"at": local_time(ended.at), "how": cn(LADDER_END_CN, ended.data.get("how"))} if ended else None,
        "current": cn(LADDER_CN, row.ladder, ""),
    }


def _document_file(settings: Settings, doc: DocumentRow, suffix: str) -> Path | None:
    """The document's file (its text, or the PDF beside it), only inside the documents folder."""
    text = Path(doc.path)
    target = text if suffix == ".txt" else pdf_path(text)
    try:
        root = settings.documents_dir.resolve()
        resolved = target.resolve()
    except OSError:
        return None
    if not resolved.is_relative_to(root) or resolved.suffix != suffix or not resolved.is_file():
        return None
    return resolved


def _documents(settings: Settings, case_id: str, docs: list[DocumentRow]) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        text_file = _document_file(settings, d, ".txt")
        text = None
        if text_file is not None:
            try:
                with text_file.open("rb") as f:
                    raw = f.read(MAX_DOCUMENT_VIEW + 1)
                text = raw[:MAX_DOCUMENT_VIEW].decode("utf-8", "replace") + ("…" if len(raw) > MAX_DOCUMENT_VIEW else "")
            except OSError:
                text = None
        out.append(
            {
                "id": d.id,
                "title": document_title(d.kind),
                "issued": local_time(d.issued_at),
                "code": d.verification_code,
                "text": text,
                "txt_url": f"/cases/{case_id}/documents/{d.id}.txt" if text_file else None,
                "pdf_url": f"/cases/{case_id}/documents/{d.id}.pdf" if _document_file(settings, d, ".pdf") else None,
            }
        )
    return out


async def _case_page(
    request: Request,
    actor: Actor,
    row: CaseRow,
    *,
    status_code: int = 200,
    refusal: dict[str, str] | None = None,
    form_error: dict[str, str] | None = None,
    typed: dict[str, dict[str, Any]] | None = None,
) -> Response:
    settings = _settings(request)
    now = _now()
    client: Client | None = getattr(request.app.state, "temporal", None)
    may_act = bool(CASE_ACTIONS[actor.role]) and row.status == "open"
    view = await ask_engine(client, row.case_id, actor, may_act)

    def read() -> tuple[list[TimelineRow], list[RefusalRow], list[DocumentRow]]:
        with Session(_db(request)) as s:
            events = list(s.exec(select(TimelineRow).where(TimelineRow.case_id == row.case_id).order_by(col(TimelineRow.seq))))
            refusals = list(s.exec(select(RefusalRow).where(RefusalRow.case_id == row.case_id).order_by(col(RefusalRow.id))))
            docs = list(s.exec(select(DocumentRow).where(DocumentRow.case_id == row.case_id).order_by(col(DocumentRow.id))))
        return events, refusals, docs

    events, refusals, docs = await run_in_threadpool(read)
    deadlines, deadline_source = _deadlines(view, row, now)
    timeline = [
        {
            "at": local_time(e.at),
            "kind": e.kind,
            "text": event_text(e.kind, e.data or {}),
            "by": actor_text((e.data or {}).get("by")),
        }
        for e in events
    ]
    done = request.query_params.get("done")
    actions = view.available or []
    context = {
        "actor": actor,
        "role_cn": ROLE_CN[actor.role],
        "case": case_line(row, now),
        "row": row,
        "facts": _facts(row, view.state),
        "deadlines": deadlines,
        "deadline_source": deadline_source,
        "ladder": _ladder(row, events),
        "timeline": timeline,
        "refusals": [
            {
                "at": local_time(r.at),
                "action": ACTION_CN.get(r.action, r.action),
                "error": r.error,
                "by": actor_text(r.actor),
            }
            for r in refusals
        ],
        "documents": _documents(settings, row.case_id, docs),
        "forms": action_forms(actions, row, view.state, typed or {}),
        "engine_note": view.note,
        "may_act": may_act,
        "actions_known": view.available is not None,
        "refusal": refusal,
        "form_error": form_error,
        "done": ACTION_CN.get(done) if done else None,
        "csrf_token": form_csrf_token(request),
    }
    return _page(request, "case.html", status_code, **context)


def _facts(row: CaseRow, state: CaseState | None) -> list[tuple[str, str]]:
    leader = (state.leader if state is not None else None) or row.leader
    visits = f"{row.visits} 次" + ("（钉子案）" if row.nail_case else "")
    facts = [
        ("案件编号", row.case_id),
        ("标题", row.title),
        ("属地", row.locality),
        ("责任单位", row.unit or "—（待分办）"),
        ("类别", cn(CATEGORY_CN, row.category, "—（待分拣）")),
        ("风险", cn(RISK_CN, row.risk, "—（待评估）")),
        ("渠道", cn(CHANNEL_CN, row.channel)),
        ("受理层级", cn(OFFICE_LEVEL_CN, row.office_level)),
        ("阶段", _stage(row)),
        ("包案领导", leader or "—"),
        ("来访次数", visits),
        ("登记时间", local_time(row.registered_at)),
    ]
    if row.closed_at is not None:
        facts.append(("办结时间", local_time(row.closed_at)))
    if row.ladder:
        facts.append(("三函", cn(LADDER_CN, row.ladder)))
    return facts


@cases_router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: str, actor: Annotated[Actor, Depends(case_viewer)]) -> Response:
    row = await run_in_threadpool(_load_case, request, case_id)
    if row is None:
        return _no_case(request, case_id)
    if not may_view(actor.role, actor.unit, row.unit):
        return _not_yours(request, actor)
    return await _case_page(request, actor, row)


def _document_response(request: Request, actor: Actor, case_id: str, doc_id: int, suffix: str) -> Response:
    row = _load_case(request, case_id)
    if row is None:
        return _no_case(request, case_id)
    if not may_view(actor.role, actor.unit, row.unit):
        return _not_yours(request, actor)
    with Session(_db(request)) as s:
        doc = s.get(DocumentRow, doc_id)
    path = _document_file(_settings(request), doc, suffix) if doc is not None and doc.case_id == case_id else None
    if doc is None or path is None:
        what = "PDF 文件" if suffix == ".pdf" else "文书"
        return _error(request, 404, "没有这份文书", f"案件 {case_id} 没有编号为 {doc_id} 的{what}。")
    name = f"{case_id}-{document_title(doc.kind)}-{doc_id}{suffix}"
    ascii_name = f"{case_id}-{doc.kind}-{doc_id}{suffix}"
    headers = {"Content-Disposition": content_disposition(name, ascii_name, inline=suffix == ".txt")}
    media = "text/plain; charset=utf-8" if suffix == ".txt" else "application/pdf"
    return FileResponse(path, media_type=media, headers=headers)


@cases_router.get("/cases/{case_id}/documents/{doc_id:int}.txt")
def document_text(
    request: Request, case_id: str, doc_id: int, actor: Annotated[Actor, Depends(case_viewer)]
) -> Response:
    return _document_response(request, actor, case_id, doc_id, ".txt")


@cases_router.get("/cases/{case_id}/documents/{doc_id:int}.pdf")
def document_pdf(
    request: Request, case_id: str, doc_id: int, actor: Annotated[Actor, Depends(case_viewer)]
) -> Response:
    return _document_response(request, actor, case_id, doc_id, ".pdf")


# ------------------------------------------------------------------------------------------------
# One case: taking an action
# ------------------------------------------------------------------------------------------------


def _html_error(request: Request, status_code: int, title: str, message: str) -> Response:
    """An error page for a form's POST (engine.web._error answers POSTs in JSON, as to code)."""
    return _page(request, "error.html", status_code, title=title, message=message)


@cases_router.post("/cases/{case_id}/actions/{action}")
async def take_action(request: Request, case_id: str, action: str) -> Response:
    try:
        actor = case_viewer(current_actor(request))
    except SignInRequired:
        target = f"/cases/{case_id}" if CASE_ID.fullmatch(case_id) else "/cases"
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    except Forbidden as exc:
        return _html_error(request, 403, "无权访问", str(exc))
    form = await request.form()
    token = form.get("csrf_token")
    if (
        _foreign_origin(request)
        or not isinstance(token, str)
        or not hmac.compare_digest(form_csrf_token(request).encode(), token.encode())
    ):
        return _html_error(request, 403, "请求被拒绝", "表单缺少有效的校验码（CSRF），请刷新页面后重试。")
    row = await run_in_threadpool(_load_case, request, case_id)
    if row is None:
        return _html_error(request, 404, "没有这个案件", _no_case_sentence(case_id))
    if not may_view(actor.role, actor.unit, row.unit):
        return _html_error(request, 403, "无权查看", _not_yours_sentence(actor))
    model = ACTION_INPUTS.get(action)
    if model is None:
        return _html_error(request, 404, "没有这个操作", f"没有名为“{printable(action, 40)}”的办理操作。")
    name = ACTION_CN.get(action, action)
    data, typed_values = read_form(model, form)
    typed = {action: typed_values}
    try:
        parse_action(action, data)
    except InputError as exc:
        return await _case_page(
            request, actor, row, status_code=400, form_error={"action": name, "error": str(exc)}, typed=typed
        )
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        return _html_error(
            request, 503, "引擎未连接", f"网页未连接到引擎，操作“{name}”没有发出；请先启动引擎（make run）后再试。"
        )
    sent_id = form.get("request_id")
    try:  # a page from before request ids: this submission is its own request
        request_id = check_request_id(sent_id, "表单的请求编号") if sent_id else new_request_id()
    except InputError as exc:
        return _html_error(request, 400, "请求无效", f"{exc}请刷新页面后重新填写。")
    try:
        await act(client, _settings(request), case_id, action, data, actor=actor, request_id=request_id)
    except Refused as ref:
        log.info("web_case_action_refused", username=actor.name, case_id=case_id, action=action)
        return await _case_page(request, actor, row, status_code=409, refusal={"action": name, "error": ref.error})
    except NoWorker:
        return _html_error(
            request,
            503,
            "引擎没有应答",
            f"没有工作进程为案件 {case_id} 应答，操作“{name}”没有发出（否则会在工作进程恢复后才被执行）。"
            "请启动工作进程（make run 或 python worker.py）后再试。",
        )
    except EngineBusy as busy:
        log.warning("web_case_action_busy", case_id=case_id, action=action, maybe_applied=busy.maybe_applied)
        if busy.maybe_applied:
            said = (f"引擎忙或正在恢复，没有在时限内确认操作“{name}”，无法确定它是否已生效：请先查看案件的办理经过。"
                    "需要时返回上一页重新提交同一表单，不会重复办理。")  # fmt: skip
        else:
            said = (f"引擎忙或正在恢复（案件的工作进程可能刚刚中断），操作“{name}”没有被引擎接收，没有生效。"
                    "请稍后返回上一页重新提交。")  # fmt: skip
        return _html_error(request, 503, "引擎忙", said)
    except InputError:
        return _html_error(request, 404, "没有这个案件", f"引擎中没有案件 {case_id}，操作“{name}”没有发出。")
    except RPCError:
        log.exception("web_case_action_rpc", case_id=case_id, action=action)
        return _html_error(request, 503, "引擎无法连接", f"暂时无法连接引擎，操作“{name}”没有发出；请稍后再试。")
    log.info("web_case_action", username=actor.name, case_id=case_id, action=action)
    return RedirectResponse(f"/cases/{case_id}?{urlencode({'done': action})}", status_code=303)


__all__ = ["cases_router", "form_fields"]
