"""Replay guards every workflow change: the committed histories of real lives must replay
against today's workflow code (tests/record_histories.py records them).

Three generations are kept: `*.v1.json` (before search-attribute upserts were gated),
`*.v2.json` (plain payloads, before actors and signal tokens) and `*.json` (encrypted through the
payload codec with the test-only key ring `histories/payload.keys`). One converter replays all:
the codec passes plain payloads through."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.codec import KeyRing, data_converter_for
from worker import SANDBOX, WORKFLOWS

HERE = Path(__file__).parent / "histories"
HISTORIES = sorted(HERE.glob("*.json"))
CURRENT = [p for p in HISTORIES if not p.stem.endswith((".v1", ".v2"))]
CONVERTER = data_converter_for(KeyRing.load(HERE / "payload.keys", create=False))

# The recorded petitioner (tests/scenarios): none of it may appear in an encrypted history.
PERSONAL = ("110101199001011237", "13800000000")


def test_there_are_histories_to_replay() -> None:
    assert len(CURRENT) >= 5 and len(HISTORIES) >= 3 * len(CURRENT) - 2


def payload_bytes(node: Any) -> bytes:
    """Every payload's data in a history's JSON, base64-decoded and joined."""
    if isinstance(node, dict):
        own = base64.b64decode(node["data"]) if isinstance(node.get("data"), str) and "metadata" in node else b""
        return own + b"".join(payload_bytes(v) for v in node.values())
    if isinstance(node, list):
        return b"".join(payload_bytes(v) for v in node)
    return b""


@pytest.mark.parametrize("path", CURRENT, ids=[p.stem for p in CURRENT])
def test_current_histories_hold_only_ciphertext(path: Path) -> None:
    text = path.read_text()
    assert "YmluYXJ5L2VuY3J5cHRlZA" in text  # base64 of the codec's encoding, binary/encrypted
    data = payload_bytes(json.loads(text))
    assert data and not [v for v in PERSONAL if v.encode() in data]


def test_the_plain_generation_would_show_them() -> None:
    """The check above can fail: the same life recorded before encryption shows the number."""
    data = payload_bytes(json.loads((HERE / "mediation-success.v2.json").read_text()))
    assert PERSONAL[0].encode() in data


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=CONVERTER, workflow_runner=SANDBOX)
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await replayer.replay_workflow(history)
