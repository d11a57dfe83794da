"""The case desk's pages (engine/web_cases.py): the list with its filters and exports and one case's
page from rows put straight into the database (TestClient), and once with the real engine — the
time-skipping server and the real worker — taking actions through the web forms."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import markupsafe
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from starlette.datastructures import FormData

from activities.db import (
    CaseRow,
    DocumentRow,
    PetitionerRow,
    RefusalRow,
    TimelineRow,
    get_engine,
)
from engine.config import Settings
from engine.desk import parse_action
from engine.staff import add_user
from engine.web import create_app
from engine.web_cases import CaseQuery, form_data, form_fields
from engine.wording import due_time, event_text
from rules.deadlines import SHANGHAI
from rules.vocabulary import ACTION_CN, StaffRole
from tests.conftest import Harness
from workflows.models import ACTION_INPUTS

PASSWORD = "correct-horse-battery"
UNIT_A = "青山区人社局"
UNIT_B = "城东区住建局"
A = "XF-20260302-0000000A"  # 青山区, overdue, on the ladder, a leader, documents
B = "XF-20260301-0000000B"  # 城东区, a provisional next period, a nail case
C = "XF-20260210-0000000C"  # 青山区, closed; its title tries a spreadsheet formula and holds a phone
D = "XF-20260115-0000000D"  # 青山区, no unit yet


def today() -> date:
    return datetime.now(UTC).astimezone(SHANGHAI).date()


def midnight(day: date) -> datetime:
    """The end of the day before `day` (a period's due instant), in UTC."""
    return datetime.combine(day, time(), SHANGHAI).astimezone(UTC)


def case(case_id: str, **fields: Any) -> CaseRow:
    base: dict[str, Any] = {
        "case_id": case_id,
        "matter_key": uuid.uuid4().hex,
        "locality": "青山区",
        "channel": "visit",
        "office_level": "county",
        "title": "拖欠工资",
        "rules_version": "test",
        "registered_at": datetime(2026, 3, 1, 2, 0, tzinfo=UTC),
        "stage": "handling",
        "unit": UNIT_A,
        "category": "labor_social_security",
        "risk": "medium",
    }
    base.update(fields)
    return CaseRow(**base)


def event(case_id: str, seq: int, kind: str, at: datetime, **data: Any) -> TimelineRow:
    return TimelineRow(case_id=case_id, seq=seq, at=at, offset_s=seq * 60, kind=kind, data=data)


def seed(settings: Settings) -> None:
    t = today()
    reg_a = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 2026-03-02 00:30 in Shanghai
    rows = [
        case(
            A, registered_at=reg_a, stage="handling", category="labor_social_security", risk="high", ladder="supervision",
            leader="王副市长", overdue=True, overdue_deadline="handling", overdue_since=midnight(t - timedelta(days=2)),
            title="装修公司拖欠工资", accepted_at=reg_a + timedelta(days=1),
        ),
        case(
            B, registered_at=datetime(2026, 3, 1, 15, 0, tzinfo=UTC), locality="城东区", unit=UNIT_B,
            category="urban_construction_transport", risk="low", stage="accepted", nail_case=True, visits=5,
            next_deadline="handling", next_due=midnight(t + timedelta(days=11)), next_due_provisional=True,
            title="小区违建",
        ),
        case(
            C, registered_at=datetime(2026, 2, 10, 1, 0, tzinfo=UTC), status="closed", stage="closed", outcome="mediated",
            risk="low", closed_at=datetime(2026, 2, 20, 9, 41, tzinfo=UTC), title="=1+1 工资 联系13800138000",
        ),
        case(D, registered_at=datetime(2026, 1, 15, 1, 0, tzinfo=UTC), unit=None, category=None, risk=None, stage="registered",
             title="反映情况"),
    ]  # fmt: skip
    reg_by = {"name": "desk", "role": "operator"}
    unit_by = {"name": "unit1", "role": "unit", "unit": UNIT_A}
    events = [
        event(A, 1, "stage", reg_a, stage="registered", channel="visit", office_level="county", locality="青山区", by=reg_by),
        event(A, 2, "stage", reg_a, stage="triaged", category="labor_social_security", risk="high", unit=UNIT_A,
              reasons=["劳动报酬"]),
        event(A, 3, "notification", reg_a, tier="immediate", recipient="青山区主要领导", recipient_role="principal_leader",
              channel="sms", delivered=True, adapter="recording"),
        event(A, 4, "stage", reg_a + timedelta(days=1), stage="accepted", unit=UNIT_A, action="accept", by=unit_by),
        event(A, 5, "document", reg_a + timedelta(days=1), document="acceptance_notice", verification_code="L0-abcdef12"),
        event(A, 6, "ladder", reg_a + timedelta(days=1), ladder="flagged", reason="群体性风险"),
        event(A, 7, "ladder", datetime(2026, 3, 3, 9, 41, tzinfo=UTC), ladder="warning", unit=UNIT_A,
              due="2026-03-18T16:00:00+00:00"),
        event(A, 8, "overdue", datetime(2026, 3, 18, 16, 0, tzinfo=UTC), deadline="risk_warning",
              due="2026-03-18T16:00:00+00:00"),
        event(A, 9, "ladder", datetime(2026, 3, 18, 16, 0, tzinfo=UTC), ladder="supervision", unit=UNIT_A,
              due="2026-03-30T16:00:00+00:00"),
        event(A, 10, "leader", datetime(2026, 3, 19, 1, 0, tzinfo=UTC), leader="王副市长", note="专人跟进",
              by={"name": "sup", "role": "supervision"}),
        event(A, 11, "visit", datetime(2026, 3, 20, 1, 0, tzinfo=UTC), visits=2, channel="phone", persons=3),
        event(A, 12, "info", datetime(2026, 3, 21, 1, 0, tzinfo=UTC), clock_paused="handling", reason="等待补充材料",
              action="pause_clock", by=unit_by),
        event(A, 13, "score", datetime(2026, 3, 22, 1, 0, tzinfo=UTC), unit=UNIT_A, points=-1, rule="mediation_failed_review"),
    ]  # fmt: skip
    docs_dir = settings.documents_dir / A
    docs_dir.mkdir(parents=True, exist_ok=True)
    text = docs_dir / "acceptance_notice-1.txt"
    text.write_text("信访事项受理告知书\n张三丰：\n您反映的“装修公司拖欠工资”一事……\n", encoding="utf-8")
    text.with_suffix(".pdf").write_bytes(b"%PDF-1.4 test\n")
    elsewhere = settings.data_dir / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "secret.txt").write_text("不应被读到\n", encoding="utf-8")
    at = datetime(2026, 3, 2, 9, 41, tzinfo=UTC)
    documents = [
        DocumentRow(idempotency_key="k1", case_id=A, kind="acceptance_notice", sha256="0" * 64, path=str(text),
                    ledger_index=0, verification_code="L0-abcdef12", issued_at=at),
        DocumentRow(idempotency_key="k2", case_id=A, kind="handling_opinion", sha256="1" * 64,
                    path=str(elsewhere / "secret.txt"), ledger_index=1, verification_code="L1-abcdef12", issued_at=at),
    ]  # fmt: skip
    with Session(get_engine(settings.resolved_database_url())) as s:
        s.add_all(rows)
        s.add_all(events)
        s.add_all(documents)
        s.add(RefusalRow(case_id=A, action="issue_opinion", error="The handling opinion comes after acceptance.",
                         at=reg_a + timedelta(hours=1), actor=unit_by))  # fmt: skip
        s.add(PetitionerRow(case_id=A, position=0, name="张三丰", id_number="110101199001011237", phone="13912345678"))
        s.commit()


def make_settings(data_dir: Path) -> Settings:
    settings = Settings(data_dir=data_dir)
    add_user(settings, "sup", StaffRole.supervision, password=PASSWORD, write_token=False)
    add_user(settings, "desk", StaffRole.operator, password=PASSWORD, write_token=False)
    add_user(settings, "hr1", StaffRole.hr, password=PASSWORD, write_token=False)
    add_user(settings, "unit1", StaffRole.unit, unit=UNIT_A, password=PASSWORD, write_token=False)
    seed(settings)
    return settings


@pytest.fixture(scope="module")
def desk_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One seeded engine for the tests that only read (accounts cost an Argon2 hash each)."""
    return make_settings(tmp_path_factory.mktemp("desk"))


@pytest.fixture
def fresh_settings(tmp_path: Path) -> Settings:
    """A seeded engine of its own, for a test that changes the data."""
    return make_settings(tmp_path)


@pytest.fixture
def client(desk_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(desk_settings), follow_redirects=False) as c:
        yield c


@pytest.fixture
def fresh_client(fresh_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fresh_settings), follow_redirects=False) as c:
        yield c


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name}"
    return m.group(1)


def login(client: TestClient, username: str) -> None:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": hidden(page.text, "csrf_token"), "next": "/"},
    )
    assert r.status_code == 303, r.text


def listed(html: str) -> set[str]:
    return set(re.findall(r'<a href="/cases/(XF-[0-9A-F-]+)">', html))


# ------------------------------------------------------------------------------------------------
# The list
# ------------------------------------------------------------------------------------------------


def test_the_list_shows_every_case_to_supervision_with_chinese_columns(client: TestClient) -> None:
    login(client, "sup")
    r = client.get("/cases")
    assert r.status_code == 200
    assert listed(r.text) == {A, B, C, D}
    for header in ("案件编号", "标题", "属地", "责任单位", "类别", "风险", "阶段", "三函", "包案领导", "登记时间", "下一期限", "超期"):
        assert f"<th>{header}</th>" in r.text
    assert "共 <strong>4</strong> 件" in r.text
    # Newest first; local times (A was registered at 00:30 on 2 March in Shanghai).
    assert r.text.index(A) < r.text.index(B) < r.text.index(C) < r.text.index(D)
    assert "2026-03-02 00:30" in r.text
    # The next period with the days left and "provisional"; an overdue case with its days.
    due = (today() + timedelta(days=10)).isoformat()
    assert f"{due} 24:00" in r.text and "剩 10 天" in r.text and "暂定" in r.text
    assert "超期</span> 办理期限（3 天）" in r.text
    assert "督办函" in r.text and "王副市长" in r.text and "劳动保障" in r.text and "已办结（调解结案）" in r.text
    # The filter form: drop-downs from the data and the vocabulary.
    assert '<option value="城东区">城东区</option>' in r.text
    assert '<option value="high">高</option>' in r.text and '<option value="any">任一环节</option>' in r.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("locality=城东区", {B}),
        (f"unit={UNIT_A}", {A, C}),
        ("stage=open", {A, B, D}),
        ("stage=closed", {C}),
        ("stage=accepted", {B}),
        ("risk=high", {A}),
        ("risk=low", {B, C}),
        ("ladder=supervision", {A}),
        ("ladder=any", {A}),
        ("ladder=warning", set()),
        ("overdue=1", {A}),
        ("overdue=0", {B, C, D}),
        ("category=urban_construction_transport", {B}),
        ("leader=王副市长", {A}),
        ("nail_case=1", {B}),
        ("nail_case=0", {A, C, D}),
        # Shanghai days, inclusive: B at 23:00 on 1 March, A at 00:30 on 2 March.
        ("date_from=2026-03-01&date_to=2026-03-01", {B}),
        ("date_from=2026-03-02", {A}),
        ("date_to=2026-02-28", {C, D}),
        ("text=违建", {B}),
        ("text=0000000C", {C}),
        ("risk=&stage=&text=", {A, B, C, D}),  # an empty value is "any" (the form sends them)
        ("locality=青山区&overdue=0", {C, D}),
    ],
)
def test_each_filter_narrows_the_list(client: TestClient, query: str, expected: set[str]) -> None:
    login(client, "sup")
    r = client.get(f"/cases?{query}")
    assert r.status_code == 200, r.text
    assert listed(r.text) == expected
    assert f"共 <strong>{len(expected)}</strong> 件" in r.text


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("risk=huge", ["“风险”（risk）", "“huge”", "high"]),
        ("stage=finished", ["“阶段”（stage）", "open"]),
        ("ladder=letters", ["“三函”（ladder）"]),
        ("overdue=maybe", ["“超期”（overdue）", "1（是）或 0（否）"]),
        ("nail_case=2", ["“钉子案”（nail_case）"]),
        ("category=roads", ["“类别”（category）"]),
        ("date_from=2026-13-01", ["“登记日期（起）”（date_from）", "YYYY-MM-DD"]),
        ("date_to=20260301", ["“登记日期（止）”（date_to）"]),
        ("date_from=2026-03-02&date_to=2026-03-01", ["晚于"]),
        ("page=0", ["“页码”（page）"]),
        ("text=" + "长" * 101, ["“关键词”（text）", "100"]),
    ],
)
def test_a_bad_filter_is_a_400_page_naming_the_field(client: TestClient, query: str, words: list[str]) -> None:
    login(client, "sup")
    r = client.get(f"/cases?{query}")
    assert r.status_code == 400
    assert 'id="filter-error"' in r.text and "case-filters" in r.text
    for word in words:
        assert word in r.text
    assert client.get(f"/cases.csv?{query}").status_code == 400
    assert client.get(f"/cases.xlsx?{query}").status_code == 400


def test_pagination_50_a_page_keeps_the_filters(fresh_client: TestClient, fresh_settings: Settings) -> None:
    client = fresh_client
    start = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)
    with Session(get_engine(fresh_settings.resolved_database_url())) as s:
        s.add_all(
            case(f"XF-20250601-{n:08X}", locality="北湖区", registered_at=start + timedelta(minutes=n)) for n in range(120)
        )
        s.commit()
    login(client, "sup")
    first = client.get("/cases?locality=北湖区")
    assert len(listed(first.text)) == 50 and "共 <strong>120</strong> 件" in first.text and "第 1/3 页" in first.text
    assert "XF-20250601-00000077" in first.text  # the newest first
    m = re.search(r'<a href="([^"]+)" id="next-page">', first.text)
    assert m and "locality=" in m.group(1) and "page=2" in m.group(1)
    last = client.get("/cases?locality=北湖区&page=3")
    assert len(listed(last.text)) == 20 and "XF-20250601-00000000" in last.text
    beyond = client.get("/cases?locality=北湖区&page=9")
    assert beyond.status_code == 200 and listed(beyond.text) == set()


def test_a_unit_account_sees_only_its_own_units_cases(client: TestClient) -> None:
    login(client, "unit1")
    r = client.get("/cases")
    assert r.status_code == 200 and listed(r.text) == {A, C}
    assert "城东区" not in r.text.split('id="case-table"')[0]  # no other unit's localities in the drop-downs
    assert listed(client.get(f"/cases?unit={UNIT_B}").text) == set()
    rows = list(csv.reader(io.StringIO(client.get("/cases.csv").content.decode("utf-8-sig"))))
    assert {r[0] for r in rows[1:]} == {A, C}
    other = client.get(f"/cases/{B}")
    assert other.status_code == 403 and "只能查看本单位的案件" in other.text
    assert client.get(f"/cases/{A}").status_code == 200


@pytest.mark.parametrize("path", ["/cases", "/cases.csv", "/cases.xlsx", f"/cases/{A}", f"/cases/{A}/documents/1.txt"])
def test_roles_that_read_no_cases_are_refused_in_chinese(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 303  # not signed in: to the sign-in page
    login(client, "hr1")
    r = client.get(path)
    assert r.status_code == 403
    assert "组织人事" in r.text and "无权查看案件" in r.text


# ------------------------------------------------------------------------------------------------
# Exports
# ------------------------------------------------------------------------------------------------


def test_the_csv_export_has_a_bom_chinese_headers_every_row_and_no_personal_data(client: TestClient) -> None:
    login(client, "desk")
    r = client.get("/cases.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''" in disposition
    assert unquote(disposition.split("UTF-8''", 1)[1]).startswith("信访案件-")
    assert r.headers["x-total-count"] == "4"
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:7] == ["案件编号", "标题", "属地", "责任单位", "类别", "风险", "阶段"]
    by_id = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert set(by_id) == {A, B, C, D}
    assert by_id[A]["登记时间"] == "2026-03-02 00:30" and by_id[A]["超期"] == "是" and by_id[A]["超期天数"] == "3"
    assert by_id[B]["暂定"] == "是" and by_id[B]["剩余天数"] == "10" and by_id[B]["钉子案"] == "是"
    assert by_id[C]["办结时间"] == "2026-02-20 17:41"
    # A title that starts a formula is text; a phone number in it is masked; petitioners never appear.
    assert by_id[C]["标题"].startswith("'=1+1") and "13800138000" not in text and "[电话]" in by_id[C]["标题"]
    for secret in ("张三丰", "13912345678", "110101199001011237"):
        assert secret not in text
    # The same filters as the list.
    only = list(csv.reader(io.StringIO(client.get("/cases.csv?risk=low").content.decode("utf-8-sig"))))
    assert {row[0] for row in only[1:]} == {B, C}


def test_the_xlsx_export_opens_with_openpyxl_and_has_the_rows(client: TestClient) -> None:
    from openpyxl import load_workbook

    login(client, "sup")
    r = client.get("/cases.xlsx?locality=青山区")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "filename*=UTF-8''" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb.active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "案件编号" and rows[0][11] == "登记时间"
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {A, C, D}
    assert by_id[A][11] == datetime(2026, 3, 2, 0, 30)  # local time, as Excel keeps it
    title_cell = next(c for c in ws.iter_rows(min_row=2) if c[0].value == C)[1]
    assert title_cell.data_type == "s" and str(title_cell.value).startswith("=1+1")  # text, never a formula
    assert "张三丰" not in str(rows)


# ------------------------------------------------------------------------------------------------
# One case
# ------------------------------------------------------------------------------------------------


def test_the_case_page_without_an_engine_shows_what_the_database_has(client: TestClient) -> None:
    login(client, "sup")
    r = client.get(f"/cases/{A}")
    assert r.status_code == 200
    page = r.text
    for fact in ("装修公司拖欠工资", "青山区", UNIT_A, "劳动保障", "来访", "王副市长", "办理中", "2026-03-02 00:30"):
        assert fact in page
    assert "网页未连接到引擎" in page and "办理操作需要引擎运行" in page
    # Deadlines from the row: the overdue one with its days.
    assert "办理期限" in page and "已逾期 3 天" in page
    # The ladder with its dates; the current step marked.
    ladder = page.split('id="ladder"')[1].split("</section>")[0]
    assert "标记重大风险：群体性风险" in ladder
    assert "2026-03-03 17:41 发出（致 青山区人社局），整改期限至 2026-03-18 24:00" in ladder
    assert "2026-03-19 00:00 发出" in ladder and "当前" in ladder
    assert "问责建议函" in ladder and "未发出" in ladder
    # The timeline in Chinese, with who acted.
    timeline = page.split('id="timeline"')[1].split("</section>")[0]
    for sentence in (
        "登记信访事项（来访，县区级，青山区）",
        "分办（类别：劳动保障，风险：高，责任单位：青山区人社局）",
        "即时通知青山区主要领导（短信）：已送达",
        "受理（承办单位：青山区人社局）",
        "出具《信访事项受理告知书》（核验码 L0-abcdef12）",
        "风险提示整改期限已逾期（期限至 2026-03-18 24:00）",
        "领导包案：王副市长。专人跟进",
        "重复来访（第 2 次，来电，3 人）",
        "暂停计时：办理期限（等待补充材料）",
        "考核积分：青山区人社局 -1 分（调解未成、进入复查）",
    ):
        assert sentence in timeline, sentence
    assert "unit1（责任单位，青山区人社局）" in timeline and "desk（登记窗口）" in timeline
    # Refused actions; documents with their links (the one outside the documents folder has none).
    assert "被拒绝的操作" in page and "The handling opinion comes after acceptance." in page
    docs = page.split('id="documents"')[1]
    assert "《信访事项受理告知书》" in docs and "2026-03-02 17:41" in docs and 'href="/v/L0-abcdef12"' in docs
    assert f'href="/cases/{A}/documents/1.txt"' in docs and f'href="/cases/{A}/documents/1.pdf"' in docs
    assert "张三丰：" in docs  # the text, in the page, for a viewer of the case
    assert "/documents/2." not in docs and "不应被读到" not in page
    assert "<form method=\"post\" action=\"/cases/" not in page  # no engine: no action forms


def test_documents_are_served_to_viewers_only_and_only_from_the_documents_folder(
    fresh_client: TestClient, fresh_settings: Settings
) -> None:
    client = fresh_client
    login(client, "sup")
    text = client.get(f"/cases/{A}/documents/1.txt")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert "信访事项受理告知书" in text.text
    pdf = client.get(f"/cases/{A}/documents/1.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.headers["content-disposition"].startswith("attachment")
    assert client.get(f"/cases/{A}/documents/2.txt").status_code == 404  # its path leaves the documents folder
    assert client.get(f"/cases/{B}/documents/1.txt").status_code == 404  # not that case's document
    assert client.get(f"/cases/{A}/documents/99.txt").status_code == 404
    (fresh_settings.documents_dir / A / "acceptance_notice-1.pdf").unlink()
    assert client.get(f"/cases/{A}/documents/1.pdf").status_code == 404
    assert f"/cases/{A}/documents/1.pdf" not in client.get(f"/cases/{A}").text


def test_an_unknown_or_malformed_case_is_a_chinese_404(client: TestClient) -> None:
    login(client, "sup")
    unknown = client.get("/cases/XF-20260101-FFFFFFFF")
    assert unknown.status_code == 404 and "没有编号为" in unknown.text
    malformed = client.get("/cases/not-a-case")
    assert malformed.status_code == 404 and "XF-20260315-1A2B3C4D" in malformed.text


def test_an_action_needs_the_forms_csrf_token_and_the_engine(client: TestClient) -> None:
    anonymous = client.post(f"/cases/{A}/actions/report_progress", data={"substantive": "1"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == f"/login?next=%2Fcases%2F{A}"
    login(client, "unit1")
    token = hidden(client.get("/").text, "csrf_token")  # one token for every form of the session
    refused = client.post(f"/cases/{A}/actions/report_progress", data={"substantive": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert refused.headers["content-type"].startswith("text/html")  # a page for a person, not JSON
    forged = client.post(f"/cases/{A}/actions/report_progress", data={"csrf_token": "x" * 43, "substantive": "1"})
    assert forged.status_code == 403
    foreign = client.post(
        f"/cases/{A}/actions/report_progress",
        data={"csrf_token": token, "substantive": "1"},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    no_engine = client.post(f"/cases/{A}/actions/report_progress", data={"csrf_token": token, "substantive": "1"})
    assert no_engine.status_code == 503 and "网页未连接到引擎" in no_engine.text
    bad = client.post(f"/cases/{A}/actions/extend", data={"csrf_token": token, "days": "x", "approved_by": "", "reason": ""})
    assert bad.status_code == 400 and "表单有误" in bad.text and "days" in bad.text
    assert client.post(f"/cases/{A}/actions/fly", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/cases/{B}/actions/accept", data={"csrf_token": token}).status_code == 403  # not its unit


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------


def test_a_period_ends_at_24_00_of_its_last_day() -> None:
    assert due_time(datetime(2026, 11, 30, 16, 0, tzinfo=UTC)) == "2026-11-30 24:00"
    assert due_time(datetime(2026, 12, 1, 9, 41, tzinfo=UTC)) == "2026-12-01 17:41"


def test_the_filter_model_maps_to_the_cockpits_filter() -> None:
    q = CaseQuery.model_validate({"risk": "high", "overdue": "1", "date_from": "2026-03-01", "stage": "open", "text": " 工资 "})
    flt = q.case_filter()
    assert (flt.risk, flt.overdue, flt.date_from, flt.stage, flt.text) == ("high", True, date(2026, 3, 1), "open", "工资")
    assert type(flt.risk) is str
    assert q.params() == {"stage": "open", "risk": "high", "overdue": "1", "date_from": "2026-03-01", "text": "工资"}


def test_every_action_has_a_chinese_name_and_a_form_its_model_accepts() -> None:
    samples: dict[str, dict[str, str]] = {
        "accept": {"unit": UNIT_A, "facts_clear": "1", "disputed_amount": "26000"},
        "not_accept": {"reason": "不属于信访事项"},
        "redirect": {"route": "litigation"},
        "mediation_result": {"success": "1", "fulfilled": "1"},
        "extend": {"days": "30", "approved_by": "李局长", "reason": "情况复杂"},
        "issue_opinion": {"text": "经查……"},
        "review_decision": {"text": "维持"},
        "re_review_decision": {"text": "维持"},
        "flag_major_risk": {"reason": "群体性", "officials": "张科长\n\n 李主任 \n"},
        "report_progress": {"substantive": "1", "note": "已付一半"},
        "repeat_visit": {"channel": "phone", "persons": "3"},
        "assign_leader": {"leader": "王副市长"},
        "arbitration": {"event": "filed"},
        "pause_clock": {"deadline": "handling", "reason": "补材料"},
    }
    for action, model in ACTION_INPUTS.items():
        assert ACTION_CN[action]
        fields = form_fields(model)
        assert "by" not in {f.name for f in fields}
        data = form_data(model, FormData(list(samples.get(action, {}).items())))
        parse_action(action, data)  # raises when the form's data does not fit the model
    kinds = {f.name: f.kind for f in form_fields(ACTION_INPUTS["accept"])}
    assert kinds == {"unit": "text", "facts_clear": "tristate", "disputed_amount": "number"}
    assert form_data(ACTION_INPUTS["flag_major_risk"], FormData([("reason", "x"), ("officials", "张科长\n\n 李主任 ")]))[
        "officials"
    ] == ["张科长", "李主任"]
    assert form_data(ACTION_INPUTS["mediation_result"], FormData([]))["success"] is False  # an unticked box
    route = next(f for f in form_fields(ACTION_INPUTS["redirect"]) if f.name == "route")
    assert route.kind == "select" and ("administrative_reconsideration", "行政复议") in route.options
    assert next(f for f in form_fields(ACTION_INPUTS["issue_opinion"])).kind == "textarea"
    assert next(f for f in form_fields(ACTION_INPUTS["flag_major_risk"]) if f.name == "officials").kind == "lines"


def test_timeline_sentences() -> None:
    assert event_text("stage", {"stage": "closed", "outcome": "withdrawn"}) == "办结：撤回"
    assert event_text("stage", {"stage": "handling", "withdrawn": True, "reason": "已协商"}) == "信访人撤回信访事项：已协商"
    assert event_text("stage", {"stage": "redirected", "route": "arbitration"}) == "导入法定途径：仲裁"
    assert event_text("stage", {"stage": "mediation", "success": True, "fulfilled": False, "within_window": True}) == (
        "调解结果：调解成功，协议尚未履行"
    )
    assert "延期办理 30 天（批准：李局长）" in event_text(
        "stage", {"stage": "handling", "extended_days": 30, "approved_by": "李局长", "due": "2026-05-31T16:00:00+00:00"}
    )
    assert event_text("ladder", {"ladder": "accountability", "unit": UNIT_A, "officials": ["张科长", "李主任"]}) == (
        "发出问责建议函（致 青山区人社局，建议问责：张科长、李主任）"
    )
    assert event_text("ladder", {"ladder": "ended", "how": "resolved"}) == "三函程序结束：风险已化解"
    assert event_text("visit", {"visits": 5, "nail_case": True}).startswith("第 5 次来访，列为钉子案")
    assert event_text("info", {"action": "withdraw"}) == "操作：撤回"
    assert event_text("notification", {"tier": "priority", "recipient": "分管副区长", "channel": "push", "delivered": False,
                                           "attempts": 4}) == "优先通知分管副区长（推送）：未能送达，尝试 4 次"  # fmt: skip


# ------------------------------------------------------------------------------------------------
# With the real engine: the forms send the same updates the CLI sends
# ------------------------------------------------------------------------------------------------


async def _sign_in(web: httpx.AsyncClient, username: str) -> None:
    page = await web.get("/login")
    r = await web.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": hidden(page.text, "csrf_token"), "next": "/"},
    )
    assert r.status_code == 303, r.text


def _timeline(settings: Settings, case_id: str) -> list[TimelineRow]:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return list(s.exec(select(TimelineRow).where(TimelineRow.case_id == case_id).order_by(TimelineRow.seq)))  # type: ignore[arg-type]


def _refusals(settings: Settings, case_id: str) -> list[RefusalRow]:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return list(s.exec(select(RefusalRow).where(RefusalRow.case_id == case_id).order_by(RefusalRow.id)))  # type: ignore[arg-type]


def _row(settings: Settings, case_id: str) -> CaseRow:
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.get(CaseRow, case_id)
        assert row is not None
        return row


async def test_actions_through_the_web_forms_on_the_real_engine(harness: Harness) -> None:
    from activities.petition import pdfs_written
    from engine.desk import parse_intake, register
    from engine.scenario import SCENARIO_DESK
    from tests.scenario_helpers import petition
    from workflows.models import CaseState

    env, settings = harness.env, harness.settings
    reg = await register(
        env.client, settings, parse_intake(petition(risk="low")), task_queue=harness.task_queue, actor=SCENARIO_DESK
    )
    handle = env.client.get_workflow_handle(reg.case_id)
    for _ in range(200):  # triage routes the case moments after intake
        state = await handle.query("state", result_type=CaseState)
        if state.stage != "registered":
            break
        await asyncio.sleep(0.05)
    unit = state.unit
    assert unit
    add_user(settings, "clerk", StaffRole.unit, unit=unit, password=PASSWORD, write_token=False)
    add_user(settings, "duban", StaffRole.supervision, password=PASSWORD, write_token=False)
    app = create_app(settings, client=env.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
        await _sign_in(web, "clerk")
        page = await web.get(f"/cases/{reg.case_id}")
        assert page.status_code == 200
        assert "网页未连接到引擎" not in page.text and "引擎在" not in page.text
        assert 'id="action-accept"' in page.text and 'id="action-not_accept"' in page.text
        assert 'id="action-flag_major_risk"' not in page.text and 'id="action-issue_opinion"' not in page.text
        assert f'name="unit" id="a-accept-unit" value="{unit}"' in page.text  # prefilled with the case's unit
        assert "受理期限" in page.text and "计时中" in page.text  # the deadlines, from the engine's state
        token = hidden(page.text, "csrf_token")
        before = len(_timeline(settings, reg.case_id))

        # Not yet: an opinion before acceptance is refused by the rules; nothing changes.
        early = await web.post(f"/cases/{reg.case_id}/actions/issue_opinion", data={"csrf_token": token, "text": "经查……"})
        assert early.status_code == 409
        assert 'id="refusal"' in early.text and "操作“出具办理意见”被拒绝" in early.text
        # Not this role's: the validator names the role the action belongs to.
        wrong = await web.post(
            f"/cases/{reg.case_id}/actions/flag_major_risk", data={"csrf_token": token, "reason": "试一试"}
        )
        assert wrong.status_code == 409
        refusal = wrong.text.split('id="refusal"')[1].split("</section>")[0]
        recorded = _refusals(settings, reg.case_id)
        assert [r.action for r in recorded] == ["issue_opinion", "flag_major_risk"]
        assert str(markupsafe.escape(recorded[-1].error)) in refusal  # the validator's sentence, shown as it was given
        assert "unit" in recorded[-1].error or "责任单位" in recorded[-1].error
        assert recorded[-1].actor == {"name": "clerk", "role": "unit", "unit": unit}
        assert len(_timeline(settings, reg.case_id)) == before
        assert "被拒绝的操作" in wrong.text and "标记重大风险" in wrong.text

        # Accept through the form: the same update the CLI sends, by the signed-in account.
        done = await web.post(f"/cases/{reg.case_id}/actions/accept", data={"csrf_token": token, "unit": unit})
        assert done.status_code == 303 and done.headers["location"] == f"/cases/{reg.case_id}?done=accept"
        after = await web.get(done.headers["location"])
        assert "已完成操作：受理" in after.text
        assert f"受理（承办单位：{unit}）" in after.text and f"clerk（责任单位，{unit}）" in after.text
        accepted = next(e for e in _timeline(settings, reg.case_id) if e.data.get("stage") == "accepted")
        assert accepted.data["by"] == {"name": "clerk", "role": "unit", "unit": unit}
        assert _row(settings, reg.case_id).accepted_at is not None
        assert "《信访事项受理告知书》" in after.text
        assert 'id="action-accept"' not in after.text and 'id="action-issue_opinion"' in after.text

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as web:
        await _sign_in(web, "duban")
        page = await web.get(f"/cases/{reg.case_id}")
        assert 'id="action-assign_leader"' in page.text and 'id="action-flag_major_risk"' in page.text
        assert 'id="action-accept"' not in page.text
        r = await web.post(
            f"/cases/{reg.case_id}/actions/assign_leader",
            data={"csrf_token": hidden(page.text, "csrf_token"), "leader": "王副市长", "note": "专人跟进"},
        )
        assert r.status_code == 303
        assert _row(settings, reg.case_id).leader == "王副市长"
        shown = await web.get(r.headers["location"])
        assert "领导包案：王副市长。专人跟进" in shown.text and "duban（督查室）" in shown.text
    await pdfs_written()


async def test_a_case_no_worker_serves_shows_the_database_and_says_why(env: Any, tmp_path: Path) -> None:
    from engine.desk import parse_intake, register
    from engine.scenario import SCENARIO_DESK
    from tests.scenario_helpers import petition

    settings = make_settings(tmp_path)
    reg = await register(  # a task queue no worker polls: queries wait, then time out
        env.client, settings, parse_intake(petition()), task_queue=f"nobody-{uuid.uuid4().hex[:8]}", actor=SCENARIO_DESK
    )
    with Session(get_engine(settings.resolved_database_url())) as s:
        s.add(case(reg.case_id, registered_at=datetime.now(UTC), next_deadline="acceptance",
                   next_due=midnight(today() + timedelta(days=16))))  # fmt: skip
        s.commit()
    app = create_app(settings, client=env.client)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as web:
            await _sign_in(web, "unit1")
            started = asyncio.get_running_loop().time()
            page = await web.get(f"/cases/{reg.case_id}")
            assert asyncio.get_running_loop().time() - started < 8
            assert page.status_code == 200
            assert "引擎在 3 秒内没有应答" in page.text and "受理期限" in page.text and "剩 15 天" in page.text
            assert "未能从引擎取得您现在可以办理的操作" in page.text and 'id="action-accept"' not in page.text
    finally:
        await env.client.get_workflow_handle(reg.case_id).terminate("test over")
