"""The monthly data brief (月度数据快报): the cockpit's figures as a printable A4 PDF of two pages.

For the city's standing committee, a ten-minute read: the headline figures of the period beside
the previous period's, registrations by channel, cases by category, the trend of registrations,
and the top red alerts. Every figure is the cockpit's (engine/cockpit.py, from the read model);
the charts are drawn with fpdf2's own lines and rectangles, in the CJK font the documents use
(activities/documents.py `find_pdf_font`, embedded as a subset).

`starter.py brief --period 2026-11` writes it; the web app serves it at /cockpit/brief.pdf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from fpdf.enums import MethodReturnValue, TableCellFillMode, TextMode, WrapMode, XPos, YPos
from fpdf.fonts import FontFace
from sqlalchemy.engine import Engine

from activities.documents import CjkPdf, NoPdfFont, PdfFont, find_pdf_font
from engine.cockpit import LETTER_KINDS, Alert, Overview, Period, overview, red_alerts, trend_buckets
from rules.deadlines import SHANGHAI
from rules.vocabulary import CATEGORY_CN, CHANNEL_CN, DOCUMENT_CN, LADDER_CN, Category, Channel

CITY = "本市"  # the brief's city, as its title names it
TOP_ALERTS = 15

_KIND_CN = {"month": "月度", "quarter": "季度", "year": "年度"}
_THIS = {"month": "本月", "quarter": "本季度", "year": "本年"}
_LAST = {"month": "上月", "quarter": "上季度", "year": "上年"}

_W, _H, _M = 210.0, 297.0, 15.0  # A4, margins (mm)
_INNER = _W - 2 * _M
_BLUE = (62, 111, 176)
_ORANGE = (217, 130, 43)
_GRID = (215, 215, 215)
_GREY = (100, 100, 100)
_HEAD = (232, 236, 242)
_RED_HEAD = (246, 216, 212)
_STRIPE = (246, 247, 249)
_NO_LINE_START = "，。、；：？！）》」』”’%…"


def brief_title(period: Period) -> str:
    return f"{CITY}信访工作{_KIND_CN[period.kind]}数据快报（{period.label}）"


def brief_filename(period: Period) -> str:
    """月度数据快报-2026-11.pdf (季度… / 年度… for the other periods)."""
    return f"{_KIND_CN[period.kind]}数据快报-{period.code}.pdf"


# ---------------------------------------------------------------------------------------------
# Numbers as the brief prints them (a count with a thousands separator: f"{n:,}")
# ---------------------------------------------------------------------------------------------


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _count_change(now: int, before: int) -> str:
    diff = now - before
    if diff == 0:
        return "持平"
    text = f"{diff:+,}"
    return f"{text}（{diff / before * 100:+.1f}%）" if before else text


def _rate_change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "—"
    points = round((now - before) * 100, 1)
    return "持平" if points == 0 else f"{points:+.1f}个百分点"


def _rate_of(rate: float | None, part: int, whole: int) -> str:
    return "—" if rate is None else f"{_pct(rate)}（{part:,}/{whole:,}）"


def _local_time(dt: datetime) -> str:
    local = dt.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _nice_top(value: float, ticks: int = 4) -> float:
    """The axis maximum for values up to `value`: `ticks` gridlines of a round step (1, 2 or 5
    times a power of ten, at least 1)."""
    need = max(value, 1) / ticks
    power = 10 ** math.floor(math.log10(need))
    step = next(s * power for s in (1, 2, 5, 10) if need <= s * power)
    return max(1.0, step) * ticks


# ---------------------------------------------------------------------------------------------
# The rows of the headline table
# ---------------------------------------------------------------------------------------------


def headline_rows(cur: Overview, prev: Overview) -> list[tuple[str, str, str, str]]:
    """(指标, 本期, 上期, 较上期) for each headline figure."""

    def count(label: str, get: Callable[[Overview], int]) -> tuple[str, str, str, str]:
        return label, f"{get(cur):,}", f"{get(prev):,}", _count_change(get(cur), get(prev))

    def rate(label: str, get: Callable[[Overview], tuple[float | None, int, int]]) -> tuple[str, str, str, str]:
        (r1, p1, w1), (r0, p0, w0) = get(cur), get(prev)
        return label, _rate_of(r1, p1, w1), _rate_of(r0, p0, w0), _rate_change(r1, r0)

    letters = [count(DOCUMENT_CN[k], lambda o, k=k: o.letters.get(k.value, 0)) for k in LETTER_KINDS]  # type: ignore[misc]
    return [
        count("登记批次", lambda o: o.batches),
        count("登记人次", lambda o: o.persons),
        rate("重复信访占比", lambda o: (o.repeat_share, o.repeat, o.batches)),
        count("新登记案件（件）", lambda o: o.cases),
        rate("调解成功率", lambda o: (o.mediation_rate, o.mediated, o.mediation_eligible)),
        rate("按期受理率", lambda o: (o.acceptance_on_time_rate, o.accepted_on_time, o.accepted)),
        rate("按期办理率", lambda o: (o.handling_on_time_rate, o.answered_on_time, o.answered)),
        rate("复查按期率", lambda o: (o.review_on_time_rate, o.reviews_on_time, o.reviews)),
        ("当前超期案件（件）", f"{cur.overdue_now:,}", "—", "—"),
        count("高风险案件（件）", lambda o: o.high_risk),
        rate("高风险30分钟内通知率", lambda o: (o.urgent_within_rate, o.urgent_within_deadline, o.urgent_notified)),
        *letters,
        count("被问责人员（人）", lambda o: o.officials_accountable),
        rate("积案化解率", lambda o: (o.nail_resolved_rate, o.nail_resolved, o.nail_cases)),
        rate("仲裁回流法院率", lambda o: (o.return_to_court_rate, o.arbitration_to_court, o.arbitration_concluded)),
        count("出具文书（份）", lambda o: o.documents),
    ]


def _lede(cur: Overview, prev: Overview, kind: str) -> str:
    diff = cur.batches - prev.batches
    share = f"（{diff / prev.batches * 100:+.1f}%）" if prev.batches else ""
    versus = f"与{_LAST[kind]}持平" if diff == 0 else f"较{_LAST[kind]}{'增加' if diff > 0 else '减少'}{abs(diff):,}批次{share}"
    return (
        f"{_THIS[kind]}共登记信访{cur.batches:,}批次、{cur.persons:,}人次，{versus}；"
        f"重复信访占{_pct(cur.repeat_share)}。新登记案件{cur.cases:,}件，调解成功率{_pct(cur.mediation_rate)}，"
        f"按期办理率{_pct(cur.handling_on_time_rate)}。当前超期案件{cur.overdue_now:,}件，"
        f"高风险案件{cur.high_risk:,}件。"
    )


def _reasons(alert: Alert) -> str:
    out = []
    if alert.ladder in ("supervision", "accountability"):
        out.append(LADDER_CN[alert.ladder])
    if "overdue" in alert.reasons:
        out.append("超期")
    if "high_risk" in alert.reasons:
        out.append("高风险")
    return "、".join(out)


# ---------------------------------------------------------------------------------------------
# The PDF
# ---------------------------------------------------------------------------------------------


class _BriefPdf(CjkPdf):
    footer_y = -11.0
    footer_color = _GREY

    def __init__(self, font: PdfFont, footer_text: str) -> None:
        super().__init__(font, footer_text)
        self.set_margins(_M, _M, _M)
        self.set_auto_page_break(False)  # two pages, laid out by hand

    def bold(self, text: str, h: float, size: float, align: str = "L") -> None:
        self.set_font("cjk", size=size)
        with self.local_context(text_mode=TextMode.FILL_STROKE, line_width=0.2):  # the face has no bold
            self.cell(0, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def section(self, text: str) -> None:
        self.set_y(self.get_y() + 2.5)
        self.set_fill_color(*_BLUE)
        self.rect(_M, self.get_y() + 1.2, 1.2, 4.6, style="F")
        self.set_x(_M + 2.5)
        self.bold(text, 7, 11.5)

    def paragraph(self, text: str, size: float, h: float) -> None:
        """`text` across the page, broken at any character; a closing punctuation mark that would
        open a line hangs at the end of the line before instead (避头点)."""
        self.set_font("cjk", size=size)
        lines = [str(line) for line in self.multi_cell(
            0, h, text, wrapmode=WrapMode.CHAR, dry_run=True, output=MethodReturnValue.LINES)]  # type: ignore[union-attr]
        for k in range(1, len(lines)):
            while lines[k] and lines[k][0] in _NO_LINE_START:
                lines[k - 1] += lines[k][0]
                lines[k] = lines[k][1:]
        for line in lines:
            if line:
                self.cell(0, h, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def label(self, x: float, y: float, w: float, text: str, size: float = 7.5, align: str = "C",
              color: tuple[int, int, int] = (0, 0, 0)) -> None:
        """One line of text in the box (x, y, w, size·0.5)."""
        self.set_font("cjk", size=size)
        self.set_text_color(*color)
        self.set_xy(x, y)
        self.cell(w, size * 0.45, text, align=align)
        self.set_text_color(0, 0, 0)

    def fit(self, text: str, width: float, lines: int = 1) -> str:
        """`text`, cut with an ellipsis so that it fills at most `lines` lines of `width`."""
        room = width * lines - 1.5 * (lines - 1) - 0.5
        if self.get_string_width(text) <= room:
            return text
        while text and self.get_string_width(text + "…") > room:
            text = text[:-1]
        return text + "…"

    def axis(self, x: float, y: float, w: float, h: float, top: float, ticks: int = 4) -> None:
        """Gridlines and their values for a chart whose plot area is (x, y, w, h), from 0 to `top`."""
        self.set_line_width(0.15)
        for k in range(ticks + 1):
            gy = y + h - h * k / ticks
            self.set_draw_color(*(_GRID if k else (120, 120, 120)))
            self.line(x, gy, x + w, gy)
            value = top * k / ticks
            self.label(x - 13, gy - 1.6, 12, f"{value:,.0f}", size=6.5, align="R", color=_GREY)
        self.set_draw_color(0, 0, 0)

    def legend(self, x: float, y: float, items: list[tuple[str, tuple[int, int, int]]]) -> None:
        for text, color in items:
            self.set_fill_color(*color)
            self.rect(x, y + 0.6, 3, 2.2, style="F")
            self.label(x + 4, y, 20, text, size=7, align="L")
            self.set_font("cjk", size=7)
            x += 4 + self.get_string_width(text) + 5

    # -- the charts -------------------------------------------------------------------------

    def channel_chart(self, x: float, y: float, w: float, h: float, cur: Overview) -> None:
        """登记渠道: batches and person-times per channel, a pair of horizontal bars each, busiest first."""
        rows = sorted(cur.by_channel, key=lambda c: (-c.batches, c.channel))
        self.legend(x + w - 30, y - 5, [("批次", _BLUE), ("人次", _ORANGE)])
        top = max([c.persons for c in rows] + [1])
        bx = x + 15
        bw = w - 15 - 16
        step = (h - 2) / len(rows)
        bar = min(3.4, step * 0.36)
        for k, c in enumerate(rows):
            ry = y + 2 + step * k
            self.label(x, ry + bar - 1.7, 14, CHANNEL_CN[Channel(c.channel)], size=7.5, align="R")
            for j, (value, color) in enumerate(((c.batches, _BLUE), (c.persons, _ORANGE))):
                by_ = ry + j * (bar + 0.4)
                length = bw * value / top
                self.set_fill_color(*color)
                if length > 0:
                    self.rect(bx, by_, length, bar, style="F")
                self.label(bx + length + 1, by_ + (bar - 2.9) / 2, 16, f"{value:,}", size=6.2, align="L")
        self.set_draw_color(120, 120, 120)
        self.set_line_width(0.15)
        self.line(bx, y + 1, bx, y + h - 1)
        self.set_draw_color(0, 0, 0)

    def category_chart(self, x: float, y: float, w: float, h: float, cur: Overview) -> None:
        """案件类别: horizontal bars, largest first, with the count and its share."""
        rows = sorted(((CATEGORY_CN[Category(k)], n) for k, n in cur.by_category.items() if k in Category.__members__),
                      key=lambda kv: -kv[1])
        total = sum(n for _, n in rows)
        top = max([n for _, n in rows] + [1])
        lx, bx = x, x + 15
        bw = w - 15 - 24
        step = (h - 2) / len(rows)
        bar = min(4.2, step * 0.62)
        for k, (name, n) in enumerate(rows):
            ry = y + 2 + step * k
            self.label(lx, ry + (bar - 3.4) / 2, 14, name, size=7.5, align="R")
            self.set_fill_color(*_BLUE)
            length = bw * n / top
            if length > 0:
                self.rect(bx, ry, length, bar, style="F")
            share = f"（{n / total * 100:.1f}%）" if total else ""
            self.label(bx + length + 1, ry + (bar - 3.4) / 2, 30, f"{n:,}{share}", size=6.5, align="L")
        self.set_draw_color(120, 120, 120)
        self.set_line_width(0.15)
        self.line(bx, y + 1, bx, y + h - 1)
        self.set_draw_color(0, 0, 0)

    def trend_chart(self, x: float, y: float, w: float, h: float, cur: Overview, period: Period) -> None:
        """登记趋势: batches as bars, person-times as a line, per day (a month) or per month."""
        buckets = trend_buckets(period)
        if period.kind == "month":
            names = [f"{d + 1}日" if d == 0 or (d + 1) % 5 == 0 else "" for d in range(len(buckets))]
        else:
            names = [f"{int(b[5:])}月" for b in buckets]
        by = {t["bucket"]: (t["batches"], t["persons"]) for t in cur.trend}
        values = [by.get(b, (0, 0)) for b in buckets]
        self.legend(x + w - 34, y, [("批次", _BLUE), ("人次", _ORANGE)])
        px, py, pw, ph = x + 14, y + 6, w - 14, h - 12
        top = _nice_top(max([p for _, p in values] + [1]))
        self.axis(px, py, pw, ph, top)
        slot = pw / len(values)
        bar = slot * 0.62
        points = []
        for k, ((n, p), name) in enumerate(zip(values, names, strict=True)):
            cx = px + slot * (k + 0.5)
            bh = ph * n / top
            self.set_fill_color(*_BLUE)
            if bh > 0:
                self.rect(cx - bar / 2, py + ph - bh, bar, bh, style="F")
            if len(values) <= 12 and n:  # inside the bar's top, clear of the line; above a short bar
                inside = bh > 5
                self.label(cx - slot / 2, py + ph - bh + (0.8 if inside else -3.2), slot, f"{n:,}", size=5.8,
                           color=(255, 255, 255) if inside else (0, 0, 0))
            points.append((cx, py + ph - ph * p / top))
            if name:
                self.label(cx - 6, py + ph + 1.0, 12, name, size=6.5)
        self.set_draw_color(*_ORANGE)
        self.set_line_width(0.45)
        if len(points) > 1:
            self.polyline(points)
        self.set_fill_color(*_ORANGE)
        for px_, py_ in points:
            self.rect(px_ - 0.55, py_ - 0.55, 1.1, 1.1, style="F")
        self.set_draw_color(0, 0, 0)
        self.set_line_width(0.2)

    # -- the tables -------------------------------------------------------------------------

    def headline_table(self, rows: list[tuple[str, str, str, str]], this: str, last: str) -> None:
        self.set_font("cjk", size=8.5)
        self.set_fill_color(*_STRIPE)  # the striped rows' (the table paints with the current fill colour)
        self.set_draw_color(190, 190, 190)
        self.set_line_width(0.15)
        with self.table(
            width=_INNER, col_widths=(52, 44, 44, 40), line_height=4.6, padding=(0.5, 1.5),
            text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"), wrapmode=WrapMode.CHAR,
            headings_style=FontFace(fill_color=_HEAD), first_row_as_headings=True,
            cell_fill_color=_STRIPE, cell_fill_mode=TableCellFillMode.EVEN_ROWS,
        ) as table:
            table.row(("指标", this, last, "较上期"))
            for row in rows:
                table.row(row)
        self.set_draw_color(0, 0, 0)

    def alerts_table(self, alerts: list[Alert]) -> None:
        widths = (8, 32, 44, 30, 26, 27, 13)
        self.set_font("cjk", size=7.5)
        self.set_fill_color(*_STRIPE)
        self.set_draw_color(190, 190, 190)
        self.set_line_width(0.15)
        with self.table(
            width=_INNER, col_widths=widths, line_height=3.9, padding=(0.8, 1.0),
            text_align=("CENTER", "LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"), wrapmode=WrapMode.CHAR,
            headings_style=FontFace(fill_color=_RED_HEAD), first_row_as_headings=True,
            cell_fill_color=_STRIPE, cell_fill_mode=TableCellFillMode.EVEN_ROWS,
        ) as table:
            table.row(("序号", "案件编号", "标题", "责任单位", "包案领导", "预警原因", "超期天数"))
            for k, a in enumerate(alerts, start=1):
                cells = (
                    str(k), a.case_id, self.fit(a.title, widths[2] - 2, 2), self.fit(a.unit or "（未分办）", widths[3] - 2, 2),
                    self.fit(a.leader or "—", widths[4] - 2, 2), _reasons(a),
                    "—" if a.days_overdue is None else str(a.days_overdue),
                )
                table.row(cells)
        self.set_draw_color(0, 0, 0)


_NOTES = [
    "登记：统计期内登记的信访事项，包括新登记案件和已有案件的再次来访，以批次和人次计；重复信访指同一事项此前已有案件。",
    "案件类指标（类别、调解、受理、办理、复查、高风险通知等）按统计期内登记的案件计算，反映截至生成时的办理状态。",
    "调解成功率＝调解成功件数÷符合调解条件件数；按期受理（办理、复查）率＝按期完成件数÷已完成件数。",
    "三函、被问责人员、出具文书按统计期内出具或发生的计算；仲裁回流法院率＝起诉至法院件数÷仲裁结案件数。",
    "当前超期案件、红色预警为生成时的实时数据，不分统计期。红色预警：高风险、已发督办函或问责建议函、或办理超期的在办案件，"
    "按问责、督办、超期时长、高风险排序。",
]


def render_brief(engine: Engine, period: Period, locality: str | None = None, now: datetime | None = None) -> bytes:
    """The brief for `period` (and a locality) as PDF bytes: two A4 pages. Raises NoPdfFont when
    the machine has no CJK font (install fonts-noto-cjk, or set PETITION_PDF_FONT)."""
    font = find_pdf_font()
    if font is None:
        raise NoPdfFont("no CJK font: install fonts-noto-cjk or set PETITION_PDF_FONT")
    now = now or datetime.now(UTC)
    cur = overview(engine, period, locality)
    prev = overview(engine, period.previous(), locality)
    alerts = red_alerts(engine, now=now, locality=locality, limit=TOP_ALERTS)

    title = brief_title(period)
    pdf = _BriefPdf(font, title)
    pdf.set_creation_date(now)
    pdf.set_title(title)
    pdf.set_subject(f"{period.code} {locality or '全市'}")
    pdf.set_creator("petition-engine (engine/brief.py)")
    pdf.set_lang("zh-CN")

    # Page 1: the figures and the charts.
    pdf.add_page()
    pdf.bold(title, 10, 16.5, align="C")
    pdf.set_font("cjk", size=8.5)
    pdf.set_text_color(*_GREY)
    scope = pdf.fit(locality, 50) if locality else "全市"
    pdf.cell(0, 5, f"统计范围：{scope}　统计期：{period.label}　对比期：{period.previous().label}　生成时间：{_local_time(now)}（北京时间）",
             align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_y(pdf.get_y() + 1.5)
    pdf.paragraph(_lede(cur, prev, period.kind), 9.5, 5)

    pdf.section("一、主要指标")
    pdf.headline_table(headline_rows(cur, prev), f"本期（{period.label}）", f"上期（{period.previous().label}）")

    pdf.section("二、登记渠道与案件类别")
    top = pdf.get_y() + 1
    half = (_INNER - 6) / 2
    pdf.label(_M, top, half, "按渠道登记批次、人次", size=8, align="L")
    pdf.channel_chart(_M, top + 6, half, 48, cur)
    pdf.label(_M + half + 6, top, half, "新登记案件按类别（件）", size=8, align="L")
    pdf.category_chart(_M + half + 6, top + 6, half, 48, cur)
    pdf.set_y(top + 57)

    pdf.section("三、登记趋势（按日）" if period.kind == "month" else "三、登记趋势（按月）")
    top = pdf.get_y() + 1
    pdf.trend_chart(_M, top, _INNER, max(30.0, min(46.0, _H - _M - 6 - top)), cur, period)

    # Page 2: the red alerts and how the figures are counted.
    pdf.add_page()
    pdf.section(f"四、红色预警（截至{_local_time(now)}，前{TOP_ALERTS}件）")
    if alerts:
        pdf.alerts_table(alerts)
    else:
        pdf.set_font("cjk", size=9.5)
        pdf.cell(0, 7, "当前无红色预警案件。", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.section("五、统计口径")
    pdf.set_text_color(*_GREY)
    for k, note in enumerate(_NOTES, start=1):
        pdf.paragraph(f"{k}. {note}", 8, 4.2)
    pdf.set_text_color(0, 0, 0)
    return bytes(pdf.output())
