"""The monthly data brief (engine/brief.py, `starter.py brief`): a two-page A4 PDF of the cockpit's
figures, with the CJK font embedded as a subset. The rows go straight into the read model and the
tallies are rebuilt from them; the text is read back with pdftotext (poppler-utils).

Skipped only when the machine lacks the CJK font (fonts-noto-cjk), and the text checks when it
lacks pdftotext.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy.engine import Engine

from activities.db import ArbitrationRow, CaseRow, DocumentRow, IntakeRow, ScoreEventRow, get_engine
from activities.documents import find_pdf_font
from engine.brief import brief_filename, brief_title, headline_rows, render_brief
from engine.cockpit import overview, parse_period, store_rows
from engine.config import Settings
from rules.deadlines import SHANGHAI
from starter import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

NOW = datetime(2026, 12, 1, 1, 30, tzinfo=SHANGHAI)  # 1 December, 01:30 in Shanghai (still 30 November in UTC)
NOVEMBER = parse_period("2026-11")
LEADER = "市委常委 王某某"


@pytest.fixture(scope="module")
def cjk_font() -> None:
    if find_pdf_font() is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-noto-cjk, or set PETITION_PDF_FONT)")


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    return tmp_path


def _at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def _case(case_id: str, at: datetime, channel: str, category: str, risk: str, **cols: object) -> CaseRow:
    return CaseRow(
        case_id=case_id, matter_key=f"m-{case_id}", category=category, risk=risk, unit=cols.pop("unit", "青山区人社局"),
        locality=cols.pop("locality", "青山区"), channel=channel, office_level="county", title=f"标题{case_id}",
        rules_version="test", registered_at=at, updated_at=at, **cols,
    )


def load_read_model(engine: Engine) -> None:
    """November: four cases and a repeat visit; October: two cases."""
    cases = [
        # A: online, high risk, noticed within 10 minutes, accepted and answered on time, mediated.
        _case("XF-A", _at(11, 3), "online", "land_expropriation", "high", urgent_notice_s=600, accepted_at=_at(11, 4),
              answered_at=_at(11, 9), mediation_eligible=True, mediation_succeeded=True, status="closed", stage="closed",
              outcome="mediated", closed_at=_at(11, 9)),
        # B: a visit of three, accepted late, its handling period overdue since 20 November, on the
        # ladder at the accountability step, a leader's package case.
        _case("XF-B", _at(11, 5), "visit", "labor_social_security", "medium", person_count=3, visits=2,
              accepted_at=_at(11, 25), acceptance_late=True, overdue=True, overdue_deadline="handling",
              overdue_since=datetime(2026, 11, 20, tzinfo=SHANGHAI).astimezone(UTC), ladder="accountability",
              leader=LEADER, unit="东湖区住建局", locality="东湖区"),
        # C: a letter on a matter already petitioned (repeat), not accepted.
        _case("XF-C", _at(11, 12), "letter", "law_litigation", "low", repeat=True, status="closed", stage="closed",
              outcome="not_accepted", closed_at=_at(11, 14)),
        # E: a call on unpaid wages, mediation failed, sent to the arbitration green channel.
        _case("XF-E", _at(11, 20), "phone", "labor_social_security", "medium", mediation_eligible=True,
              stage="arbitration"),
        # October: F is still open and high risk (a red alert).
        _case("XF-F", _at(10, 8), "online", "environment", "high"),
        _case("XF-G", _at(10, 9), "phone", "other", "low"),
    ]
    intakes = [
        IntakeRow(key=f"{c.case_id}:1", case_id=c.case_id, at=c.registered_at, channel=c.channel, persons=c.person_count,
                  repeat=c.repeat, locality=c.locality)
        for c in cases
    ] + [IntakeRow(key="XF-B:2", case_id="XF-B", at=_at(11, 18), channel="visit", persons=2, repeat=True, locality="东湖区")]
    docs = [
        ("XF-A", "acceptance_notice", _at(11, 4)), ("XF-A", "mediation_agreement", _at(11, 9)),
        ("XF-B", "risk_warning_letter", _at(11, 8)), ("XF-B", "supervision_letter", _at(11, 23)),
        ("XF-B", "accountability_letter", _at(11, 28)), ("XF-F", "acceptance_notice", _at(10, 10)),
    ]
    documents = [
        DocumentRow(idempotency_key=f"{case_id}:{kind}", case_id=case_id, kind=kind, sha256=f"{n:064x}",
                    path=f"documents/{case_id}/{kind}-1.txt", ledger_index=n, verification_code=f"L{n}-{n:08x}",
                    issued_at=at)
        for n, (case_id, kind, at) in enumerate(docs, start=1)
    ]
    scores = [
        ScoreEventRow(idempotency_key=f"XF-B:official:{n}", case_id="XF-B", unit="东湖区住建局",
                      rule="accountability_official", points=0, official=official, occurred_at=_at(11, 28),
                      rules_version="test")
        for n, official in enumerate(("科长 甲某", "副局长 乙某"), start=1)
    ]
    arbitration = ArbitrationRow(case_id="XF-E", unit="青山区劳动人事争议仲裁院", status="closed", outcome="court",
                                 started_at=_at(11, 21), updated_at=_at(11, 28))
    store_rows(engine, [*cases, *intakes, *documents, *scores, arbitration])


def _engine(data: Path) -> Engine:
    return get_engine(Settings(data_dir=data).resolved_database_url())


def pdf_text(pdf: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (apt-get install poppler-utils)")
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60)
    return "".join(out.stdout.split())  # the layout breaks lines; compare without whitespace


def test_the_headline_figures_and_their_change_from_the_previous_month(data: Path) -> None:
    engine = _engine(data)
    load_read_model(engine)
    cur, prev = overview(engine, NOVEMBER), overview(engine, NOVEMBER.previous())
    assert (cur.batches, cur.persons, cur.repeat, cur.cases) == (5, 8, 2, 4)
    rows = {label: (now, before, change) for label, now, before, change in headline_rows(cur, prev)}
    assert rows["登记批次"] == ("5", "2", "+3（+150.0%）")
    assert rows["登记人次"] == ("8", "2", "+6（+300.0%）")
    assert rows["重复信访占比"] == ("40.0%（2/5）", "0.0%（0/2）", "+40.0个百分点")
    assert rows["调解成功率"] == ("50.0%（1/2）", "—", "—")
    assert rows["按期受理率"][0] == "50.0%（1/2）"
    assert rows["当前超期案件（件）"] == ("1", "—", "—")
    assert rows["高风险30分钟内通知率"][0] == "100.0%（1/1）"
    assert rows["问责建议函"] == ("1", "0", "+1")
    assert rows["被问责人员（人）"][0] == "2"
    assert rows["仲裁回流法院率"][0] == "100.0%（1/1）"
    assert rows["出具文书（份）"] == ("5", "1", "+4（+400.0%）")
    assert brief_title(NOVEMBER) == "本市信访工作月度数据快报（2026年11月）"
    assert brief_filename(NOVEMBER) == "月度数据快报-2026-11.pdf"


def test_the_brief_is_a_two_page_pdf_with_the_font_embedded_and_the_figures_in_chinese(
    data: Path, cjk_font: None
) -> None:
    engine = _engine(data)
    load_read_model(engine)
    pdf = render_brief(engine, NOVEMBER, now=NOW)
    assert pdf.startswith(b"%PDF-")
    assert render_brief(engine, NOVEMBER, now=NOW) == pdf  # same figures, same instant: same bytes
    path = data / "brief.pdf"
    path.write_bytes(pdf)

    reader = PdfReader(path)
    assert len(reader.pages) <= 2
    assert reader.metadata is not None and reader.metadata.title == "本市信访工作月度数据快报（2026年11月）"
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            descendant = ref.get_object()["/DescendantFonts"][0].get_object()
            assert "+" in str(descendant["/BaseFont"])  # a subset tag
            descriptor = descendant["/FontDescriptor"].get_object()
            assert any(key in descriptor for key in ("/FontFile2", "/FontFile3"))  # embedded
    assert len(pdf) < 400_000  # a subset, not the 20 MB collection

    text = pdf_text(path)
    expected = [
        "本市信访工作月度数据快报（2026年11月）", "生成时间：2026年12月1日01:30（北京时间）", "统计范围：全市",
        # the lede and the headline table
        "本月共登记信访5批次、8人次，较上月增加3批次（+150.0%）", "登记批次", "+3（+150.0%）", "登记人次", "+6（+300.0%）",
        "重复信访占比", "40.0%（2/5）", "+40.0个百分点", "调解成功率", "50.0%（1/2）", "按期受理率", "按期办理率", "复查按期率",
        "当前超期案件（件）", "高风险30分钟内通知率", "100.0%（1/1）", "风险提示函", "督办函", "问责建议函",
        "被问责人员（人）", "积案化解率", "仲裁回流法院率", "出具文书（份）",
        # the charts' labels
        "按渠道登记批次、人次", "网上信访", "来访", "来信", "来电", "视频接访", "新登记案件按类别（件）", "征地拆迁",
        "劳动保障", "涉法涉诉", "2（50.0%）", "登记趋势（按日）", "1日", "30日",
        # the red alerts: B, overdue for 11 days, on the accountability step, the leader's case
        "红色预警", "XF-B", "东湖区住建局", LEADER.replace(" ", ""), "问责建议函、超期", "XF-F", "统计口径",
    ]
    for item in expected:
        assert item in text, item
    # B first (the accountability step), then F (high risk); A and C are closed, E and G do not alert.
    assert text.index("XF-B") < text.index("XF-F")
    assert not any(case in text for case in ("XF-A", "XF-C", "XF-E", "XF-G"))


def test_a_locality_brief_counts_that_locality_only(data: Path, cjk_font: None) -> None:
    engine = _engine(data)
    load_read_model(engine)
    path = data / "east.pdf"
    path.write_bytes(render_brief(engine, NOVEMBER, locality="东湖区", now=NOW))
    text = pdf_text(path)
    assert "统计范围：东湖区" in text and "本月共登记信访2批次、5人次" in text
    assert "XF-B" in text and "XF-A" not in text


def run(*argv: str) -> int:
    return asyncio.run(main(list(argv)))


def test_the_starter_command_writes_the_brief_and_refuses_without_an_account(
    data: Path, cjk_font: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    load_read_model(_engine(data))
    work = data / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run("brief", "--period", "2026-11") == EXIT_FAILED  # nobody signed in
    assert capsys.readouterr().err.startswith("拒绝：")
    assert list(work.iterdir()) == []

    assert run("users", "add", "admin", "--role", "admin") == EXIT_OK
    assert run("--as", "admin", "users", "add", "qs", "--role", "unit", "--unit", "青山区人社局") == EXIT_OK
    capsys.readouterr()
    assert run("--as", "qs", "brief", "--period", "2026-11") == EXIT_FAILED  # a unit has no cockpit
    assert list(work.iterdir()) == []
    assert run("--as", "admin", "brief", "--period", "2026-13") == EXIT_BAD_INPUT

    assert run("--as", "admin", "brief", "--period", "2026-11") == EXIT_OK
    default = work / "月度数据快报-2026-11.pdf"
    assert capsys.readouterr().out.strip() == str(default)
    assert default.read_bytes().startswith(b"%PDF-")
    assert run("--as", "admin", "brief", "--period", "2026-11", "--locality", "东湖区", "--out", str(data / "东湖区.pdf")) == EXIT_OK
    assert "统计范围：东湖区" in pdf_text(data / "东湖区.pdf")
    assert len(PdfReader(default).pages) <= 2
    assert sorted(p.name for p in work.iterdir()) == [default.name]
