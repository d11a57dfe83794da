"""Documents the engine issues: Chinese text from templates, canonicalised, stored, and logged.

A document file is its canonical body followed by a verification footer. The body's SHA-256
is what the tamper-evident log records; the footer carries the verification code (log index
and a short hash) so a petitioner holding a copy can have it checked (`starter.py verify`).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from rules.deadlines import SHANGHAI
from rules.vocabulary import DocumentKind, RedirectRoute

TEMPLATE_VERSION = "2026.1"
FOOTER_MARK = "—— 存证核验 ——"

_ROUTES = {
    RedirectRoute.litigation.value: "向人民法院提起诉讼",
    RedirectRoute.arbitration.value: "向劳动人事争议仲裁委员会申请仲裁",
    RedirectRoute.administrative_reconsideration.value: "依法申请行政复议",
}

_TITLES: dict[DocumentKind, str] = {
    DocumentKind.acceptance_notice: "信访事项受理告知书",
    DocumentKind.not_accepted_notice: "信访事项不予受理告知书",
    DocumentKind.redirect_notice: "导入法定途径告知书",
    DocumentKind.mediation_agreement: "人民调解协议书",
    DocumentKind.extension_notice: "信访事项延期办理告知书",
    DocumentKind.handling_opinion: "信访事项办理意见书",
    DocumentKind.review_opinion: "信访事项复查意见书",
    DocumentKind.re_review_opinion: "信访事项复核意见书",
    DocumentKind.risk_warning_letter: "风险提示函",
    DocumentKind.supervision_letter: "督办函",
    DocumentKind.accountability_letter: "问责建议函",
    DocumentKind.petitioner_notice: "群众告知书",
    DocumentKind.delivery_receipt: "送达回证",
}


def _date(dt: datetime) -> str:
    local = dt.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日"


def _body(kind: DocumentKind, f: dict[str, Any], to: str) -> list[str]:
    title = f.get("title", "")
    unit = f.get("unit", "")
    if kind == DocumentKind.acceptance_notice:
        return [
            f"{to}：",
            f"您反映的“{title}”一事，经审查符合受理条件，{unit}已依法予以受理。",
            "我单位将在受理之日起六十日内办结并书面答复；符合条件的民生纠纷，将在七日内组织调解。",
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
        return [f"当事人：{to}与{unit}", f"就“{title}”一事，经首办单位组织调解，双方自愿达成协议。", f"履行情况：{state}。"]
    if kind == DocumentKind.extension_notice:
        return [
            f"{to}：",
            f"您反映的“{title}”一事，因{f.get('reason', '')}，经{f.get('approved_by', '')}批准，"
            f"办理期限延长{f.get('days')}日。",
            f"延长后的期限至{_date(datetime.fromisoformat(f['new_due']))}二十四时（如遇节假日顺延后的日期以本告知为准）。"
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
            f"案件“{title}”存在重大风险隐患（{f.get('reason', '')}）。",
            f"请于{_date(due - _ONE_SECOND) if due else ''}二十四时前{ask}，逾期将依规升级督办。",
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
        return [f"受送达人：{to}", f"送达文书：{f.get('delivered_document', '')}", "送达方式：电子送达"]
    raise ValueError(f"no template for document kind {kind}")


_ONE_SECOND = __import__("datetime").timedelta(seconds=1)


def render_body(kind: DocumentKind, case_id: str, issued_at: datetime, fields: dict[str, Any], addressee: str) -> bytes:
    """The canonical body of a document: NFC-normalised UTF-8, LF line ends, one final newline."""
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
    lines = [
        _TITLES[kind],
        f"案件编号：{case_id}",
        "",
        *[line for line in _body(kind, fields, addressee) if line],
        "",
        f"{issuer}",
        # Who acted for the issuer (the signed-in staff member), when a person's action issued it.
        *([f"经办人：{fields['handled_by']}"] if fields.get("handled_by") else []),
        f"{_date(issued_at)}",
        f"（文书模板 {TEMPLATE_VERSION}）",
    ]
    text = "\n".join(line.rstrip() for line in lines) + "\n"
    return unicodedata.normalize("NFC", text).encode("utf-8")


def footer(verification_code: str, document_sha256: str) -> bytes:
    return (
        f"\n{FOOTER_MARK}\n核验码：{verification_code}\n文书摘要(SHA-256)：{document_sha256}\n"
        "核验方法：python starter.py verify 本文件\n"
    ).encode()


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
