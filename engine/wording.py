"""How the engine says things in Chinese: times, periods, stages, who acted and what happened.

One implementation for every place that shows a case to a person: the operator's tables
(engine/console.py), the case desk and the cockpit (engine/web_cases.py, engine/web_cockpit.py)
and the public pages (engine/public.py). Light on purpose (no web framework, no rich, no PDF
library): the CLI imports it on every call. The names themselves live in rules/vocabulary.py and
rules/access.py; nothing here decides anything, it only says it.

Times are shown in Asia/Shanghai (`2026-03-16 09:30`). A period that ends at midnight ends, as the
law counts it, at `24:00` of its last day; days left count Shanghai calendar days to that last day.
A datetime without a time zone is UTC (as the database keeps them); ISO strings are accepted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from rules.access import ROLE_CN
from rules.deadlines import SHANGHAI
from rules.vocabulary import (
    ACTION_CN,
    ARBITRATION_EVENT_CN,
    CATEGORY_CN,
    CHANNEL_CN,
    DEADLINE_CN,
    DOCUMENT_CN,
    LADDER_CN,
    LADDER_END_CN,
    NOTIFY_CHANNEL_CN,
    OFFICE_LEVEL_CN,
    OUTCOME_CN,
    RECIPIENT_ROLE_CN,
    REDIRECT_ROUTE_CN,
    RISK_CN,
    SCORE_RULE_CN,
    STAGE_CN,
    TIER_CN,
)

NONE = "—"

# --------------------------------------------------------------------------------------------
# Names and values
# --------------------------------------------------------------------------------------------


def cn(mapping: Mapping[Any, str], value: Any, fallback: str = NONE) -> str:
    """The Chinese name of a code (the code itself when the mapping does not know it)."""
    if value is None or value == "":
        return fallback
    return mapping.get(value, str(value))


def join(parts: Iterable[str], sep: str = "，") -> str:
    """The parts that say something, joined (`，` unless told)."""
    return sep.join(p for p in parts if p)


def value_text(v: Any) -> str:
    """A value as a cell shows it: "—" for none, 是/否, a list joined with `、`."""
    if v is None or v == "" or v == []:
        return NONE
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, list | tuple):
        return "、".join(str(x) for x in v)
    return str(v)


def document_title(kind: Any) -> str:
    """`信访事项受理告知书`: a document's title from its kind (the kind itself when unknown)."""
    return cn(DOCUMENT_CN, kind)


def stage_text(stage: Any, outcome: Any = None, closed: bool | None = None) -> str:
    """`已受理`, or `已办结（调解结案）` for a closed case."""
    if closed or outcome or stage == "closed":
        return f"已办结（{cn(OUTCOME_CN, outcome)}）" if outcome else "已办结"
    return cn(STAGE_CN, stage)


def actor_text(by: Any) -> str:
    """`qs-hrss（责任单位，青山区人社局）`: who acted (经办人), from an event's `by`."""
    if not isinstance(by, Mapping):
        return ""
    name = str(by.get("name") or "")
    unit = by.get("unit")
    inner = join([cn(ROLE_CN, by.get("role"), ""), str(unit) if unit else ""])
    return f"{name}（{inner}）" if inner else name


# --------------------------------------------------------------------------------------------
# Times and periods
# --------------------------------------------------------------------------------------------


def as_datetime(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO string; naive ones are UTC (as the database keeps them)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def to_local(value: Any) -> datetime | None:
    """The same moment in Asia/Shanghai (None for none)."""
    dt = as_datetime(value)
    return dt.astimezone(SHANGHAI) if dt is not None else None


def local_time(value: Any, *, empty: str = NONE) -> str:
    """`2026-03-16 09:30`, in Asia/Shanghai; `empty` ("—") for none."""
    local = to_local(value)
    return local.strftime("%Y-%m-%d %H:%M") if local is not None else empty


def _at_midnight(local: datetime) -> bool:
    return local.timetz().replace(tzinfo=None) == time(0)


def last_day(due: Any) -> date:
    """The last day (Shanghai) of a period that ends at `due`: a period ending at midnight ends at
    24:00 of the day before."""
    local = to_local(due)
    if local is None:
        raise ValueError(f"not a time: {due!r}")
    return (local - timedelta(seconds=1)).date()


def due_time(value: Any, *, empty: str = NONE) -> str:
    """When a period ends: `2026-03-30 24:00` for a period that ends at midnight, else the local time."""
    local = to_local(value)
    if local is None:
        return empty
    if _at_midnight(local):
        return f"{last_day(local):%Y-%m-%d} 24:00"
    return local.strftime("%Y-%m-%d %H:%M")


def days_left(due: Any, now: datetime) -> int:
    """Calendar days (Shanghai) from today to the period's last day: 0 on the last day itself,
    negative once it has run out (-1 the day after)."""
    return (last_day(due) - now.astimezone(SHANGHAI).date()).days


def span(delta: timedelta) -> str:
    """`2天3小时`, `3小时5分钟`, `30分钟`: a duration as a person says it (to the minute)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{mins}分钟" if mins else f"{hours}小时"
    return f"{mins}分钟"


def time_left(value: Any, now: datetime, *, overdue: bool = False) -> str:
    """`剩 12 天`, `今日到期`, `剩 25分钟`, `已逾期 3 天`: calendar days (Shanghai) to the last day of
    the period; a period ending within a day, not at midnight, in hours and minutes."""
    dt = as_datetime(value)
    if dt is None:
        return ""
    within_a_day = not _at_midnight(dt.astimezone(SHANGHAI))
    if overdue or dt <= now:
        if within_a_day and now - dt < timedelta(days=1):
            return f"已逾期 {span(now - dt)}"
        return f"已逾期 {max(1, -days_left(dt, now))} 天"
    if within_a_day and dt - now < timedelta(days=1):
        return f"剩 {span(dt - now)}"
    left = days_left(dt, now)
    return "今日到期" if left == 0 else f"剩 {left} 天"


# --------------------------------------------------------------------------------------------
# A timeline event as a Chinese sentence
# --------------------------------------------------------------------------------------------


def _then(text: Any, sep: str = "。") -> str:
    """A note appended to a sentence, when there is one."""
    return f"{sep}{text}" if text else ""


def _stage_event(d: Mapping[str, Any]) -> str:
    stage = d.get("stage")
    if d.get("withdrawn"):
        return "信访人撤回信访事项" + _then(d.get("reason"), "：")
    if stage == "registered":
        where = join([cn(CHANNEL_CN, d.get("channel"), ""), cn(OFFICE_LEVEL_CN, d.get("office_level"), ""),
                      str(d.get("locality") or "")])  # fmt: skip
        return f"登记信访事项（{where}）" if where else "登记信访事项"
    if stage == "triaged":
        what = join([f"类别：{cn(CATEGORY_CN, d.get('category'))}", f"风险：{cn(RISK_CN, d.get('risk'))}",
                     f"责任单位：{d.get('unit') or NONE}"])  # fmt: skip
        reasons = d.get("reasons")
        why = "；".join(str(r) for r in reasons) if isinstance(reasons, list) and reasons else ""
        return f"分办（{what}）" + _then(why and f"依据：{why}")
    if stage == "accepted":
        return f"受理（承办单位：{d['unit']}）" if d.get("unit") else "受理"
    if stage == "not_accepted":
        if d.get("reason") == "finalised_by_re_review":
            return f"不予受理：同一事项已在案件 {d.get('prior_case')} 经复核终结"
        return "不予受理" + _then(d.get("reason"), "：")
    if stage == "redirected":
        return f"导入法定途径：{cn(REDIRECT_ROUTE_CN, d.get('route'))}"
    if stage == "mediation":
        if "success" in d:
            result = "调解成功" if d.get("success") else "调解未成功"
            if d.get("success"):
                result += "，协议已履行" if d.get("fulfilled") else "，协议尚未履行"
            if d.get("within_window") is False:
                result += "（已超出调解期限）"
            return f"调解结果：{result}"
        return "进入调解（调解期限开始计算）"
    if stage == "handling":
        if d.get("extended_days"):
            return (f"延期办理 {d['extended_days']} 天（批准：{d.get('approved_by') or NONE}），"
                    f"办理期限延至 {due_time(d.get('due'))}")  # fmt: skip
        return "进入办理阶段"
    if stage == "opinion_issued":
        return "出具办理意见"
    if stage == "review":
        return "作出复查决定" if d.get("decided") else "信访人申请复查，进入复查"
    if stage == "re_review":
        return "信访人申请复核，进入复核"
    if stage == "arbitration":
        if d.get("step"):
            note = f"（{d['note']}）" if d.get("note") else ""
            return f"仲裁绿色通道：{cn(ARBITRATION_EVENT_CN, d.get('step'))}{note}"
        return "转入仲裁绿色通道"
    if stage == "closed":
        return f"办结：{cn(OUTCOME_CN, d.get('outcome'))}"
    return cn(STAGE_CN, stage, "阶段变化")


def _notification_event(d: Mapping[str, Any]) -> str:
    who = str(d.get("recipient") or cn(RECIPIENT_ROLE_CN, d.get("recipient_role"), ""))
    how = cn(NOTIFY_CHANNEL_CN, d.get("channel"), "")
    delivered = d.get("delivered", True)
    done = "已送达" if delivered else "未能送达"
    if d.get("escalated_from"):
        return f"原通知未能按时送达，已转{who}值班处理（{join([how, done])}）"
    if d.get("tier") == "overdue":
        name = cn(DEADLINE_CN, d.get("deadline"), "期限")
        return f"逾期提醒：{name}已逾期，通知{who}（{join([how, done])}）"
    tries = f"，尝试 {d['attempts']} 次" if d.get("attempts") and not delivered else ""
    by = f"（{how}）" if how else ""
    return f"{cn(TIER_CN, d.get('tier'), '')}通知{who}{by}：{done}{tries}"


def _ladder_event(d: Mapping[str, Any]) -> str:
    step = d.get("ladder")
    unit = d.get("unit") or NONE
    if step == "flagged":
        risk = "，风险等级改为高" if d.get("risk") == "high" else ""
        return f"标记重大风险：{d.get('reason') or NONE}{risk}"
    if step in ("warning", "supervision"):
        due = due_time(d.get("due"), empty="")
        return f"发出{LADDER_CN[step]}（致 {unit}）" + _then(due and f"整改期限至 {due}", "，")
    if step == "accountability":
        return f"发出问责建议函（致 {unit}，建议问责：{value_text(d.get('officials'))}）"
    if step == "progress":
        kind = "实质性进展" if d.get("substantive") else "一般进展"
        counts = "，计入督办整改" if d.get("counts") else ""
        return f"报告整改进展：{kind}{counts}" + _then(d.get("note"))
    if step == "ended":
        return f"三函程序结束：{cn(LADDER_END_CN, d.get('how'))}" + _then(d.get("note"))
    return f"三函：{cn(LADDER_CN, step)}"


def _info_event(d: Mapping[str, Any]) -> str:
    if d.get("clock_paused"):
        reason = f"（{d['reason']}）" if d.get("reason") else ""
        return f"暂停计时：{cn(DEADLINE_CN, d.get('clock_paused'))}{reason}"
    if d.get("clock_resumed"):
        due = due_time(d.get("due"), empty="")
        return f"恢复计时：{cn(DEADLINE_CN, d.get('clock_resumed'))}" + _then(due and f"到期时间 {due}", "，")
    if d.get("calendar_reloaded"):
        changed = d.get("changed")
        n = len(changed) if isinstance(changed, list) else 0
        return "节假日安排已更新" + (f"，重新计算了 {n} 项期限" if n else "，期限未受影响")
    if d.get("window_closed"):
        return f"{cn(DEADLINE_CN, d.get('window_closed'))}届满，案件办结"
    if d.get("action"):
        return f"操作：{cn(ACTION_CN, d.get('action'))}"
    return "其他记录"


def _document_event(d: Mapping[str, Any]) -> str:
    code = f"（核验码 {d['verification_code']}）" if d.get("verification_code") else ""
    return f"出具《{document_title(d.get('document'))}》{code}"


def _score_event(d: Mapping[str, Any]) -> str:
    points = d.get("points")
    shown = f"{points:+d} 分" if isinstance(points, int) else f"{points} 分"
    who = f"，问责人员：{d['official']}" if d.get("official") else ""
    return f"考核积分：{d.get('unit') or NONE} {shown}（{cn(SCORE_RULE_CN, d.get('rule'))}{who}）"


def _overdue_event(d: Mapping[str, Any]) -> str:
    provisional = "，暂定" if d.get("provisional") else ""
    return f"{cn(DEADLINE_CN, d.get('deadline'), '期限')}已逾期（期限至 {due_time(d.get('due'))}{provisional}）"


def _rejected_event(d: Mapping[str, Any]) -> str:
    return f"拒绝“{cn(ACTION_CN, d.get('action'), '操作')}”：{d.get('error') or ''}"


def _visit_event(d: Mapping[str, Any]) -> str:
    if d.get("nail_case"):
        return f"第 {d.get('visits')} 次来访，列为钉子案（纳入积案台账、专班化解、第三方评估）"
    came = join([cn(CHANNEL_CN, d.get("channel"), ""), f"{d['persons']} 人" if d.get("persons") else ""])
    return f"重复来访（第 {d.get('visits')} 次{_then(came, '，')}）"


def _leader_event(d: Mapping[str, Any]) -> str:
    before = f"（原为 {d['previous']}）" if d.get("previous") else ""
    return f"领导包案：{d.get('leader')}{before}" + _then(d.get("note"))


_EVENTS = {
    "stage": _stage_event,
    "notification": _notification_event,
    "document": _document_event,
    "score": _score_event,
    "overdue": _overdue_event,
    "rejected": _rejected_event,
    "ladder": _ladder_event,
    "visit": _visit_event,
    "info": _info_event,
    "leader": _leader_event,
}


def event_text(kind: str, d: Mapping[str, Any]) -> str:
    """One timeline event (the scenario contract's, as `history` and `act` return it, and as the
    database's timeline keeps it) as a Chinese sentence; an unknown kind as its own name."""
    say = _EVENTS.get(kind)
    return say(d) if say is not None else str(kind)


__all__ = [
    "NONE",
    "actor_text",
    "as_datetime",
    "cn",
    "days_left",
    "document_title",
    "due_time",
    "event_text",
    "join",
    "last_day",
    "local_time",
    "span",
    "stage_text",
    "time_left",
    "to_local",
    "value_text",
]
