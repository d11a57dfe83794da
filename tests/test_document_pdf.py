"""Documents as a person receives them: the PDF beside each text document.

The PDF carries the text body's lines, the Chinese date and a verification block whose QR code
opens `{public_url}/v/{code}` (a delivery receipt's QR code checks the delivered opinion). The QR
code is read back from the rendered page (pdftoppm + zbarimg), the text with pypdf. The text
document, the canonical form the log records, is unchanged byte for byte.

Skipped only when the machine lacks the CJK font (fonts-noto-cjk) or poppler-utils / zbar-tools.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlmodel import Session

import activities.documents as documents
from activities.documents import (
    PdfFont,
    PdfSource,
    delivered_verification_code,
    find_pdf_font,
    footer,
    render_body,
    render_pdf,
    split_document,
    verification_url,
    write_pdf,
)
from engine.config import Settings
from rules.vocabulary import DocumentKind

CASE = "XF-20261201-0A1B2C3D"
# 01:30 on 1 December in Shanghai (still 30 November in UTC): the date printed is Shanghai's.
ISSUED = datetime(2026, 11, 30, 17, 30, tzinfo=UTC)
PUBLIC = "https://xinfang.example.gov.cn"
PEOPLE = "张三、李四"
NOTICE_FIELDS: dict[str, Any] = {"title": "某建筑工地拖欠农民工工资", "unit": "青山区人社局", "handled_by": "clerk01"}
RECEIPT_FIELDS: dict[str, Any] = {"unit": "青山区人社局", "delivered_document": "handling_opinion（存证核验码 L4-0123abcd）"}

# The text bodies as the templates render them (byte for byte; template 2026.2 names the delivered
# document in Chinese).
NOTICE_TEXT = (
    "信访事项受理告知书\n案件编号：XF-20261201-0A1B2C3D\n\n张三、李四：\n"
    "您反映的“某建筑工地拖欠农民工工资”一事，经审查符合受理条件，青山区人社局已依法予以受理。\n"
    "我单位将在受理之日起六十日内办结并书面答复；符合条件的民生纠纷，将在七日内组织调解。\n\n"
    "青山区人社局\n经办人：clerk01\n2026年12月1日\n（文书模板 2026.2）\n"
)
RECEIPT_TEXT = (
    "送达回证\n案件编号：XF-20261201-0A1B2C3D\n\n受送达人：张三、李四\n"
    "送达文书：信访事项办理意见书（存证核验码 L4-0123abcd）\n送达方式：电子送达\n\n"
    "青山区人社局\n2026年12月1日\n（文书模板 2026.2）\n"
)


@pytest.fixture(scope="module")
def font() -> PdfFont:
    found = find_pdf_font()
    if found is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk, or set PETITION_PDF_FONT)")
    return found


@pytest.fixture(scope="module")
def scan_tools() -> None:
    missing = [tool for tool in ("pdftoppm", "zbarimg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install poppler-utils zbar-tools)")


def qr_codes(pdf: bytes, work: Path) -> list[str]:
    """Every QR code on the rendered pages, as a phone would read it off the printout."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "doc.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(work / "doc.pdf"), str(work / "page")], check=True, timeout=60)
    found: list[str] = []
    for page in sorted(work.glob("page*.png")):
        scan = subprocess.run(["zbarimg", "--raw", "-q", str(page)], capture_output=True, text=True, timeout=60)
        assert scan.returncode in (0, 4), scan.stderr  # 4: no symbol on that page
        found += [line for line in scan.stdout.splitlines() if line]
    return found


def pdf_text(pdf: bytes, work: Path) -> str:
    """The PDF's text with whitespace removed: the layout wraps long lines, and pypdf reads the
    2-byte codes of the CID-keyed CFF font (fpdf2 maps them to CIDs by an embedded CMap) with a
    NUL before each character, which poppler and pdfium do not. Characters and order are checked."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "text.pdf").write_bytes(pdf)
    reader = PdfReader(work / "text.pdf")
    return "".join(squeeze(page.extract_text().replace("\x00", "")) for page in reader.pages)


def squeeze(text: str) -> str:
    return "".join(text.split())


def _source(kind: DocumentKind, fields: dict[str, Any], code: str, digest: str, public: str = PUBLIC) -> PdfSource:
    """What a document's PDF is drawn from: its text body as the templates render it, and the rest."""
    body = render_body(kind, CASE, ISSUED, fields, PEOPLE).decode()
    return PdfSource(kind, CASE, ISSUED, body, verification_code=code, document_sha256=digest, public_url=public)


def _notice_pdf(font: PdfFont, code: str = "L7-5e1f0c2a", digest: str = "5e1f0c2a" * 8) -> bytes:
    return render_pdf(_source(DocumentKind.acceptance_notice, NOTICE_FIELDS, code, digest), font=font)


# ---------------------------------------------------------------------------------------------
def test_the_text_bodies_are_unchanged_byte_for_byte() -> None:
    assert render_body(DocumentKind.acceptance_notice, CASE, ISSUED, NOTICE_FIELDS, PEOPLE) == NOTICE_TEXT.encode()
    assert render_body(DocumentKind.delivery_receipt, CASE, ISSUED, RECEIPT_FIELDS, PEOPLE) == RECEIPT_TEXT.encode()


def test_an_acceptance_notice_pdf_carries_the_text_and_a_qr_code_of_its_verification_url(
    font: PdfFont, scan_tools: None, tmp_path: Path
) -> None:
    body = render_body(DocumentKind.acceptance_notice, CASE, ISSUED, NOTICE_FIELDS, PEOPLE)
    digest = hashlib.sha256(body).hexdigest()
    code = f"L7-{digest[:8]}"
    pdf = _notice_pdf(font, code, digest)
    assert pdf.startswith(b"%PDF-")

    assert qr_codes(pdf, tmp_path / "qr") == [f"{PUBLIC}/v/{code}"]

    text = pdf_text(pdf, tmp_path / "text")
    for expected in ("信访事项受理告知书", f"案件编号：{CASE}", "2026年12月1日", f"核验码：{code}", digest, "经办人：clerk01",
                     "青山区人社局", f"{PUBLIC}/v/{code}", "用手机扫描二维码"):
        assert squeeze(expected) in text, expected
    # every line of the text body, in order
    lines = [squeeze(line) for line in body.decode().splitlines() if line]
    pos = 0
    for line in lines:
        found = text.find(line, pos)
        assert found >= 0, line
        pos = found + len(line)


def test_the_pdf_embeds_a_subset_cjk_font_and_is_deterministic(font: PdfFont, tmp_path: Path) -> None:
    pdf = _notice_pdf(font)
    assert _notice_pdf(font) == pdf  # same document, same bytes (creation date = issue time)
    (tmp_path / "doc.pdf").write_bytes(pdf)
    reader = PdfReader(tmp_path / "doc.pdf")
    assert reader.metadata is not None
    assert reader.metadata.title == "信访事项受理告知书"
    assert reader.metadata.creation_date is not None
    assert reader.metadata.creation_date.astimezone(UTC) == ISSUED
    fonts = reader.pages[0]["/Resources"]["/Font"]
    for ref in fonts.values():
        descendant = ref.get_object()["/DescendantFonts"][0].get_object()
        assert "+" in str(descendant["/BaseFont"])  # a subset tag, e.g. MPDFAA+NotoSerifCJKSC
        descriptor = descendant["/FontDescriptor"].get_object()
        assert any(key in descriptor for key in ("/FontFile2", "/FontFile3"))  # embedded
    assert len(pdf) < 200_000  # a subset, not the whole 20 MB collection


def test_a_delivery_receipt_is_a_form_whose_qr_code_checks_the_delivered_opinion(
    font: PdfFont, scan_tools: None, tmp_path: Path
) -> None:
    body = render_body(DocumentKind.delivery_receipt, CASE, ISSUED, RECEIPT_FIELDS, PEOPLE)
    digest = hashlib.sha256(body).hexdigest()
    own = f"L5-{digest[:8]}"
    pdf = render_pdf(_source(DocumentKind.delivery_receipt, RECEIPT_FIELDS, own, digest, PUBLIC + "/"), font=font)
    assert qr_codes(pdf, tmp_path / "qr") == [f"{PUBLIC}/v/L4-0123abcd"]  # the opinion, not the receipt

    text = pdf_text(pdf, tmp_path / "text")
    for expected in ("送达回证", f"案件编号：{CASE}", "受送达人", PEOPLE, "送达文书", "信访事项办理意见书（存证核验码L4-0123abcd）",
                     "送达方式", "电子送达", "受送达人签名", "送达日期", "送达人", "2026年12月1日",
                     "所送达文书的核验码：L4-0123abcd", f"本回证核验码：{own}", digest, f"{PUBLIC}/v/L4-0123abcd"):
        assert squeeze(expected) in text, expected


def test_the_delivered_code_is_read_from_the_receipt_fields() -> None:
    assert delivered_verification_code(RECEIPT_FIELDS) == "L4-0123abcd"
    assert delivered_verification_code({"delivered_document": "review_opinion（存证核验码 L12-ffee0011）"}) == "L12-ffee0011"
    assert delivered_verification_code({}) is None
    assert verification_url("http://127.0.0.1:8080/", "L4-0123abcd") == "http://127.0.0.1:8080/v/L4-0123abcd"


def test_the_font_override_and_the_collection_face(font: PdfFont, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(documents.PDF_FONT_ENV, f"{font.path}#{font.face}")
    assert find_pdf_font() == font
    if font.path.suffix.lower() == ".ttc":
        monkeypatch.setenv(documents.PDF_FONT_ENV, str(font.path))
        picked = find_pdf_font()
        assert picked is not None and picked.path == font.path
        from fontTools.ttLib import TTCollection

        with TTCollection(str(font.path), lazy=True) as collection:
            assert str(collection.fonts[picked.face]["name"].getDebugName(1)).endswith(" SC")
    monkeypatch.setenv(documents.PDF_FONT_ENV, str(tmp_path / "no-such-font.ttc"))
    assert find_pdf_font() == font  # a wrong override falls back to the installed font (with a warning)


def test_without_a_cjk_font_the_pdf_is_skipped_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import activities.petition

    # Render in this process (the patch below does not reach the worker's PDF process).
    monkeypatch.setattr(activities.petition, "pdf_pool", lambda: ThreadPoolExecutor(max_workers=1))
    monkeypatch.setattr(documents, "find_pdf_font", lambda: None)
    monkeypatch.setattr(documents, "_warned_no_font", False)
    text = tmp_path / CASE / "acceptance_notice-1.txt"
    text.parent.mkdir()
    for _ in range(2):
        assert write_pdf(text, DocumentKind.acceptance_notice, CASE, ISSUED, NOTICE_FIELDS, PEOPLE,
                         verification_code="L1-00000000", document_sha256="0" * 64, public_url=PUBLIC) is None
    assert not text.with_suffix(".pdf").exists()
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("no CJK font found") == 1


# ---------------------------------------------------------------------------------------------
# Through the activity: the text file as before, the PDF beside it
async def _issued(acts: Any, req: Any) -> Any:
    """Issue a document and wait for its PDF (rendered in the background)."""
    doc = await acts.issue_document(req)
    await acts.pdfs_written()
    return doc


def _activities(tmp_path: Path, **settings: Any) -> Any:
    from activities.db import PetitionerRow
    from activities.petition import PetitionActivities

    acts = PetitionActivities(Settings(data_dir=tmp_path, **settings))
    with Session(acts.engine) as s:
        s.add(PetitionerRow(case_id=CASE, position=0, name="张三"))
        s.add(PetitionerRow(case_id=CASE, position=1, name="李四"))
        s.commit()
    return acts


async def test_the_activity_writes_the_pdf_beside_the_unchanged_text(font: PdfFont, scan_tools: None, tmp_path: Path) -> None:
    from workflows.models import DocumentRequest

    acts = _activities(tmp_path / "data", public_url=None)
    settings = acts.settings
    public = f"http://{settings.web_host}:{settings.web_port}"  # no public URL configured: the web app

    notice = await _issued(acts,
        DocumentRequest(idempotency_key=f"{CASE}:doc:1", case_id=CASE, kind=DocumentKind.acceptance_notice,
                        issued_at=ISSUED, fields=NOTICE_FIELDS)
    )
    text_path = Path(notice.path)
    assert text_path.name == "acceptance_notice-1.txt"
    # The engine adds the case's query code to its acceptance notice (for /q), and the footer names
    # the verification page; the rest is the template's text, byte for byte.
    query = f"查询码：{settings.query_code(CASE)}。凭案件编号和查询码可在 {public}/q 查询办理进度，请妥善保管。\n"
    expected = NOTICE_TEXT.replace("组织调解。\n", "组织调解。\n" + query, 1).encode()
    assert text_path.read_bytes() == expected + footer(notice.verification_code, notice.sha256, public)
    assert f"{public}/v/{notice.verification_code}".encode() in text_path.read_bytes()
    body, code = split_document(text_path.read_bytes())
    assert hashlib.sha256(body).hexdigest() == notice.sha256 and code == notice.verification_code
    pdf_path = text_path.with_name("acceptance_notice-1.pdf")
    assert qr_codes(pdf_path.read_bytes(), tmp_path / "qr1") == [f"{public}/v/{notice.verification_code}"]

    # an opinion and its receipt, with the fields the workflow gives them
    opinion = await _issued(acts,
        DocumentRequest(idempotency_key=f"{CASE}:doc:2", case_id=CASE, kind=DocumentKind.handling_opinion,
                        issued_at=ISSUED, fields={**NOTICE_FIELDS, "text": "经调查核实，责令用人单位限期足额支付拖欠工资。"})
    )
    receipt = await _issued(acts,
        DocumentRequest(
            idempotency_key=f"{CASE}:doc:3", case_id=CASE, kind=DocumentKind.delivery_receipt, issued_at=ISSUED,
            fields={"unit": "青山区人社局", "delivered_document": f"{opinion.kind.value}（存证核验码 {opinion.verification_code}）"},
        )
    )
    receipt_pdf = Path(receipt.path).with_suffix(".pdf").read_bytes()
    assert qr_codes(receipt_pdf, tmp_path / "qr3") == [f"{public}/v/{opinion.verification_code}"]
    text = pdf_text(receipt_pdf, tmp_path / "text3")
    assert f"本回证核验码：{receipt.verification_code}" in text and "受送达人张三、李四" in text

    # a retried activity returns the same document; a PDF lost after the text was written comes back
    pdf_path.unlink()
    again = await _issued(acts,
        DocumentRequest(idempotency_key=f"{CASE}:doc:1", case_id=CASE, kind=DocumentKind.acceptance_notice,
                        issued_at=ISSUED, fields=NOTICE_FIELDS)
    )
    assert again == notice
    assert pdf_path.exists()


async def test_the_activity_uses_the_configured_public_url(font: PdfFont, scan_tools: None, tmp_path: Path) -> None:
    from workflows.models import DocumentRequest

    acts = _activities(tmp_path / "data", public_url=PUBLIC)  # PETITION_PUBLIC_URL
    notice = await _issued(acts,
        DocumentRequest(idempotency_key=f"{CASE}:doc:1", case_id=CASE, kind=DocumentKind.acceptance_notice,
                        issued_at=ISSUED, fields=NOTICE_FIELDS)
    )
    pdf = Path(notice.path).with_suffix(".pdf").read_bytes()
    assert qr_codes(pdf, tmp_path / "qr") == [f"{PUBLIC}/v/{notice.verification_code}"]


async def test_no_font_still_issues_the_text_document(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import activities.petition
    from workflows.models import DocumentRequest

    # Render in this process (the patch below does not reach the worker's PDF process).
    monkeypatch.setattr(activities.petition, "pdf_pool", lambda: ThreadPoolExecutor(max_workers=1))
    monkeypatch.setattr(documents, "find_pdf_font", lambda: None)
    monkeypatch.setattr(documents, "_warned_no_font", True)  # the warning is covered above
    acts = _activities(tmp_path / "data")
    notice = await _issued(acts,
        DocumentRequest(idempotency_key=f"{CASE}:doc:1", case_id=CASE, kind=DocumentKind.acceptance_notice,
                        issued_at=ISSUED, fields=NOTICE_FIELDS)
    )
    text = Path(notice.path).read_text(encoding="utf-8")
    assert text.startswith(NOTICE_TEXT.split("\n\n青山区人社局")[0]) and "查询码：" in text
    assert not Path(notice.path).with_suffix(".pdf").exists()
