"""End to end on the real dev server, as an operator runs it: `temporal server start-dev` with its
SQLite file, `worker.py` and `starter.py` as separate processes. The worker is killed (SIGKILL)
in the middle of the three-letters ladder and restarted; every letter and score event still
appears exactly once, and the case is findable by its search attributes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.servers import find_binary

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port, ui = _free_port(), _free_port()
    rules = (ROOT / "rules" / "default.toml").read_text(encoding="utf-8")
    # A ladder that climbs in minutes instead of weeks: rules are data.
    for name in ("risk_warning", "supervision"):
        head = f"[deadlines.{name}]"
        start = rules.index(head)
        end = rules.index("[", start + len(head))
        rules = rules[:start] + f'{head}\nlength = 1\nunit = "minutes"\nstarts = "letter_issued"\n\n' + rules[end:]
    rules = rules.replace('version = "2026.1"', 'version = "test-fast-ladder"')
    (tmp_path / "rules.toml").write_text(rules, encoding="utf-8")
    env = {
        **os.environ,
        "PETITION_DATA_DIR": str(tmp_path / "data"),
        "PETITION_RULES_FILE": str(tmp_path / "rules.toml"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "PETITION_TASK_QUEUE": "petitions-e2e",
        "PETITION_LOG_JSON": "true",
        "PETITION_WEB_PORT": str(_free_port()),
    }
    server = subprocess.Popen(
        [
            find_binary("temporal"), "server", "start-dev",
            "--db-filename", str(tmp_path / "temporal.sqlite"),
            "--port", str(port), "--ui-port", str(ui), "--headless", "--log-level", "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start_worker() -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, stdout=log, stderr=log)
        procs.append(p)
        return p

    try:
        _wait_port(port)
        # The staff who act in these tests: the first admin, then the accounts it creates.
        for who in (["admin", "--role", "admin"], ["clerk", "--role", "operator"], ["donghu", "--role", "unit", "--unit", "东湖镇政府"],
                    ["sup", "--role", "supervision"], ["hr", "--role", "hr"]):  # fmt: skip
            made = _starter(env, "--as", "admin", "users", "add", *who)
            assert made.returncode == 0, made.stderr
        yield {"env": env, "start_worker": start_worker, "port": port, "tmp": tmp_path}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.terminate()
        server.wait(20)


def _starter(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def _history(env: dict[str, str], case_id: str) -> dict[str, Any]:
    proc = _starter(env, "--as", "sup", "history", case_id)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _wait_for(env: dict[str, str], case_id: str, pred: Any, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            hist = _history(env, case_id)
            if pred(hist):
                return hist
        except (AssertionError, json.JSONDecodeError):
            pass
        time.sleep(1)
    raise TimeoutError(f"case {case_id} did not get there: {_history(env, case_id)['events'][-3:]}")


def _docs(hist: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in hist["events"] if e.get("document") == kind]


@pytest.mark.slow  # about two minutes of real time: the ladder climbs in minutes on a real server
def test_worker_killed_mid_ladder_loses_and_repeats_nothing(stack: dict[str, Any]) -> None:
    env = stack["env"]
    worker = stack["start_worker"]()
    reg = _starter(env, "--as", "clerk", "register", str(ROOT / "samples" / "02-pollution-high-risk.json"))
    assert reg.returncode == 0, reg.stderr
    case_id = reg.stdout.strip()

    hist = _wait_for(env, case_id, lambda h: _docs(h, "risk_warning_letter"), timeout=60)
    assert hist["risk"] == "high" and hist["rules_version"] == "test-fast-ladder"
    sms = [e for e in hist["events"] if e["kind"] == "notification" and e.get("tier") == "immediate"]
    assert len(sms) == 1 and sms[0]["recipient_role"] == "principal_leader"

    worker.send_signal(signal.SIGKILL)  # mid-ladder: the warning letter is out, its deadline runs
    worker.wait(10)
    time.sleep(3)
    stack["start_worker"]()

    act = _starter(env, "--as", "donghu", "act", case_id, "accept", "--data", json.dumps({"unit": "东湖镇政府"}, ensure_ascii=False))
    assert act.returncode == 0, act.stderr
    refused = _starter(env, "--as", "donghu", "act", case_id, "accept", "--data", json.dumps({"unit": "东湖镇政府"}, ensure_ascii=False))
    assert refused.returncode == 1 and "已作出是否受理的决定" in refused.stderr

    hist = _wait_for(env, case_id, lambda h: _docs(h, "accountability_letter"), timeout=200)
    for kind in ("risk_warning_letter", "supervision_letter", "accountability_letter"):
        assert len(_docs(hist, kind)) == 1, kind
    indexes = [e["ledger_index"] for e in hist["events"] if e["kind"] == "document"]
    assert sorted(indexes) == list(range(len(indexes)))  # the log: no gap, no duplicate
    assert [e["kind"] for e in hist["events"]].count("rejected") == 1

    scores = _starter(env, "--as", "hr", "scores", "--since", "0")
    lines = [json.loads(line) for line in scores.stdout.splitlines()]
    events, cursor = lines[:-1], lines[-1]["next_cursor"]
    assert [(e["rule"], e["points"]) for e in events] == [
        ("accountability", -5),
        ("accountability_official", 0),
        ("accountability_official", 0),
    ]
    assert json.loads(_starter(env, "--as", "hr", "scores", "--since", str(cursor)).stdout.splitlines()[-1]) == {"next_cursor": cursor}

    listed = subprocess.run(
        [
            find_binary("temporal"), "workflow", "list", "--address", env["TEMPORAL_ADDRESS"],
            "--query", "PetitionRisk = 'high' AND PetitionUnit = '东湖镇政府'", "--output", "json",
        ],
        capture_output=True, text=True, timeout=30,
    )
    assert case_id in listed.stdout, listed.stderr


# A petitioner who appears nowhere else in the project, so any sighting of these values is a leak.
_NAME, _ID, _PHONE = "欧阳青禾", "110101199001011237", "13912345678"


def _leaks(data: bytes) -> list[str]:
    """The personal values found in `data`: as UTF-8, as JSON's \\u escapes, as base64 of JSON."""
    import base64

    found = []
    for value in (_NAME, _ID, _PHONE):
        forms = {value.encode(), json.dumps(value).encode()[1:-1]}
        forms |= {base64.b64encode(json.dumps(value, ensure_ascii=False).encode())[4:-4]}
        if any(f in data for f in forms):
            found.append(value)
    return found


def test_no_personal_data_in_temporal_its_database_or_the_logs(stack: dict[str, Any], tmp_path: Path) -> None:
    import sqlite3

    env, tmp = stack["env"], stack["tmp"]
    stack["start_worker"]()
    db = tmp / "data" / "petitions.db"
    deadline = time.monotonic() + 30
    while not db.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    # A fault drill: for a moment the engine's database refuses petitioner rows, so `register_case`
    # fails with a database error about the very row that holds the name, number and phone.
    con = sqlite3.connect(db)
    con.execute("CREATE TRIGGER drill BEFORE INSERT ON petitioners BEGIN SELECT petition_drill_refuses(NEW.name); END")
    con.commit()
    intake = json.loads((ROOT / "samples" / "01-wage-arrears.json").read_text(encoding="utf-8"))
    intake["petitioners"] = [{"name": _NAME, "id_number": _ID, "phone": _PHONE}]
    (tmp_path / "intake.json").write_text(json.dumps(intake, ensure_ascii=False), encoding="utf-8")
    reg = _starter(env, "--as", "clerk", "register", str(tmp_path / "intake.json"))
    assert reg.returncode == 0, reg.stderr
    case_id = reg.stdout.strip()
    logs = lambda: b"".join(p.read_bytes() for p in sorted(tmp.glob("worker-*.log")))  # noqa: E731
    deadline = time.monotonic() + 30
    while b"petition_drill_refuses" not in logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert b"petition_drill_refuses" in logs(), "the drill's failure was not logged"
    con.execute("DROP TRIGGER drill")
    con.commit()
    con.close()
    hist = _wait_for(env, case_id, lambda h: any(e.get("stage") == "triaged" for e in h["events"]), timeout=90)
    assert hist["unit"]  # registered and triaged after the drill: nothing lost

    # The raw history, as anyone with the Temporal port sees it (no codec): ciphertext only.
    raw = subprocess.run(
        [find_binary("temporal"), "workflow", "show", "-w", case_id, "--address", env["TEMPORAL_ADDRESS"], "--output", "json"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert raw.returncode == 0 and case_id.encode() in raw.stdout, raw.stderr
    assert b"binary/encrypted" in raw.stdout or b"YmluYXJ5L2VuY3J5cHRlZA" in raw.stdout
    assert _leaks(raw.stdout) == [], "personal data in the raw history"
    # The server's own database (history, mutable state, the activity's last failure).
    server_files = [p for p in tmp.glob("temporal.sqlite*") if p.is_file()]
    assert server_files
    for path in server_files:
        assert _leaks(path.read_bytes()) == [], f"personal data in {path.name}"
    # The worker's logs, including the failing activity's error.
    assert _leaks(logs()) == [], "personal data in the worker's log"
    # The engine's own database keeps them (it must), readable by its owner only.
    assert oct(db.stat().st_mode & 0o777) == "0o600" and oct(db.parent.stat().st_mode & 0o777) == "0o700"
