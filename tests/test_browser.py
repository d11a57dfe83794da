"""A petitioner's phone, played by Debian's chromium driven by Playwright: open a document's QR
address, see it confirmed with the proof checked by the page's own script, upload a CRLF copy
(genuine) and a copy with one character changed (not genuine), and look up the case's progress by
its query code. The web app runs for real (uvicorn), as `make run` serves it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.petition import PetitionActivities
from engine.config import Settings
from engine.web import free_port, serving
from rules.vocabulary import Channel, DocumentKind, OfficeLevel
from workflows.models import DocumentRequest, Intake, Petitioner, RegisterCaseInput

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run and `make test` install it)"
)
CASE = "XF-20261201-5D6E7F80"



async def _issue(settings: Settings) -> Any:
    acts = PetitionActivities(settings)
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    intake = Intake(
        channel=Channel.online, office_level=OfficeLevel.county, locality="青山区",
        petitioners=[Petitioner(name="欧阳青禾", phone="13912345678")], title="楼道灯坏了", content="楼道灯坏了。",
    )  # fmt: skip
    await acts.register_case(
        RegisterCaseInput(case_id=CASE, matter_key="m" * 32, intake=intake, rules_version="t", registered_at=at)
    )
    return await acts.issue_document(
        DocumentRequest(
            idempotency_key=f"{CASE}:doc:acceptance_notice:1", case_id=CASE, kind=DocumentKind.acceptance_notice,
            issued_at=at, fields={"title": "楼道灯坏了", "unit": "青山区住建局"},
        )
    )  # fmt: skip


async def test_a_petitioner_checks_a_document_and_the_case_progress(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    settings = Settings(data_dir=tmp_path / "data", web_port=free_port())
    doc = await _issue(settings)
    async with serving(settings) as base:
        original = Path(doc.path).read_text(encoding="utf-8")
        crlf = tmp_path / "windows-copy.txt"
        crlf.write_bytes(original.replace("\n", "\r\n").encode("utf-8"))
        forged = tmp_path / "changed.txt"
        forged.write_text(original.replace("楼道灯", "楼道等", 1), encoding="utf-8")

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            # The QR code on the document encodes this address.
            await page.goto(f"{base}/v/{doc.verification_code}")
            status = page.locator("#proof-status")
            await status.wait_for()
            await page.wait_for_function("document.getElementById('proof-status').dataset.state !== 'pending'")
            assert await status.get_attribute("data-state") == "genuine"
            assert "已在本机核对" in (await status.inner_text())
            assert "信访事项受理告知书" in await page.content()
            sig = page.locator("#sig-status")
            await page.wait_for_function("document.getElementById('sig-status').textContent.length > 0")
            assert "签名" in await sig.inner_text()

            await page.set_input_files("#copy-file", str(crlf))
            await page.click("#copy-submit")
            result = page.locator("#copy-result")
            assert await result.get_attribute("data-ok") == "yes"
            assert "真实" in await result.inner_text()

            await page.set_input_files("#copy-file", str(forged))
            await page.click("#copy-submit")
            assert await page.locator("#copy-result").get_attribute("data-ok") == "no"
            assert "不是真实文书" in await page.locator("#copy-result").inner_text()

            # Case progress by case number and query code, no account.
            await page.goto(f"{base}/q")
            await page.fill("#q-case", CASE)
            await page.fill("#q-code", settings.query_code(CASE))
            await page.click("#q-submit")
            assert "已登记" in await page.locator("#progress-stage").inner_text()
            docs = await page.locator("#progress-docs").inner_text()
            assert "信访事项受理告知书" in docs and doc.verification_code in docs
            await page.screenshot(path=str(tmp_path / "progress.png"), full_page=True)
            await browser.close()
