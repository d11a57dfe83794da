"""The operator's tool's views for people: Chinese tables (rich) with Asia/Shanghai times.

starter.py prints JSON for machines (`--json`, and by default when its output is piped or
redirected, so scripts and tests read what they always read) and these tables for people
(`--table`, and by default on a terminal). Every name comes from rules/vocabulary.py and
rules/access.py, every time and sentence from engine/wording.py (as the web pages say them);
nothing here decides anything, it only shows.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from engine import wording
from rules.access import ROLE_CN
from rules.vocabulary import (
    ACTION_CN,
    CATEGORY_CN,
    DEADLINE_CN,
    DEADLINE_STATUS_CN,
    LADDER_CN,
    RISK_CN,
    SCORE_RULE_CN,
)

# --------------------------------------------------------------------------------------------
# Which view
# --------------------------------------------------------------------------------------------


def wants_table(output: str | None, stream: TextIO | None = None) -> bool:
    """Tables when asked (`--table`) or, unasked, when the output is a terminal; JSON when asked
    (`--json`) or when the output is piped or redirected."""
    if output is not None:
        return output == "table"
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def console(stream: TextIO | None = None) -> Console:
    """A console on stdout (as it is now: tests swap it). Text is shown as it is: no markup, no
    emoji codes, no highlighting, so a title holding `[bold]` prints as typed. Off a terminal
    (`--table | less`) the tables are laid out 200 columns wide unless COLUMNS says otherwise."""
    out = stream if stream is not None else sys.stdout
    terminal = wants_table(None, out)
    width = None if terminal or os.environ.get("COLUMNS") else 200
    return Console(file=out, width=width, markup=False, emoji=False, highlight=False, soft_wrap=False)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _table(title: str | None, *columns: str, wrap: Sequence[str] = ()) -> Table:
    """A table with Chinese column headers; columns named in `wrap` fold long text, the others
    (numbers, times, case ids) never break."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAVY, show_lines=False)
    for name in columns:
        if name in wrap:
            t.add_column(name, overflow="fold", min_width=cell_len(name))  # the header itself never breaks
        else:
            t.add_column(name, no_wrap=True)
    return t


def _fields(title: str | None, rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of facts: label, value."""
    t = Table(title=title, title_justify="left", show_header=False, box=box.SIMPLE)
    t.add_column(no_wrap=True, style="bold")
    t.add_column(overflow="fold")
    for label, value in rows:
        t.add_row(label, wording.value_text(value))
    return t


def _timeline(title: str | None, events: Iterable[Mapping[str, Any]]) -> Table:
    t = _table(title, "时间", "事件", "经办人", wrap=("事件", "经办人"))
    for e in events:
        what = wording.event_text(str(e.get("kind")), e)
        t.add_row(wording.local_time(e.get("at")), what, wording.actor_text(e.get("by")))
    return t


def _percent(rate: Any) -> str:
    return f"{rate * 100:.1f}%" if isinstance(rate, int | float) else wording.NONE


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The views, one per command
# --------------------------------------------------------------------------------------------


def next_deadline_text(row: Mapping[str, Any], now: datetime) -> str:
    """The list's 下一期限: the period the petitioner waits on, when it ends, days left, 暂定."""
    if row.get("status") == "closed":
        return wording.NONE
    parts = []
    if row.get("overdue"):
        began = row.get("overdue_since")
        since = f"（{wording.time_left(began, now, overdue=True)}）" if began else ""
        parts.append(f"已逾期：{wording.cn(DEADLINE_CN, row.get('overdue_deadline'), '期限')}{since}")
    if row.get("next_deadline") and row.get("next_due"):
        left = [wording.time_left(row.get("next_due"), now)]
        if row.get("next_due_provisional"):
            left.append("暂定")
        name, due = wording.cn(DEADLINE_CN, row.get("next_deadline")), wording.due_time(row.get("next_due"))
        parts.append(f"{name} {due}（{'，'.join(left)}）")
    return "；".join(parts) or wording.NONE


def print_cases(rows: Sequence[Mapping[str, Any]], *, now: datetime | None = None) -> None:
    """`list`: the cases, newest first."""
    at = _now(now)
    t = _table(
        f"案件列表（{len(rows)} 件，按登记时间倒序）",
        "案件编号", "标题", "属地", "责任单位", "类别", "风险", "阶段/结果", "登记时间", "下一期限",
        wrap=("标题", "属地", "责任单位", "阶段/结果", "下一期限"),
    )  # fmt: skip
    for r in rows:
        t.add_row(
            str(r.get("case_id")),
            str(r.get("title") or wording.NONE) + ("（钉子案）" if r.get("nail_case") else ""),
            str(r.get("locality") or wording.NONE),
            str(r.get("unit") or wording.NONE),
            wording.cn(CATEGORY_CN, r.get("category")),
            wording.cn(RISK_CN, r.get("risk")),
            wording.stage_text(r.get("stage"), r.get("outcome"), r.get("status") == "closed"),
            wording.local_time(r.get("registered_at")),
            next_deadline_text(r, at),
        )
    console().print(t)


def print_history(case: Mapping[str, Any]) -> None:
    """`history`: the case's facts, then its timeline (refusals included) in local time."""
    c = console()
    visits = f"{case.get('visits')} 次" + ("（钉子案）" if case.get("nail_case") else "")
    c.print(
        _fields(
            f"案件 {case.get('case_id')}",
            [
                ("状态", "已办结" if case.get("status") == "completed" else "办理中"),
                ("阶段/结果", wording.stage_text(case.get("stage"), case.get("outcome"), case.get("status") == "completed")),
                ("类别", wording.cn(CATEGORY_CN, case.get("category"))),
                ("风险", wording.cn(RISK_CN, case.get("risk"))),
                ("责任单位", case.get("unit")),
                ("来访次数", visits),
                ("规则版本", case.get("rules_version")),
            ],
        )
    )
    c.print(_timeline("办理经过（北京时间）", case.get("events") or []))


def print_state(state: Mapping[str, Any], *, now: datetime | None = None) -> None:
    """`state`: a running case's stage and its periods (due, days left, 暂定, status)."""
    at = _now(now)
    c = console()
    petitioners = state.get("petitioners") or []
    c.print(
        _fields(
            f"案件 {state.get('case_id')}",
            [
                ("标题", state.get("title")),
                ("属地", state.get("locality")),
                ("责任单位", state.get("unit")),
                ("类别", wording.cn(CATEGORY_CN, state.get("category"))),
                ("风险", wording.cn(RISK_CN, state.get("risk"))),
                ("阶段/结果", wording.stage_text(state.get("stage"), state.get("outcome"), state.get("status") == "closed")),
                ("信访人", f"{len(petitioners)} 人"),
                ("来访次数", f"{state.get('visits')} 次" + ("（钉子案）" if state.get("nail_case") else "")),
                ("可调解", state.get("mediation_eligible")),
                ("已延期", f"{state.get('extension_used') or 0} 次"),
                ("三函", wording.cn(LADDER_CN, state.get("ladder_stage"))),
                ("包案领导", state.get("leader")),
                ("已逾期", [wording.cn(DEADLINE_CN, d) for d in state.get("overdue") or []]),
                ("登记时间", wording.local_time(state.get("registered_at"))),
                ("节假日日历", state.get("calendar")),
                ("规则版本", state.get("rules_version")),
            ],
        )
    )
    t = _table("期限（北京时间）", "期限", "起算时间", "到期时间", "剩余", "暂定", "状态")
    deadlines = sorted(state.get("deadlines") or [], key=lambda d: str(wording.as_datetime(d.get("due")) or ""))
    for d in deadlines:
        status = d.get("status")
        counting = status in ("running", "paused", "overdue")
        t.add_row(
            wording.cn(DEADLINE_CN, d.get("name")),
            wording.local_time(d.get("started_at")),
            wording.due_time(d.get("due")),
            wording.time_left(d.get("due"), at, overdue=status == "overdue") if counting else "",
            "暂定" if d.get("provisional") else "",
            wording.cn(DEADLINE_STATUS_CN, status),
        )
    c.print(t)


def print_act(action: str, result: Mapping[str, Any]) -> None:
    """`act`: what the action did (the case's stage now and the events it added)."""
    c = console()
    stage = wording.stage_text(result.get("stage"), result.get("outcome"))
    c.print(f"已办理“{wording.cn(ACTION_CN, action)}”：案件 {result.get('case_id')}，当前阶段：{stage}。")
    events = result.get("events") or []
    if events:
        c.print(_timeline("本次产生的记录（北京时间）", events))


def print_registration(case_id: str, *, repeat_visit: bool = False, visits: int | None = None) -> None:
    """`register`: the new case's number, or the open case a repeat visit joined."""
    if repeat_visit:
        nth = f"（第 {visits} 次来访）" if visits else ""
        console().print(f"同一信访人就同一事项再次来访，已并入在办案件 {case_id}{nth}。")
    else:
        console().print(f"已登记，案件编号：{case_id}")


def print_scores(events: Sequence[Mapping[str, Any]], next_cursor: int) -> None:
    """`scores`: the HR stream's events, then the cursor to poll from."""
    t = _table(
        "考核积分事件（北京时间）", "游标", "时间", "案件编号", "单位", "事由", "分值", "问责人员", "规则版本",
        wrap=("单位", "事由", "问责人员"),
    )  # fmt: skip
    for e in events:
        points = e.get("points")
        t.add_row(
            str(e.get("cursor")),
            wording.local_time(e.get("occurred_at")),
            str(e.get("case_id")),
            str(e.get("unit") or wording.NONE),
            wording.cn(SCORE_RULE_CN, e.get("rule")),
            f"{points:+d}" if isinstance(points, int) else wording.value_text(points),
            wording.value_text(e.get("official")),
            wording.value_text(e.get("rules_version")),
        )
    c = console()
    c.print(t)
    c.print(f"共 {len(events)} 条；下次从游标 {next_cursor} 继续：starter.py scores --since {next_cursor}")


def print_assessment(report: Mapping[str, Any]) -> None:
    """`assessment`: each unit's mediation rate and points for the year."""
    t = _table(
        f"{report.get('year')} 年度考核（调解率权重 {report.get('mediation_rate_weight')}，规则版本 {report.get('rules_version')}）",
        "单位", "应调解案件", "调解成功", "错过调解期限", "积分", "调解率", "加权调解率", "问责人员",
        wrap=("单位", "问责人员"),
    )  # fmt: skip
    for u in report.get("units") or []:
        t.add_row(
            str(u.get("unit")),
            str(u.get("eligible", 0)),
            str(u.get("mediated", 0)),
            str(u.get("window_missed", 0)),
            f"{u.get('points', 0):+d}" if isinstance(u.get("points"), int) else wording.value_text(u.get("points")),
            _percent(u.get("mediation_rate")),
            wording.value_text(u.get("mediation_rate_weighted")),
            wording.value_text(u.get("accountability_officials")),
        )
    console().print(t)


_ARBITRATION_CN = {
    "tracks": "进入绿色通道的案件", "open": "进行中", "resolved_in_arbitration": "仲裁化解", "went_to_court": "进入诉讼",
    "stopped_by_case": "因案件办结而终止", "return_to_court_rate": "回流率（进入诉讼 / 已了结）",
}  # fmt: skip


def print_arbitration(stats: Mapping[str, Any]) -> None:
    """`arbitration`: the green channel's tracks and its return-to-court rate."""
    shown = {key: stats.get(key) for key in _ARBITRATION_CN} | {"return_to_court_rate": _percent(stats.get("return_to_court_rate"))}
    print_fields("仲裁绿色通道", shown, _ARBITRATION_CN)


def print_users(rows: Sequence[Mapping[str, Any]]) -> None:
    """`users list`: the staff accounts."""
    t = _table("工作人员账号", "账号", "姓名", "角色", "所属单位", "状态", "创建时间", "创建人", wrap=("姓名", "所属单位"))
    for r in rows:
        t.add_row(
            str(r.get("username")),
            str(r.get("display_name") or wording.NONE),
            wording.cn(ROLE_CN, r.get("role")),
            str(r.get("unit") or wording.NONE),
            "已停用" if r.get("disabled") else "正常",
            wording.local_time(r.get("created_at")),
            str(r.get("created_by") or wording.NONE),
        )
    console().print(t)


_CALENDAR_CN = {"file": "日历文件", "official_years": "已公布安排的年份", "provisional_years": "暂定年份（仅按周末计算）", "note": "说明"}


def print_calendar_status(status: Mapping[str, Any]) -> None:
    """`calendar status`: which years the holiday calendar holds, which are provisional."""
    print_fields("节假日日历", {key: status.get(key) for key in _CALENDAR_CN}, _CALENDAR_CN)


def print_calendar_push(result: Mapping[str, Any]) -> None:
    """`calendar push`: how many running cases got the calendar, and which did not."""
    c = console()
    years = wording.value_text(result.get("official_years"))
    c.print(f"已向 {result.get('pushed', 0)} 件在办案件推送节假日日历（已公布安排的年份：{years}），暂定期限将重新计算。")
    failed = result.get("failed") or []
    if failed:
        t = _table(f"未能推送（{len(failed)} 件）", "案件编号", "原因", wrap=("原因",))
        for f in failed:
            t.add_row(str(f.get("case_id")), str(f.get("error")))
        c.print(t)


def print_verification(genuine: bool, message: str, detail: Mapping[str, Any] | None) -> None:
    """`verify FILE`: the sentence, then the proof that was checked."""
    c = console()
    c.print(message)
    if not detail:
        return
    head = detail.get("signed_head") or {}
    c.print(
        _fields(
            "核验依据",
            [
                ("日志序号", detail.get("index")),
                ("验证码", detail.get("verification_code")),
                ("日志大小", detail.get("tree_size")),
                ("根哈希", detail.get("root")),
                ("证明哈希数", len(detail.get("proof") or [])),
                ("树头签署时间", wording.local_time(head.get("timestamp")) if isinstance(head, Mapping) else None),
            ],
        )
    )


def print_code_view(message: str, view: Mapping[str, Any]) -> None:
    """`verify CODE`: what the log holds under a document's verification code."""
    c = console()
    c.print(message)
    head = view.get("signed_head") or {}
    c.print(
        _fields(
            "日志中的记录",
            [
                ("验证码", view.get("code")),
                ("文书", wording.document_title(view.get("kind"))),
                ("案件", view.get("case")),
                ("SHA-256", view.get("sha256")),
                ("日志序号", view.get("index")),
                ("日志大小", head.get("tree_size") if isinstance(head, Mapping) else None),
                ("树头签署时间", wording.local_time(head.get("timestamp")) if isinstance(head, Mapping) else None),
            ],
        )
    )


def print_fields(title: str, data: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """A record as a two-column table, its keys named by `labels` (others keep their names)."""
    console().print(_fields(title, [(labels.get(k, k), v) for k, v in data.items()]))
