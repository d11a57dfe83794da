"""The supervision cockpit's pages (数据驾驶舱): the figures of engine/cockpit.py, for people.

    GET /cockpit              headline figures and charts for a period and a locality, the heat maps
    GET /cockpit/data         the same figures as JSON (the overview, the heat maps, the charts' series)
    GET /cockpit/brief.pdf    the period's data brief (engine/brief.py), as a download
    GET /alerts               红色预警: open cases at the accountability or supervision step, overdue, high-risk
    GET /leaders              领导包案: each leader's cases and how far they have come

Who: the roles with "view_cockpit" (rules/access.py): operator, supervision, hr, admin. The pages
show case titles and aggregates, never a petitioner's personal data. A unit account is refused
(403, a Chinese sentence): the cockpit is city-wide, and a unit's view is its own unit's cases.

Periods are `?period=2026` (a year), `2026-Q4` (a quarter) or `2026-11` (a month), calendar
periods in Asia/Shanghai; the default is the current month. The charts are drawn by Apache ECharts
served from /static/vendor/echarts (no CDN) and engine/static/cockpit.js, which reads its series
from a `<script type="application/json">` block in the page: data, not script, so the CSP
(`default-src 'self'`) needs no exception. Tooltips are drawn on the canvas (ECharts' rich-text
mode) rather than as HTML with inline styles, which the CSP would block. Every figure is also
printed as text on the page (cards and small tables), so the page reads and prints without script.

A heat-map cell links to the case list (/cases, engine/web_cases.py) with the filters that select
its cases: locality, category or risk, and the period's first and last day (registration dates).
"""

from __future__ import annotations

import importlib
import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from activities.documents import NoPdfFont
from engine.cockpit import (
    LETTER_KINDS,
    Alert,
    HeatMap,
    LeaderPackage,
    Overview,
    Period,
    current_period,
    filter_options,
    heatmap,
    leader_packages,
    overview,
    parse_period,
    red_alerts,
    trend_buckets,
)
from engine.logs import get_logger
from engine.web import Forbidden, _db, _error, _page, content_disposition, current_actor, refusal
from engine.wording import cn, local_time
from rules.access import may
from rules.vocabulary import (
    CATEGORY_CN,
    CHANNEL_CN,
    DEADLINE_CN,
    DOCUMENT_CN,
    LADDER_CN,
    OUTCOME_CN,
    RISK_CN,
    STAGE_CN,
    Category,
    Channel,
    Risk,
    StaffRole,
)
from workflows.models import Actor

PERMISSION = "view_cockpit"
LOCALITY_MAX = 64  # longer than any place name; a longer value is not a locality
HEAT_LEVELS = 5  # heat-1 … heat-5 in style.css; heat-0 for an empty cell

cockpit_router = APIRouter()


# ------------------------------------------------------------------------------------------------
# Who, where, when
# ------------------------------------------------------------------------------------------------


def cockpit_actor(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    """The signed-in account, if its role may see the city-wide cockpit (else 403, in Chinese)."""
    if not may(actor.role, PERMISSION):
        message = refusal(actor, PERMISSION)
        if actor.role == StaffRole.unit:
            message += "数据驾驶舱汇总全市各单位的数据，不向单位账号开放；本单位的案件请在案件列表中查看。"
        raise Forbidden(message)
    return actor


class BadQuery(ValueError):
    """A query parameter the pages cannot use; the message is a Chinese sentence."""


def _period(text: str | None) -> Period:
    if not text or not text.strip():
        return current_period("month")
    try:
        return parse_period(text)
    except ValueError:
        raise BadQuery(
            f"无法识别时段“{text.strip()[:20]}”：请用年份（如 2026）、季度（如 2026-Q4）或月份（如 2026-11），年份在 2000–2100 之间。"
        ) from None


def _locality(text: str | None) -> str | None:
    value = (text or "").strip()
    if len(value) > LOCALITY_MAX:
        raise BadQuery(f"地区名称过长（最多 {LOCALITY_MAX} 个字）。")
    return value or None


def _where(period: str | None = None, locality: str | None = None) -> tuple[Period, str | None] | BadQuery:
    """A dependency: the query's period and locality, or why they cannot be used (each page
    answers that in its own way)."""
    try:
        return _period(period), _locality(locality)
    except BadQuery as exc:
        return exc


CockpitActor = Annotated[Actor, Depends(cockpit_actor)]
Where = Annotated[tuple[Period, str | None] | BadQuery, Depends(_where)]


def _following(p: Period) -> Period:
    if p.kind == "year":
        return Period("year", p.year + 1)
    last = 12 if p.kind == "month" else 4
    return Period(p.kind, p.year + 1, 1) if p.number == last else Period(p.kind, p.year, p.number + 1)


def last_day(p: Period) -> date:
    return p.next_first_day - timedelta(days=1)


def period_choices(selected: Period, now: datetime | None = None) -> list[tuple[str, list[Period]]]:
    """The period drop-down: the last 24 months, 8 quarters and 5 years (and the selected one)."""
    groups: list[tuple[str, list[Period]]] = []
    for label, kind, count in (("月度", "month", 24), ("季度", "quarter", 8), ("年度", "year", 5)):
        p = current_period(kind, now)  # type: ignore[arg-type]
        items = []
        for _ in range(count):
            items.append(p)
            p = p.previous()
        if selected.kind == kind and selected not in items:
            items = sorted([*items, selected], key=lambda x: x.first_day, reverse=True)
        groups.append((label, items))
    return groups


# ------------------------------------------------------------------------------------------------
# Formatting (passed to the templates)
# ------------------------------------------------------------------------------------------------


def pct(rate: float | None) -> str:
    """0.8531 → "85.3%"; no denominator → "—"."""
    if rate is None:
        return "—"
    text = f"{rate * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def num(n: int | float | None) -> str:
    return "—" if n is None else f"{n:,}"


def duration(seconds: float | None) -> str:
    """Seconds as 分/秒 (or 小时/分)."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分 {s % 60} 秒" if s % 60 else f"{s // 60} 分钟"
    return f"{s // 3600} 小时 {s % 3600 // 60} 分"


def days(value: float | None) -> str:
    return "—" if value is None else f"{value:g} 天"


FORMATS: dict[str, Any] = {"pct": pct, "num": num, "duration": duration, "days": days, "local_time": local_time}


def _json_for_script(data: Any) -> str:
    """JSON safe inside <script type="application/json">: no `</script>`, no `<!--` can end it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------------------------------------------
# The cockpit: charts' series, heat maps
# ------------------------------------------------------------------------------------------------


def chart_series(ov: Overview, p: Period) -> dict[str, Any]:
    """What cockpit.js draws, labelled in Chinese."""
    trend = {t["bucket"]: t for t in ov.trend}
    buckets = trend_buckets(p)
    first_time = ov.batches - ov.repeat
    return {
        "period": ov.period_label,
        "locality": ov.locality or "全市",
        "channels": {
            "names": [CHANNEL_CN.get(Channel(c.channel), c.channel) for c in ov.by_channel],
            "batches": [c.batches for c in ov.by_channel],
            "persons": [c.persons for c in ov.by_channel],
        },
        "repeat": [{"name": "初信初访", "value": first_time}, {"name": "重复信访", "value": ov.repeat}],
        "categories": [{"name": CATEGORY_CN[k], "value": ov.by_category.get(k.value, 0)} for k in Category],
        "risks": [{"name": f"{RISK_CN[k]}风险", "value": ov.by_risk.get(k.value, 0)} for k in Risk],
        "on_time": {
            "names": ["受理按期率", "办理按期率", "复查复核按期率"],
            "values": [
                None if r is None else round(r * 100, 1)
                for r in (ov.acceptance_on_time_rate, ov.handling_on_time_rate, ov.review_on_time_rate)
            ],
        },
        "letters": {
            "names": [DOCUMENT_CN[k] for k in LETTER_KINDS],
            "values": [ov.letters.get(k.value, 0) for k in LETTER_KINDS],
        },
        "trend": {
            "unit": "day" if p.kind == "month" else "month",
            "buckets": [b[5:] if p.kind == "month" else f"{int(b[5:])}月" for b in buckets],
            "batches": [int(trend.get(b, {}).get("batches", 0)) for b in buckets],
            "persons": [int(trend.get(b, {}).get("persons", 0)) for b in buckets],
        },
    }


def heat_table(heat: HeatMap, p: Period) -> dict[str, Any]:
    """A heat map as a table: each cell's count, grade (heat-0 … heat-5) and the case-list link."""
    by: Literal["category", "risk"] = heat.by
    names = {k.value: CATEGORY_CN[k] for k in Category} if by == "category" else {k.value: f"{RISK_CN[k]}风险" for k in Risk}
    peak = max((n for row in heat.cells for n in row), default=0)
    dates = {"date_from": p.first_day.isoformat(), "date_to": last_day(p).isoformat()}

    def link(**filters: str) -> str:
        return "/cases?" + urlencode({**filters, **dates})

    def grade(n: int) -> int:
        return 0 if n <= 0 or peak <= 0 else max(1, math.ceil(HEAT_LEVELS * n / peak))

    rows = []
    for locality, counts in zip(heat.rows, heat.cells, strict=True):
        cells = [
            {"key": key, "n": n, "grade": grade(n), "href": link(locality=locality, **{by: key}) if n else None}
            for key, n in zip(heat.columns, counts, strict=True)
        ]
        rows.append({"locality": locality, "cells": cells, "total": sum(counts), "href": link(locality=locality)})
    totals = [
        {"key": key, "n": sum(row[j] for row in heat.cells), "href": link(**{by: key})}
        for j, key in enumerate(heat.columns)
    ]
    return {
        "by": by,
        "title": "地区 × 问题类别" if by == "category" else "地区 × 风险等级",
        "columns": [{"key": k, "name": names.get(k, k)} for k in heat.columns],
        "rows": rows,
        "totals": totals,
        "total": sum(t["n"] for t in totals),
    }


def _cockpit_context(db: Engine, p: Period, locality: str | None) -> dict[str, Any]:
    ov = overview(db, p, locality)
    heats = [heat_table(heatmap(db, p, by="category"), p), heat_table(heatmap(db, p, by="risk"), p)]
    return {
        "ov": ov,
        "series": chart_series(ov, p),
        "heats": heats,
    }


def _bad_query(request: Request, exc: BadQuery) -> Response:
    return _error(request, 400, "请求无效", str(exc))


@cockpit_router.get("/cockpit")
def cockpit_page(request: Request, actor: CockpitActor, where: Where) -> Response:
    if isinstance(where, BadQuery):
        return _bad_query(request, where)
    p, loc = where
    db = _db(request)
    context = _cockpit_context(db, p, loc)
    query = {"period": p.code, **({"locality": loc} if loc else {})}
    brief = brief_month(p)
    return _page(
        request,
        "cockpit.html",
        actor=actor,
        period=p,
        locality=loc,
        choices=period_choices(p),
        previous=p.previous(),
        following=_following(p),
        last_day=last_day(p),
        data_href="/cockpit/data?" + urlencode(query),
        overdue_href="/cases?" + urlencode({"overdue": "1", **({"locality": loc} if loc else {})}),
        brief_month=brief,
        brief_months=period_choices(brief)[0][1],
        series_json=_json_for_script(context["series"]),
        letter_names={k.value: DOCUMENT_CN[k] for k in LETTER_KINDS},
        channel_names={c.value: CHANNEL_CN[c] for c in Channel},
        localities=filter_options(db)["localities"],  # the page's drop-down (not the JSON's)
        **context,
        **FORMATS,
    )


@cockpit_router.get("/cockpit/data")
def cockpit_data(request: Request, actor: CockpitActor, where: Where) -> Response:
    if isinstance(where, BadQuery):
        return JSONResponse({"detail": str(where)}, status_code=400)
    p, loc = where
    context = _cockpit_context(_db(request), p, loc)
    return JSONResponse(
        {
            "overview": context["ov"].model_dump(mode="json"),
            "period": {"code": p.code, "label": p.label, "first_day": p.first_day.isoformat(), "last_day": last_day(p).isoformat()},
            "charts": context["series"],
            "heatmaps": context["heats"],
        }
    )


def brief_month(p: Period, now: datetime | None = None) -> Period:
    """The month the brief button offers first: the selected month; for a quarter or a year, the
    current month if it lies in it, else the period's last month."""
    if p.kind == "month":
        return p
    this_month = current_period("month", now)
    if p.first_day <= this_month.first_day < p.next_first_day:
        return this_month
    end = last_day(p)
    return Period("month", end.year, end.month)


BRIEF_NAMES = {"month": "月度数据快报", "quarter": "季度数据快报", "year": "年度数据快报"}


@cockpit_router.get("/cockpit/brief.pdf")
async def cockpit_brief(request: Request, actor: CockpitActor, where: Where) -> Response:
    if isinstance(where, BadQuery):
        return _bad_query(request, where)
    p, loc = where
    brief = importlib.import_module("engine.brief")  # looked up when asked for (the tests put in a fake)
    db = _db(request)
    try:
        pdf: bytes = await run_in_threadpool(brief.render_brief, db, p, locality=loc)
    except NoPdfFont:
        return _error(
            request,
            503,
            "数据快报暂不可用",
            "本机没有可嵌入 PDF 的中文字体（请安装 fonts-noto-cjk，或设置 PETITION_PDF_FONT），数据快报无法生成。",
        )
    except Exception:
        get_logger(component="web").exception("web_cockpit_brief", period=p.code, username=actor.name)
        return _error(request, 500, "数据快报生成失败", f"{p.label}的数据快报未能生成，请稍后再试或联系系统管理员。")
    name = f"{BRIEF_NAMES[p.kind]}-{p.code}{'-' + loc if loc else ''}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": content_disposition(name, f"brief-{p.code}.pdf"), "Cache-Control": "no-store"},
    )


# ------------------------------------------------------------------------------------------------
# Red alerts, leaders' packages
# ------------------------------------------------------------------------------------------------


def alert_reasons(a: Alert) -> list[dict[str, str]]:
    """Why a case is on the red list, most pressing first: each a CSS class and a Chinese phrase."""
    out = []
    if a.ladder in ("supervision", "accountability"):
        out.append({"kind": f"ladder-{a.ladder}", "text": LADDER_CN[a.ladder]})
    if "overdue" in a.reasons:
        name = DEADLINE_CN.get(a.overdue_deadline, a.overdue_deadline) if a.overdue_deadline else "办理期限"  # type: ignore[call-overload]
        if a.days_overdue is None:
            text = f"超期：{name}已过"
        elif a.days_overdue == 0:
            text = f"超期：{name}已过（不足 1 天）"
        else:
            text = f"超期：{name}已超 {a.days_overdue} 天"
        out.append({"kind": "overdue", "text": text})
    if "high_risk" in a.reasons:
        out.append({"kind": "high-risk", "text": "高风险"})
    return out


def stage_cn(stage: str | None) -> str:
    return cn(STAGE_CN, stage)


def category_cn(category: str | None) -> str:
    return cn(CATEGORY_CN, category, "未分类")


def outcome_cn(outcome: str | None) -> str:
    return cn(OUTCOME_CN, outcome, "")


@cockpit_router.get("/alerts")
def alerts_page(request: Request, actor: CockpitActor, locality: str | None = None) -> Response:
    try:
        loc = _locality(locality)
    except BadQuery as exc:
        return _bad_query(request, exc)
    db = _db(request)
    limit = 200
    alerts = red_alerts(db, locality=loc, limit=limit)
    counts = {
        "accountability": sum(1 for a in alerts if a.ladder == "accountability"),
        "supervision": sum(1 for a in alerts if a.ladder == "supervision"),
        "overdue": sum(1 for a in alerts if "overdue" in a.reasons),
        "high_risk": sum(1 for a in alerts if "high_risk" in a.reasons),
    }
    return _page(
        request,
        "alerts.html",
        actor=actor,
        alerts=[{"a": a, "reasons": alert_reasons(a)} for a in alerts],
        counts=counts,
        limited=len(alerts) >= limit,
        limit=limit,
        locality=loc,
        localities=filter_options(db)["localities"],
        now=datetime.now(UTC),
        stage_cn=stage_cn,
        category_cn=category_cn,
        **FORMATS,
    )


def leaders_series(packages: list[LeaderPackage]) -> dict[str, Any]:
    return {
        "leaders": [pk.leader for pk in packages],
        "closed": [pk.closed for pk in packages],
        "open": [len(pk.cases) - pk.closed for pk in packages],
        "overdue": [pk.overdue for pk in packages],
        "progress": [round(pk.progress * 100, 1) for pk in packages],
    }


@cockpit_router.get("/leaders")
def leaders_page(request: Request, actor: CockpitActor) -> Response:
    packages = leader_packages(_db(request))
    return _page(
        request,
        "leaders.html",
        actor=actor,
        packages=packages,
        total=sum(len(pk.cases) for pk in packages),
        closed=sum(pk.closed for pk in packages),
        overdue=sum(pk.overdue for pk in packages),
        series_json=_json_for_script(leaders_series(packages)),
        stage_cn=stage_cn,
        outcome_cn=outcome_cn,
        ladder_cn=LADDER_CN,
        leader_href=lambda name: "/cases?" + urlencode({"leader": name}),
        **FORMATS,
    )


__all__ = ["cockpit_router", "content_disposition", "heat_table", "pct"]
