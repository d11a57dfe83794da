"""A family going together to a higher level is the rubric's collective trip (triage cues 2026.4)."""

from __future__ import annotations

import pytest

from rules.triage import TriageInput, load_triage
from rules.vocabulary import Risk


@pytest.mark.parametrize(
    "content",
    [
        "我家宅基地被邻居占了，村里一直不管，我称要带着家人到北京上访。",
        "老王说这事再不解决，就带着全家去北京上访。",
    ],
)
def test_a_family_trip_to_beijing_is_high_risk(content: str) -> None:
    assert load_triage().classify(TriageInput(title="宅基地纠纷", content=content, locality="城关区")).risk == Risk.high


def test_a_lone_letter_to_beijing_is_not_a_collective_trip() -> None:
    """The cue still needs a group (or a family) near the trip: one person's plan is not it."""
    result = load_triage().classify(
        TriageInput(title="宅基地纠纷", content="我家宅基地被邻居占了，村里一直不管，我打算写信到北京反映。", locality="城关区")
    )
    assert result.risk != Risk.high
