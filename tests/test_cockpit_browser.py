"""The supervision office's day, played by Debian's chromium through Playwright against the real
engine (time-skipping server, the real worker, the web app served by uvicorn as `make run` does):
sign in, open the cockpit, follow a heat-map cell to the filtered case list, export it as CSV,
open a case, take an allowed action, and see a refused one with its sentence."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from engine.desk import parse_intake, register
from engine.scenario import SCENARIO_DESK
from engine.staff import add_user
from engine.web import free_port, serving
from rules.vocabulary import StaffRole
from tests.conftest import Harness
from tests.scenario_helpers import petition
from workflows.models import CaseState

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run and `make test` install it)"
)
PASSWORD = "督查室-口令-2026"
# PETITION_SHOTS=docs/screenshots also saves the case list and the case page (README links them).
SHOTS = os.environ.get("PETITION_SHOTS")



async def test_the_supervision_office_goes_from_the_heat_map_to_a_case_and_acts(harness: Harness, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    env = harness.env
    settings = harness.settings.model_copy(update={"web_port": free_port()})
    reg = await register(
        env.client, settings, parse_intake(petition(risk="low", title="装修公司拖欠油漆工工资")),
        task_queue=harness.task_queue, actor=SCENARIO_DESK,
    )  # fmt: skip
    handle = env.client.get_workflow_handle(reg.case_id)
    for _ in range(200):  # triage routes the case moments after intake
        state = await handle.query("state", result_type=CaseState)
        if state.stage != "registered":
            break
        await asyncio.sleep(0.05)
    add_user(settings, "duban", StaffRole.supervision, password=PASSWORD, write_token=False)

    async with serving(settings, env.client) as base:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = await browser.new_context(accept_downloads=True)
            page = await context.new_page()

            # Sign in; the cockpit opens on this month, where the case was registered.
            await page.goto(f"{base}/cockpit")
            await page.fill("#username", "duban")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/cockpit")
            assert await page.locator("[data-figure=batches]").first.get_attribute("data-value") == "1"

            # The heat map's cell 青山区 × 劳动保障 opens the case list filtered to it.
            cell = page.locator('td[data-locality="青山区"][data-category="labor_social_security"] a')
            assert await cell.inner_text() == "1"
            await cell.click()
            await page.wait_for_url("**/cases?*")
            assert "locality=" in page.url and "category=labor_social_security" in page.url
            assert await page.locator(f'a[href="/cases/{reg.case_id}"]').count() == 1
            if SHOTS:
                await page.set_viewport_size({"width": 1280, "height": 800})
                await page.screenshot(path=f"{SHOTS}/cases.png", full_page=True)

            # The list as CSV, as Excel opens it (UTF-8 with a BOM).
            async with page.expect_download() as download_info:
                await page.click("#export-csv")
            csv_path = await (await download_info.value).path()
            csv_text = Path(csv_path).read_bytes()
            assert csv_text.startswith(b"\xef\xbb\xbf") and reg.case_id.encode() in csv_text
            assert "装修公司拖欠油漆工工资".encode() in csv_text

            # The case; a second tab keeps the page as it was before the office acts.
            await page.click(f'a[href="/cases/{reg.case_id}"]')
            await page.wait_for_url(f"{base}/cases/{reg.case_id}")
            stale = await context.new_page()
            await stale.goto(f"{base}/cases/{reg.case_id}")

            # Allowed now: the office flags a major risk (the three-letters ladder starts).
            await page.click("#action-flag_major_risk summary")
            await page.fill("#a-flag_major_risk-reason", "涉及农民工群体，情绪激动")
            await page.click("#action-flag_major_risk button[type=submit]")
            await page.wait_for_url(f"**/cases/{reg.case_id}?done=flag_major_risk")
            assert "已完成操作" in await page.locator("#done").inner_text()
            assert await page.locator("#action-flag_major_risk").count() == 0  # not offered twice
            if SHOTS:
                await page.set_viewport_size({"width": 1280, "height": 800})
                await page.screenshot(path=f"{SHOTS}/case.png", full_page=True)

            # The stale tab still shows the form; sending it is refused by the rules, with the sentence.
            await stale.click("#action-flag_major_risk summary")
            await stale.fill("#a-flag_major_risk-reason", "再次标记")
            await stale.click("#action-flag_major_risk button[type=submit]")
            refusal = stale.locator("#refusal")
            await refusal.wait_for()
            assert "被拒绝" in await refusal.inner_text()
            assert "三函" in await refusal.inner_text() or "重大风险" in await refusal.inner_text()
            await browser.close()
