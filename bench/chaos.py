"""Fault drill: petitions driven while the worker is killed at random and the dev server restarted,
then every case, letter, document, score event and notification accounted for.

    .venv/bin/python bench/chaos.py [--cases 1000] [--kills 100] [--restarts 3] [--seed 1]
                                    [--max-rate 2] [--kill-every 10] [--patience 7200] [--no-pdfs] [--keep DIR]

The drill runs the engine as an operator does, as separate processes: `temporal server start-dev`
with its SQLite file (started through engine/devguard.py, so it dies with the drill) and
`worker.py --no-web` attached to it (TEMPORAL_ADDRESS), both on free ports in a temporary folder.
The worker runs from a copy of the code taken at the start (engine, workflows, activities, rules,
worker.py), so edits made to the working tree meanwhile never reach a restarted worker.

Cases (a seeded mix, registered through `engine.desk.register`, acted on through `engine.desk.act`
with the scenario runner's actors; rules are the bench rules with short periods where a life
needs them and long ones where a lapse would make the outcome depend on timing):

* ladder (25 %, high risk): immediate SMS; risk warning letter at once, supervision letter and
  accountability letter as their one-minute periods run out (each with its petitioner notice,
  the accountability letter with its score events); accepted meanwhile; the handling opinion
  after the ladder has ended. Left open (its review window is a day): a quiescent case.
* answered (30 %, low risk): joins its unit's next-morning digest; accepted, answered, closes
  itself when its one-minute review window lapses.
* mediation (25 %, medium risk): priority push; accepted, mediated (agreement, +2 score), closed.
* arbitration (20 %, collective wage arrears of 12 workers): priority push; the arbitration child
  workflow; accepted; filed, settled, confirmed; closed.

Meanwhile a chaos loop kills the worker with SIGKILL (`--kills`; each worker polls for a random
0.3-1.7 times `--kill-every` seconds, at least 3 s, counted from its "worker running") and starts a
new one; between kills it stops the dev server (`--restarts`; SIGTERM and SIGKILL in turn), leaves
it down for a few seconds and starts it again on the same SQLite file. The children a killed worker
leaves (its PDF process) must end with it. Registrations spread over the chaos. Registrations and
actions that fail meanwhile are retried by the driver the way a desk would: a registration only
after the server says the case does not exist, an action only while the case's record says it has
not taken effect.

At the end (every life done and every workflow settled, or a time budget), the engine's database,
its document log and data/notifications.jsonl are read back and every expected item is looked for:
cases (row, first intake, workflow), documents by kind and idempotency key (the text file on disk
and its hash, its ledger entry), the ladder's letters, score events per (case, rule, occurrence),
notifications per idempotency key and adapter (a fallback escalation counts as delivered),
digest enrolments (from the digests' signals), arbitration tracks, the timeline (no gaps, and it
agrees with the rows), the cockpit's tallies (against a rebuild on a copy), `Ledger.audit()`, and
the status of every workflow in the namespace (none failed or terminated). Histories give the
chaos's footprint: activities retried, workflow tasks timed out or failed.

The last line is machine-readable:
chaos cases=N kills=K restarts=R documents=D letters=L scores=S notifications=M lost=0 duplicated=0 failed=0 seconds=T
and the exit status is non-zero when anything is lost, duplicated, inconsistent or unfinished.

`--cases 40 --kills 5 --restarts 1` (tests/test_chaos.py) takes about 2.5 minutes: the ladder's two
one-minute periods are the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    BENCH_RULES,
    bench_parser,
    exit_with,
    free_port,
    intake,
    median,
    percentile,
    quiet_logging,
    rules_with,
)
from engine.config import PROJECT_DIR  # noqa: E402
from rules.vocabulary import Category, Channel, OfficeLevel, Risk  # noqa: E402
from workflows.models import Intake, Petitioner  # noqa: E402

QUEUE = "chaos-petitions"
KINDS = ("ladder", "answered", "mediation", "arbitration")
SHARES = {"ladder": 0.25, "answered": 0.30, "mediation": 0.25, "arbitration": 0.20}
RISK = {"ladder": Risk.high, "answered": Risk.low, "mediation": Risk.medium, "arbitration": Risk.medium}
LETTERS = ("risk_warning_letter", "supervision_letter", "accountability_letter")
EXPECTED_DOCS: dict[str, dict[str, int]] = {
    "ladder": {
        "risk_warning_letter": 1, "supervision_letter": 1, "accountability_letter": 1, "petitioner_notice": 3,
        "acceptance_notice": 1, "handling_opinion": 1, "delivery_receipt": 1,
    },
    "answered": {"acceptance_notice": 1, "handling_opinion": 1, "delivery_receipt": 1},
    "mediation": {"acceptance_notice": 1, "mediation_agreement": 1},
    "arbitration": {"acceptance_notice": 1},
}  # fmt: skip
# The notice each case's risk tier sends at once (low risk: the next morning's digest, after the drill).
NOTICE_TIER = {"ladder": "immediate", "answered": None, "mediation": "priority", "arbitration": "priority"}
# Where each life ends: the workflow's status, the case's status and outcome.
FINAL = {
    "ladder": ("RUNNING", "open", None),
    "answered": ("COMPLETED", "closed", "resolved"),
    "mediation": ("COMPLETED", "closed", "mediated"),
    "arbitration": ("COMPLETED", "closed", "resolved"),
}
OPINION = "经调查核实，责任单位已督促用人单位于十日内足额支付拖欠工资，并将处理结果书面告知信访人。"
MIN_WORK_S = 3.0  # a worker works (polls) at least this long before it is killed
LADDER_TAIL_S = 120.0
WORKER_WAIT = timedelta(seconds=30)
ORPHAN_GRACE_S = 120.0  # a killed worker's child still there after this long was left behind  # the desk's own probe: does a worker answer for the case?  # the ladder's two one-minute periods after the last registration

# The worker's entry point: dies with the drill (PR_SET_PDEATHSIG), optionally without PDFs, then
# worker.py exactly as `python worker.py --no-web` runs it (from the copy of the code in its cwd).
_WORKER_BOOT = """
import ctypes, os, runpy, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
if os.getppid() != int(os.environ["CHAOS_PARENT_PID"]):
    os._exit(1)
if os.environ.get("CHAOS_NO_PDFS") == "1":
    import activities.petition as _p
    async def _no_pdf(self, req, issued):
        return None
    _p.PetitionActivities._issue_pdf = _no_pdf
sys.argv = ["worker.py", *sys.argv[1:]]
runpy.run_path("worker.py", run_name="__main__")
"""


def say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------------------------
# The two processes: the dev server and the worker.
# ------------------------------------------------------------------------------------------------


class Stack:
    """`temporal server start-dev` and `worker.py` as child processes that the drill kills at will."""

    def __init__(self, root: Path, data_dir: Path, code_dir: Path, rules_file: Path, no_pdfs: bool) -> None:
        from engine.servers import find_binary
        from workflows.models import SEARCH_ATTRIBUTES

        self.root, self.data_dir, self.code_dir = root, data_dir, code_dir
        self.port, self.ui_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.binary = find_binary("temporal")
        self.server_args = [
            "server", "start-dev", "--port", str(self.port), "--namespace", "default", "--ip", "127.0.0.1",
            "--log-format", "pretty", "--log-level", "error",
            "--dynamic-config-value", "frontend.enableServerVersionCheck=false",
            "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
            "--dynamic-config-value", "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
            "--db-filename", str(root / "temporal.sqlite"), "--headless",
        ]  # fmt: skip  -- what WorkflowEnvironment.start_local passes (sdk-core ephemeral_server)
        for key in SEARCH_ATTRIBUTES:
            self.server_args += ["--search-attribute", f"{key.name}={key._metadata_type}"]
        self.worker_env = {k: v for k, v in os.environ.items() if not k.startswith(("PETITION_", "TEMPORAL_"))}
        self.worker_env.update(
            PETITION_DATA_DIR=str(data_dir),
            TEMPORAL_ADDRESS=self.address,
            PETITION_TASK_QUEUE=QUEUE,
            PETITION_LOG_JSON="true",
            PETITION_NOTIFY_ADAPTER="recording",
            PETITION_RULES_FILE=str(rules_file),
            CHAOS_PARENT_PID=str(os.getpid()),
        )
        if no_pdfs:
            self.worker_env["CHAOS_NO_PDFS"] = "1"
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_ready_at: float | None = None  # when the current worker said "worker running"
        self.worker_starts = 0
        self.server_up = False
        (root / "workers").mkdir(exist_ok=True)
        self.kills = 0
        self.killed: set[int] = set()  # the numbers of the workers killed
        # Children of killed workers (the PDF process): each should end with its worker; one still
        # there ORPHAN_GRACE_S later is left behind (it is killed then, and counted).
        self.orphans: list[tuple[int, str | None, float]] = []
        self.orphans_exited = 0
        self.orphans_left = 0
        self.self_exits = 0  # workers that ended without being killed (restarted too)
        self.restarts = 0
        self.restart_signals: Counter[str] = Counter()
        self.down_s: list[float] = []

    # Both are started from the event loop's (main) thread: PR_SET_PDEATHSIG follows the thread
    # that forked, and a thread-pool thread may end while the child still runs.
    def start_server(self) -> None:
        with open(self.root / "server.log", "ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-I", "-S", str(self.code_dir / "engine" / "devguard.py"), str(os.getpid()),
                 str(self.root / "chaos-server.pid"), self.binary, *self.server_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def wait_server(self, client: Any = None, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout

        async def listening() -> bool:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"the dev server exited ({self.server.returncode}); see {self.root / 'server.log'}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        async def healthy() -> bool:
            return bool(await client.service_client.check_health(timeout=timedelta(seconds=3)))

        await _until(listening, OSError, deadline, 0.2, f"the dev server did not listen on {self.port} within {timeout:g} s")
        if client is not None:
            await _until(healthy, Exception, deadline, 0.3, f"the dev server did not answer within {timeout:g} s")

    async def stop_server(self, sig: signal.Signals) -> None:
        assert self.server is not None
        try:
            os.killpg(self.server.pid, sig)  # devguard made it a session (and group) leader
        except ProcessLookupError:
            pass
        if not await _reaped(self.server, 30.0):
            os.killpg(self.server.pid, signal.SIGKILL)
            await _reaped(self.server, 10.0)

    def worker_log(self, n: int | None = None) -> Path:
        return self.root / "workers" / f"worker-{self.worker_starts if n is None else n:03d}.log"

    def start_worker(self) -> None:
        self.worker_starts += 1
        with open(self.worker_log(), "ab") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, "--no-web"],
                cwd=self.code_dir, env=self.worker_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self.worker_ready_at = None

    def worker_working_s(self) -> float:
        """Seconds since the current worker started polling (0 until it has)."""
        if self.worker_ready_at is None:
            try:
                if b'"worker running"' in self.worker_log().read_bytes():
                    self.worker_ready_at = time.monotonic()
            except OSError:
                pass
        return 0.0 if self.worker_ready_at is None else time.monotonic() - self.worker_ready_at

    async def kill_worker(self) -> None:
        assert self.worker is not None
        children = [(c, _start_time(c)) for c in _children(self.worker.pid)]
        try:
            os.kill(self.worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await _reaped(self.worker, 10.0)
        self.kills += 1
        self.killed.add(self.worker_starts)
        self.orphans += [(c, st, time.monotonic() + ORPHAN_GRACE_S) for c, st in children]

    async def settle_orphans(self) -> None:
        while self.orphans:
            self.reap_orphans()
            await asyncio.sleep(0.5)

    def reap_orphans(self, final: bool = False) -> None:
        keep = []
        for pid, started, deadline in self.orphans:
            if _start_time(pid) != started or _start_time(pid) is None:
                self.orphans_exited += 1
            elif final or time.monotonic() > deadline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.orphans_left += 1
            else:
                keep.append((pid, started, deadline))
        self.orphans = keep

    def revive_worker(self) -> None:
        """A worker that ended on its own: started again once the server is up (worker.py exits when
        TEMPORAL_ADDRESS does not answer at its start, as a supervisor such as systemd would see it)."""
        if self.worker is not None and self.worker.poll() is not None and self.server_up:
            self.self_exits += 1
            self.start_worker()

    async def stop_worker(self) -> None:
        """The graceful way out (SIGTERM): the worker waits up to 30 s for the PDFs it is rendering."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            if not await _reaped(self.worker, 45.0):
                self.worker.kill()
                await _reaped(self.worker, 10.0)

    async def stop_all(self) -> None:
        self.reap_orphans(final=True)
        await self.stop_worker()
        if self.server is not None and self.server.poll() is None:
            await self.stop_server(signal.SIGTERM)


async def _until(
    ready: Callable[[], Awaitable[bool]], failing: type[Exception], deadline: float, every: float, timed_out: str
) -> None:
    """Ask `ready` every `every` seconds until it says yes (`failing` raised counts as no); past the
    `deadline` (time.monotonic()), TimeoutError(timed_out)."""
    while True:
        try:
            if await ready():
                return
        except failing:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(timed_out)
        await asyncio.sleep(every)


async def _reaped(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return out


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), to tell it from a later one with its pid;
    None when it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def copy_code(dest: Path) -> None:
    """The code a worker runs, as it is now (bytecode included: a restart need not recompile)."""
    dest.mkdir(parents=True)
    for name in ("engine", "workflows", "activities", "rules"):
        shutil.copytree(PROJECT_DIR / name, dest / name, ignore=shutil.ignore_patterns("static", "templates", "triage_corpus"))
    shutil.copy2(PROJECT_DIR / "worker.py", dest / "worker.py")


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


# ------------------------------------------------------------------------------------------------
# Watching the cases from the engine's database (the desk's view), once a second.
# ------------------------------------------------------------------------------------------------


@dataclass
class CaseView:
    stage: str
    status: str
    outcome: str | None
    unit: str | None
    ladder_end: str | None
    accepted: bool
    answered: bool
    steps: set[str] = field(default_factory=set)  # arbitration steps in the timeline


Pred = Callable[[CaseView | None], bool]


class Tracker:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.rows: dict[str, CaseView] = {}
        self.cond = asyncio.Condition()

    def _read(self) -> dict[str, CaseView]:
        con = sqlite3.connect(self.db, timeout=30)
        try:
            rows = {
                r[0]: CaseView(r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]))
                for r in con.execute(
                    "SELECT case_id, stage, status, outcome, unit, ladder_end, accepted_at IS NOT NULL, "
                    "answered_at IS NOT NULL FROM cases"
                )
            }
            for cid, step in con.execute(
                "SELECT case_id, json_extract(data, '$.step') FROM timeline "
                "WHERE kind = 'stage' AND json_extract(data, '$.step') IS NOT NULL"
            ):
                if cid in rows:
                    rows[cid].steps.add(step)
            return rows
        finally:
            con.close()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                rows = await asyncio.to_thread(self._read)
            except sqlite3.Error:
                rows = None
            if rows is not None:
                self.rows = rows
                async with self.cond:
                    self.cond.notify_all()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass

    async def wait(self, cid: str, pred: Pred, timeout: float) -> bool:
        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(lambda: pred(self.rows.get(cid))), timeout)
                return True
            except TimeoutError:
                return False


# ------------------------------------------------------------------------------------------------
# The desk: registrations and actions, retried as a desk would retry them.
# ------------------------------------------------------------------------------------------------


def arbitration_intake(i: int, tag: str) -> Intake:
    """Collective wage arrears (12 workers): triage sends it to the arbitration green channel."""
    return Intake(
        channel=Channel.visit,
        office_level=OfficeLevel.county,
        locality=("青山区", "东湖镇")[i % 2],
        petitioners=[Petitioner(name=f"工人{tag}{i}", phone=f"139{i % 100_000_000:08d}")],
        title=f"工地拖欠农民工工资 {tag}-{i}",
        content="某建筑公司拖欠我们12名工人工资共计18万元，多次讨要无果，年底了大家急着回家。",
        category=Category.labor_social_security,
        risk=Risk.medium,
        disputed_amount=180000,
        facts_clear=True,
        worker_count=12,
    )


def _has_step(step: str) -> Pred:
    return lambda v: v is not None and step in v.steps


class Driver:
    def __init__(self, client: Any, settings: Any, tracker: Tracker, rules: dict[str, Any], concurrency: int, tag: str, patience: float) -> None:
        self.client, self.settings, self.tracker, self.rules, self.tag = client, settings, tracker, rules, tag
        self.patience = patience  # seconds a life waits for a step, or retries an action, before it gives up
        self.sem = asyncio.Semaphore(concurrency)
        self.kind: dict[str, str] = {}  # every case a registration was attempted for
        self.registered: set[str] = set()  # ... and known to have started
        self.finished: set[str] = set()
        self.stuck: dict[str, str] = {}
        self.units: dict[str, str] = {}
        self.errors: Counter[str] = Counter()
        self.error_examples: dict[str, str] = {}
        self.register_retries = 0
        self.action_retries = 0
        self.applied_before_answer = 0  # refused because an earlier attempt had taken effect
        self.durations: dict[str, list[float]] = defaultdict(list)

    async def register(self, i: int, kind: str, cid: str) -> bool:
        from temporalio.service import RPCError, RPCStatusCode

        from engine.desk import register
        from engine.scenario import SCENARIO_DESK

        petition = arbitration_intake(i, self.tag) if kind == "arbitration" else intake(i, RISK[kind], tag=self.tag)
        for attempt in range(1, 61):
            try:
                async with self.sem:
                    await asyncio.wait_for(
                        register(self.client, self.settings, petition, task_queue=QUEUE, rules=self.rules[kind],
                                 case_id=cid, actor=SCENARIO_DESK),
                        60,
                    )  # fmt: skip
                self.registered.add(cid)
                return True
            except Exception as exc:
                key = f"register: {type(exc).__name__}"
                self.errors[key] += 1
                self.error_examples.setdefault(key, " ".join(str(exc).split())[:150])
            # Registered again only once the server says this case was not started: a second
            # registration of a started one would be another visit on it.
            while True:
                try:
                    await self.client.get_workflow_handle(cid).describe(rpc_timeout=timedelta(seconds=5))
                    self.registered.add(cid)
                    return True
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:
                        break
                except Exception:
                    pass
                await asyncio.sleep(1.0)
            self.register_retries += 1
            await asyncio.sleep(min(5.0, attempt))
        self.stuck[cid] = "registration"
        return False

    async def act(self, cid: str, action: str, data: dict[str, Any], done: Pred) -> bool:
        from engine.desk import NoWorker, Refused, new_request_id
        from engine.desk import act as desk_act
        from engine.scenario import acting_as

        # One operator intention, one request id, reused by every attempt: an attempt that took
        # effect is answered with its outcome (engine.desk.act), not refused as a second one.
        rid = new_request_id()
        deadline = time.monotonic() + self.patience
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            if done(self.tracker.rows.get(cid)):
                return True
            if attempt > 1:
                self.action_retries += 1
            try:
                async with self.sem:
                    await asyncio.wait_for(
                        desk_act(self.client, self.settings, cid, action, data, actor=acting_as(action, self.units[cid]),
                                 worker_wait=WORKER_WAIT, request_id=rid),
                        120,
                    )  # fmt: skip
                return True
            except Refused as ref:
                # An earlier attempt may have taken effect and its answer been lost: the record says.
                if await self.tracker.wait(cid, done, 90):
                    self.applied_before_answer += 1
                    return True
                self.errors[f"{action}: refused: {ref.error[:70]}"] += 1
            except NoWorker:
                self.errors[f"{action}: no worker answered"] += 1
            except Exception as exc:
                status = getattr(exc, "status", None)
                key = f"{action}: {type(exc).__name__}{f' {status.name}' if status is not None else ''}"
                self.errors[key] += 1
                self.error_examples.setdefault(key, " ".join(str(exc).split())[:150])
            await asyncio.sleep(min(10.0, 1.0 + attempt))
        self.stuck[cid] = action
        return False

    async def wait(self, cid: str, pred: Pred, what: str) -> bool:
        if await self.tracker.wait(cid, pred, self.patience):
            return True
        self.stuck[cid] = what
        return False

    async def life(self, i: int, kind: str, cid: str) -> None:
        t0 = time.monotonic()
        self.kind[cid] = kind
        if not await self.register(i, kind, cid):
            return

        def ready(v: CaseView | None) -> bool:
            if v is None or not v.unit:
                return False
            return v.stage == "arbitration" if kind == "arbitration" else v.stage != "registered"

        if not await self.wait(cid, ready, "triage"):
            return
        unit = self.tracker.rows[cid].unit
        assert unit is not None
        self.units[cid] = unit
        if not await self.act(cid, "accept", {"unit": unit}, lambda v: v is not None and v.accepted):
            return
        closed: Pred = lambda v: v is not None and v.status == "closed"  # noqa: E731
        answered: Pred = lambda v: v is not None and v.answered  # noqa: E731
        if kind == "ladder":
            if not await self.wait(cid, lambda v: v is not None and v.ladder_end == "accountability", "the accountability letter"):
                return
            if not await self.act(cid, "issue_opinion", {"text": OPINION}, answered):
                return
        elif kind == "answered":
            if not await self.act(cid, "issue_opinion", {"text": OPINION}, answered):
                return
            if not await self.wait(cid, closed, "the review window to close the case"):
                return
        elif kind == "mediation":
            if not await self.act(cid, "mediation_result", {"success": True, "fulfilled": True}, closed):
                return
        else:
            for step in ("filed", "settled", "confirmed"):
                if not await self.act(cid, "arbitration", {"event": step}, _has_step(step)):
                    return
            if not await self.wait(cid, closed, "closing after judicial confirmation"):
                return
        self.durations[kind].append(time.monotonic() - t0)
        self.finished.add(cid)


# ------------------------------------------------------------------------------------------------
# The chaos.
# ------------------------------------------------------------------------------------------------


async def run_chaos(
    stack: Stack, client: Any, args: argparse.Namespace, register_s: float, rng: random.Random, t0: float
) -> None:
    """Kill the worker `args.kills` times: each worker polls for a random while (0.3-1.7 times
    `--kill-every`, at least MIN_WORK_S, counted from its "worker running": under load a worker
    takes several seconds to start, and a kill before it polls would test nothing), then SIGKILL and
    a new one. The dev server restarts fall evenly between the kills, in the middle of a worker's
    life (without kills: evenly over the registrations)."""
    # Restart j happens during the life of the worker that follows kill number restart_after[j].
    restart_after = [min(args.kills - 1, round(args.kills * (j + 1) / (args.restarts + 1))) for j in range(args.restarts)]
    if args.kills == 0:
        for j in range(args.restarts):
            await asyncio.sleep(max(0.0, t0 + register_s * (j + 1) / (args.restarts + 1) - time.monotonic()))
            await restart_server(stack, client, args, rng, t0)
        return

    async def work_for(seconds: float) -> None:
        while stack.worker_working_s() < seconds:
            stack.revive_worker()
            stack.reap_orphans()
            await asyncio.sleep(0.2)

    for k in range(1, args.kills + 1):
        life = max(MIN_WORK_S, rng.uniform(0.3, 1.7) * args.kill_every)
        for _ in range(restart_after.count(k - 1)):
            await work_for(life / 2)
            await restart_server(stack, client, args, rng, t0)
        await work_for(life)
        await stack.kill_worker()
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        stack.start_worker()


async def restart_server(stack: Stack, client: Any, args: argparse.Namespace, rng: random.Random, t0: float) -> None:
    """Stop the dev server (SIGTERM and SIGKILL in turn), leave it down a while, start it again on
    the same SQLite file."""
    sig = signal.SIGTERM if stack.restarts % 2 == 0 else signal.SIGKILL
    t_down = time.monotonic()
    stack.server_up = False
    await stack.stop_server(sig)
    await asyncio.sleep(rng.uniform(*args.down))
    stack.start_server()
    await stack.wait_server(client)
    stack.server_up = True
    stack.restarts += 1
    stack.restart_signals[sig.name] += 1
    stack.down_s.append(time.monotonic() - t_down)
    say(f"  [{time.monotonic() - t0:6.0f} s] dev server restarted ({sig.name}, down {stack.down_s[-1]:.1f} s)")


async def keep_worker_alive(stack: Stack, stop: asyncio.Event) -> None:
    while not stop.is_set():
        stack.revive_worker()
        stack.reap_orphans()
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


# ------------------------------------------------------------------------------------------------
# Accounting.
# ------------------------------------------------------------------------------------------------


@dataclass
class Line:
    expected: int = 0
    found: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0


@dataclass
class Accounts:
    lines: dict[str, Line] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # inconsistencies, with the first examples
    notes: list[str] = field(default_factory=list)
    escalated: int = 0
    audit: list[str] = field(default_factory=list)

    def line(self, name: str) -> Line:
        return self.lines.setdefault(name, Line())

    def problem(self, what: str, examples: list[Any]) -> None:
        if examples:
            shown = ", ".join(str(e) for e in examples[:5])
            self.problems.append(f"{what}: {len(examples)} ({shown}{', …' if len(examples) > 5 else ''})")


def _officials(code_dir: Path, unit: str) -> list[str]:
    with open(code_dir / "rules" / "officials.toml", "rb") as fh:
        data = tomllib.load(fh)
    names = data.get("units", {}).get(unit, {}).get("officials") or data.get("default", {}).get("officials", [])
    return [str(n).replace("{unit}", unit) for n in names]


def _count_line(line: Line, expected: Counter[Any], found: Counter[Any]) -> None:
    for key in expected.keys() | found.keys():
        e, f = expected.get(key, 0), found.get(key, 0)
        line.expected += e
        line.found += min(e, f)
        line.missing += max(0, e - f)
        if e:
            line.duplicated += max(0, f - e)
        else:
            line.unexpected += f


def account_database(root: Path, data_dir: Path, code_dir: Path, kinds: dict[str, str], registered: set[str], units: dict[str, str]) -> Accounts:
    from activities.documents import split_document
    from activities.notify import read_notifications

    acc = Accounts()
    con = sqlite3.connect(data_dir / "petitions.db", timeout=60)
    con.row_factory = sqlite3.Row
    cases = {r["case_id"]: r for r in con.execute("SELECT * FROM cases")}
    intakes = Counter(r[0] for r in con.execute("SELECT case_id FROM intakes"))
    docs = list(con.execute("SELECT * FROM documents"))
    entries = {r["idempotency_key"]: r for r in con.execute("SELECT idx, idempotency_key, document_sha256 FROM ledger_entries")}
    entry_keys = Counter(r[0] for r in con.execute("SELECT idempotency_key FROM ledger_entries"))
    scores = list(con.execute("SELECT * FROM score_events"))
    timeline: dict[str, list[Any]] = defaultdict(list)
    for r in con.execute("SELECT case_id, seq, kind, data FROM timeline ORDER BY case_id, seq"):
        timeline[r[0]].append((r[1], r[2], json.loads(r[3]) if r[3] else {}))
    tracks = {r["case_id"]: r for r in con.execute("SELECT * FROM arbitration_tracks")}
    con.close()

    # Cases: a row and its one first intake for every case registered; nothing else.
    line = acc.line("cases (row + first intake)")
    line.expected = len(kinds)
    present = [c for c in kinds if c in cases and intakes.get(c, 0) >= 1]
    line.found = len(present)
    line.missing = len(kinds) - len(present)
    acc.problem("cases registered by the drill that never started", sorted(set(kinds) - registered))
    acc.problem("cases without a row or a first intake", sorted(c for c in kinds if c not in present))
    extra_intakes = [c for c, n in intakes.items() if n > 1]
    line.duplicated = len(extra_intakes) + sum(1 for c in cases if c not in kinds)
    acc.problem("cases with more than one intake (a registration counted twice)", extra_intakes)
    acc.problem("case rows the drill did not register", sorted(c for c in cases if c not in kinds))

    # Documents, by case and kind, and by idempotency key; the text on disk and its ledger entry.
    exp_docs: Counter[tuple[str, str]] = Counter()
    exp_keys: set[str] = set()
    for cid, kind in kinds.items():
        for dkind, n in EXPECTED_DOCS[kind].items():
            exp_docs[(cid, dkind)] += n
            exp_keys |= {f"{cid}:doc:{dkind}:{k}" for k in range(1, n + 1)}
    found_docs = Counter((d["case_id"], d["kind"]) for d in docs)
    _count_line(acc.line("documents (by case and kind)"), exp_docs, found_docs)
    _count_line(
        acc.line("  of which letters (三函)"),
        Counter({k: v for k, v in exp_docs.items() if k[1] in LETTERS}),
        Counter({k: v for k, v in found_docs.items() if k[1] in LETTERS}),
    )
    acc.problem("documents under an unexpected idempotency key", sorted(d["idempotency_key"] for d in docs if d["idempotency_key"] not in exp_keys))
    bad_files = []
    for d in docs:
        path = Path(d["path"])
        try:
            body, code = split_document(path.read_bytes())
        except OSError:
            bad_files.append(f"{d['idempotency_key']} (no file)")
            continue
        if hashlib.sha256(body).hexdigest() != d["sha256"] or code != d["verification_code"]:
            bad_files.append(f"{d['idempotency_key']} (hash or code differs)")
    acc.problem("document files missing or not matching their row", bad_files)

    # The ledger: one entry per document key, naming the document's hash at the document's index.
    led = acc.line("ledger entries (one per document key)")
    _count_line(led, Counter(dict.fromkeys(exp_keys, 1)), entry_keys)
    mismatched = [
        d["idempotency_key"]
        for d in docs
        if (e := entries.get(d["idempotency_key"])) is None or e["idx"] != d["ledger_index"] or e["document_sha256"] != d["sha256"]
    ]
    acc.problem("documents whose ledger entry is missing, elsewhere or names another hash", mismatched)
    doc_keys = {d["idempotency_key"] for d in docs}
    acc.problem("ledger entries without a document row (logged, never recorded)", sorted(k for k in entries if k not in doc_keys))

    # Score events: exactly once per (case, rule, occurrence).
    exp_scores: Counter[str] = Counter()
    for cid, kind in kinds.items():
        if kind == "ladder":
            exp_scores[f"{cid}:score:accountability:1"] += 1
            for n in range(1, len(_officials(code_dir, units.get(cid, cases[cid]["unit"] if cid in cases else ""))) + 1):
                exp_scores[f"{cid}:score:accountability_official:{n}"] += 1
        elif kind == "mediation":
            exp_scores[f"{cid}:score:mediation_success:1"] += 1
    _count_line(acc.line("score events"), exp_scores, Counter(s["idempotency_key"] for s in scores))

    # Notifications: each expected key delivered exactly once by one adapter (a fallback escalation
    # counts as delivered); no other delivered notice for these cases.
    records = read_notifications(data_dir)
    delivered: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r.get("delivered") and r.get("case_id") in kinds:
            delivered[str(r.get("idempotency_key"))][str(r.get("adapter"))] += 1
    note = acc.line("notifications (delivered, by idempotency key)")
    for cid, kind in kinds.items():
        tier = NOTICE_TIER[kind]
        if tier is None:
            continue
        note.expected += 1
        key, fallback = f"{cid}:notify:{tier}:1", f"{cid}:notify:fallback:1"
        n = delivered[key].total()
        if n == 0 and delivered[fallback].total():
            acc.escalated += 1
            n = delivered[fallback].total()
        note.found += min(1, n)
        note.missing += n == 0
        note.duplicated += max(0, n - 1)
    expected_keys = {f"{c}:notify:{NOTICE_TIER[k]}:1" for c, k in kinds.items() if NOTICE_TIER[k]}
    expected_keys |= {f"{c}:notify:fallback:1" for c in kinds}
    stray = sorted(k for k in delivered if k not in expected_keys)
    note.unexpected = sum(delivered[k].total() for k in stray)
    acc.problem("notices delivered that no case of the drill should send", stray)
    twice = sorted(k for k, by in delivered.items() if any(v > 1 for v in by.values()) or len(by) > 1)
    acc.problem("notices delivered more than once", twice)
    failed_lines = sum(1 for r in records if not r.get("delivered"))
    if failed_lines:
        acc.notes.append(f"failed delivery attempts logged: {failed_lines}")

    # The timeline: numbered 1..n with no gap, and it says what the rows say.
    gaps, doc_disagree, score_disagree, note_disagree = [], [], [], []
    docs_by_case: dict[str, Counter[tuple[str, int]]] = defaultdict(Counter)
    for d in docs:
        docs_by_case[d["case_id"]][(d["kind"], d["ledger_index"])] += 1
    scores_by_case: dict[str, Counter[str]] = defaultdict(Counter)
    for s in scores:
        scores_by_case[s["case_id"]][s["rule"]] += 1
    for cid in kinds:
        events = timeline.get(cid, [])
        if [seq for seq, _, _ in events] != list(range(1, len(events) + 1)):
            gaps.append(cid)
        tl_docs = Counter((e["document"], e["ledger_index"]) for _, k, e in events if k == "document")
        if tl_docs != docs_by_case.get(cid, Counter()):
            doc_disagree.append(cid)
        tl_scores = Counter(e["rule"] for _, k, e in events if k == "score")
        if tl_scores != scores_by_case.get(cid, Counter()):
            score_disagree.append(cid)
        tier = NOTICE_TIER[kinds[cid]]
        told = [e for _, k, e in events if k == "notification" and e.get("tier") in (tier, "overdue") and e.get("delivered")]
        if tier is not None and len(told) != 1:
            note_disagree.append(f"{cid} ({len(told)})")
    acc.problem("timelines with a gap in their numbering (an event lost)", gaps)
    acc.problem("timelines whose documents differ from the document rows", doc_disagree)
    acc.problem("timelines whose score events differ from the score rows", score_disagree)
    acc.problem("timelines without exactly one delivered notice of the case's tier", note_disagree)
    acc.notes.append(f"timeline events: {sum(len(v) for v in timeline.values())}")

    # The cases' own state and the arbitration tracks.
    wrong_state = []
    for cid, kind in kinds.items():
        row = cases.get(cid)
        _, status, outcome = FINAL[kind]
        if row is None:
            continue
        if row["status"] != status or row["outcome"] != outcome or (kind == "ladder" and (row["ladder_end"] != "accountability" or row["stage"] != "opinion_issued")):
            wrong_state.append(f"{cid} ({kind}: {row['stage']}/{row['status']}/{row['outcome']})")
    acc.problem("cases not where their life ends", wrong_state)
    arb = [c for c, k in kinds.items() if k == "arbitration"]
    bad_tracks = [c for c in arb if c not in tracks or tracks[c]["status"] != "closed" or tracks[c]["outcome"] != "resolved"]
    acc.problem("arbitration tracks not closed as resolved", bad_tracks)

    acc.problems.extend(check_tallies(data_dir))
    return acc


def pdf_note(stack: Stack, data_dir: Path) -> str:
    """PDFs beside the documents, and for the missing ones: was the worker that issued the document
    killed afterwards, or stopped gracefully (the last one)? From the workers' "document issued" lines."""
    con = sqlite3.connect(data_dir / "petitions.db", timeout=60)
    docs = {(r[0], r[1]): Path(r[2]) for r in con.execute("SELECT case_id, ledger_index, path FROM documents")}
    con.close()
    issued_by: dict[tuple[str, int], int] = {}
    for n in range(1, stack.worker_starts + 1):
        try:
            lines = stack.worker_log(n).read_bytes().splitlines()
        except OSError:
            continue
        for raw in lines:
            if b'"document issued"' in raw:
                try:
                    rec = json.loads(raw)
                    issued_by[(rec["case_id"], int(rec["ledger_index"]))] = n
                except (ValueError, KeyError, TypeError):
                    pass
    missing = [k for k, path in docs.items() if not path.with_suffix(".pdf").exists()]
    by_killed = sum(1 for k in missing if issued_by.get(k) in stack.killed)
    return (
        f"PDFs beside the text documents: {len(docs) - len(missing)} of {len(docs)} written; of the {len(missing)} "
        f"missing, {by_killed} were issued by a worker that was killed afterwards, {len(missing) - by_killed} by "
        "workers stopped otherwise (the last one stops gracefully and waits 30 s at most for its PDFs)"
    )


async def recover_pdfs(settings: Any, stack: Stack, data_dir: Path) -> str:
    """The PDFs the killed workers lost, rendered again from what is stored by one sweep of the
    worker's PDF keeper (activities/documents.py), as the next worker start would; then counted."""
    from activities.documents import PdfKeeper

    t0 = time.monotonic()
    report = await PdfKeeper(settings).sweep(grace=0.0)
    seconds = time.monotonic() - t0
    after = pdf_note(stack, data_dir).split(";")[0].removeprefix("PDFs beside the text documents: ")
    return (f"PDF keeper, one sweep after the drill: {report.rendered} rendered again, {report.failed} not renderable, "
            f"in {seconds:.0f} s; now {after}")  # fmt: skip


def check_tallies(data_dir: Path) -> list[str]:
    """The cockpit's running tallies against a rebuild from the rows (on a copy of the database)."""
    from sqlalchemy import create_engine

    from activities.db import rebuild_tallies

    tables = ("tally_cases", "tally_intakes", "tally_documents")

    def read(con: sqlite3.Connection) -> dict[str, dict[tuple[Any, ...], tuple[float, ...]]]:
        out: dict[str, dict[tuple[Any, ...], tuple[float, ...]]] = {}
        for t in tables:
            cols = [c[1] for c in con.execute(f"PRAGMA table_info({t})")]
            pk = [c[1] for c in con.execute(f"PRAGMA table_info({t})") if c[5]]
            rows: dict[tuple[Any, ...], tuple[float, ...]] = {}
            for r in con.execute(f"SELECT * FROM {t}"):
                d = dict(zip(cols, r, strict=True))
                values = tuple(float(d[c]) for c in cols if c not in pk)
                if any(abs(v) > 1e-9 for v in values):  # a row moved back to zero is no row
                    rows[tuple(d[c] for c in pk)] = values
            out[t] = rows
        return out

    with tempfile.TemporaryDirectory(prefix="chaos-tally-") as tmp:
        copy = Path(tmp) / "copy.db"
        src = sqlite3.connect(data_dir / "petitions.db", timeout=60)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        before = read(dst)
        dst.close()
        engine = create_engine(f"sqlite:///{copy}")
        rebuild_tallies(engine)
        engine.dispose()
        dst = sqlite3.connect(copy)
        after = read(dst)
        dst.close()
    problems = []
    for t in tables:
        keys = before[t].keys() | after[t].keys()
        off = [
            k for k in keys
            if k not in before[t] or k not in after[t]
            or any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in zip(before[t][k], after[t][k], strict=True))
        ]  # fmt: skip
        if off:
            problems.append(f"{t}: {len(off)} rows differ from a rebuild from the rows (e.g. {sorted(map(str, off))[:3]})")
    return problems


async def account_temporal(client: Any, driver: Driver, acc: Accounts) -> dict[str, Any]:
    """Every workflow's status, the digests' enrolments and the chaos's footprint in the histories."""
    from temporalio.api.enums.v1 import EventType

    from workflows.models import DIGEST_WORKFLOW, DigestItem

    statuses: Counter[str] = Counter()
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    digests: list[str] = []
    all_ids: list[str] = []
    async for wf in client.list_workflows(""):
        status = wf.status.name if wf.status else "?"
        statuses[status] += 1
        by_type[wf.workflow_type][status] += 1
        all_ids.append(wf.id)
        if wf.workflow_type == DIGEST_WORKFLOW:
            digests.append(wf.id)
    failed = sum(n for s, n in statuses.items() if s not in ("RUNNING", "COMPLETED"))

    # Every case's workflow: there, with the status its life ends in.
    sem = asyncio.Semaphore(8)
    wrong: list[str] = []
    missing: list[str] = []

    async def describe(cid: str, expected: str) -> None:
        async with sem:
            try:
                desc = await client.get_workflow_handle(cid).describe()
            except Exception:
                missing.append(cid)
                return
        if desc.status is None or desc.status.name != expected:
            wrong.append(f"{cid} ({desc.status.name if desc.status else '?'}, not {expected})")

    jobs = [describe(cid, FINAL[kind][0]) for cid, kind in driver.kind.items()]
    jobs += [describe(f"{cid}-arbitration", "COMPLETED") for cid, kind in driver.kind.items() if kind == "arbitration"]
    await asyncio.gather(*jobs)
    line = acc.line("cases (row + first intake)")
    gone = len([m for m in missing if not m.endswith("-arbitration")])
    line.found -= gone
    line.missing += gone
    acc.problem("workflows missing (cases or their arbitration tracks)", missing)
    acc.problem("workflows not in the status their life ends in", wrong)

    # Histories: digests' enrolments, and what the chaos did to every workflow.
    retried_acts, extra_attempts, wft_timeouts, wft_failed, act_failed = 0, 0, 0, 0, 0
    causes: Counter[str] = Counter()
    enrolled: dict[str, set[str]] = defaultdict(set)
    absorbed = 0

    async def scan(wid: str) -> None:
        nonlocal retried_acts, extra_attempts, wft_timeouts, wft_failed, act_failed, absorbed
        async with sem:
            try:
                events = (await client.get_workflow_handle(wid).fetch_history()).events
            except Exception:
                return
        seen: Counter[str] = Counter()
        for e in events:
            t = e.event_type
            if t == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED and e.activity_task_started_event_attributes.attempt > 1:
                retried_acts += 1
                extra_attempts += e.activity_task_started_event_attributes.attempt - 1
            elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                wft_timeouts += 1
            elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                wft_failed += 1
                causes[e.workflow_task_failed_event_attributes.failure.message[:90]] += 1
            elif t in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
                act_failed += 1
            elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and wid in digests:
                attrs = e.workflow_execution_signaled_event_attributes
                if attrs.signal_name == "add_case":
                    (item,) = await client.data_converter.decode(list(attrs.input.payloads), [DigestItem])
                    seen[item.case_id] += 1
        for cid, n in seen.items():
            enrolled[cid].add(wid)
            absorbed += n - 1

    await asyncio.gather(*(scan(w) for w in all_ids))
    answered = [c for c, k in driver.kind.items() if k == "answered"]
    dig = acc.line("digest enrolments (low risk, next morning)")
    dig.expected = len(answered)
    dig.found = sum(1 for c in answered if enrolled.get(c))
    dig.missing = dig.expected - dig.found
    dig.duplicated = sum(len(enrolled[c]) - 1 for c in answered if len(enrolled.get(c, ())) > 1)
    dig.unexpected = sum(1 for c in enrolled if driver.kind.get(c) != "answered")
    return {
        "statuses": dict(statuses),
        "by_type": {k: dict(v) for k, v in by_type.items()},
        "failed": failed,
        "retried_activities": retried_acts,
        "extra_attempts": extra_attempts,
        "activity_failures": act_failed,
        "wft_timeouts": wft_timeouts,
        "wft_failed": wft_failed,
        "wft_causes": causes,
        "signals_absorbed": absorbed,
        "digests": len(digests),
    }


async def settle(client: Any, driver: Driver, timeout: float) -> float:
    """Until no workflow of the drill has a pending activity and each has its final status."""
    t0 = time.monotonic()
    todo = {cid: FINAL[k][0] for cid, k in driver.kind.items() if cid in driver.registered}
    todo |= {f"{cid}-arbitration": "COMPLETED" for cid, k in driver.kind.items() if k == "arbitration" and cid in driver.registered}
    sem = asyncio.Semaphore(8)

    async def done(wid: str, expected: str) -> bool:
        async with sem:
            try:
                desc = await client.get_workflow_handle(wid).describe()
            except Exception:
                return False
        return bool(desc.status and desc.status.name == expected and not desc.raw_description.pending_activities)

    while todo and time.monotonic() - t0 < timeout:
        results = await asyncio.gather(*(done(w, s) for w, s in todo.items()))
        todo = {w: s for (w, s), ok in zip(list(todo.items()), results, strict=True) if not ok}
        if todo:
            await asyncio.sleep(3.0)
    return time.monotonic() - t0


# ------------------------------------------------------------------------------------------------
# The run.
# ------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    rng = random.Random(args.seed)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="petition-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    data_dir, code_dir = root / "data", root / "code"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    copy_code(code_dir)
    quiet_logging(root)
    tag = f"chaos{args.seed}"

    short = {"risk_warning": (1, "minutes"), "supervision": (1, "minutes"), "review_request": (1, "minutes")}
    long = {name: (1440, "minutes") for name in (
        "acceptance", "mediation_window", "handling", "review_decision", "re_review_request", "re_review_decision",
        "notify_immediate", "notify_priority", "arbitration_filing", "arbitration_decision",
    )}  # fmt: skip
    rules, text = rules_with(BENCH_RULES, "chaos-1", **short, **long)
    ladder_rules, _ = rules_with(BENCH_RULES, "chaos-ladder-1", **(short | long | {"review_request": (1440, "minutes")}))
    rules_file = root / "rules-chaos.toml"
    rules_file.write_text(text, encoding="utf-8")
    rule_sets = {k: (ladder_rules if k == "ladder" else rules) for k in KINDS}

    counts = {k: int(args.cases * SHARES[k]) for k in KINDS}
    counts["arbitration"] = args.cases - sum(counts[k] for k in KINDS if k != "arbitration")
    plan = [k for k in KINDS for _ in range(counts[k])]
    rng.shuffle(plan)
    # Registrations spread over the chaos (a worker's life is its start, ~4 s here, and its polling).
    register_s = max(1.0, args.cases / args.max_rate, args.kills * (args.kill_every + 4.0) - LADDER_TAIL_S)

    say(f"chaos drill: {args.cases} cases ({', '.join(f'{counts[k]} {k}' for k in KINDS)}), seed {args.seed}")
    say(f"  code {git_state()} (copied to {code_dir}); rules {rules.version} / {ladder_rules.version}; "
        f"PDFs {'off' if args.no_pdfs else 'on'}")  # fmt: skip
    say(f"  registrations over {register_s:.0f} s ({args.cases / register_s:.2f}/s); {args.kills} worker kills, each "
        f"after {max(MIN_WORK_S, 0.3 * args.kill_every):g}-{max(MIN_WORK_S, 1.7 * args.kill_every):g} s of polling; "
        f"{args.restarts} dev server restarts in between (down {args.down[0]:g}-{args.down[1]:g} s)")  # fmt: skip
    say(f"  machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; data in {root}")

    stack = Stack(root, data_dir, code_dir, rules_file, args.no_pdfs)
    from activities.db import dispose_engines
    from engine.config import Settings
    from engine.servers import connect, ensure_search_attributes

    settings = Settings(data_dir=data_dir, temporal_address=stack.address, task_queue=QUEUE, rules_file=rules_file)
    settings.key_ring()  # the payload keys exist before the worker's first start (both processes use them)
    settings.matter_key_secret()
    stop = asyncio.Event()
    background: list[asyncio.Task[Any]] = []
    status = 1
    try:
        stack.start_server()
        await stack.wait_server()
        stack.server_up = True
        for attempt in range(60):  # the port opens a moment before the frontend answers
            try:
                client = await connect(settings)
                break
            except RuntimeError:
                if attempt == 59:
                    raise
                await asyncio.sleep(1.0)
        await ensure_search_attributes(client, settings.namespace)
        from activities.db import get_engine

        get_engine(settings.resolved_database_url())  # the engine's tables, before the worker and the tracker
        stack.start_worker()
        tracker = Tracker(data_dir / "petitions.db")
        driver = Driver(client, settings, tracker, rule_sets, args.concurrency, tag, args.patience)
        background.append(asyncio.create_task(tracker.run(stop)))

        t0 = time.monotonic()

        async def progress() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.progress)
                    return
                except TimeoutError:
                    pass
                say(
                    f"  [{time.monotonic() - t0:6.0f} s] registered {len(driver.registered)}/{args.cases}, lives done "
                    f"{len(driver.finished)}, stuck {len(driver.stuck)}; worker kills {stack.kills}, server restarts "
                    f"{stack.restarts}; load {os.getloadavg()[0]:.2f}"
                )

        background.append(asyncio.create_task(progress()))
        chaos = asyncio.create_task(run_chaos(stack, client, args, register_s, rng, t0))

        lives: list[asyncio.Task[None]] = []
        from engine.desk import new_case_id

        for n, kind in enumerate(plan):
            delay = t0 + n * register_s / max(1, args.cases) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lives.append(asyncio.create_task(driver.life(n, kind, new_case_id())))
        await chaos
        chaos_s = time.monotonic() - t0
        say(f"  chaos over after {chaos_s:.0f} s: {stack.kills} kills, {stack.restarts} restarts; waiting for the lives")
        background.append(asyncio.create_task(keep_worker_alive(stack, stop)))
        await asyncio.gather(*lives)
        lives_s = time.monotonic() - t0
        settle_s = await settle(client, driver, args.settle_timeout)
        drill_s = time.monotonic() - t0
        await stack.settle_orphans()
        stop.set()  # the tracker, the progress lines and the worker's keeper: the rest reads the records
        await stack.stop_worker()  # gracefully: it finishes the PDFs it is rendering (30 s at most)
        say(f"  lives done after {lives_s:.0f} s; settled {settle_s:.0f} s later; accounting")

        acc = await asyncio.to_thread(account_database, root, data_dir, code_dir, dict(driver.kind), set(driver.registered), dict(driver.units))
        acc.notes.append(pdf_note(stack, data_dir))
        if args.recover_pdfs and not args.no_pdfs:
            acc.notes.append(await recover_pdfs(settings, stack, data_dir))
        temporal = await account_temporal(client, driver, acc)
        from activities.ledger import Ledger

        ledger = Ledger(get_engine(settings.resolved_database_url()), settings.resolved_ledger_key_file(), create_tables=False)
        acc.audit = await asyncio.to_thread(ledger.audit)
        status = report(args, stack, driver, acc, temporal, chaos_s, drill_s, time.monotonic() - t_start)
    finally:
        stop.set()
        for task in background:
            task.cancel()
        await stack.stop_all()
        dispose_engines()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return status


def report(args: argparse.Namespace, stack: Stack, driver: Driver, acc: Accounts, temporal: dict[str, Any], chaos_s: float, drill_s: float, total_s: float) -> int:
    say("")
    say(f"chaos: {stack.kills} worker kills (SIGKILL), {stack.worker_starts} worker starts, {stack.self_exits} workers "
        f"ended on their own; {stack.restarts} dev server restarts ({', '.join(f'{n} {s}' for s, n in stack.restart_signals.items()) or 'none'}"
        f"{f', down {min(stack.down_s):.1f}-{max(stack.down_s):.1f} s' if stack.down_s else ''}) over {chaos_s:.0f} s")  # fmt: skip
    say(f"footprint in the histories: {temporal['retried_activities']} activities ran more than once "
        f"({temporal['extra_attempts']} extra attempts), {temporal['activity_failures']} activities failed for good, "
        f"{temporal['wft_timeouts']} workflow tasks timed out, {temporal['wft_failed']} failed")  # fmt: skip
    for cause, n in temporal["wft_causes"].most_common(5):
        say(f"  workflow task failure x{n}: {cause}")
    say(f"processes of killed workers (the PDF renderer): {stack.orphans_exited} ended with their worker, "
        f"{stack.orphans_left} were left behind (killed by the drill {ORPHAN_GRACE_S:g} s later)")  # fmt: skip
    say(f"desk: {driver.register_retries} registrations retried, {driver.action_retries} actions retried, "
        f"{driver.applied_before_answer} refused because an earlier attempt had taken effect (its answer lost)")  # fmt: skip
    for what, n in driver.errors.most_common(10):
        example = driver.error_examples.get(what)
        say(f"  desk error x{n}: {what}" + (f" (e.g. {example})" if example else ""))
    say(f"workflows in the namespace: {temporal['statuses']} by type {temporal['by_type']}; digests {temporal['digests']}, "
        f"duplicate enrolment signals absorbed {temporal['signals_absorbed']}")  # fmt: skip
    for kind in KINDS:
        d = driver.durations.get(kind, [])
        if d:
            say(f"life of a {kind} case, register to done: p50 {median(d):.0f} s, p95 {percentile(d, 95):.0f} s, max {max(d):.0f} s (n={len(d)})")
    say("")
    say(f"{'':46s}{'expected':>9s}{'found':>9s}{'missing':>9s}{'duplic.':>9s}{'unexp.':>9s}")
    for name, ln in acc.lines.items():
        say(f"{name:46s}{ln.expected:9d}{ln.found:9d}{ln.missing:9d}{ln.duplicated:9d}{ln.unexpected:9d}")
    if acc.escalated:
        say(f"(notifications found through the fallback escalation instead of the tier's own notice: {acc.escalated})")
    for n in acc.notes:
        say(f"note: {n}")
    say(f"ledger audit: {'clean' if not acc.audit else f'{len(acc.audit)} problems'}")
    for p in acc.audit[:5]:
        say(f"  ledger: {p}")
    for p in acc.problems:
        say(f"PROBLEM {p}")
    if stack.orphans_left:
        acc.problems.append(f"processes left behind by killed workers: {stack.orphans_left}")
        say(f"PROBLEM {acc.problems[-1]}")
    if driver.stuck:
        stuck = Counter(driver.stuck.values())
        say(f"PROBLEM lives that did not finish: {len(driver.stuck)} ({dict(stuck)}; e.g. {sorted(driver.stuck)[:3]})")
    lost = sum(ln.missing for ln in acc.lines.values())
    duplicated = sum(ln.duplicated for ln in acc.lines.values())
    unexpected = sum(ln.unexpected for ln in acc.lines.values())
    docs, letters = acc.line("documents (by case and kind)"), acc.line("  of which letters (三函)")
    scores, notes = acc.line("score events"), acc.line("notifications (delivered, by idempotency key)")
    ok = not (lost or duplicated or unexpected or temporal["failed"] or acc.problems or acc.audit or driver.stuck)
    say(f"drill {drill_s:.0f} s, with setup and accounting {total_s:.0f} s; load average now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {'OK' if ok else 'FAILED'}")  # fmt: skip
    say(
        f"chaos cases={len(driver.kind)} kills={stack.kills} restarts={stack.restarts} documents={docs.found} "
        f"letters={letters.found} scores={scores.found} notifications={notes.found} lost={lost} duplicated={duplicated} "
        f"failed={temporal['failed']} seconds={drill_s:.0f}"
    )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, keep="the drill's folder", concurrency=(16, "registrations and actions"))
    cases = parser.add_argument_group("the cases")
    cases.add_argument("--cases", type=int, default=1000, help="cases to register")
    cases.add_argument("--seed", type=int, default=1, help="the mix, the order and the chaos's timing")
    cases.add_argument("--max-rate", type=float, default=2.0, help="registrations per second at most")
    cases.add_argument("--no-pdfs", action="store_true", help="the worker renders no PDFs (they cost ~1 s of CPU each)")
    cases.add_argument("--recover-pdfs", action="store_true",
                       help="after the accounting, one PDF keeper sweep (what the next worker start does), and count again")  # fmt: skip
    chaos = parser.add_argument_group("the chaos")
    chaos.add_argument("--kills", type=int, default=100, help="times the worker is killed (SIGKILL)")
    chaos.add_argument("--kill-every", type=float, default=10.0, help="mean seconds a worker polls before it is killed")
    chaos.add_argument("--restarts", type=int, default=3, help="times the dev server is stopped and started again")
    chaos.add_argument("--down", type=float, nargs=2, default=[3.0, 10.0], metavar=("MIN", "MAX"), help="seconds the server stays down")
    waits = parser.add_argument_group("waiting")
    waits.add_argument("--patience", type=float, default=7200.0, help="seconds a life waits for a step or retries an action")
    waits.add_argument("--settle-timeout", type=float, default=600.0, help="seconds to wait for every workflow to settle")
    waits.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.kills < 0 or args.restarts < 0:
        parser.error("--cases must be at least 1, --kills and --restarts at least 0")
    # The drill sets up its own engine: nothing in the caller's environment may point it elsewhere.
    for name in [n for n in os.environ if n.startswith(("PETITION_", "TEMPORAL_"))]:
        del os.environ[name]
    return asyncio.run(run(args))


if __name__ == "__main__":
    exit_with(main)
