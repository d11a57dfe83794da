"""Operations (issue 12): a worker whose port is taken refuses to start; the dev server it starts
dies with it; an urgent notice is retried until its tier's deadline and the timeline says what
really happened; a later major-risk flag and the ladder are findable by search attributes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from engine.config import Settings
from engine.desk import act, history, parse_intake, register
from engine.servers import (
    PID_FILE_NAME,
    StartRefused,
    check_ports,
    dev_server_db,
    reclaim_dev_server,
)
from rules.vocabulary import StaffRole
from tests.conftest import Harness
from tests.scenario_helpers import WAGES, kinds, one, petition, run
from workflows.models import (
    SA_LADDER,
    SA_LOCALITY,
    SA_OVERDUE,
    SA_RISK,
    SA_STAGE,
    SEARCH_ATTRIBUTES,
    Actor,
    CaseState,
)

ROOT = Path(__file__).resolve().parent.parent
UNIT = "青山区人社局"
CLERK = Actor(name="clerk01", role=StaffRole.operator)
SUPERVISOR = Actor(name="zhao.sup", role=StaffRole.supervision)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port something else listens on: a plain socket."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _worker_env(tmp_path: Path, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PETITION_", "TEMPORAL_"))}
    env.update(
        PETITION_DATA_DIR=str(tmp_path / "data"),
        PETITION_LOG_JSON="true",
        PETITION_SERVER_PORT=str(ports.get("server", _free_port())),
        PETITION_UI_PORT=str(ports.get("ui", _free_port())),
        PETITION_WEB_PORT=str(ports.get("web", _free_port())),
    )
    return env


# --- 1. a taken port fails loudly, before anything starts --------------------------------------


@pytest.mark.parametrize(
    ("which", "variable"),
    [("server", "PETITION_SERVER_PORT"), ("ui", "PETITION_UI_PORT"), ("web", "PETITION_WEB_PORT")],
)
def test_a_worker_whose_port_is_taken_refuses_to_start(
    tmp_path: Path, occupied: int, which: str, variable: str
) -> None:
    env = _worker_env(tmp_path, **{which: occupied})
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 15  # no dev server was started and waited for
    assert f"port {occupied} " in proc.stderr and variable in proc.stderr and "Nothing was started" in proc.stderr
    assert "embedded dev server started" not in proc.stderr + proc.stdout
    data = tmp_path / "data"
    assert not (data / "temporal.sqlite").exists() and not (data / PID_FILE_NAME).exists()


def test_with_a_temporal_address_only_the_web_port_is_checked(tmp_path: Path, occupied: int) -> None:
    settings = Settings(data_dir=tmp_path, server_port=occupied, ui_port=occupied, web_port=_free_port())
    check_ports(settings, embedded=False, web=True)  # the dev server's ports are not ours to use
    check_ports(settings.model_copy(update={"web_port": occupied}), embedded=False, web=False)
    with pytest.raises(StartRefused, match=f"port {occupied} .*PETITION_WEB_PORT"):
        check_ports(settings.model_copy(update={"web_port": occupied}), embedded=False, web=True)
    same = Settings(data_dir=tmp_path, server_port=7000, ui_port=7000, web_port=_free_port())
    with pytest.raises(StartRefused, match="PETITION_UI_PORT and PETITION_SERVER_PORT are both 7000"):
        check_ports(same, embedded=True, web=True)


# --- 1. the dev server never outlives its worker ----------------------------------------------


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; only waiting to be reaped by whoever adopted it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_dev_server_dies_with_a_killed_worker_and_stops_with_a_stopped_one(tmp_path: Path) -> None:
    env = _worker_env(tmp_path)
    log = tmp_path / "worker.log"
    pid_file = tmp_path / "data" / PID_FILE_NAME

    def start() -> tuple[subprocess.Popen[bytes], int]:
        with log.open("wb") as out:
            worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-web"], env=env, stdout=out, stderr=out)
        try:
            _wait(lambda: b"worker running" in log.read_bytes(), 60, "the worker did not start")
        except TimeoutError:
            worker.kill()
            raise
        record = json.loads(pid_file.read_text())
        assert record["worker_pid"] == worker.pid
        server = int(record["server_pid"])
        # its own session: a Ctrl-C at the terminal reaches the worker, which stops it in order
        assert os.getsid(server) == server != os.getsid(worker.pid)
        return worker, server

    worker, server = start()
    try:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        _wait(lambda: _gone(server), 20, "the dev server outlived its killed worker")
    finally:
        if not _gone(server):
            os.kill(server, signal.SIGKILL)
    # The next start finds the pid file of a dead server: stale, removed; the ports are free again.
    worker, server = start()
    try:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert _gone(server) and not pid_file.exists()
    finally:
        if worker.poll() is None:
            worker.kill()
        if not _gone(server):
            os.kill(server, signal.SIGKILL)


def _fake_worker(settings: Settings) -> tuple[subprocess.Popen[str], int]:
    """A process standing for a worker, with a child whose command line is a dev server's on this
    data folder (both only sleep): the pid of the "worker" and of its "server"."""
    server_cmd = [sys.executable, "-c", "import time; time.sleep(120)", "server", "start-dev", "--db-filename",
                  str(dev_server_db(settings))]  # fmt: skip
    code = f"import subprocess, time; p = subprocess.Popen({server_cmd!r}); print(p.pid, flush=True); time.sleep(120)"
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    server = int(worker.stdout.readline())
    _wait(lambda: "start-dev" in Path(f"/proc/{server}/cmdline").read_text(), 10, "no fake server")
    (settings.data_dir / PID_FILE_NAME).write_text(json.dumps({"server_pid": server, "worker_pid": worker.pid}))
    return worker, server


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dev_server_left_by_a_dead_worker_is_stopped_at_the_next_start_not_before(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    worker, server = _fake_worker(settings)
    try:
        # Its worker still runs: another engine on this data folder; refused, and left alone.
        with pytest.raises(StartRefused, match=f"another worker \\(pid {worker.pid}\\) is running on the data folder"):
            reclaim_dev_server(settings)
        assert not _gone(server)
        # The worker is killed and its server stays behind (no PR_SET_PDEATHSIG for this one).
        worker.kill()
        worker.wait(10)
        note = reclaim_dev_server(settings)
        assert note and f"pid {server}" in note
        assert _gone(server) and not (tmp_path / PID_FILE_NAME).exists()
        assert reclaim_dev_server(settings) is None  # nothing left to do
    finally:
        worker.kill()
        if not _gone(server):
            os.kill(server, signal.SIGKILL)


# --- 2. urgent notices: retried until the tier's deadline, then escalated, truthfully ----------


async def test_an_undeliverable_sms_is_retried_until_its_deadline_and_the_timeline_says_so() -> None:
    r = await run([], until="PT1H", risk="high", notify_adapter="failing")
    sms = one(r, "notification", tier="immediate")
    assert sms["channel"] == "sms" and sms["delivered"] is False and sms["adapter"] == "failing"
    assert sms["gave_up"] == "deadline" and "unreachable" in sms["error"]
    # 2, 4, 8, 16, 32 s, then every minute: some 30 attempts in the 30 minutes, not 4 in 14 seconds
    assert sms["attempts"] > 20
    assert 25 * 60 <= sms["offset_s"] <= 30 * 60
    alert = one(r, "notification", tier="overdue", deadline="notify_immediate")
    assert alert["recipient_role"] == "supervision_office" and alert["escalated_from"] == "principal_leader"
    assert (alert["channel"], alert["adapter"], alert["delivered"]) == ("duty_log", "recording", True)
    assert abs(alert["offset_s"] - sms["offset_s"]) <= 2  # at once (a loaded machine takes a second)
    # Nothing claims that an SMS went out.
    assert not [e for e in kinds(r, "notification") if e["delivered"] and e["channel"] == "sms"]


async def test_a_delivered_notice_names_the_adapter_that_delivered_it() -> None:
    r = await run([], until="PT1H", risk="high")
    sms = one(r, "notification", tier="immediate")
    assert (sms["channel"], sms["adapter"], sms["delivered"]) == ("sms", "recording", True)
    assert not kinds(r, "notification", tier="overdue")


# --- 3. search attributes: a later flag, the locality, the ladder ------------------------------


@pytest.fixture
async def lone(settings: Settings) -> AsyncIterator[Harness]:
    """A time-skipping server of the test's own: weeks are skipped, and no case left open by another
    test (its worker gone) holds the shared server's clock back."""
    from engine.servers import start_test_server
    from worker import build_worker

    env = await start_test_server(settings)
    try:
        task_queue = f"ops-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, settings, task_queue=task_queue):
            yield Harness(env, settings, task_queue)
    finally:
        await env.shutdown()


async def _case(h: Harness, **changes: Any) -> tuple[str, WorkflowHandle[Any, Any]]:
    intake = parse_intake(petition(responsible_unit=UNIT, disputed_amount=90000, **changes))
    reg = await register(h.env.client, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=CLERK)
    handle = h.env.client.get_workflow_handle(reg.case_id)
    for _ in range(100):
        if (await handle.query("state", result_type=CaseState)).stage != "registered":
            break
        await h.env.sleep(timedelta(seconds=1))
    return reg.case_id, handle


async def _attributes(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    found = (await handle.describe()).typed_search_attributes
    return {key.name: found.get(key) for key in SEARCH_ATTRIBUTES if found.get(key) is not None}


def test_the_new_attributes_are_registered_with_the_others() -> None:
    names = [k.name for k in SEARCH_ATTRIBUTES]
    assert names[-2:] == ["PetitionLocality", "PetitionLadder"] and len(set(names)) == len(names)
    assert "PetitionLocality" in (ROOT / "README.md").read_text() and "PetitionLadder" in (ROOT / "README.md").read_text()


async def test_a_later_major_risk_flag_updates_the_risk_and_the_ladder_attributes(lone: Harness) -> None:
    h = lone
    case_id, handle = await _case(h, risk="low")
    before = await _attributes(handle)
    assert before[SA_RISK.name] == "low" and before[SA_LOCALITY.name] == WAGES["locality"]
    assert SA_LADDER.name not in before

    await act(h.env.client, h.settings, case_id, "flag_major_risk", {"reason": "工人扬言集体上访"}, actor=SUPERVISOR)
    flagged = await _attributes(handle)
    assert flagged[SA_RISK.name] == "high" and flagged[SA_LADDER.name] == "warning"
    assert (await handle.query("state", result_type=CaseState)).risk == "high"
    event = one(history(h.settings, case_id), "ladder", ladder="flagged")
    assert (event["risk"], event["previous_risk"]) == ("high", "low")
    assert history(h.settings, case_id)["risk"] == "high"  # the case's record says so too

    await act(h.env.client, h.settings, case_id, "risk_resolved", {"note": "已化解"}, actor=SUPERVISOR)
    resolved = await _attributes(handle)
    assert resolved[SA_LADDER.name] == "ended" and resolved[SA_RISK.name] == "high"
    # No personal data in any of them: the petitioner's name, identity and phone number.
    person = WAGES["petitioners"][0]
    values = json.dumps(resolved, ensure_ascii=False, default=str)
    assert not [v for v in (person["name"], person["id_number"], person["phone"]) if v in values]


async def test_a_ladder_left_alone_ends_as_accountability(lone: Harness) -> None:
    h = lone
    case_id, handle = await _case(h, risk="high")
    assert (await _attributes(handle))[SA_LADDER.name] == "warning"
    await h.env.sleep(timedelta(days=20))  # the warning letter's 15 days ran out
    attrs = await _attributes(handle)
    assert attrs[SA_LADDER.name] == "supervision" and attrs[SA_OVERDUE.name] is True
    await h.env.sleep(timedelta(days=20))  # and the supervision letter's 10
    attrs = await _attributes(handle)
    assert attrs[SA_LADDER.name] == "accountability" and attrs[SA_STAGE.name] != "closed"
    assert [e["ladder"] for e in kinds(history(h.settings, case_id), "ladder")][-2:] == ["accountability", "ended"]
