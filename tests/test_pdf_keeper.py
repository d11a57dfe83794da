"""Durable PDFs: a document's PDF is drawn only from what is stored (its text file and its row),
so the PDFs a killed worker (or a killed PDF process) had queued are rendered again, byte for byte
what an undisturbed worker writes; a PDF cut short is replaced; a text file that is not the
recorded document gets no PDF.

Everything is real: the `issue_document` activity, the worker's PDF process, the files and the
database; a worker is killed with SIGKILL. Skipped only without a CJK font (fonts-noto-cjk).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

import activities.petition as petition
from activities.documents import (
    PdfKeeper,
    _Parts,
    _parts,
    find_pdf_font,
    keep_pdfs,
    pdf_complete,
    render_body,
)
from engine.config import Settings
from engine.servers import _running
from rules.vocabulary import DocumentKind
from workflows.models import DocumentIssued, DocumentRequest

ROOT = Path(__file__).resolve().parent.parent
CASE = "XF-20261201-0A1B2C3D"
ISSUED = datetime(2026, 11, 30, 17, 30, 12, 345678, tzinfo=UTC)
PUBLIC = "https://xinfang.example.gov.cn"
NAMES = ["acceptance_notice-1.pdf", "risk_warning_letter-2.pdf", "handling_opinion-3.pdf", "delivery_receipt-4.pdf"]
UNIT = {"title": "某建筑工地拖欠农民工工资", "unit": "青山区人社局", "locality": "青山区"}


@pytest.fixture(scope="module")
def font() -> None:
    if find_pdf_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk, or set PETITION_PDF_FONT)")


def settings_for(data: Path) -> Settings:
    return Settings(data_dir=data, public_url=PUBLIC, notify_adapter="recording")


def activities_for(data: Path, query_key: Path | None = None) -> petition.PetitionActivities:
    """The real activities on a fresh data folder; with `query_key`, the same query codes (the
    acceptance notice prints one) as the folder it comes from."""
    from activities.db import PetitionerRow

    if query_key is not None:
        (data / "keys").mkdir(parents=True, mode=0o700)
        shutil.copy2(query_key, data / "keys" / query_key.name)
    acts = petition.PetitionActivities(settings_for(data))
    with Session(acts.engine) as s:
        s.add(PetitionerRow(case_id=CASE, position=0, name="张三"))
        s.add(PetitionerRow(case_id=CASE, position=1, name="李四"))
        s.commit()
    return acts


def _request(n: int, kind: DocumentKind, fields: dict[str, Any]) -> DocumentRequest:
    return DocumentRequest(idempotency_key=f"{CASE}:doc:{n}", case_id=CASE, kind=kind,
                           issued_at=ISSUED + timedelta(minutes=n), fields=fields)


async def issue_all(acts: petition.PetitionActivities) -> list[DocumentIssued]:
    """A case's documents, as the workflow asks for them; their PDFs are queued, not awaited. The
    opinion's text has lines of its own (its PDF lays out the text file's lines)."""
    issued = [
        await acts.issue_document(_request(1, DocumentKind.acceptance_notice, {**UNIT, "handled_by": "clerk01"})),
        await acts.issue_document(_request(2, DocumentKind.risk_warning_letter, {
            **UNIT, "reason": "triage: high risk", "deadline": "2026-12-16T16:00:00+00:00"})),
        await acts.issue_document(_request(3, DocumentKind.handling_opinion, {
            **UNIT, "text": "经调查核实：\n一、责令用人单位限期足额支付拖欠工资。\n二、对用人单位依法立案查处。"})),
    ]
    delivered = f"{issued[2].kind.value}（存证核验码 {issued[2].verification_code}）"
    issued.append(await acts.issue_document(_request(4, DocumentKind.delivery_receipt, {
        "unit": UNIT["unit"], "delivered_document": delivered})))
    return issued


def pdf_of(doc: DocumentIssued) -> Path:
    return Path(doc.path).with_suffix(".pdf")


async def until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def control(font: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    """An undisturbed worker's documents: its query key and every PDF as it wrote them."""
    data = tmp_path_factory.mktemp("control")
    acts = activities_for(data)
    issued = await issue_all(acts)
    await petition.pdfs_written()
    return data / "keys" / "query_hmac.key", [pdf_of(d).read_bytes() for d in issued]


# ---------------------------------------------------------------------------------------------
CHILD = '''
import asyncio, json, os, signal, sys, time
from pathlib import Path

sys.path[:0] = [{root!r}, {tests!r}]
import activities.petition as petition
from test_pdf_keeper import activities_for, issue_all, pdf_of


async def main() -> None:
    acts = activities_for(Path({data!r}), Path({key!r}))
    issued = await issue_all(acts)
    # SIGKILL as soon as the PDF process has written one PDF: the others are still in its queue.
    deadline = time.monotonic() + 120
    while not any(pdf_of(d).exists() for d in issued) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    pool = petition._PDF_POOL
    Path({out!r}).write_text(json.dumps({{"renderers": list(pool._processes) if pool else []}}))
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main())
'''


async def test_a_killed_worker_s_queued_pdfs_come_back_at_the_next_start_as_a_normal_render_wrote_them(
    control: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    query_key, expected = control
    data = tmp_path / "data"
    script = tmp_path / "worker_child.py"
    out = tmp_path / "child.json"
    script.write_text(CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), data=str(data), key=str(query_key), out=str(out)))
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]

    # The worker's PDF process ended with it (the chaos drill's fix), its queue lost.
    renderers = json.loads(out.read_text())["renderers"]
    assert renderers
    await until(lambda: not any(_running(pid) for pid in renderers), 30, "a PDF process outlived its killed worker")
    texts = sorted((data / "documents" / CASE).glob("*.txt"))
    assert len(texts) == 4
    written = [text.with_suffix(".pdf") for text in texts if text.with_suffix(".pdf").exists()]
    missing = [text.with_suffix(".pdf") for text in texts if not text.with_suffix(".pdf").exists()]
    assert written and missing, "the worker was to be killed with PDFs written and PDFs queued"
    # Before the restart, a missing PDF turns up half written (a copy cut short, a disk that
    # filled), beside a temporary file its dead writer left.
    by_name = dict(zip(NAMES, expected, strict=True))
    missing[0].write_bytes(by_name[missing[0].name][: len(by_name[missing[0].name]) // 2])
    stale = missing[0].with_name(f"{missing[0].stem}.{2**22 + 17}.x1y2z3.pdf.tmp")
    stale.write_bytes(b"%PDF-1.4\n")

    # The next worker starts: its keeper sweeps every document whose PDF is missing or incomplete.
    async with keep_pdfs(settings_for(data), interval=0.5):
        await until(lambda: all(pdf_complete(text.with_suffix(".pdf")) for text in texts), 180,
                    "not every PDF came back")
    for text in texts:
        assert text.with_suffix(".pdf").read_bytes() == by_name[text.with_suffix(".pdf").name], text.name
    assert not list((data / "documents" / CASE).glob("*.pdf.tmp"))


@dataclass
class Case:
    data: Path
    acts: petition.PetitionActivities
    issued: list[DocumentIssued]
    expected: list[bytes]  # the undisturbed worker's PDFs of the same documents


@pytest.fixture
async def case(control: tuple[Path, list[bytes]], tmp_path: Path) -> Case:
    """The same documents issued on a fresh data folder, their PDFs queued."""
    query_key, expected = control
    acts = activities_for(tmp_path / "data", query_key)
    return Case(tmp_path / "data", acts, await issue_all(acts), expected)


async def test_a_killed_pdf_process_is_replaced_and_what_it_had_queued_is_rendered(case: Case) -> None:
    issued = case.issued
    # The worker lives on; its PDF process is killed (out of memory, an operator) with PDFs queued.
    def queued() -> bool:
        pool = petition._PDF_POOL
        return pool is not None and bool(pool._processes) and len(pool._pending_work_items) >= 2

    await until(queued, 60, "the PDFs were not queued")
    broken = petition._PDF_POOL
    assert broken is not None
    for pid in list(broken._processes):
        os.kill(pid, signal.SIGKILL)
    await petition.pdfs_written()  # each queued PDF fails (logged); the text documents stand
    assert not all(pdf_of(d).exists() for d in issued)

    report = await PdfKeeper(settings_for(case.data)).sweep(grace=0)
    assert report.rendered >= 1 and report.failed == 0 and report.checked == 4
    assert [pdf_of(d).read_bytes() for d in issued] == case.expected
    assert petition._PDF_POOL is not None and petition._PDF_POOL is not broken  # the activities' too


async def test_a_pdf_cut_short_is_replaced_a_whole_one_kept_and_a_changed_text_gets_none(case: Case) -> None:
    acts, issued, expected = case.acts, case.issued, case.expected
    await petition.pdfs_written()
    notice, letter, opinion, receipt = (pdf_of(d) for d in issued)
    assert [p.read_bytes() for p in (notice, letter, opinion, receipt)] == expected

    # The activity retried (its answer lost): the PDF it finds cut short is written again.
    notice.write_bytes(expected[0][:-200])
    assert not pdf_complete(notice)
    assert await acts.issue_document(_request(1, DocumentKind.acceptance_notice, {**UNIT, "handled_by": "clerk01"})) == issued[0]
    await petition.pdfs_written()
    assert notice.read_bytes() == expected[0]

    # The keeper: an empty PDF and one without its end are replaced; a whole one is left alone.
    keeper = PdfKeeper(settings_for(case.data))
    letter.write_bytes(b"")
    opinion.write_bytes(expected[2][: len(expected[2]) // 3])
    before = receipt.stat().st_mtime_ns
    report = await keeper.sweep(grace=0)
    assert (report.checked, report.rendered, report.failed) == (4, 2, 0)
    assert [p.read_bytes() for p in (notice, letter, opinion, receipt)] == expected
    assert receipt.stat().st_mtime_ns == before

    # A text file that is no longer the document the log records gets no PDF drawn from it.
    text = Path(issued[1].path)
    text.write_bytes(text.read_bytes().replace("青山区".encode(), "东湖区".encode(), 1))
    letter.unlink()
    report = await PdfKeeper(settings_for(case.data)).sweep(grace=0)
    assert (report.rendered, report.failed) == (0, 1)
    assert not letter.exists()


async def test_later_sweeps_look_at_the_documents_issued_since_after_a_grace_period(
    control: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    query_key, expected = control
    acts = activities_for(tmp_path / "data", query_key)
    keeper = PdfKeeper(settings_for(tmp_path / "data"), grace=3600)
    assert (await keeper.sweep(grace=0)).checked == 0
    issued = await issue_all(acts)
    await petition.pdfs_written()
    pdf_of(issued[3]).unlink()  # lost with a worker that is gone
    first = await keeper.sweep()
    assert (first.checked, first.rendered, first.waiting) == (4, 0, 1)  # it may be in a queue still
    assert not pdf_of(issued[3]).exists()
    keeper.grace = 0
    second = await keeper.sweep()
    assert (second.rendered, second.waiting) == (1, 0)
    assert pdf_of(issued[3]).read_bytes() == expected[3]
    assert (await keeper.sweep()).checked == 0  # every document up to the last sweep's is whole


def test_a_pdf_is_laid_out_from_the_text_body_alone() -> None:
    """The PDF reads its parts back from the canonical body: the same parts the templates gave."""
    fields: dict[str, Any] = {**UNIT, "reason": "不属于信访事项", "text": "维持原意见。", "officials": ["王某"],
                              "route": "litigation", "days": 30, "approved_by": "王局长", "terms": "支付工资",
                              "delivered_document": "handling_opinion（存证核验码 L4-0123abcd）"}
    for kind in DocumentKind:
        for extra in ({}, {"handled_by": "clerk01"}):
            body = render_body(kind, CASE, ISSUED, {**fields, **extra}, "张三").decode()
            assert _Parts.read(body) == _parts(kind, CASE, ISSUED, {**fields, **extra}, "张三"), kind
    with pytest.raises(ValueError):
        _Parts.read("不是文书\n")


def test_a_pdf_is_whole_only_with_its_end(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    assert not pdf_complete(path)
    path.write_bytes(b"%PDF-1.7\n" + b"x" * 1000 + b"\nstartxref\n12\n%%EOF\n")
    assert pdf_complete(path)
    path.write_bytes(path.read_bytes()[:-7])
    assert not pdf_complete(path)
    path.write_bytes(b"")
    assert not pdf_complete(path)
