"""The worker: runs petition workflows and their activities.

    python worker.py                 # TEMPORAL_ADDRESS if set, else the embedded dev server
    python worker.py --with-samples  # ... and register the bundled sample petitions

Without TEMPORAL_ADDRESS it starts the embedded dev server (`temporal server start-dev`) with
its SQLite file in the data folder and the Web UI on PETITION_UI_PORT (default 8233).

Before it starts anything it checks the ports it will listen on (PETITION_SERVER_PORT,
PETITION_UI_PORT, PETITION_WEB_PORT): a port already in use stops it with a sentence and exit
status 2. The dev server it starts lives and dies with it: stopped on every way out (SIGINT,
SIGTERM, SIGHUP, an error), sent SIGTERM by the kernel if the worker is killed (Linux), and a
dev server left running by a killed worker on the same data folder is stopped at the next start
(engine/servers.py, engine/devguard.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.documents import keep_pdfs
from activities.masking import MaskingInterceptor
from activities.petition import PetitionActivities, pdfs_written
from engine.config import PROJECT_DIR, Settings, load_settings
from engine.logs import configure_logging, get_logger
from engine.staff import ensure_first_admin
from workflows.arbitration import ArbitrationWorkflow
from workflows.digest import BatchDigestWorkflow
from workflows.petition import PetitionWorkflow

WORKFLOWS = [PetitionWorkflow, BatchDigestWorkflow, ArbitrationWorkflow]

# The sandbox re-imports workflow modules for every run; pure, heavy modules pass through
# (imported once), which the benchmarks showed is worth 1.5-2.6x in throughput.
SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_extensions",
        "sqlmodel",
        "sqlalchemy",
        "structlog",
        "rules",
        "workflows.models",
    )
)


def build_worker(client: Client, settings: Settings, task_queue: str | None = None, **kwargs: object) -> Worker:
    """The worker every entry point uses: the real workflows and the real activities."""
    acts = PetitionActivities(settings, client)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=acts.all(),
        workflow_runner=SANDBOX,
        # A failing activity's error is masked (no personal data) before it is logged or stored.
        interceptors=[MaskingInterceptor()],
        **kwargs,  # type: ignore[arg-type]
    )


async def register_samples(client: Client, settings: Settings) -> None:
    """Register the bundled sample petitions once, on an engine with no cases yet."""
    from sqlmodel import Session, select

    from activities.db import CaseRow, get_engine
    from engine.desk import register
    from workflows.models import Intake

    log = get_logger(component="samples")
    with Session(get_engine(settings.resolved_database_url())) as s:
        if s.exec(select(CaseRow.case_id).limit(1)).first() is not None:
            log.info("samples not registered again: this engine already has cases")
            return
    from engine.staff import ENGINE_ACTOR

    for path in sorted((PROJECT_DIR / "samples").glob("*.json")):
        intake = Intake.model_validate(json.loads(path.read_text(encoding="utf-8")))
        result = await register(client, settings, intake, actor=ENGINE_ACTOR)
        log.info("sample registered", file=path.name, case_id=result.case_id, repeat=result.repeat_visit)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-samples", action="store_true", help="register the petitions in samples/")
    parser.add_argument("--no-web", action="store_true", help="do not serve the web app (sign-in, codec endpoint)")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_json)
    log = get_logger(component="worker")
    from engine.servers import StartRefused, check_ports, reclaim_dev_server

    embedded = not settings.temporal_address
    try:
        # Nothing starts until every port this worker needs is free: start_local() would attach to
        # whatever listens on the dev server's port, and the web app would fail in the background.
        if embedded:
            reclaimed = reclaim_dev_server(settings)
            if reclaimed:
                log.warning(reclaimed)
        check_ports(settings, embedded=embedded, web=not args.no_web)
    except StartRefused as err:
        print("\n".join(f"worker: {line}" for line in str(err).splitlines()), file=sys.stderr, flush=True)
        return 2
    env = None
    status = 0
    if settings.temporal_address:
        from engine.servers import connect, ensure_search_attributes

        client = await connect(settings)
        await ensure_search_attributes(client, settings.namespace)
        log.info("connected", address=settings.temporal_address, namespace=settings.namespace)
    else:
        from engine.servers import running_dev_server, start_dev_server, stop_dev_server

        try:
            env = await start_dev_server(settings)
        except Exception as exc:
            print(f"worker: the embedded dev server did not start ({exc}); nothing is left running.", file=sys.stderr)
            return 1
        if running_dev_server(settings) is None:
            # Ours exited at once (a port taken since the check): the SDK would use whatever answers there.
            await stop_dev_server(settings, env)
            print(
                f"worker: the embedded dev server exited right after it started; is port {settings.server_port} "
                f"(PETITION_SERVER_PORT) or {settings.ui_port} (PETITION_UI_PORT) taken? Nothing is left running.",
                file=sys.stderr,
            )
            return 2
        client = env.client
        log.info(
            "embedded dev server started",
            address=f"127.0.0.1:{settings.server_port}",
            web_ui=f"http://127.0.0.1:{settings.ui_port}/temporal (payloads encrypted; signed in via the web app: decoded)",
            database=str(settings.data_dir / "temporal.sqlite"),
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    web: asyncio.Task[None] | None = None
    web_failed: list[str] = []

    def web_done(task: asyncio.Task[None]) -> None:
        # The web app cannot listen (a port taken since the check): the worker stops with it.
        if not task.cancelled() and task.exception() is not None:
            web_failed.append(str(task.exception()))
            stop.set()

    try:
        first_password = ensure_first_admin(settings)
        if first_password:
            # Shown once, on the terminal only (never logged): the operator signs in and changes it.
            print(
                f"\n  First start: account 'admin' created, password: {first_password}\n"
                f"  (shown once; CLI: starter.py --as admin …; create staff with `starter.py --as admin users add`)\n",
                file=sys.stderr,
                flush=True,
            )
        if not args.no_web:
            from engine.web import serve, web_url

            web = asyncio.create_task(serve(settings, client))
            web.add_done_callback(web_done)
            log.info(
                "web app", address=web_url(settings), cockpit=f"{web_url(settings)}/cockpit",
                temporal_ui=f"{web_url(settings)}/temporal/",
            )
            # The address an operator opens first, on the terminal whatever the log format.
            print(f"\n  数据驾驶舱 (cockpit): {web_url(settings)}/cockpit\n", file=sys.stderr, flush=True)
        # The keeper renders the PDFs a killed worker left unwritten (activities/documents.py).
        async with build_worker(client, settings), keep_pdfs(settings):
            log.info("worker running", task_queue=settings.task_queue, data_dir=str(settings.data_dir))
            if args.with_samples:
                await register_samples(client, settings)
                log.info("try: python starter.py list   |   python starter.py history CASE_ID")
            await stop.wait()
            log.info("stopping")
            try:  # the documents' PDFs still being rendered (activities/petition.py)
                await asyncio.wait_for(pdfs_written(), timeout=30)
            except TimeoutError:
                log.warning("some document PDFs were not finished; their text documents are issued")
        if web_failed:
            print(f"worker: {web_failed[0]}; the worker stopped.", file=sys.stderr, flush=True)
            status = 2
    finally:
        if web is not None:
            web.cancel()
        if env is not None:
            await stop_dev_server(settings, env)
    return status


if __name__ == "__main__":
    os.umask(0o077)  # the data folder, database, documents and logs: for the engine's owner only
    code = asyncio.run(main())
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can crash the interpreter at exit; our status is ours.
    os._exit(code)


__all__ = ["build_worker", "WORKFLOWS", "Path"]
