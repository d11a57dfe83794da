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
    proc = _starter(env, "history", case_id)
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


def test_worker_killed_mid_ladder_loses_and_repeats_nothing(stack: dict[str, Any]) -> None:
    env = stack["env"]
    worker = stack["start_worker"]()
    reg = _starter(env, "register", str(ROOT / "samples" / "02-pollution-high-risk.json"))
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

    act = _starter(env, "act", case_id, "accept", "--data", json.dumps({"unit": "东湖镇政府"}, ensure_ascii=False))
    assert act.returncode == 0, act.stderr
    refused = _starter(env, "act", case_id, "accept", "--data", json.dumps({"unit": "东湖镇政府"}, ensure_ascii=False))
    assert refused.returncode == 1 and "already decided" in refused.stderr

    hist = _wait_for(env, case_id, lambda h: _docs(h, "accountability_letter"), timeout=200)
    for kind in ("risk_warning_letter", "supervision_letter", "accountability_letter"):
        assert len(_docs(hist, kind)) == 1, kind
    indexes = [e["ledger_index"] for e in hist["events"] if e["kind"] == "document"]
    assert sorted(indexes) == list(range(len(indexes)))  # the log: no gap, no duplicate
    assert [e["kind"] for e in hist["events"]].count("rejected") == 1

    scores = _starter(env, "scores", "--since", "0")
    lines = [json.loads(line) for line in scores.stdout.splitlines()]
    events, cursor = lines[:-1], lines[-1]["next_cursor"]
    assert [(e["rule"], e["points"]) for e in events] == [
        ("accountability", -5),
        ("accountability_official", 0),
        ("accountability_official", 0),
    ]
    assert json.loads(_starter(env, "scores", "--since", str(cursor)).stdout.splitlines()[-1]) == {"next_cursor": cursor}

    listed = subprocess.run(
        [
            find_binary("temporal"), "workflow", "list", "--address", env["TEMPORAL_ADDRESS"],
            "--query", "PetitionRisk = 'high' AND PetitionUnit = '东湖镇政府'", "--output", "json",
        ],
        capture_output=True, text=True, timeout=30,
    )
    assert case_id in listed.stdout, listed.stderr
