"""The same engine on PostgreSQL by URL (PETITION_TEST_POSTGRES_URL; `.ci/run` gives this
machine's server). Each test gets a schema of its own, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from temporalio.testing import WorkflowEnvironment

from activities.db import dispose_engines
from engine.config import Settings
from engine.desk import history, parse_intake, register
from engine.reports import score_events, verify_file
from engine.scenario import SCENARIO_DESK, act_scripted
from tests.scenario_helpers import petition

PG_URL = os.environ.get("PETITION_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="PETITION_TEST_POSTGRES_URL not set")


@pytest.fixture
def pg_settings(tmp_path: object) -> Iterator[Settings]:
    assert PG_URL
    schema = f"petition_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    settings = Settings(data_dir=tmp_path, database_url=f"{PG_URL}{sep}options=-csearch_path%3D{schema}")  # type: ignore[arg-type]
    try:
        yield settings
    finally:
        dispose_engines()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def test_a_case_lives_and_verifies_on_postgresql(env: WorkflowEnvironment, pg_settings: Settings) -> None:
    from worker import build_worker

    task_queue = f"pg-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, pg_settings, task_queue=task_queue):
        reg = await register(env.client, pg_settings, parse_intake(petition()), task_queue=task_queue, calendar="weekends_only", actor=SCENARIO_DESK)
        handle = env.client.get_workflow_handle(reg.case_id)
        for _ in range(100):
            if (await handle.query("state"))["stage"] != "registered":
                break
            await env.sleep(timedelta(seconds=1))
        await act_scripted(env.client, pg_settings, reg.case_id, "accept", {"unit": "青山区人社局"})
        await act_scripted(env.client, pg_settings, reg.case_id, "mediation_result", {"success": True, "fulfilled": True})
        await handle.result()
    hist = history(pg_settings, reg.case_id)
    assert hist["outcome"] == "mediated"
    events, _ = score_events(pg_settings, 0)
    assert [(e["rule"], e["points"]) for e in events] == [("mediation_success", 2)]
    documents = sorted((pg_settings.data_dir / "documents" / reg.case_id).glob("*.txt"))
    assert [d.name for d in documents] == ["acceptance_notice-1.txt", "mediation_agreement-1.txt"]
    ok, message, _ = verify_file(pg_settings, documents[1])
    assert ok, message
