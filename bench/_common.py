"""Shared plumbing of the benchmarks: the embedded dev server in a temporary data folder, intake
records that triage cheaply, CPU accounting from /proc, and small statistics helpers.

Not a benchmark itself; every script in bench/ imports it after putting the project root on
sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from engine.config import PROJECT_DIR, Settings
from rules.ruleset import RuleSet, load_rules, parse_rules
from rules.vocabulary import Category, Channel, OfficeLevel, Risk
from workflows.models import Intake, Petitioner

BENCH_RULES = PROJECT_DIR / "rules" / "bench.toml"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------
# The command line and the exit, alike in every benchmark.
# ------------------------------------------------------------------------------------------------


def bench_parser(
    doc: str | None,
    *,
    keep: str | None = None,
    profile: str | None = None,
    concurrency: tuple[int, str] | None = None,
) -> argparse.ArgumentParser:
    """A benchmark's command line, its module docstring as the help (laid out as written).

    `keep` names the folder `--keep` keeps (the data folder, the drill's folder...); `profile`, when
    given, adds `--profile FILE` and says when the profile runs (an empty string: the whole run);
    `concurrency` (its default, what is in flight), when given, adds `--concurrency N`: how many
    registrations, lives... at most at once (as `bounded` runs them).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if profile is not None:
        parser.add_argument("--profile", type=Path, help=f"write a pyinstrument text profile of this process{profile} here")
    if keep is not None:
        parser.add_argument("--keep", type=Path, help=f"keep {keep} here (default: a temporary one, removed)")
    if concurrency is not None:
        default, what = concurrency
        parser.add_argument("--concurrency", type=int, default=default, help=f"{what} in flight at once")
    return parser


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's `main` and leave with its exit code at once, the output flushed first:
    `os._exit` does not wait for the threads the worker and the SDK may leave behind."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def bench_rules() -> RuleSet:
    return load_rules(BENCH_RULES)


def rules_with(base_file: Path, version: str, **deadlines: tuple[int, str]) -> tuple[RuleSet, str]:
    """A copy of a rule file with some deadlines replaced (name -> (length, unit)); returns the
    validated rule set and its TOML text (written next to the benchmark's data for the record)."""
    import re

    text = base_file.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', text, count=1)
    for name, (length, unit) in deadlines.items():
        pattern = rf"(\[deadlines\.{name}\][^\n]*\nlength = )\d+(\nunit = )\"\w+\""
        text, n = re.subn(pattern, rf'\g<1>{length}\g<2>"{unit}"', text, count=1)
        if n != 1:
            raise ValueError(f"deadline {name!r} not found in {base_file}")
    return parse_rules(text, f"{base_file.name} ({version})"), text


def quiet_logging(data_dir: Path) -> Path:
    """The worker's own logging (structlog JSON at INFO, as `worker.py` runs it), written to a file
    in the data folder instead of the terminal, so the benchmark's output stays readable and the
    worker still pays for its log lines."""
    import sys

    from engine.logs import configure_logging

    path = data_dir / "worker.log"
    fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- lives as long as the process
    saved = sys.stderr
    sys.stderr = fh
    try:
        configure_logging(json=True)
    finally:
        sys.stderr = saved
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# Intake records: category and risk given, so triage only looks up the unit and leaders.
# ------------------------------------------------------------------------------------------------

_LOCALITIES = ("青山区", "东湖镇")


def intake(i: int, risk: Risk, *, tag: str = "bench") -> Intake:
    """A distinct petitioner and matter per `i` (so no registration joins an open case as a
    repeat visit); a civil case under the mediation limit, facts clear, category and risk given."""
    return Intake(
        channel=Channel.visit,
        office_level=OfficeLevel.county,
        locality=_LOCALITIES[i % len(_LOCALITIES)],
        petitioners=[Petitioner(name=f"测试{tag}{i}", phone=f"138{i % 100_000_000:08d}")],
        title=f"装修公司拖欠工资 {tag}-{i}",
        content="我在某装修公司做油漆工四个月,公司拖欠工资2万元,有考勤表和老板写的欠条。",
        category=Category.labor_social_security,
        risk=risk,
        disputed_amount=20000,
        facts_clear=True,
    )


# ------------------------------------------------------------------------------------------------
# CPU accounting: /proc/<pid>/stat utime + stime, and per thread of this process.
# ------------------------------------------------------------------------------------------------


def proc_cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a whole process (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _thread_groups() -> dict[int, str]:
    """Thread id -> group name, for the threads of this process."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    groups: dict[int, str] = {}
    for tid_s in os.listdir("/proc/self/task"):
        tid = int(tid_s)
        name = names.get(tid)
        if tid == os.getpid():
            groups[tid] = "event loop (main thread: client, activities, SDK glue)"
        elif name is None:
            try:
                comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            except OSError:
                comm = "?"
            core = comm.startswith(("tokio", "workflow-proc"))
            groups[tid] = "native: Temporal core (Rust bridge threads)" if core else f"native: {comm}"
        elif name.startswith("asyncio_"):
            groups[tid] = "to_thread pool (SQLite, ledger, notification log)"
        elif name.startswith("temporal_workflow_"):
            groups[tid] = "workflow task threads (sandboxed workflow code)"
        else:
            groups[tid] = f"python: {name.rstrip('0123456789-_')}"
    return groups


def _thread_cpu(tid: int) -> float:
    try:
        with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_cpu() -> tuple[float, float, float]:
    """(busy, idle, steal) CPU seconds of the whole machine since boot, all cores summed."""
    with open("/proc/stat", encoding="ascii") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _CLK_TCK, (idle + iowait) / _CLK_TCK, steal / _CLK_TCK


@dataclass
class CpuMeter:
    """CPU seconds of the temporal server process and of this process (split by thread group)
    between `start()` and `stop()`."""

    server_pid: int | None
    wall_s: float = 0.0
    server_s: float = 0.0
    worker_s: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)
    machine_busy_s: float = 0.0
    machine_steal_s: float = 0.0
    _m0: tuple[float, float, float] = (0.0, 0.0, 0.0)
    _t0: float = 0.0
    _srv0: float = 0.0
    _me0: float = 0.0
    _th0: dict[int, float] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._srv0 = proc_cpu_s(self.server_pid) if self.server_pid else 0.0
        self._me0 = proc_cpu_s()
        self._th0 = {tid: _thread_cpu(tid) for tid in _thread_groups()}
        self._m0 = machine_cpu()
        return self

    def stop(self) -> CpuMeter:
        self.wall_s = time.perf_counter() - self._t0
        m1 = machine_cpu()
        self.machine_busy_s = m1[0] - self._m0[0]
        self.machine_steal_s = m1[2] - self._m0[2]
        self.server_s = (proc_cpu_s(self.server_pid) if self.server_pid else 0.0) - self._srv0
        self.worker_s = proc_cpu_s() - self._me0
        threads: dict[str, float] = {}
        for tid, group in _thread_groups().items():
            threads[group] = threads.get(group, 0.0) + _thread_cpu(tid) - self._th0.get(tid, 0.0)
        self.threads = dict(sorted(threads.items(), key=lambda kv: -kv[1]))
        return self

    def add(self, other: CpuMeter) -> None:
        self.wall_s += other.wall_s
        self.server_s += other.server_s
        self.worker_s += other.worker_s
        self.machine_busy_s += other.machine_busy_s
        self.machine_steal_s += other.machine_steal_s
        for g, s in other.threads.items():
            self.threads[g] = self.threads.get(g, 0.0) + s
        self.threads = dict(sorted(self.threads.items(), key=lambda kv: -kv[1]))

    def summary(self, label: str) -> str:
        w = max(self.wall_s, 1e-9)
        others = max(0.0, self.machine_busy_s - self.server_s - self.worker_s)
        lines = [
            f"cpu[{label}] wall={self.wall_s:.1f}s server(temporal)={self.server_s:.1f}s "
            f"({100 * self.server_s / w:.0f}% of a core) worker+client(this process)={self.worker_s:.1f}s "
            f"({100 * self.worker_s / w:.0f}% of a core) other processes={others:.1f}s steal={self.machine_steal_s:.1f}s; "
            f"machine busy {100 * self.machine_busy_s / w / (os.cpu_count() or 1):.0f}% of {os.cpu_count()} cores"
        ]
        for group, s in self.threads.items():
            if s >= 0.05:
                lines.append(f"cpu[{label}]   {group}: {s:.1f}s")
        return "\n".join(lines)


def find_server_pid(port: int) -> int | None:
    """The pid of the `temporal server start-dev` process listening on `port` (a child of ours)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        args = [a.decode(errors="replace") for a in cmd]
        if ppid == me and args and Path(args[0]).name == "temporal" and str(port) in args:
            return int(entry)
    return None


# ------------------------------------------------------------------------------------------------
# The embedded dev server in a temporary data folder.
# ------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    env: Any
    settings: Settings
    server_pid: int | None
    data_dir: Path
    keep: bool = False

    @property
    def client(self) -> Any:
        return self.env.client

    async def close(self) -> None:
        from activities.db import dispose_engines

        try:
            await self.env.shutdown()
        finally:
            dispose_engines()
            if not self.keep:
                shutil.rmtree(self.data_dir, ignore_errors=True)


async def start_bench(prefix: str, keep: Path | None = None, server_args: list[str] | None = None, **settings: Any) -> Bench:
    """The embedded default (`temporal server start-dev` with its SQLite file) on free ports.

    `server_args` (experiments only, e.g. ["--sqlite-pragma", "journal_mode=wal"]) starts the same
    server as engine.servers.start_dev_server with extra command-line arguments.
    """
    from engine.servers import start_dev_server

    data_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"petition-{prefix}-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = Settings(data_dir=data_dir, server_port=free_port(), ui_port=free_port(), **settings)
    quiet_logging(data_dir)
    if server_args:
        print(f"experiment: dev server with extra arguments {server_args}", flush=True)
    env = await start_dev_server(cfg, extra_args=server_args)
    return Bench(env=env, settings=cfg, server_pid=find_server_pid(cfg.server_port), data_dir=data_dir, keep=keep is not None)


async def bounded(n: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Run job(0..n-1) with at most `concurrency` in flight; results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await job(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def step_spans(events: list[Any], workflow_task: str) -> Iterator[tuple[str, float, float, Any]]:
    """Each completed workflow task and activity of a history, in order: (its name, seconds it waited
    to be picked up (scheduled -> started), seconds it ran (started -> completed), its completion
    event). Workflow tasks are all named `workflow_task`, activities by their type."""
    from temporalio.api.enums.v1 import EventType

    when = {e.event_id: e.event_time.ToDatetime() for e in events}
    names: dict[int, str] = {}
    for e in events:
        t = EventType.Name(e.event_type)
        if t == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif t == "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED":
            names[e.event_id] = workflow_task
        elif t in ("EVENT_TYPE_ACTIVITY_TASK_COMPLETED", "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"):
            a = e.activity_task_completed_event_attributes if "ACTIVITY" in t else e.workflow_task_completed_event_attributes
            queued = (when[a.started_event_id] - when[a.scheduled_event_id]).total_seconds()
            ran = (when[e.event_id] - when[a.started_event_id]).total_seconds()
            yield names.get(a.scheduled_event_id, "?"), queued, ran, e


def utcnow() -> datetime:
    return datetime.now(UTC)


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(-(-p * len(xs) // 100)) - 1))
    return xs[k]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


# ------------------------------------------------------------------------------------------------
# Optional profiling of this process with pyinstrument (a dev extra), main thread and workflow threads.
# ------------------------------------------------------------------------------------------------


class Profiling:
    """pyinstrument on the event loop thread plus every workflow-task thread (each thread has its
    own profiler; pyinstrument profiles only the thread that starts it). Text reports on stop."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._main: Any = None
        self._lock = threading.Lock()
        self._threads: dict[int, Any] = {}
        self._active = False

    def executor(self, max_workers: int) -> Any:
        """A workflow task executor whose threads run under pyinstrument while profiling is on."""
        from concurrent.futures import ThreadPoolExecutor

        prof = self

        class _Profiled(ThreadPoolExecutor):
            def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                def run() -> Any:
                    prof._ensure_thread_profiler()
                    return fn(*args, **kwargs)

                return super().submit(run)

        return _Profiled(max_workers=max_workers, thread_name_prefix="temporal_workflow_profiled")

    def _ensure_thread_profiler(self) -> None:
        if not self._active:
            return
        tid = threading.get_ident()
        if tid in self._threads:
            return
        from pyinstrument import Profiler

        p = Profiler(interval=0.001, async_mode="disabled")
        p.start()
        with self._lock:
            self._threads[tid] = p

    def start(self) -> None:
        if self.path is None:
            return
        from pyinstrument import Profiler

        self._active = True
        self._main = Profiler(interval=0.001, async_mode="disabled")
        self._main.start()

    def stop(self, executor: Any = None) -> None:
        if self.path is None or self._main is None:
            return
        self._active = False
        self._main.stop()
        sessions = []
        # Each workflow thread stops its own profiler (setprofile is per thread): one blocking
        # job per thread, held at a barrier so that every thread takes exactly one.
        if executor is not None and self._threads:
            n = len(executor._threads)
            barrier = threading.Barrier(n)
            done: list[Any] = []

            def stop_here() -> None:
                barrier.wait(timeout=30)
                p = self._threads.get(threading.get_ident())
                if p is not None and p.is_running:
                    done.append(p.stop())

            futures = [executor.submit(stop_here) for _ in range(n)]
            for f in futures:
                f.result(timeout=60)
            sessions = done
        from pyinstrument.renderers import ConsoleRenderer
        from pyinstrument.session import Session

        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tree = ConsoleRenderer(unicode=True, color=False, time="seconds", processor_options={"filter_threshold": 0.003})
        flat = ConsoleRenderer(unicode=True, color=False, time="seconds", flat=True, show_all=True)
        main_session = self._main.last_session
        out = [
            "# event loop thread (client, activities, SDK): call tree (epoll.poll is idle time)\n",
            tree.render(main_session),
            "\n# event loop thread: self time by function (flat)\n",
            "\n".join(flat.render(main_session).splitlines()[:60]),
        ]
        if sessions:
            combined = sessions[0]
            for s in sessions[1:]:
                combined = Session.combine(combined, s)
            out += [
                "\n\n# workflow task threads (sandboxed workflow code), combined; SimpleQueue.get is idle time\n",
                tree.render(combined),
                "\n# workflow task threads: self time by function (flat)\n",
                "\n".join(flat.render(combined).splitlines()[:60]),
            ]
        self.path.write_text("".join(out), encoding="utf-8")
        # The raw sessions too, to render differently later (`pyinstrument --load=FILE`).
        main_session.save(str(self.path.with_suffix(".main.pyisession")))
        if sessions:
            combined.save(str(self.path.with_suffix(".workflows.pyisession")))
        print(f"profile written to {self.path}", flush=True)


def project_dir() -> Path:
    return PROJECT_DIR
