"""Witnessing the document log (`starter.py ledger monitor`, engine/witness.py): a witness pins the
log's key, accepts a head only with a verified consistency proof from the last one it accepted, and
alarms on a fork, a rollback, a changed key or a bad signature, keeping its state as evidence.

The log is a real `Ledger` in a temporary data folder, served over HTTP by a stand-in of the web
app's two routes (built on the same `engine.reports` functions), or read with `--data DIR`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import create_engine

from activities.ledger import Ledger, make_entry, sth_signing_input
from engine.config import Settings
from engine.desk import InputError
from engine.reports import ledger_consistency, ledger_head
from engine.witness import (
    EXIT_ALARM,
    CheckResult,
    FolderLog,
    HttpLog,
    Witness,
    WitnessError,
    default_state_path,
    load_state,
    watch,
)
from starter import EXIT_BAD_INPUT, EXIT_OK, main

# --------------------------------------------------------------------------------------------------
# A log in a data folder, and a stand-in for the web app's /ledger/sth and /ledger/consistency
# --------------------------------------------------------------------------------------------------


def docs(n: int, *, forged_from: int | None = None) -> list[bytes]:
    """n document entries; from index `forged_from` on, different documents (a rewritten history)."""
    out = []
    for i in range(n):
        forged = forged_from is not None and i >= forged_from
        body = f"第{i}号文书{' (改写)' if forged else ''}".encode()
        issued = datetime(2026, 3, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=i)
        out.append(make_entry(hashlib.sha256(body).hexdigest(), "notice", f"XF-{i:04d}", issued))
    return out


def key_file(folder: Path) -> Path:
    return folder / "keys" / "ledger_ed25519.pem"


def build_folder(folder: Path, entries: list[bytes], *, key_from: Path | None = None) -> Ledger:
    """An engine data folder holding a log of `entries` (signed with a copy of `key_from`'s key)."""
    key = key_file(folder)
    folder.mkdir(parents=True, mode=0o700)
    if key_from is not None:
        key.parent.mkdir(mode=0o700)
        shutil.copy(key_file(key_from), key)
        key.chmod(0o600)
    ledger = Ledger(create_engine(f"sqlite:///{folder / 'petitions.db'}"), key)
    append(ledger, entries)
    ledger.signed_head()
    return ledger


def append(ledger: Ledger, entries: list[bytes]) -> None:
    ledger.append_many([(e, hashlib.sha256(e).hexdigest()) for e in entries])


class StandIn:
    """Serves the log of `folder` as the web app does; `tamper` rewrites the head before it is sent."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.base = ""
        self.requests: list[str] = []


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PETITION_DATABASE_URL", "PETITION_LEDGER_KEY_FILE", "PETITION_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def standin() -> Iterator[StandIn]:
    served = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            served.requests.append(self.path)
            assert served.folder is not None
            settings = Settings(data_dir=served.folder)
            try:
                if url.path == "/ledger/sth":
                    body = ledger_head(settings)
                    body["public_key"] = body["public_key_b64"]
                    if served.tamper is not None:
                        body = served.tamper(body)
                elif url.path == "/ledger/consistency":
                    query = parse_qs(url.query)
                    body = ledger_consistency(settings, int(query["old"][0]), int(query["new"][0]))
                else:
                    self._send(404, {"detail": "Not Found"})
                    return
            except InputError as exc:
                self._send(400, {"detail": str(exc)})
                return
            self._send(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def witness(standin: StandIn, state: Path, **kwargs: Any) -> Witness:
    return Witness(HttpLog(standin.base, timeout=5), state, **kwargs)


def run(*argv: str) -> int:
    return asyncio.run(main(list(argv)))


# --------------------------------------------------------------------------------------------------
# Growth is accepted with a proof; the state follows
# --------------------------------------------------------------------------------------------------


def test_first_check_pins_the_key_and_growth_is_accepted_only_with_a_verified_proof(
    tmp_path: Path, standin: StandIn
) -> None:
    log = build_folder(tmp_path / "a", docs(5))
    standin.folder = tmp_path / "a"
    state = tmp_path / "w" / "state.json"

    first = witness(standin, state).check()
    assert first.status == "ok" and first.pinned and first.tree_size == 5
    assert "trust on first use" in first.message and first.root_hex == log.root().hex()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert saved["tree_size"] == 5 and saved["root_hex"] == log.root().hex()
    assert saved["public_key_b64"] == log.public_key_b64 and saved["key_id"] == log.key_id
    assert saved["signature_b64"] and saved["timestamp"]
    assert not [p for p in state.parent.iterdir() if p.name.endswith(".tmp")]  # replaced atomically

    append(log, docs(12)[5:])
    grown = witness(standin, state).check()
    assert grown.status == "ok" and not grown.pinned and grown.previous_size == 5 and grown.tree_size == 12
    assert "consistent with size 5" in grown.message and "size 12 (+7)" in grown.line()
    assert any(r.startswith("/ledger/consistency?old=5&new=12") for r in standin.requests)
    loaded = load_state(state)
    assert loaded is not None and loaded.tree_size == 12 and loaded.root_hex == log.root().hex()

    # Nothing new: the same root, no proof asked for, the state left as it is.
    standin.requests.clear()
    before = state.read_bytes()
    same = witness(standin, state).check()
    assert same.status == "ok" and "unchanged" in same.message
    assert standin.requests == ["/ledger/sth"] and state.read_bytes() == before


def test_a_key_given_up_front_is_pinned_and_a_different_one_alarms(tmp_path: Path, standin: StandIn) -> None:
    log = build_folder(tmp_path / "a", docs(3))
    standin.folder = tmp_path / "a"
    other = base64.b64decode(Ledger(log.engine, tmp_path / "other.pem", create_tables=False).public_key_b64)

    wrong = witness(standin, tmp_path / "s1.json", public_key=other).check()
    assert wrong.status == "alarm" and wrong.alarm == "key-changed"
    assert "--public-key" in wrong.message and not (tmp_path / "s1.json").exists()

    right = witness(standin, tmp_path / "s2.json", public_key=base64.b64decode(log.public_key_b64)).check()
    assert right.status == "ok" and "given with --public-key" in right.message


# --------------------------------------------------------------------------------------------------
# Alarms: the state stays as it was
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def pinned(tmp_path: Path, standin: StandIn) -> tuple[Ledger, Path]:
    """Log A with 6 entries, served and accepted once; returns it and the witness's state file."""
    log = build_folder(tmp_path / "a", docs(6))
    standin.folder = tmp_path / "a"
    state = tmp_path / "w" / "state.json"
    assert witness(standin, state).check().status == "ok"
    return log, state


def evidence(state: Path) -> list[dict[str, Any]]:
    path = state.with_name("state.alarms.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_rewritten_history_is_a_fork_and_the_old_head_is_kept(
    tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]
) -> None:
    log, state = pinned
    before = state.read_bytes()
    # Same key, same first 4 entries, a different 5th and more after: a longer log that is not A grown.
    forked = build_folder(tmp_path / "b", docs(11, forged_from=4), key_from=tmp_path / "a")
    assert forked.key_id == log.key_id
    standin.folder = tmp_path / "b"

    result = witness(standin, state).check()
    assert result.status == "alarm" and result.alarm == "fork" and result.exit_status() == EXIT_ALARM
    assert "does not verify" in result.message and "It now gives root" in result.message
    assert result.tree_size == 11 and result.previous_size == 6 and result.proof_hex
    assert "ALARM fork" in result.line()
    assert state.read_bytes() == before  # the evidence stays

    # The alarm is recorded once with both heads and the proof, however often it repeats.
    witness(standin, state).check()
    [record] = evidence(state)
    assert (
        record["alarm"] == "fork"
        and record["accepted"]["tree_size"] == 6
        and record["head"]["tree_size"] == 11
    )
    assert record["proof_hex"] == result.proof_hex
    assert stat.S_IMODE(state.with_name("state.alarms.jsonl").stat().st_mode) == 0o600

    # The true log grown on is still accepted afterwards.
    append(log, docs(9)[6:])
    standin.folder = tmp_path / "a"
    assert witness(standin, state).check().status == "ok"


def test_the_same_size_with_another_root_is_a_fork(
    tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]
) -> None:
    _, state = pinned
    before = state.read_bytes()
    build_folder(tmp_path / "b", docs(6, forged_from=5), key_from=tmp_path / "a")
    standin.folder = tmp_path / "b"
    result = witness(standin, state).check()
    assert result.alarm == "fork" and "two different roots for the same 6 entries" in result.message
    assert state.read_bytes() == before


def test_a_smaller_tree_is_a_rollback(tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]) -> None:
    _, state = pinned
    before = state.read_bytes()
    build_folder(tmp_path / "old", docs(4), key_from=tmp_path / "a")  # an older copy of the same log
    standin.folder = tmp_path / "old"
    result = witness(standin, state).check()
    assert (
        result.alarm == "rollback"
        and "shows 4 entries" in result.message
        and "fewer than the 6" in result.message
    )
    assert state.read_bytes() == before


def test_a_new_key_alarms_unless_accepted_and_history_must_still_hold(
    tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]
) -> None:
    log, state = pinned
    before = state.read_bytes()
    # The same entries grown by two, signed by a new key.
    rekeyed = build_folder(tmp_path / "k", docs(8))
    assert rekeyed.key_id != log.key_id
    standin.folder = tmp_path / "k"
    result = witness(standin, state).check()
    assert result.alarm == "key-changed" and "--accept-new-key" in result.message
    assert state.read_bytes() == before

    # Told to accept it: the head verifies with the new key, the proof from 6 to 8 holds, it is pinned.
    accepted = witness(standin, state, accept_new_key=True).check()
    assert accepted.status == "ok" and accepted.pinned and "new key" in accepted.message
    loaded = load_state(state)
    assert loaded is not None and loaded.key_id == rekeyed.key_id and loaded.tree_size == 8

    # A new key does not excuse a rewritten history.
    build_folder(tmp_path / "k2", docs(10, forged_from=2))
    standin.folder = tmp_path / "k2"
    forked = witness(standin, state, accept_new_key=True).check()
    assert forked.alarm == "fork"
    loaded = load_state(state)
    assert loaded is not None and loaded.key_id == rekeyed.key_id

    # A key given on the command line that differs from the pinned one is bad input without the flag.
    with pytest.raises(WitnessError, match="--accept-new-key"):
        witness(standin, state, public_key=base64.b64decode(log.public_key_b64))


def _flip(b64: str, pos: int = 5) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[pos] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_bad_signatures_alarm(tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]) -> None:
    log, state = pinned
    before = state.read_bytes()
    append(log, docs(7)[6:])
    stranger = Ed25519PrivateKey.generate()

    def signed_by_stranger(head: dict[str, Any]) -> dict[str, Any]:
        # Carries the pinned key's name, but signed by another key.
        signature = stranger.sign(
            sth_signing_input(head["tree_size"], bytes.fromhex(head["root_hex"]), head["timestamp"])
        )
        return {**head, "signature_b64": base64.b64encode(signature).decode()}

    tampers: list[Callable[[dict[str, Any]], dict[str, Any]]] = [
        lambda h: {**h, "signature_b64": _flip(h["signature_b64"])},
        lambda h: {**h, "root_hex": bytes.fromhex(h["root_hex"])[::-1].hex()},
        lambda h: {**h, "tree_size": h["tree_size"] + 1},
        lambda h: {**h, "timestamp": h["timestamp"].replace("Z", "+00:00")},
        lambda h: {**h, "signature_b64": "not base64!"},
        signed_by_stranger,
    ]
    for tamper in tampers:
        standin.tamper = tamper
        result = witness(standin, state).check()
        assert result.status == "alarm" and result.alarm == "bad-signature", result
        assert "forged or altered" in result.message
        assert state.read_bytes() == before
    standin.tamper = None
    assert witness(standin, state).check().status == "ok"


def test_a_malformed_answer_or_an_altered_state_file_is_not_accepted(
    tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]
) -> None:
    _, state = pinned
    standin.tamper = lambda h: {"hello": "world"}
    result = witness(standin, state).check()
    assert result.status == "error" and "did not answer a signed tree head" in result.message
    standin.tamper = None

    saved = json.loads(state.read_text())
    saved["tree_size"] = 3
    state.write_text(json.dumps(saved))
    with pytest.raises(WitnessError, match="state file was altered"):
        witness(standin, state)
    state.write_text("{")
    with pytest.raises(WitnessError, match="not a witness state file"):
        witness(standin, state)


# --------------------------------------------------------------------------------------------------
# Watching: one line per check, checking goes on after an alarm
# --------------------------------------------------------------------------------------------------


def test_a_watch_goes_on_after_an_alarm_and_reports_it_in_its_status(
    tmp_path: Path, standin: StandIn, pinned: tuple[Ledger, Path]
) -> None:
    _, state = pinned
    results: list[CheckResult] = []
    calls = 0

    def toggling(head: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {**head, "signature_b64": _flip(head["signature_b64"])} if calls == 2 else head

    standin.tamper = toggling
    status = asyncio.run(watch(witness(standin, state), results.append, interval=0.01, max_checks=3))
    assert [r.status for r in results] == ["ok", "alarm", "ok"] and status == EXIT_ALARM
    status = asyncio.run(watch(witness(standin, state), results.append, interval=0.01, max_checks=2))
    assert status == EXIT_OK


# --------------------------------------------------------------------------------------------------
# Through the operator's tool (no account needed: outside witnesses have none)
# --------------------------------------------------------------------------------------------------


def test_cli_url_mode_json_lines_and_exit_statuses(
    tmp_path: Path, standin: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    log = build_folder(tmp_path / "a", docs(5))
    standin.folder = tmp_path / "a"
    state = str(tmp_path / "w.json")
    assert run("ledger", "monitor", "--url", standin.base + "/", "--state", state, "--json") == EXIT_OK
    line = json.loads(capsys.readouterr().out)
    assert line["status"] == "ok" and line["tree_size"] == 5 and line["source"] == standin.base

    append(log, docs(8)[5:])
    assert run("ledger", "monitor", "--url", standin.base, "--state", state, "--once") == EXIT_OK
    out = capsys.readouterr().out
    assert " ok " in out and "size 8 (+3)" in out and f"root {log.root().hex()[:16]}" in out

    build_folder(tmp_path / "b", docs(9, forged_from=1), key_from=tmp_path / "a")
    standin.folder = tmp_path / "b"
    assert run("ledger", "monitor", "--url", standin.base, "--state", state) == EXIT_ALARM
    assert "ALARM fork" in capsys.readouterr().out

    # The default state file lives under ~/.petition-witness, named after the address, owner-only.
    standin.folder = tmp_path / "a"
    assert run("ledger", "monitor", "--url", standin.base) == EXIT_OK
    default = default_state_path(standin.base)
    assert default.parent == tmp_path / "home" / ".petition-witness" and default.is_file()
    assert stat.S_IMODE(default.stat().st_mode) == 0o600


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_bad_input_is_a_sentence(
    tmp_path: Path, standin: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "w.json")
    assert (
        run("ledger", "monitor", "--url", f"http://127.0.0.1:{_closed_port()}", "--state", state)
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert "cannot reach http://127.0.0.1:" in err and "Traceback" not in err
    assert not Path(state).exists()

    build_folder(tmp_path / "a", docs(2))
    standin.folder = tmp_path / "a"
    assert run("ledger", "monitor", "--url", standin.base + "/nothing", "--state", state) == EXIT_BAD_INPUT
    assert "answered HTTP 404" in capsys.readouterr().err
    cases: list[tuple[list[str], str]] = [
        (["--url", "ftp://example.org"], "--url must be"),
        ([], "需要 --url BASE（引擎的网址）或 --data DIR"),
        (["--url", standin.base, "--data", str(tmp_path)], "不能两者都给"),
        (["--url", standin.base, "--public-key", "abc"], "--public-key must be"),
        (["--url", standin.base, "--once", "--interval", "5"], "--once 与 --interval 不能同时使用"),
        (["--url", standin.base, "--interval", "0"], "--interval 必须是正数"),
        (["--data", str(tmp_path), "--timeout", "3"], "--timeout 只用于 --url"),
    ]
    for extra, message in cases:
        assert run("ledger", "monitor", "--state", state, *extra) == EXIT_BAD_INPUT, extra
        assert message in capsys.readouterr().err
    assert run("ledger", "head", "--url", standin.base) == EXIT_BAD_INPUT
    assert "--url：只用于 `ledger monitor`" in capsys.readouterr().err


def test_cli_interval_runs_until_ctrl_c(
    tmp_path: Path, standin: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    build_folder(tmp_path / "a", docs(3))
    standin.folder = tmp_path / "a"

    def interrupt_when_watching() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(standin.requests) < 3:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_when_watching, daemon=True).start()
    status = run(
        "ledger", "monitor", "--url", standin.base, "--state", str(tmp_path / "w.json"), "--interval", "0.05"
    )
    assert status == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 3 and all(" ok " in line for line in lines)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C means KeyboardInterrupt again afterwards


def test_cli_data_mode_reads_the_folder_and_sees_history_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path / "engine"))  # an engine with no accounts at all
    folder = tmp_path / "a"
    log = build_folder(folder, docs(5))
    state = tmp_path / "w.json"
    argv = ["ledger", "monitor", "--data", str(folder), "--state", str(state)]
    assert run(*argv) == EXIT_OK
    assert "pinned key" in capsys.readouterr().out
    assert FolderLog(Settings(data_dir=folder)).source_id == f"data:{folder.resolve()}"

    append(log, docs(9)[5:])
    assert run(*argv, "--json") == EXIT_OK
    line = json.loads(capsys.readouterr().out)
    assert line["tree_size"] == 9 and line["previous_size"] == 5
    before = state.read_bytes()

    def rewrite(keep_heads: bool) -> None:
        """Someone with the database rewrites the log from entry 3 on (and maybe hides the heads)."""
        with log.engine.begin() as conn:
            for table in ("ledger_entries", "ledger_nodes") + (
                () if keep_heads else ("ledger_signed_heads",)
            ):
                conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text("UPDATE ledger_state SET tree_size = 0"))
        append(log, docs(10, forged_from=3))

    # The heads it signed are still there: the log itself refuses to sign over the new entries.
    rewrite(keep_heads=True)
    assert run(*argv) == EXIT_ALARM
    assert "ALARM tampered" in capsys.readouterr().out
    # The heads removed too, the log signs the rewritten tree; only the witness remembers.
    rewrite(keep_heads=False)
    assert run(*argv) == EXIT_ALARM
    assert "ALARM fork" in capsys.readouterr().out
    assert state.read_bytes() == before

    # A folder that is not an engine's: a sentence, and nothing created there.
    missing = tmp_path / "nowhere"
    assert (
        run("ledger", "monitor", "--data", str(missing), "--state", str(tmp_path / "x.json"))
        == EXIT_BAD_INPUT
    )
    assert "nowhere 不存在，其中没有引擎数据" in capsys.readouterr().err
    assert not missing.exists() and not (tmp_path / "x.json").exists()
