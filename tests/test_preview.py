"""`starter.py rules preview`: a past period replayed through the real workflows under the recorded
rules (a baseline that reproduces what happened) and under a proposed rules file (the difference).

The engine database is built by `simulate` (a short span, small size, as tests/test_simulate.py
does); the preview reads it like any engine's read model.
"""

from __future__ import annotations

import asyncio
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

import engine.servers as servers
from engine.simulate import this_year
from starter import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default.toml"


def proposed_rules(folder: Path, **lengths: int) -> Path:
    """rules/default.toml with other lengths for some deadlines (and another version)."""
    lines = DEFAULT_RULES.read_text(encoding="utf-8").splitlines()
    out, table = [], ""
    for line in lines:
        if line.startswith("[deadlines."):
            table = line.split("]")[0][len("[deadlines."):]
        elif line.startswith("["):
            table = ""
        if line.startswith("version = "):
            line = 'version = "2026.9-proposed"'
        elif table in lengths and line.startswith("length = "):
            line = f"length = {lengths[table]}"
        out.append(line)
    path = folder / "proposed.toml"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path / "engine-data"))
    for name in ("PETITION_DATABASE_URL", "TEMPORAL_ADDRESS", "PETITION_TOKEN_FILE", "PETITION_PAYLOAD_KEYS",
                 "PETITION_RULES_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def preview(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = asyncio.run(main(["--as", "admin", "rules", "preview", *args, "--json"]))
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == EXIT_OK else {})


def test_an_invalid_or_missing_proposed_file_is_refused_before_anything_runs(
    data_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the test server was started")

    monkeypatch.setattr(servers, "start_test_server_at", no_server)
    monkeypatch.setattr(servers, "start_test_server", no_server)
    assert asyncio.run(main(["users", "add", "admin", "--role", "admin"])) == EXIT_OK
    assert asyncio.run(main(["--as", "admin", "users", "add", "qs", "--role", "unit", "--unit", "青山区人社局"])) == EXIT_OK
    capsys.readouterr()
    bad = proposed_rules(data_env, mediation_window=0)
    code = asyncio.run(main(["--as", "admin", "rules", "preview", "--proposed", str(bad), "--period", "2026"]))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{bad}: rule 'deadlines', field 'mediation_window.length'" in err and "greater than 0" in err
    code = asyncio.run(main(["--as", "admin", "rules", "preview", "--proposed", str(data_env / "none.toml")]))
    assert code == EXIT_BAD_INPUT and "no such file; nothing was run" in capsys.readouterr().err
    # A supervision-office report: a unit account may not run it.
    code = asyncio.run(main(["--as", "qs", "rules", "preview", "--proposed", str(DEFAULT_RULES)]))
    assert code == EXIT_FAILED


@pytest.mark.slow  # about 80 s of real time: a simulated quarter, then two previews of two replays each
def test_a_preview_replays_the_recorded_period_and_shows_the_proposed_rules_effect(
    data_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    year = this_year() if servers.faketime_library() else this_year() + 1
    folder = data_env / "engine"
    scratch = data_env / "tmp"
    scratch.mkdir()
    code = asyncio.run(main(["simulate", "--year", str(year), "--cases", "80", "--until", f"{year}-03-31",
                             "--seed", "11", "--data", str(folder), "--json"]))  # fmt: skip
    assert code == EXIT_OK
    monkeypatch.setenv("PETITION_DATA_DIR", str(folder))
    assert asyncio.run(main(["users", "add", "admin", "--role", "admin"])) == EXIT_OK
    capsys.readouterr()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    # (a) The same rules: nothing differs, and the baseline reproduces what was recorded.
    code, same = preview(capsys, "--proposed", str(DEFAULT_RULES), "--period", f"{year}-Q1")
    assert code == EXIT_OK
    assert same["cases_replayed"] == same["cases_in_period"] > 40 and same["sample"] is None
    assert same["fidelity"]["outcome_agreement"] >= 0.9 and same["fidelity"]["life_agreement"] >= 0.85
    assert same["differing_cases"] == 0
    assert all(r["difference"] == 0 for r in same["figures"]), [r for r in same["figures"] if r["difference"]]
    assert same["runs"]["baseline"]["errors"] == same["runs"]["proposed"]["errors"] == 0

    # (b) A one-day mediation window, a 3-day acceptance period and a one-day review window.
    proposed = proposed_rules(data_env, mediation_window=1, acceptance=3, review_request=1)
    out_csv = data_env / "differing.csv"
    code, report = preview(capsys, "--proposed", str(proposed), "--period", f"{year}-Q1", "--cases-csv", str(out_csv))
    assert code == EXIT_OK
    fig = {r["key"]: r for r in report["figures"]}
    assert fig["overdue.mediation_window"]["difference"] > 0  # mediations after day 1 now lapse
    assert fig["overdue.acceptance"]["difference"] > 0
    assert fig["points"]["difference"] < 0  # +2 only inside the window
    reviews = report["actions_replayed"].get("request_review", 0)
    assert reviews > 0 and fig["refused.request_review"]["proposed"] == reviews  # none is asked within a day
    assert fig["refused.request_review"]["baseline"] == 0
    assert report["fidelity"]["outcome_agreement"] >= 0.9
    assert report["proposed"]["version"] == "2026.9-proposed"
    with out_csv.open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["案件编号", "标题", "差异（基线→拟议规则）"] and len(rows) - 1 == report["differing_cases"] > 0
    assert any("逾期（调解期限）0→1" in r[2] for r in rows[1:])
    # No personal data: the petitioners' names, identity numbers and phones appear nowhere.
    import sqlite3

    db = sqlite3.connect(folder / "petitions.db")
    people = [v for row in db.execute("SELECT name, id_number, phone FROM petitioners") for v in row if v]
    db.close()
    shown = json.dumps(report, ensure_ascii=False) + out_csv.read_text(encoding="utf-8-sig")
    assert people and not [p for p in people if p in shown]
    assert not list(scratch.iterdir())  # the replays' scratch folders (petitions' personal data) are gone

    # A deterministic sample says so, and its figures are not scaled.
    code, sampled = preview(capsys, "--proposed", str(DEFAULT_RULES), "--period", f"{year}-Q1", "--sample", "10")
    assert code == EXIT_OK
    assert sampled["sample"] == {"size": 10, "of": same["cases_in_period"], "seed": 2026, "scaled": False}
    assert sampled["cases_replayed"] == 10 and sampled["differing_cases"] == 0
