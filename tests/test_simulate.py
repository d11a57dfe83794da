"""`starter.py simulate`: a simulated year through the real workflows reproduces the source's
distributions in the read model (channels, persons per visit, categories, repeats), and its cases
live: some accepted late, some mediated, some reviewed, all on the simulated clock.

Shares are checked against a binomial tolerance (4 standard errors): a wrong simulation fails,
chance does not.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import engine.servers as servers
from engine.config import Settings
from engine.desk import load_calendar
from engine.simulate import (
    CATEGORY_SHARES,
    REPEAT_SHARE,
    YEAR_BATCHES,
    YEAR_VISIT_PERSONS,
    draw_year,
    this_year,
    year_start,
)
from rules.ruleset import load_rules
from rules.vocabulary import Channel
from starter import EXIT_BAD_INPUT, EXIT_OK, main

TOTAL = sum(YEAR_BATCHES.values())
SCALE = 0.005  # 1,241 registrations: enough for the shares, quick to draw (triage reads each matter)


def within(count: int, n: int, p: float, what: str) -> None:
    """`count` of `n` is a plausible draw of probability `p` (4 binomial standard errors)."""
    se = math.sqrt(p * (1 - p) / n)
    assert abs(count / n - p) <= 4 * se, f"{what}: {count}/{n} = {count / n:.3f}, expected {p:.3f} ± {4 * se:.3f}"


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path / "engine-data"))
    for name in ("PETITION_DATABASE_URL", "TEMPORAL_ADDRESS", "PETITION_TOKEN_FILE", "PETITION_PAYLOAD_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_draw_reproduces_the_source_distributions() -> None:
    """The year's draw alone (no server): the source's channels, persons, categories, repeats."""
    settings = Settings()
    draw = draw_year(2026, SCALE, 7, load_calendar(settings), load_rules(settings.rules_file))
    n = len(draw.drafts)
    assert n == round(TOTAL * SCALE)
    by_channel = {c: sum(1 for d in draw.drafts if d.channel == c) for c in Channel}
    for channel, full in YEAR_BATCHES.items():
        assert abs(by_channel[channel] - full * SCALE) <= 1, channel  # apportioned, not drawn
    visits = [d for d in draw.drafts if d.channel == Channel.visit]
    assert sum(d.persons for d in visits) == round(len(visits) * YEAR_VISIT_PERSONS / YEAR_BATCHES[Channel.visit])
    assert all(d.persons == 1 for d in draw.drafts if d.channel != Channel.visit)
    assert sum(1 for d in visits if d.persons == 1) > 0.7 * len(visits)  # most visits are one person
    within(sum(d.repeat for d in draw.drafts), n, REPEAT_SHARE, "repeats")
    for category, p in CATEGORY_SHARES.items():
        within(sum(1 for m in draw.matters if m.category == category), len(draw.matters), p, category.value)
    # A repeat is the same petitioner and matter (what the desk's matter key is made of).
    for d in draw.drafts:
        if d.repeat:
            first = next(x for x in draw.drafts if x.matter is d.matter)
            assert first.index < d.index and first.day < d.day and not first.repeat
    # Weekday-heavy: a working day sees more registrations than a rest day.
    calendar = load_calendar(settings)
    per_day = [0] * draw.days
    for d in draw.drafts:
        per_day[d.day] += 1
    resting = [calendar.is_rest_day(date.fromordinal(date(2026, 1, 1).toordinal() + i)) for i in range(draw.days)]
    rest = [c for c, r in zip(per_day, resting, strict=True) if r]
    work = [c for c, r in zip(per_day, resting, strict=True) if not r]
    assert sum(work) / len(work) > 1.5 * sum(rest) / len(rest)
    # The same seed draws the same year.
    rules = load_rules(settings.rules_file)
    one, two = (draw_year(2026, 1, 3, calendar, rules, until=date(2026, 3, 31), cases=100) for _ in range(2))
    assert [(d.day, d.channel, d.persons, d.matter.title, d.matter.petitioner, [s.action for s in d.steps])
            for d in one.drafts] == [(d.day, d.channel, d.persons, d.matter.title, d.matter.petitioner,
                                      [s.action for s in d.steps]) for d in two.drafts]  # fmt: skip
    assert max(d.day for d in one.drafts) < 90


def test_simulate_refuses_a_data_folder_that_holds_engine_data(
    data_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the test server was started")

    monkeypatch.setattr(servers, "start_test_server_at", no_server)
    monkeypatch.setattr(servers, "start_test_server", no_server)
    used = data_env / "used"
    used.mkdir()
    (used / "petitions.db").write_bytes(b"x")
    code = asyncio.run(main(["simulate", "--data", str(used), "--cases", "10"]))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"--data {used}: already holds a data folder (petitions.db)" in err and "nothing was changed" in err
    assert sorted(p.name for p in used.iterdir()) == ["petitions.db"]


def test_simulate_refuses_a_begun_year_without_libfaketime(
    data_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(servers, "faketime_library", lambda: None)
    code = asyncio.run(main(["simulate", "--year", str(this_year()), "--data", str(data_env / "new")]))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "the year has already begun" in err and "apt-get install faketime" in err
    assert not (data_env / "new").exists()
    code = asyncio.run(main(["simulate", "--year", "1999", "--data", str(data_env / "new")]))
    assert code == EXIT_BAD_INPUT and "--year 1999" in capsys.readouterr().err


@pytest.mark.slow  # about a minute of real time (59 s measured on the shared 2-core machine)
def test_a_simulated_two_months_through_the_real_workflows(
    data_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """300 registrations over January and February, through the real worker on the time-skipping
    server (under libfaketime this year's; else next year's), then SQL on the read model."""
    year = this_year() if servers.faketime_library() else this_year() + 1
    folder = data_env / "simulated"
    until = date(year, 2, 28)
    code = asyncio.run(
        main(["simulate", "--year", str(year), "--cases", "300", "--until", until.isoformat(),
              "--seed", "11", "--data", str(folder), "--json"])  # fmt: skip
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK
    summary = json.loads(out)
    run = summary["run"]
    assert run["registered"] == 300 and run["errors_total"] == 0, run["errors"]
    assert run["actions_total"] > 200

    db = create_engine(f"sqlite:///{folder / 'petitions.db'}")
    with db.connect() as c:

        def q(sql: str) -> Any:
            return c.execute(text(sql)).all()

        # One intake per registration: the channels in the source's shares, visits' persons summed.
        intakes = dict(q("SELECT channel, COUNT(*) FROM intakes GROUP BY channel"))
        n = sum(intakes.values())
        assert n == 300
        for channel, full in YEAR_BATCHES.items():
            within(intakes.get(channel.value, 0), n, full / TOTAL, channel.value)
        visits, persons = q("SELECT COUNT(*), SUM(persons) FROM intakes WHERE channel = 'visit'")[0]
        assert persons == round(visits * YEAR_VISIT_PERSONS / YEAR_BATCHES[Channel.visit])
        # Repeats: 36 % of registrations, either a repeat visit on an open case or a new case.
        (repeats,) = q("SELECT COUNT(*) FROM intakes WHERE repeat")[0]
        within(repeats, n, REPEAT_SHARE, "repeat share")
        # A repeat visit joined an open case: its intake's key is CASE:VISITS with VISITS > 1.
        (visit_repeats,) = q("SELECT COUNT(*) FROM intakes WHERE CAST(substr(key, length(case_id) + 2) AS INTEGER) > 1")[0]
        (case_repeats,) = q("SELECT COUNT(*) FROM cases WHERE repeat")[0]
        assert visit_repeats > 0 and case_repeats > 0 and visit_repeats + case_repeats == repeats
        # Categories, one per matter (a repeat case copies its matter's).
        matters = dict(q("SELECT category, COUNT(DISTINCT matter_key) FROM cases GROUP BY category"))
        m = sum(matters.values())
        for category, p in CATEGORY_SHARES.items():
            within(matters.get(category.value, 0), m, p, category.value)
        # The cases lived: accepted late (overdue), mediated, reviewed, answered, with documents.
        late, mediated, reviewed, answered = q(
            "SELECT SUM(acceptance_late), SUM(mediation_succeeded), SUM(reviewed), "
            "SUM(answered_at IS NOT NULL) FROM cases"
        )[0]
        assert late > 0 and mediated > 0 and reviewed > 0 and answered > 0, (late, mediated, reviewed, answered)
        assert q("SELECT COUNT(*) FROM timeline WHERE kind = 'overdue'")[0][0] > 0
        assert q("SELECT COUNT(*) FROM score_events WHERE rule = 'mediation_success'")[0][0] == mediated
        # The texts say what the operator chose: triage reads the same category and risk in them.
        (corrections,) = q("SELECT COUNT(*) FROM triage_corrections WHERE source = 'intake'")[0]
        assert corrections <= 0.05 * q("SELECT COUNT(*) FROM cases")[0][0]
        # On the simulated clock: everything the cockpit counts lies between 1 January and `until`.
        lo = f"{year_start(year):%Y-%m-%d %H:%M:%S}"
        hi = f"{datetime(year, 3, 1, tzinfo=UTC):%Y-%m-%d %H:%M:%S}"
        for table, column in (("cases", "registered_at"), ("intakes", "at"), ("timeline", "at"),
                              ("documents", "issued_at"), ("score_events", "occurred_at")):  # fmt: skip
            first, last = q(f"SELECT MIN({column}), MAX({column}) FROM {table}")[0]
            assert lo <= first and last < hi, (table, first, last)
        # Case numbers carry the simulated day.
        (wrong_day,) = q("SELECT COUNT(*) FROM cases WHERE substr(case_id, 4, 4) != '" + str(year) + "'")[0]
        assert wrong_day == 0
    db.dispose()
