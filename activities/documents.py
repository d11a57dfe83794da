"""Documents the engine issues: Chinese text from templates, canonicalised, stored, and logged.

A document file is its canonical body followed by a verification footer. The body's SHA-256
is what the tamper-evident log records; the footer carries the verification code (log index
and a short hash) so a petitioner holding a copy can have it checked (`starter.py verify`).

Beside each text file, a PDF of the same document (`render_pdf`, `write_pdf`): the same lines laid
out for print, with a QR code of the public verification page; the text stays the canonical form.
A PDF is drawn only from what is stored (the text file and the document's row, `DocumentRef`), the
same bytes every time, so one lost with a killed worker is rendered again (`PdfKeeper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import segno
from fpdf import FPDF
from fpdf.enums import MethodReturnValue, PathPaintRule, TextMode, WrapMode, XPos, YPos
from sqlalchemy import func
from sqlmodel import Session, col, select

from activities.db import DocumentRow, as_utc, get_engine
from engine.logs import get_logger
from rules.deadlines import SHANGHAI
from rules.vocabulary import DOCUMENT_CN, DocumentKind, RedirectRoute

if TYPE_CHECKING:
    from engine.config import Settings

# 2026.2: the mediation agreement names both parties and the terms; no engine codes in any text.
TEMPLATE_VERSION = "2026.2"
FOOTER_MARK = "—— 存证核验 ——"

_ROUTES = {
    RedirectRoute.litigation.value: "向人民法院提起诉讼",
    RedirectRoute.arbitration.value: "向劳动人事争议仲裁委员会申请仲裁",
    RedirectRoute.administrative_reconsideration.value: "依法申请行政复议",
}


def chinese_date(dt: datetime) -> str:
    """2026年12月1日, in Asia/Shanghai."""
    local = dt.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日"


# The engine's own reasons for a letter, as the letter says them.
_LADDER_REASONS = {"triage: high risk": "受理分办时研判为高风险"}


def _body(kind: DocumentKind, f: dict[str, Any], to: str) -> list[str]:
    title = f.get("title", "")
    unit = f.get("unit", "")
    if kind == DocumentKind.acceptance_notice:
        return [
            f"{to}：",
            f"您反映的“{title}”一事，经审查符合受理条件，{unit}已依法予以受理。",
            "我单位将在受理之日起六十日内办结并书面答复；符合条件的民生纠纷，将在七日内组织调解。",
            # The petitioner's own key to the case's progress page (engine/public.py, /q).
            f"查询码：{f['query_code']}。凭案件编号和查询码可在 {f.get('query_url', '')} 查询办理进度，请妥善保管。"
            if f.get("query_code")
            else "",
        ]
    if kind == DocumentKind.not_accepted_notice:
        return [f"{to}：", f"您反映的“{title}”一事，经审查，不予受理。", f"理由：{f.get('reason', '')}"]
    if kind == DocumentKind.redirect_notice:
        route = _ROUTES.get(str(f.get("route")), str(f.get("route")))
        reason = f.get("reason") or "该事项属于应当通过法定途径解决的事项"
        return [
            f"{to}：",
            f"您反映的“{title}”一事，{reason}。根据诉访分离、依法分类处理的规定，请您{route}。",
            "相关机关将依法及时处理，本单位不再作为信访事项办理。",
        ]
    if kind == DocumentKind.mediation_agreement:
        state = "已履行到位" if f.get("fulfilled") else "约定履行，待履行"
        # The unit organises the mediation; the parties are the petitioner and the other side.
        return [
            f"申请人：{to}",
            f"被申请人：{f.get('other_party') or '（调解时未登记）'}",
            f"调解组织：{unit}",
            f"就“{title}”一事，经{unit}组织调解，双方自愿达成如下协议：",
            f"协议内容：{f.get('terms') or '（以调解笔录为准）'}",
            f"履行情况：{state}。",
        ]
    if kind == DocumentKind.extension_notice:
        return [
            f"{to}：",
            f"您反映的“{title}”一事，因{f.get('reason', '')}，经{f.get('approved_by', '')}批准，"
            f"办理期限延长{f.get('days')}日。",
            f"延长后的期限至{chinese_date(datetime.fromisoformat(f['new_due']))}二十四时（如遇节假日顺延后的日期以本告知为准）。"
            if f.get("new_due")
            else "",
        ]
    if kind in (DocumentKind.handling_opinion, DocumentKind.review_opinion, DocumentKind.re_review_opinion):
        tail = {
            DocumentKind.handling_opinion: "如不服本意见，可自收到之日起三十日内向上一级行政机关请求复查。",
            DocumentKind.review_opinion: "如不服本复查意见，可自收到之日起三十日内向复查机关的上一级行政机关请求复核。",
            DocumentKind.re_review_opinion: "本复核意见为终结意见。同一事实和理由提出的信访事项，不再受理。",
        }[kind]
        return [f"{to}：", f"关于您反映的“{title}”一事，意见如下：", str(f.get("text", "")), tail]
    if kind in (DocumentKind.risk_warning_letter, DocumentKind.supervision_letter):
        due = datetime.fromisoformat(f["deadline"]) if f.get("deadline") else None
        ask = "化解风险隐患" if kind == DocumentKind.risk_warning_letter else "取得实质进展并书面报告"
        return [
            f"{f.get('locality', '')}、{unit}：",
            f"案件“{title}”存在重大风险隐患（{_LADDER_REASONS.get(str(f.get('reason')), f.get('reason', ''))}）。",
            f"请于{chinese_date(due - _ONE_SECOND) if due else ''}二十四时前{ask}，逾期将依规升级督办。",
        ]
    if kind == DocumentKind.accountability_letter:
        officials = "、".join(f.get("officials") or []) or "（由责任单位报送）"
        return [
            "组织人事部门、纪检监察机关：",
            f"{unit}对案件“{title}”的重大风险隐患经风险提示、督办仍无实质进展。",
            f"建议对以下责任人员依规问责：{officials}。",
        ]
    if kind == DocumentKind.petitioner_notice:
        step = {"warning": "已向属地发出风险提示函", "supervision": "已对责任单位发出督办函", "accountability": "已提出问责建议"}.get(
            str(f.get("ladder_step")), "已依规处理"
        )
        enclosures = f.get("enclosures") or []
        extra = f"随附办理意见书（存证摘要 {enclosures[0][:16]}）。" if enclosures else ""
        return [f"{to}：", f"关于您反映的“{title}”一事，市信联办{step}，将督促责任单位依法处理。{extra}"]
    if kind == DocumentKind.delivery_receipt:
        return [f"受送达人：{to}", f"送达文书：{_delivered_title(str(f.get('delivered_document', '')))}", "送达方式：电子送达"]
    raise ValueError(f"no template for document kind {kind}")


_ONE_SECOND = __import__("datetime").timedelta(seconds=1)


@dataclass(frozen=True)
class _Parts:
    """A document's parts, in the order of its text body (the PDF lays the same parts out)."""

    title: str
    case_line: str
    body: list[str]
    issuer: str
    handled_by: str | None
    date: str
    template_line: str

    def lines(self) -> list[str]:
        return [
            self.title,
            self.case_line,
            "",
            *self.body,
            "",
            self.issuer,
            # Who acted for the issuer (the signed-in staff member), when a person's action issued it.
            *([self.handled_by] if self.handled_by else []),
            self.date,
            self.template_line,
        ]

    @classmethod
    def read(cls, body: str) -> _Parts:
        """The parts of a canonical body, as `lines` wrote them (a body part of several lines comes
        back as several). Raises ValueError when the text is not laid out that way."""
        lines = body.split("\n")
        if lines[-1:] == [""]:
            lines.pop()
        # title, case line, "", body…, "", issuer, [经办人：…], date, template line
        signed = 3 if len(lines) >= 4 and lines[-4] == "" else 4
        if len(lines) < 4 + signed or lines[2] != "" or lines[-signed - 1] != "":
            raise ValueError("not a document body laid out by the templates")
        handled_by = lines[-3] if signed == 4 else None
        if handled_by is not None and not handled_by.startswith("经办人："):
            raise ValueError("not a document body laid out by the templates")
        return cls(
            title=lines[0], case_line=lines[1], body=lines[3 : -signed - 1], issuer=lines[-signed],
            handled_by=handled_by, date=lines[-2], template_line=lines[-1],
        )


def _parts(kind: DocumentKind, case_id: str, issued_at: datetime, fields: dict[str, Any], addressee: str) -> _Parts:
    issuer = fields.get("issuer") or (
        "市信访工作联席会议办公室"
        if kind
        in (
            DocumentKind.risk_warning_letter,
            DocumentKind.supervision_letter,
            DocumentKind.accountability_letter,
            DocumentKind.petitioner_notice,
        )
        else fields.get("unit") or "信访工作机构"
    )
    return _Parts(
        title=DOCUMENT_CN[kind],
        case_line=f"案件编号：{case_id}",
        body=[line for line in _body(kind, fields, addressee) if line],
        issuer=f"{issuer}",
        handled_by=f"经办人：{fields['handled_by']}" if fields.get("handled_by") else None,
        date=f"{chinese_date(issued_at)}",
        template_line=f"（文书模板 {TEMPLATE_VERSION}）",
    )


def render_body(kind: DocumentKind, case_id: str, issued_at: datetime, fields: dict[str, Any], addressee: str) -> bytes:
    """The canonical body of a document: NFC-normalised UTF-8, LF line ends, one final newline."""
    lines = _parts(kind, case_id, issued_at, fields, addressee).lines()
    text = "\n".join(line.rstrip() for line in lines) + "\n"
    return unicodedata.normalize("NFC", text).encode("utf-8")


def footer(verification_code: str, document_sha256: str, public_url: str | None = None) -> bytes:
    """The verification block after the body (not part of what the log hashes)."""
    how = (
        f"核验方法：扫描 PDF 上的二维码或访问 {verification_url(public_url, verification_code)}；"
        "也可用 python starter.py verify 本文件"
        if public_url
        else "核验方法：python starter.py verify 本文件"
    )
    return (
        f"\n{FOOTER_MARK}\n核验码：{verification_code}\n文书摘要(SHA-256)：{document_sha256}\n{how}\n"
    ).encode()


def read_copy(data: bytes) -> tuple[bytes, str | None]:
    """(body as the log hashed it, printed verification code) of a copy a person holds.

    Undoes only what cannot change a document's meaning: the encoding (UTF-8 with or without BOM,
    else GB18030, which includes GBK), CRLF or CR line ends, whitespace at line ends, trailing blank
    lines, and the verification footer. Any other change of a character changes the hash.
    Raises ValueError when the bytes are not text in one of those encodings.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ValueError("not UTF-8 or GBK/GB18030 text") from exc
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    code = None
    if FOOTER_MARK in lines:
        cut = len(lines) - 1 - lines[::-1].index(FOOTER_MARK)
        code = next((ln.removeprefix("核验码：").strip() for ln in lines[cut:] if ln.startswith("核验码：")), None)
        lines = lines[:cut]
    while lines and not lines[-1]:
        lines.pop()
    return ("\n".join(lines) + "\n").encode("utf-8"), code


def split_document(data: bytes) -> tuple[bytes, str | None]:
    """(body, verification code) of a document file; the code is None when there is no footer."""
    mark = f"\n{FOOTER_MARK}\n".encode()
    pos = data.rfind(mark)
    if pos < 0:
        return data, None
    code = None
    for line in data[pos + len(mark) :].decode("utf-8", "replace").splitlines():
        if line.startswith("核验码："):
            code = line.removeprefix("核验码：").strip()
    return data[:pos], code


def document_path(documents_dir: Path, case_id: str, kind: DocumentKind, n: int) -> Path:
    return documents_dir / case_id / f"{kind.value}-{n}.txt"


# ---------------------------------------------------------------------------------------------
# The PDF beside the text file: the document as a person receives it, printed or on a phone.
# The text file stays the canonical form the log records; the PDF carries the same lines, laid
# out, with a QR code of the public verification page. It is a convenience copy: no CJK font on
# the machine means no PDF (one warning), never a failed document.

PDF_FONT_ENV = "PETITION_PDF_FONT"
# Debian/Ubuntu `fonts-noto-cjk` (font collections with CFF outlines, one face per region; the
# Simplified Chinese face is picked by name), then the same files where other distributions put them.
_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
_FONT_GLOBS = ("**/Noto*CJK*SC*Regular.otf", "**/Noto*CJK*-Regular.ttc", "**/Noto*CJK*Regular*.otf")
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
_CODE_IN_TEXT = re.compile(r"存证核验码\s*(L\d+-[0-9a-f]{8})")

_PAGE_W, _PAGE_H, _MARGIN, _BOTTOM = 210.0, 297.0, 25.0, 20.0
_QR = 34.0  # the QR code's side (mm)
_GREY = (90, 90, 90)

_log = get_logger(component="documents")
_warned_no_font = False
_warned_overrides: set[str] = set()


class NoPdfFont(RuntimeError):
    """No font with Chinese glyphs was found (install fonts-noto-cjk, or set PETITION_PDF_FONT)."""


@dataclass(frozen=True)
class PdfFont:
    """A font file and, for a collection (.ttc), the face to embed (0 for a single font)."""

    path: Path
    face: int = 0

    def __str__(self) -> str:
        return f"{self.path}#{self.face}"


@functools.lru_cache(maxsize=16)
def _simplified_chinese_face(path: Path) -> int:
    """The face of a collection whose family is the Simplified Chinese one (… CJK SC), else 0."""
    from fontTools.ttLib import TTCollection

    with TTCollection(str(path), lazy=True) as collection:
        families = [str(font["name"].getDebugName(1) or "") for font in collection.fonts]
    for i, family in enumerate(families):
        if family.endswith(" SC") and "Mono" not in family:
            return i
    return 0


def _font_at(spec: str) -> PdfFont | None:
    """`PATH` or `PATH#FACE`; a collection without a face gets its Simplified Chinese face."""
    path_text, _, face_text = spec.partition("#")
    path = Path(path_text).expanduser()
    if not path.is_file() or (face_text.strip() and not face_text.strip().isdigit()):
        return None
    if face_text.strip():
        return PdfFont(path, int(face_text))
    return PdfFont(path, _simplified_chinese_face(path) if path.suffix.lower() == ".ttc" else 0)


def find_pdf_font() -> PdfFont | None:
    """The CJK font PDFs are set in: `PETITION_PDF_FONT` (`PATH` or `PATH#FACE`) when it names a
    file, else Noto Serif CJK SC / Noto Sans CJK SC from fonts-noto-cjk; None when there is none."""
    override = os.environ.get(PDF_FONT_ENV, "").strip()
    if override:
        font = _font_at(override)
        if font is not None:
            return font
        if override not in _warned_overrides:
            _warned_overrides.add(override)
            _log.warning("pdf font override names no font file (PATH or PATH#FACE); using fonts-noto-cjk",
                         variable=PDF_FONT_ENV, value=override)
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return _font_at(candidate)
    for folder in _FONT_DIRS:
        if Path(folder).is_dir():
            for pattern in _FONT_GLOBS:
                for found in sorted(Path(folder).glob(pattern)):
                    return _font_at(str(found))
    return None


def verification_url(public_url: str, code: str) -> str:
    """The public page that checks a document: `{public_url}/v/{code}`."""
    return f"{public_url.rstrip('/')}/v/{code}"


def delivered_verification_code(fields: dict[str, Any]) -> str | None:
    """The delivered document's code in a delivery receipt's fields (`…（存证核验码 L4-…）`)."""
    match = _CODE_IN_TEXT.search(str(fields.get("delivered_document") or ""))
    return match.group(1) if match else None


def _delivered_title(delivered: str) -> str:
    """`handling_opinion（存证核验码 L4-…）` as a person reads it: 信访事项办理意见书（存证核验码 L4-…）."""
    head, sep, rest = delivered.partition("（")
    try:
        return DOCUMENT_CN[DocumentKind(head.strip())] + sep + rest
    except ValueError:
        return delivered


def _pdf_text(line: str) -> str:
    return unicodedata.normalize("NFC", line.rstrip())


class CjkPdf(FPDF):
    """A4 pages set in the CJK font (named "cjk"), each with a grey footer line
    `{footer_text}　第 N 页，共 M 页` `footer_y` mm above the bottom edge, in `footer_color`: a
    document's PDF, the monthly brief (engine/brief.py)."""

    footer_y = -13.0
    footer_color = _GREY

    def __init__(self, font: PdfFont, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer_text = footer_text
        self.add_font("cjk", "", str(font.path), collection_font_number=font.face)

    def footer(self) -> None:
        self.set_y(self.footer_y)
        self.set_font("cjk", size=8)
        self.set_text_color(*self.footer_color)
        self.cell(0, 5, f"{self._footer_text}　第 {self.page_no()} 页，共 {{nb}} 页", align="C")
        self.set_text_color(0, 0, 0)


class _DocumentPdf(CjkPdf):
    def __init__(self, font: PdfFont, footer_text: str) -> None:
        super().__init__(font, footer_text)
        self.set_margins(_MARGIN, 22.0, _MARGIN)
        self.set_auto_page_break(True, margin=_BOTTOM)

    def heading(self, title: str, case_line: str) -> None:
        self.set_font("cjk", size=20)
        with self.local_context(text_mode=TextMode.FILL_STROKE, line_width=0.25):  # the face has no bold
            self.cell(0, 12, title, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("cjk", size=10.5)
        self.cell(0, 7, case_line, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_line_width(0.4)
        self.line(_MARGIN, self.get_y() + 2, _PAGE_W - _MARGIN, self.get_y() + 2)
        self.set_y(self.get_y() + 8)

    def paragraph(self, text: str, size: float = 13, height: float = 8, align: str = "L") -> None:
        self.set_font("cjk", size=size)
        self.multi_cell(0, height, text, align=align, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def qr(self, data: str, x: float, y: float, size: float) -> None:
        """The QR code as vector squares (sharp on paper at any size); the page is its quiet zone."""
        code = segno.make(data, error="m", micro=False)
        matrix = [list(row) for row in code.matrix]
        module = size / len(matrix)
        with self.new_path(paint_rule=PathPaintRule.FILL_NONZERO) as path:
            path.style.fill_color = "#000000"
            path.style.stroke_color = None
            for r, row in enumerate(matrix):
                c = 0
                while c < len(row):
                    if row[c]:
                        start = c
                        while c < len(row) and row[c]:
                            c += 1
                        path.rectangle(x + start * module, y + r * module, (c - start) * module, module)
                    else:
                        c += 1

    def verification_block(self, url: str, lines: list[tuple[str, float]]) -> None:
        """At the foot of the last page, boxed: the QR code with the URL under it, and beside it the
        sentence, codes and digest. The QR code keeps a quiet zone of at least four modules."""
        left, width = _MARGIN + 5 + _QR + 5, _PAGE_W - _MARGIN - 4 - (_MARGIN + 5 + _QR + 5)
        column = 0.0
        for text, size in lines:
            self.set_font("cjk", size=size)
            measured = self.multi_cell(width, size * 0.55, text, wrapmode=WrapMode.CHAR, dry_run=True,
                                       output=MethodReturnValue.HEIGHT)
            column += float(measured) + 1.5  # type: ignore[arg-type]  # output=HEIGHT returns a number
        above_url = max(5 + _QR, 5 + column) + 4
        height = above_url + 5 + 3
        if self.get_y() + height > _PAGE_H - _BOTTOM:
            self.add_page()
        top = _PAGE_H - _BOTTOM - height
        self.set_draw_color(*_GREY)
        self.set_line_width(0.2)
        self.rect(_MARGIN, top, _PAGE_W - 2 * _MARGIN, height)
        self.set_draw_color(0, 0, 0)
        self.qr(url, _MARGIN + 5, top + 5, _QR)
        self.set_xy(left, top + 5)
        for text, size in lines:
            self.set_font("cjk", size=size)
            self.multi_cell(width, size * 0.55, text, align="L", wrapmode=WrapMode.CHAR, new_x=XPos.LEFT, new_y=YPos.NEXT)
            self.set_y(self.get_y() + 1.5)
            self.set_x(left)
        self.set_xy(_MARGIN + 4, top + above_url)
        self.set_font("cjk", size=8)
        self.multi_cell(_PAGE_W - 2 * _MARGIN - 8, 5, url, align="L", wrapmode=WrapMode.CHAR)


@dataclass(frozen=True)
class PdfSource:
    """Everything a document's PDF is drawn from. All of it is stored: the canonical body (the
    text file, whose SHA-256 the log records), the row's kind, case, issue time (the PDF's creation
    date), verification code and digest, and the verification page's address (the text's footer)."""

    kind: DocumentKind
    case_id: str
    issued_at: datetime
    body: str
    verification_code: str
    document_sha256: str
    public_url: str


def render_pdf(source: PdfSource, *, font: PdfFont | None = None) -> bytes:
    """The document as a PDF: the text body's lines laid out, and a verification block whose QR
    code opens `{public_url}/v/{code}`. A delivery receipt (送达回证) is a printable form whose QR
    code checks the delivered document. The same source gives the same bytes (the creation date is
    the issue time). Raises NoPdfFont when no CJK font is found, ValueError for a body the
    templates did not lay out."""
    font = font or find_pdf_font()
    if font is None:
        raise NoPdfFont("no CJK font: install fonts-noto-cjk or set " + PDF_FONT_ENV)
    kind, code = source.kind, source.verification_code
    parts = _Parts.read(unicodedata.normalize("NFC", source.body))
    version = re.fullmatch(r"（文书模板 (.+)）", parts.template_line)
    pdf = _DocumentPdf(font, f"{parts.case_line}　核验码：{code}")
    pdf.set_creation_date(source.issued_at)
    pdf.set_title(parts.title)
    pdf.set_subject(source.case_id)
    pdf.set_creator(f"petition-engine (文书模板 {version.group(1) if version else TEMPLATE_VERSION})")
    pdf.set_lang("zh-CN")
    pdf.add_page()
    pdf.heading(_pdf_text(parts.title), _pdf_text(parts.case_line))
    if kind == DocumentKind.delivery_receipt:
        _receipt_form(pdf, [_pdf_text(line) for line in parts.body])
    else:
        for line in parts.body:
            pdf.paragraph(_pdf_text(line))
            pdf.set_y(pdf.get_y() + 1.5)
    pdf.set_y(pdf.get_y() + 10)
    if pdf.get_y() + 36 > _PAGE_H - _BOTTOM:  # the issuer, 经办人 and date stay together
        pdf.add_page()
    for signed in (parts.issuer, parts.handled_by, parts.date):
        if signed:
            pdf.paragraph(_pdf_text(signed), align="R")
    pdf.set_text_color(*_GREY)
    pdf.paragraph(_pdf_text(parts.template_line), size=8, height=5, align="R")
    pdf.set_text_color(0, 0, 0)

    own = [
        (f"核验码：{code}", 11.0),
        ("文书摘要（SHA-256）：", 8.0),
        (source.document_sha256, 8.0),
    ]
    delivered = None
    if kind == DocumentKind.delivery_receipt:  # the delivered document's code, as its line names it
        named = [line for line in parts.body if line.startswith("送达文书：")]
        delivered = delivered_verification_code({"delivered_document": named[0] if named else ""})
    if delivered:
        url = verification_url(source.public_url, delivered)
        lines = [
            ("用手机扫描二维码，即可核验所送达的文书是否由本机关出具、内容是否被改动。", 10.0),
            (f"所送达文书的核验码：{delivered}", 11.0),
            (f"本回证{own[0][0]}", 9.0),
            *own[1:],
        ]
    else:
        url = verification_url(source.public_url, code)
        lines = [("用手机扫描二维码，即可核验本文书是否由本机关出具、内容是否被改动。", 10.0), *own]
    pdf.verification_block(url, lines)
    return bytes(pdf.output())


def _receipt_form(pdf: _DocumentPdf, body: list[str]) -> None:
    """送达回证 as a form: what was delivered, how, and blanks to fill in by hand on delivery."""
    rows: list[tuple[str, str]] = []
    for line in body:
        label, sep, value = line.partition("：")
        if not sep:
            label, value = "", line
        rows.append((label, _delivered_title(value) if label == "送达文书" else value))
    rows += [("受送达人签名（盖章）", ""), ("送达日期", "　　　　年　　月　　日"), ("送达人", "")]
    pdf.set_font("cjk", size=12)
    with pdf.table(
        col_widths=(50, 110),
        first_row_as_headings=False,
        text_align=("CENTER", "LEFT"),
        wrapmode=WrapMode.CHAR,
        line_height=7,
        padding=(3, 3),
    ) as table:
        for label, value in rows:
            tall = label.startswith("受送达人签名")
            table.row((label, value), min_height=26 if tall else 14)


def pdf_path(text_path: Path) -> Path:
    """The PDF beside a document's text file: same folder, same stem."""
    return text_path.with_suffix(".pdf")


class DocumentMismatch(ValueError):
    """A document's text file does not hold the body its row (and the log) records."""


@dataclass(frozen=True)
class DocumentRef:
    """What the documents table keeps of a document (`activities.db.DocumentRow`): with the text
    file at `path`, everything its PDF is drawn from."""

    path: Path
    kind: DocumentKind
    case_id: str
    issued_at: datetime
    verification_code: str
    sha256: str

    @classmethod
    def of_row(cls, row: DocumentRow) -> DocumentRef:
        return cls(
            Path(row.path), DocumentKind(row.kind), row.case_id, as_utc(row.issued_at), row.verification_code, row.sha256
        )


_URL_IN_FOOTER = re.compile(r"访问 (\S+)/v/L\d+-[0-9a-f]{8}；")


def pdf_source(doc: DocumentRef, public_url: str, body: bytes | None = None) -> PdfSource:
    """What `doc`'s PDF is drawn from: the body in its text file, checked against the recorded
    SHA-256 and verification code, and the verification page its footer names (`public_url` when
    the footer names none). `body`, the templates' rendering, serves only when there is no text
    file; it must have the recorded SHA-256 too. Raises DocumentMismatch, or FileNotFoundError."""
    code: str | None = None
    footer_url: re.Match[str] | None = None
    try:
        data = doc.path.read_bytes()
    except FileNotFoundError:
        if body is None:
            raise
    else:
        body, code = split_document(data)
        footer_url = _URL_IN_FOOTER.search(data[len(body) :].decode("utf-8", "replace"))
    if hashlib.sha256(body).hexdigest() != doc.sha256:
        raise DocumentMismatch(f"{doc.path}: the body's SHA-256 is not the recorded {doc.sha256}")
    if code is not None and code != doc.verification_code:
        raise DocumentMismatch(f"{doc.path}: verification code {code}, recorded {doc.verification_code}")
    return PdfSource(
        kind=doc.kind, case_id=doc.case_id, issued_at=doc.issued_at, body=body.decode("utf-8"),
        verification_code=doc.verification_code, document_sha256=doc.sha256,
        public_url=footer_url.group(1) if footer_url else public_url,
    )


def pdf_complete(path: Path) -> bool:
    """A whole PDF file: the header, and `%%EOF` at the end (a file cut short, or empty, has none)."""
    try:
        with path.open("rb") as f:
            head = f.read(5)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 64))
            tail = f.read()
    except OSError:
        return False
    return head == b"%PDF-" and tail.rstrip().endswith(b"%%EOF")


_PDF_TMP = ".pdf.tmp"
_STALE_TMP_S = 600.0  # a temporary PDF this old is a dead writer's, whoever wrote it


def keep_pdf(doc: DocumentRef, public_url: str, body: bytes | None = None) -> Path | None:
    """`doc`'s PDF, beside its text file: kept when it is there and whole, else rendered from what
    is stored (`pdf_source`) and written atomically (a temporary file, synced, renamed over the
    target), so a half-written PDF is never taken for one that is done. Without a CJK font it logs
    one warning per process and returns None: the text document stands on its own."""
    target = pdf_path(doc.path)
    if pdf_complete(target):
        return target
    font = find_pdf_font()
    if font is None:
        _warn_no_font()
        return None
    data = render_pdf(pdf_source(doc, public_url, body), font=font)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{target.stem}.{os.getpid()}.", suffix=_PDF_TMP)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(target)
    return target


def write_pdf(
    text_path: Path,
    kind: DocumentKind,
    case_id: str,
    issued_at: datetime,
    fields: dict[str, Any],
    addressee: str,
    *,
    verification_code: str,
    document_sha256: str,
    public_url: str,
) -> Path | None:
    """The PDF of a document from what issued it: `keep_pdf`, drawn from the text file like any
    later rendering; the fields and addressee render the body only if there is no text. (The
    `issue_document` activity calls `keep_pdf` itself, and reads those only when the text is gone.)"""
    doc = DocumentRef(text_path, kind, case_id, issued_at, verification_code, document_sha256)
    return keep_pdf(doc, public_url, None if text_path.exists() else render_body(kind, case_id, issued_at, fields, addressee))


def _warn_no_font() -> None:
    global _warned_no_font
    if not _warned_no_font:
        _warned_no_font = True
        _log.warning("no CJK font found: documents are issued without their PDF",
                     hint=f"install fonts-noto-cjk or set {PDF_FONT_ENV}")


def _remove_stale_temporaries(target: Path) -> None:
    """Temporary files of this PDF left by a writer that died (a killed worker's PDF process): its
    process is gone, or the file is older than any write takes."""
    from engine.servers import _running

    for tmp in target.parent.glob(f"{target.stem}.*{_PDF_TMP}"):
        writer = tmp.name[len(target.stem) + 1 :].split(".", 1)[0]  # `{stem}.{pid}.{random}.pdf.tmp`
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_TMP_S or (writer.isdigit() and not _running(int(writer))):
                tmp.unlink()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Durable PDFs. `issue_document` renders a document's PDF after it returns, in the worker's PDF
# process, and a killed worker (or PDF process) loses what was queued there. Nothing is lost for
# good: the row and the text file hold all a PDF needs, and the keeper renders every document whose
# PDF is missing or incomplete.

PDF_SWEEP_INTERVAL_S = 60.0  # between two sweeps of the documents issued since
PDF_SWEEP_GRACE_S = 30.0  # a missing PDF first seen this recently may still be in a worker's queue
PDF_SWEEP_PATIENCE_S = 5.0  # the longest a sweep's render waits for the activities' renders


@dataclass
class SweepReport:
    checked: int = 0  # documents looked at
    rendered: int = 0  # PDFs written (missing or incomplete before)
    waiting: int = 0  # missing, but first seen within the grace period: the next sweep
    failed: int = 0  # not renderable: the text file missing or not the recorded document (logged)
    no_font: bool = False  # no CJK font: nothing rendered, nothing given up


class PdfKeeper:
    """Keeps every document's PDF: when the worker starts, a sweep over all documents; then, every
    `interval` seconds, over those issued since (`id` above a cursor below which every PDF is
    whole). Each PDF missing or incomplete is rendered by `keep_pdf`, one at a time, in the worker's
    PDF process (which dies with the worker), after the activities' own renders when there are any
    (waiting `patience` seconds at most). A PDF process that died is replaced.

    The cursor never passes the largest `id` seen by the sweep before (or at start): a row whose
    transaction began before a larger id was committed is still looked at by the next sweep."""

    def __init__(
        self,
        settings: Settings,
        *,
        interval: float = PDF_SWEEP_INTERVAL_S,
        grace: float = PDF_SWEEP_GRACE_S,
        patience: float = PDF_SWEEP_PATIENCE_S,
        batch: int = 500,
    ) -> None:
        self.engine = get_engine(settings.resolved_database_url())
        self.public_url = settings.resolved_public_url()
        self.interval, self.grace, self.patience, self.batch = interval, grace, patience, batch
        self._cursor = 0  # every document with an id up to here has its PDF (or cannot have one)
        self._bound: int | None = None  # the largest id when the previous sweep began
        self._first_missing: dict[int, float] = {}  # id -> when a sweep first found its PDF missing
        self._warned_font = False

    async def run(self, start_delay: float = 1.0) -> None:
        """Sweep everything now (after `start_delay`), then what is new every `interval` seconds."""
        try:
            self._bound = await asyncio.to_thread(self._top)
        except Exception as err:  # the first sweep bounds itself
            _log.error("document pdf sweep failed", error=repr(err))
        await asyncio.sleep(start_delay)
        grace = 0.0  # at start no worker of this process has a queue: whatever is missing was lost
        while True:
            try:
                report = await self.sweep(grace=grace)
                if report.rendered or report.failed:
                    _log.info("document pdfs rendered again", rendered=report.rendered, failed=report.failed,
                              checked=report.checked, waiting=report.waiting)
            except Exception as err:  # a database or file error: the next sweep tries again
                _log.error("document pdf sweep failed", error=repr(err))
            grace = self.grace
            await asyncio.sleep(self.interval)

    async def sweep(self, *, grace: float | None = None) -> SweepReport:
        """One sweep from the cursor (from the first document, the first time)."""
        grace = self.grace if grace is None else grace
        report = SweepReport()
        if find_pdf_font() is None:
            if not self._warned_font:
                self._warned_font = True
                _log.warning("no CJK font found: document PDFs are not rendered",
                             hint=f"install fonts-noto-cjk or set {PDF_FONT_ENV}")
            report.no_font = True
            return report
        top = await asyncio.to_thread(self._top)
        bound = top if self._bound is None else self._bound
        after, done_to, whole = self._cursor, self._cursor, True
        while rows := await asyncio.to_thread(self._page, after, top):
            for doc_id, doc, complete in rows:
                after = doc_id
                report.checked += 1
                if complete:
                    self._first_missing.pop(doc_id, None)
                done = complete or await self._render(doc_id, doc, grace, report)
                whole = whole and done
                if whole:
                    done_to = doc_id
        self._cursor = max(self._cursor, min(done_to, bound))
        self._bound = top
        return report

    def _top(self) -> int:
        with Session(self.engine) as s:
            return s.exec(select(func.max(DocumentRow.id))).one() or 0

    def _page(self, after: int, top: int) -> list[tuple[int, DocumentRef | DocumentRow, bool]]:
        """The next documents after `after` (up to `top`), each with whether its PDF is whole (a row
        of a kind this engine does not know stays a row)."""
        with Session(self.engine) as s:
            rows = s.exec(
                select(DocumentRow)
                .where(col(DocumentRow.id) > after, col(DocumentRow.id) <= top)
                .order_by(col(DocumentRow.id))
                .limit(self.batch)
            ).all()
        page: list[tuple[int, DocumentRef | DocumentRow, bool]] = []
        for row in rows:
            try:
                doc: DocumentRef | DocumentRow = DocumentRef.of_row(row)
            except ValueError:
                doc = row
            page.append((int(row.id or 0), doc, pdf_complete(pdf_path(Path(doc.path)))))
        return page

    async def _render(self, doc_id: int, doc: DocumentRef | DocumentRow, grace: float, report: SweepReport) -> bool:
        """Render one missing PDF. True when it is done with: written, or never to be written from
        what is stored (logged); False while it is within its grace period or could not be written
        now (the next sweep tries again)."""
        now = time.monotonic()
        if now - self._first_missing.setdefault(doc_id, now) < grace:
            report.waiting += 1
            return False
        try:
            if not isinstance(doc, DocumentRef):
                raise ValueError(f"no template for document kind {doc.kind}")
            written = await self._in_pdf_process(functools.partial(keep_pdf, doc, self.public_url))
        except (FileNotFoundError, ValueError) as err:  # no text file, or not the recorded document
            _log.error("document pdf cannot be rendered", case_id=doc.case_id, path=str(doc.path), error=repr(err))
            report.failed += 1
            self._first_missing.pop(doc_id, None)
            return True
        except BrokenProcessPool:
            raise
        except Exception as err:  # a full disk, a permission: not this document's fault
            _log.error("document pdf not written", case_id=doc.case_id, path=str(doc.path), error=repr(err))
            return False
        if written is None:  # no CJK font in the PDF process
            return False
        report.rendered += 1
        self._first_missing.pop(doc_id, None)
        return True

    async def _in_pdf_process(self, call: Callable[[], Path | None]) -> Path | None:
        """`call` in the worker's PDF process, after the activities' own PDFs (fresh documents first)
        or `patience` seconds; a PDF process that died (killed, out of memory) is replaced, for this
        call and every later PDF of the worker."""
        from activities.petition import pdf_pool, pdfs_written  # petition imports this module

        await pdfs_written(timeout=self.patience)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pdf_pool(), call)
        except BrokenProcessPool:  # the process died (before or during the call): its replacement
            return await loop.run_in_executor(pdf_pool(), call)



@contextlib.asynccontextmanager
async def keep_pdfs(settings: Settings, **options: Any) -> AsyncIterator[PdfKeeper]:
    """The worker's PDF keeper (`PdfKeeper.run`) for as long as the block runs."""
    keeper = PdfKeeper(settings, **options)
    task = asyncio.create_task(keeper.run())
    try:
        yield keeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
