"""Shared fixtures: one time-skipping test server per session, a fresh task queue, data folder
and worker per test (the samples-python `new_worker` pattern)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.config import Settings
from engine.servers import start_test_server

_exit_status: list[int] = []


@dataclass
class Harness:
    env: WorkflowEnvironment
    settings: Settings
    task_queue: str


@pytest.fixture(scope="session")
def payload_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One payload key ring for the session: the session's client encrypts with it, and every
    test's settings name it (as one engine's worker and operator tools share one ring)."""
    return tmp_path_factory.mktemp("keys") / "payload.keys"


@contextlib.asynccontextmanager
async def time_skipping_server(payload_key_file: Path, folder: Path) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server for a fixture's scope (the session's, or a module's own)."""
    environment = await start_test_server(Settings(data_dir=folder, payload_key_file=payload_key_file))
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
async def env(payload_key_file: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_server(payload_key_file, tmp_path_factory.mktemp("server")) as environment:
        yield environment


@pytest.fixture
def settings(tmp_path: Path, payload_key_file: Path) -> Settings:
    return Settings(data_dir=tmp_path, notify_adapter="recording", payload_key_file=payload_key_file)


@pytest.fixture
async def harness(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Harness]:
    from worker import build_worker

    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, settings, task_queue=task_queue):
        yield Harness(env, settings, task_queue)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # A process that used the Temporal client can crash at interpreter exit (Rust bridge threads
    # during finalisation); the exit status must be the tests', so leave before finalisation.
    if _exit_status:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
