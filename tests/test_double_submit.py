"""Issue 12: one operator action, one update. Each action form on a case page carries a request id
in a hidden field; a form submitted twice (a double click, the browser's resubmit) is the same
update, which the engine answers with the first outcome: one effect, no refusal recorded. A form
from a page loaded anew is another action, which the rules judge (and a refusal is recorded)."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlmodel import Session, select

from activities.db import RefusalRow, TimelineRow, get_engine
from engine.desk import parse_intake, register
from engine.scenario import SCENARIO_DESK
from engine.staff import add_user
from engine.web import create_app
from rules.vocabulary import StaffRole
from tests.conftest import Harness
from tests.scenario_helpers import petition
from workflows.models import CaseState

PASSWORD = "correct-horse-battery"


def hidden(html: str, name: str, form: str | None = None) -> str:
    """A hidden field's value, in the action form `form` when given."""
    if form is not None:
        html = html.split(f'id="action-{form}"', 1)[1].split("</form>", 1)[0]
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name}"
    return m.group(1)


async def test_a_form_submitted_twice_acts_once(harness: Harness) -> None:
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
    app = create_app(settings, client=env.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as web:
        page = await web.get("/login")
        signed = await web.post("/login", data={"username": "clerk", "password": PASSWORD, "next": "/",
                                                "csrf_token": hidden(page.text, "csrf_token")})  # fmt: skip
        assert signed.status_code == 303
        page = await web.get(f"/cases/{reg.case_id}")
        request_id = hidden(page.text, "request_id", form="accept")
        assert request_id != hidden(page.text, "request_id", form="not_accept")  # one per form
        form = {"csrf_token": hidden(page.text, "csrf_token"), "unit": unit, "request_id": request_id}

        first, second = [await web.post(f"/cases/{reg.case_id}/actions/accept", data=form) for _ in range(2)]
        assert first.status_code == second.status_code == 303, second.text
        with Session(get_engine(settings.resolved_database_url())) as s:
            timeline = list(s.exec(select(TimelineRow).where(TimelineRow.case_id == reg.case_id)))
            assert [e.data.get("stage") for e in timeline].count("accepted") == 1
            assert list(s.exec(select(RefusalRow).where(RefusalRow.case_id == reg.case_id))) == []

        # a page loaded anew has new request ids: the same action again is a second acceptance
        again = await web.get(f"/cases/{reg.case_id}")
        assert 'id="action-accept"' not in again.text  # (the page no longer offers it)
        other = dict(form, request_id="another-request")
        refused = await web.post(f"/cases/{reg.case_id}/actions/accept", data=other)
        assert refused.status_code == 409
        with Session(get_engine(settings.resolved_database_url())) as s:
            assert [r.action for r in s.exec(select(RefusalRow).where(RefusalRow.case_id == reg.case_id))] == ["accept"]

        # a forged request id is refused before anything is sent
        bad = await web.post(f"/cases/{reg.case_id}/actions/accept", data=dict(form, request_id="两 次"))
        assert bad.status_code == 400 and "不是有效的请求编号" in bad.text
