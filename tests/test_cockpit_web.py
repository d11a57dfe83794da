"""The supervision cockpit's pages (engine/web_cockpit.py): /cockpit, its JSON and brief, /alerts and
/leaders, in process with TestClient on rows put straight into the read model (the tallies rebuilt
from them, as the workflows would have kept them)."""

from __future__ import annotations

import html
import re
import shutil
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient

from activities.db import ArbitrationRow, CaseRow, DocumentRow, IntakeRow, ScoreEventRow, get_engine
from engine.cockpit import store_rows
from engine.config import Settings
from engine.staff import add_user
from engine.web import create_app
from engine.web_cockpit import content_disposition, pct
from rules.deadlines import SHANGHAI
from rules.vocabulary import StaffRole
from tests.test_web import PASSWORD, login

LEADER = "市委常委 王某某"


def sh(y: int, m: int, d: int, h: int = 10) -> datetime:
    """A Shanghai wall-clock time, as UTC."""
    return datetime(y, m, d, h, tzinfo=SHANGHAI).astimezone(UTC)


def _case(case_id: str, **kw: Any) -> CaseRow:
    base: dict[str, Any] = dict(
        case_id=case_id, matter_key=f"m-{case_id}", channel="visit", office_level="county", rules_version="t",
        unit="青山区人社局",
    )
    base.update(kw)
    return CaseRow(**base)


def seed(settings: Settings) -> dict[str, Any]:
    """Four cases, three of them registered in November 2026, in two localities."""
    now = datetime.now(UTC)
    overdue_since = now - timedelta(days=5, hours=2)
    cases = [
        _case(
            "XF-20261103-AAAA0001", locality="青山区", title="拖欠农民工工资八万元", category="labor_social_security",
            risk="high", stage="handling", registered_at=sh(2026, 11, 3), leader=LEADER, overdue=True,
            overdue_deadline="handling", overdue_since=overdue_since, ladder="supervision",
            accepted_at=sh(2026, 11, 4), urgent_notice_s=600, person_count=3,
        ),
        _case(
            "XF-20261110-BBBB0002", locality="青山区", title="征地补偿款未到位", category="land_expropriation", risk="medium",
            unit="青山区自然资源局", stage="closed", status="closed", outcome="mediated", registered_at=sh(2026, 11, 10),
            closed_at=sh(2026, 11, 20), leader=LEADER, mediation_eligible=True, mediation_succeeded=True,
            accepted_at=sh(2026, 11, 11), answered_at=sh(2026, 11, 18), channel="online",
        ),
        _case(
            "XF-20261115-CCCC0003", locality="东湖镇", title="厂房噪音扰民多次反映", category="labor_social_security", risk="low",
            unit="东湖镇人民政府", stage="arbitration", registered_at=sh(2026, 11, 15), nail_case=True, repeat=True,
            channel="letter",
        ),
        _case(
            "XF-20261020-DDDD0004", locality="东湖镇", title="河道污染", category="environment", risk="low",
            unit="东湖镇人民政府", stage="accepted", registered_at=sh(2026, 10, 20), channel="phone",
        ),
    ]
    intakes = [
        IntakeRow(key="A:1", case_id=cases[0].case_id, at=sh(2026, 11, 3), channel="visit", persons=3, locality="青山区"),
        IntakeRow(key="B:1", case_id=cases[1].case_id, at=sh(2026, 11, 10), channel="online", locality="青山区"),
        IntakeRow(key="C:1", case_id=cases[2].case_id, at=sh(2026, 11, 15), channel="letter", repeat=True, locality="东湖镇"),
        IntakeRow(key="C:2", case_id=cases[2].case_id, at=sh(2026, 11, 18), channel="visit", persons=2, repeat=True, locality="东湖镇"),
        IntakeRow(key="D:1", case_id=cases[3].case_id, at=sh(2026, 10, 20), channel="phone", locality="东湖镇"),
    ]
    docs = [
        ("A:sup", cases[0].case_id, "supervision_letter", sh(2026, 11, 5)),
        ("B:acc", cases[1].case_id, "acceptance_notice", sh(2026, 11, 11)),
        ("D:acc", cases[3].case_id, "acceptance_notice", sh(2026, 10, 21)),
    ]
    documents = [
        DocumentRow(
            idempotency_key=key, case_id=case_id, kind=kind, sha256=f"{k:064x}", path=f"/tmp/{key}.txt",
            ledger_index=k, verification_code=f"L{k}-00000000", issued_at=at,
        )
        for k, (key, case_id, kind, at) in enumerate(docs)
    ]
    score = ScoreEventRow(
        idempotency_key="A:official", case_id=cases[0].case_id, unit="青山区人社局", rule="accountability_official",
        points=-5, official="张某", occurred_at=sh(2026, 11, 6), rules_version="t",
    )
    arbitration = ArbitrationRow(
        case_id=cases[2].case_id, unit="东湖镇人民政府", status="closed", outcome="court",
        started_at=sh(2026, 11, 16), updated_at=sh(2026, 11, 25),
    )
    store_rows(get_engine(settings.resolved_database_url()), [*cases, *intakes, *documents, score, arbitration])
    return {"cases": cases}


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path)
    for name, role, unit in (
        ("sup", StaffRole.supervision, None), ("root", StaffRole.admin, None), ("desk", StaffRole.operator, None),
        ("hr1", StaffRole.hr, None), ("unit1", StaffRole.unit, "青山区人社局"),
    ):  # fmt: skip
        add_user(settings, name, role, unit=unit, password=PASSWORD, write_token=False)
    return settings


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    seed(web_settings)
    with TestClient(create_app(web_settings), follow_redirects=False) as c:
        yield c


def figure(page: str, key: str) -> str:
    """The raw value (data-value) of a figure card."""
    m = re.search(rf'data-figure="{re.escape(key)}" data-value="([^"]*)"', page)
    assert m, f"no figure {key}"
    return m.group(1)


def shown(page: str, key: str) -> str:
    """The text a figure card shows."""
    m = re.search(rf'data-figure="{re.escape(key)}"[^>]*>.*?<strong class="fig-value">(.*?)</strong>', page, re.DOTALL)
    assert m, f"no figure {key}"
    return html.unescape(m.group(1))


# ------------------------------------------------------------------------------------------------
# /cockpit
# ------------------------------------------------------------------------------------------------


def test_the_cockpit_shows_a_months_figures_city_wide(client: TestClient) -> None:
    login(client, "sup")
    r = client.get("/cockpit", params={"period": "2026-11"})
    assert r.status_code == 200, r.text
    page = r.text
    assert "数据驾驶舱" in page and "2026年11月 · 全市" in page
    expected = {
        "batches": "4", "persons": "7", "repeat": "2", "first_time": "2", "repeat_share": "0.5", "cases": "3",
        "closed": "1", "avg_cycle_days": "10.0", "open_now": "3", "overdue_now": "1", "nail_cases": "1",
        "nail_resolved": "0", "nail_resolved_rate": "0.0", "mediation_eligible": "1", "mediated": "1",
        "mediation_rate": "1.0", "reviews": "0", "re_reviews": "0", "arbitration_entries": "1",
        "arbitration_to_court": "1", "return_to_court_rate": "1.0", "documents": "2", "officials_accountable": "1",
        "letters.supervision_letter": "1", "letters.accountability_letter": "0", "high_risk": "1",
        "urgent_notified": "1", "urgent_within_rate": "1.0", "urgent_avg_s": "600.0",
        "acceptance_on_time_rate": "1.0", "handling_on_time_rate": "1.0", "review_on_time_rate": "",
    }  # fmt: skip
    assert {k: figure(page, k) for k in expected} == expected
    assert shown(page, "repeat_share") == "50%"
    assert shown(page, "avg_cycle_days") == "10 天"
    assert shown(page, "urgent_avg_s") == "10 分钟"
    assert shown(page, "review_on_time_rate") == "—"  # no review: no rate, not 0%
    # Registrations by channel, as batches and person-times.
    assert re.search(r'data-channel="visit"><th scope="row">来访</th><td>2</td><td>5</td>', page)
    assert re.search(r'data-channel="letter"><th scope="row">来信</th><td>1</td><td>1</td>', page)
    # The charts' series are data in the page, for cockpit.js.
    assert '<script type="application/json" id="cockpit-data">' in page
    # The current overdue cases link to the case list.
    assert 'href="/cases?overdue=1"' in page
    # The brief button.
    assert "生成月度数据快报（PDF）" in page and 'action="/cockpit/brief.pdf"' in page
    # Signed-in staff get the navigation.
    for link in ("/cockpit", "/alerts", "/leaders", "/cases"):
        assert f'<a href="{link}"' in page


def test_the_cockpit_for_one_locality_and_other_periods(client: TestClient) -> None:
    login(client, "sup")
    page = client.get("/cockpit", params={"period": "2026-11", "locality": "东湖镇"}).text
    assert "2026年11月 · 东湖镇" in page
    assert (figure(page, "batches"), figure(page, "persons"), figure(page, "cases"), figure(page, "nail_cases")) == (
        "2", "3", "1", "1",
    )  # fmt: skip
    assert figure(page, "arbitration_entries") == "1" and figure(page, "documents") == "0"
    assert 'href="/cases?overdue=1&amp;locality=%E4%B8%9C%E6%B9%96%E9%95%87"' in page
    # A quarter counts October too; a year as well.
    q4 = client.get("/cockpit", params={"period": "2026-Q4"}).text
    assert "2026年第4季度" in q4 and figure(q4, "batches") == "5" and figure(q4, "cases") == "4"
    assert figure(q4, "documents") == "3"
    assert figure(client.get("/cockpit", params={"period": "2026"}).text, "cases") == "4"
    # The default is the current month (December 2026 here: nothing registered yet).
    now = datetime.now(SHANGHAI)
    assert f"{now.year}年{now.month}月" in client.get("/cockpit").text


def test_a_bad_period_or_locality_is_a_chinese_400(client: TestClient) -> None:
    login(client, "sup")
    for params in ({"period": "2026-13"}, {"period": "next month"}, {"locality": "区" * 65}):
        r = client.get("/cockpit", params=params)
        assert r.status_code == 400 and "请求无效" in r.text
    assert "2026-Q4" in client.get("/cockpit", params={"period": "2026-13"}).text  # says what would do
    assert client.get("/cockpit/data", params={"period": "x"}).status_code == 400


def test_the_cockpit_data_as_json(client: TestClient) -> None:
    login(client, "hr1")
    r = client.get("/cockpit/data", params={"period": "2026-11", "locality": "青山区"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    ov = body["overview"]
    assert (ov["batches"], ov["persons"], ov["cases"], ov["closed"], ov["high_risk"]) == (2, 4, 2, 1, 1)
    assert body["period"] == {"code": "2026-11", "label": "2026年11月", "first_day": "2026-11-01", "last_day": "2026-11-30"}
    trend = body["charts"]["trend"]
    assert len(trend["buckets"]) == 30 and trend["buckets"][2] == "11-03" and trend["batches"][2] == 1
    assert trend["persons"][2] == 3 and sum(trend["batches"]) == 2
    assert body["charts"]["channels"]["names"][0] == "来访"
    assert [h["by"] for h in body["heatmaps"]] == ["category", "risk"]


def test_heat_map_cells_link_to_the_filtered_case_list(client: TestClient) -> None:
    login(client, "sup")
    page = client.get("/cockpit", params={"period": "2026-11"}).text
    cell = re.search(
        r'<td class="heat-(\d)" data-locality="青山区" data-category="labor_social_security" data-count="1">'
        r'<a href="([^"]+)"',
        page,
    )
    assert cell, "no 青山区 × 劳动保障 cell"
    href = html.unescape(cell.group(2))
    parts = urlsplit(href)
    assert parts.path == "/cases"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "locality": "青山区", "category": "labor_social_security", "date_from": "2026-11-01", "date_to": "2026-11-30",
    }  # fmt: skip
    # By risk as well; rows are the busiest localities first.
    risk = re.search(r'data-locality="青山区" data-risk="high" data-count="1"><a href="([^"]+)"', page)
    assert risk and "risk=high" in html.unescape(risk.group(1))
    heat = page[page.index('data-heat="category"') :]
    assert heat.index('data-locality="青山区"') < heat.index('data-locality="东湖镇"')
    # An empty cell has no link; the busiest is the darkest.
    assert re.search(r'data-locality="东湖镇" data-category="environment" data-count="0"><span class="zero">0</span>', page)
    assert cell.group(1) == "5"  # one case in each cell: every non-empty cell is the peak, the darkest
    q = client.get("/cockpit", params={"period": "2026-Q4"}).text
    assert "date_from=2026-10-01&amp;date_to=2026-12-31" in q


def test_the_page_loads_nothing_from_outside_and_nothing_inline(client: TestClient) -> None:
    login(client, "sup")
    for path in ("/cockpit?period=2026-11", "/alerts", "/leaders"):
        r = client.get(path)
        assert r.status_code == 200
        assert "default-src 'self'" in r.headers["content-security-policy"]
        page = r.text
        for tag, attr in re.findall(r"<(script|link|img|iframe)\b[^>]*?\b(?:src|href)=\"([^\"]*)\"", page):
            assert attr.startswith("/static/"), (path, tag, attr)
        for script in re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.DOTALL):
            attrs, body = script
            assert 'src="/static/' in attrs or 'type="application/json"' in attrs, (path, attrs)
            assert not body.strip() or 'type="application/json"' in attrs
        assert " style=" not in page and "<style" not in page and "javascript:" not in page
        assert "onclick" not in page.lower() and "onchange" not in page.lower()
    for asset in ("/static/vendor/echarts/echarts.min.js", "/static/cockpit.js", "/static/vendor/echarts/LICENSE"):
        assert client.get(asset).status_code == 200


def test_json_in_the_page_cannot_close_its_script(web_settings: Settings) -> None:
    store_rows(get_engine(web_settings.resolved_database_url()), [
        _case("XF-20261105-EEEE0005", locality="</script><script>alert(1)</script>", title="x", registered_at=sh(2026, 11, 5)),
        IntakeRow(key="E:1", case_id="XF-20261105-EEEE0005", at=sh(2026, 11, 5), channel="visit", locality="</script><script>alert(1)</script>"),
    ])  # fmt: skip
    with TestClient(create_app(web_settings), follow_redirects=False) as c:
        login(c, "sup")
        page = c.get("/cockpit", params={"period": "2026-11", "locality": "</script><script>alert(1)</script>"}).text
        data = page[page.index('id="cockpit-data">') :]
        assert data.index("</script>") > data.index("\\u003c/script\\u003e")
        assert "<script>alert(1)" not in page


# ------------------------------------------------------------------------------------------------
# /alerts, /leaders
# ------------------------------------------------------------------------------------------------


def test_red_alerts_list_the_overdue_case_with_its_days_and_leader(client: TestClient) -> None:
    login(client, "sup")
    r = client.get("/alerts")
    assert r.status_code == 200
    page = r.text
    row = page[page.index('data-case="XF-20261103-AAAA0001"') :].split("</tr>")[0]
    assert 'href="/cases/XF-20261103-AAAA0001"' in row
    assert "拖欠农民工工资八万元" in row and "青山区" in row and "青山区人社局" in row
    assert LEADER in row
    assert "超期：办理期限已超 5 天" in row and "督办函" in row and "高风险" in row
    assert "2026-11-03 10:00" in row  # registered, Shanghai time
    assert figure(page, "alerts") == "1" and figure(page, "overdue") == "1" and figure(page, "supervision") == "1"
    # Only open cases that are overdue, on the ladder or high-risk.
    assert "XF-20261110-BBBB0002" not in page and "XF-20261115-CCCC0003" not in page
    # By locality.
    none = client.get("/alerts", params={"locality": "东湖镇"}).text
    assert 'id="no-alerts"' in none and "目前没有红色预警的案件" in none


def test_leaders_page_shows_each_leaders_cases_and_progress(client: TestClient) -> None:
    login(client, "root")
    page = client.get("/leaders").text
    assert f'data-leader="{LEADER}"' in page
    assert '<progress max="2" value="1"' in page and 'data-progress="1/2"' in page and "1 / 2（50%）" in page
    assert "超期 1 件" in page
    assert "已办结（调解结案）" in page and "在办" in page and "办理中" in page
    assert 'href="/cases?leader=%E5%B8%82%E5%A7%94%E5%B8%B8%E5%A7%94+%E7%8E%8B%E6%9F%90%E6%9F%90"' in page
    assert '<script type="application/json" id="leaders-data">' in page and 'data-chart="leaders"' in page
    assert (figure(page, "leaders"), figure(page, "cases"), figure(page, "closed"), figure(page, "overdue")) == (
        "1", "2", "1", "1",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Who sees what
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["sup", "root", "hr1", "desk"])
def test_supervision_admin_hr_and_the_desk_may_see_the_cockpit(client: TestClient, username: str) -> None:
    login(client, username)
    for path in ("/cockpit", "/alerts", "/leaders", "/cockpit/data"):
        assert client.get(path).status_code == 200, (username, path)
    assert "数据驾驶舱" in client.get("/").text  # the navigation, and the ability listed


def test_a_unit_account_is_refused_with_a_chinese_sentence(client: TestClient) -> None:
    login(client, "unit1")
    for path in ("/cockpit", "/alerts", "/leaders", "/cockpit/data", "/cockpit/brief.pdf?period=2026-11"):
        r = client.get(path)
        assert r.status_code == 403, path
        if path != "/cockpit/data":
            assert "责任单位" in r.text and "不向单位账号开放" in r.text
    home = client.get("/").text
    assert 'href="/cockpit"' not in home and 'href="/cases"' in home


def test_signed_out_goes_to_the_sign_in_page(client: TestClient) -> None:
    for path in ("/cockpit?period=2026-11", "/alerts", "/leaders", "/cockpit/brief.pdf"):
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
        assert unquote(r.headers["location"].split("next=", 1)[1]) == path
    # The public pages show no staff navigation.
    assert "数据驾驶舱" not in client.get("/q").text


# ------------------------------------------------------------------------------------------------
# The monthly brief
# ------------------------------------------------------------------------------------------------


def test_the_brief_button_downloads_the_pdf(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def render_brief(engine: Any, period: Any, locality: str | None = None) -> bytes:
        calls.append((period.code, locality))
        return b"%PDF-1.7 brief"

    fake = types.ModuleType("engine.brief")
    fake.render_brief = render_brief  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.brief", fake)
    login(client, "sup")
    r = client.get("/cockpit/brief.pdf", params={"period": "2026-11"})
    assert r.status_code == 200 and r.content == b"%PDF-1.7 brief"
    assert r.headers["content-type"] == "application/pdf"
    cd = r.headers["content-disposition"]
    assert cd.startswith('attachment; filename="brief-2026-11.pdf"; ')
    assert unquote(cd.split("filename*=UTF-8''", 1)[1]) == "月度数据快报-2026-11.pdf"
    assert calls == [("2026-11", None)]
    client.get("/cockpit/brief.pdf", params={"period": "2026-11", "locality": "东湖镇"})
    assert calls[-1] == ("2026-11", "东湖镇")


def test_the_real_brief_when_there_is_one(client: TestClient) -> None:
    pytest.importorskip("engine.brief")
    login(client, "sup")
    r = client.get("/cockpit/brief.pdf", params={"period": "2026-11"})
    assert r.status_code in (200, 503)  # 503: no CJK font on this machine (the page says so)
    if r.status_code == 200:
        assert r.content.startswith(b"%PDF") and r.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''%E6%9C%88%E5%BA%A6" in r.headers["content-disposition"]
    else:
        assert "中文字体" in r.text


def test_formatting() -> None:
    assert (pct(None), pct(0.0), pct(1.0), pct(0.8531), pct(0.5)) == ("—", "0%", "100%", "85.3%", "50%")
    cd = content_disposition("月度数据快报-2026-11.pdf", "brief-2026-11.pdf")
    assert cd == (
        "attachment; filename=\"brief-2026-11.pdf\"; filename*=UTF-8''"
        "%E6%9C%88%E5%BA%A6%E6%95%B0%E6%8D%AE%E5%BF%AB%E6%8A%A5-2026-11.pdf"
    )


def test_every_vendored_file_is_there(tmp_path: Path) -> None:
    vendor = Path(__file__).parent.parent / "engine" / "static" / "vendor" / "echarts"
    assert {p.name for p in vendor.iterdir()} >= {"echarts.min.js", "LICENSE", "NOTICE", "README.md"}
    assert "6.1.0" in (vendor / "README.md").read_text()
    assert "Apache License" in (vendor / "LICENSE").read_text()


# ------------------------------------------------------------------------------------------------
# In a browser: ECharts draws under the CSP
# ------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
async def test_the_charts_draw_under_the_csp_in_chromium(tmp_path: Path) -> None:
    """The vendored ECharts draws every chart with `default-src 'self'` (no eval, no inline style:
    the tooltips are drawn on the canvas), and the browser reports no violation and no error."""
    from playwright.async_api import async_playwright

    from engine.web import free_port, serving

    settings = Settings(data_dir=tmp_path / "data", web_port=free_port())
    add_user(settings, "sup", StaffRole.supervision, password=PASSWORD, write_token=False)
    seed(settings)
    problems: list[str] = []
    async with serving(settings) as base:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page = await context.new_page()
            page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(f"{base}/login?next=/cockpit%3Fperiod%3D2026-11")
            await page.fill("#username", "sup")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/cockpit?period=2026-11")
            for path, charts in (("/cockpit?period=2026-11", 7), ("/leaders", 1)):
                if path != "/cockpit?period=2026-11":
                    await page.goto(base + path)
                await page.wait_for_function(
                    f"() => document.querySelectorAll('[data-chart][data-drawn=yes] canvas').length === {charts}",
                    timeout=10_000,
                )
                box = await page.locator("[data-chart]").first.bounding_box()
                assert box is not None
                await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a tooltip
                await page.wait_for_timeout(300)
                problems.extend(await page.evaluate("() => window.__csp"))
            # The locality drop-down submits its form (cockpit.js).
            await page.goto(f"{base}/cockpit?period=2026-11")
            await page.select_option("#locality-select", "东湖镇")
            await page.wait_for_url("**locality=*")
            assert "2026年11月 · 东湖镇" in await page.text_content("#cockpit-scope") or ""
            await browser.close()
    assert problems == []
