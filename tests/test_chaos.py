"""The fault drill (bench/chaos.py) in its short version: 40 cases of every kind while the worker
is killed (SIGKILL) five times and the dev server restarted once; nothing lost, nothing duplicated.

The drill runs as an operator would run it, as a subprocess with its own dev server and worker
processes in a temporary folder; its last line is machine-readable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # about 2.5 minutes: the three-letters ladder climbs two one-minute periods
@pytest.mark.timeout(900)
def test_short_fault_drill_loses_and_duplicates_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--cases", "40", "--kills", "5", "--restarts", "1",
         "--seed", "7", "--progress", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    tail = "\n".join(lines[-40:]) + "\n" + proc.stderr[-3000:]
    assert proc.returncode == 0, tail
    last = lines[-1]
    assert last.startswith("chaos cases=40 "), tail
    figures = dict(re.findall(r"(\w+)=(\S+)", last))
    assert figures["lost"] == "0" and figures["duplicated"] == "0" and figures["failed"] == "0", tail
    assert int(figures["kills"]) >= 5 and int(figures["restarts"]) >= 1, tail
    assert int(figures["documents"]) > 0 and int(figures["letters"]) > 0 and int(figures["scores"]) > 0, tail
