"""The rules as a person reads them: which action each stage allows (every action in every
stage), mediation eligibility at its boundaries, and rule files that explain their errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import RULES_DIR
from rules.lifecycle import CaseFacts, mediation_eligible, refusal, supervision_deadline_outcome
from rules.ruleset import RuleFileError, load_rules, parse_rules
from rules.vocabulary import ArbitrationEvent, Category, DeadlineName, Outcome, Stage
from workflows.models import ACTION_INPUTS, ArbitrationInput, ExtendInput, PauseInput

RULES = load_rules(RULES_DIR / "default.toml")
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=10)
BASE = CaseFacts(
    stage=Stage.triaged,
    closed=False,
    outcome=None,
    ready=True,
    extension_used=0,
    mediation_failed=False,
    mediation_agreed_unfulfilled=False,
    review_decided=False,
    ladder_stage=None,
    due={},
)
ALWAYS = {"repeat_visit", "withdraw", "flag_major_risk", "assign_leader"}

# stage -> (facts changes, the actions allowed besides ALWAYS)
MATRIX: dict[str, tuple[dict[str, object], set[str]]] = {
    "triaged": ({"due": {DeadlineName.acceptance: LATER}}, {"accept", "not_accept", "redirect", "pause_clock"}),
    "mediation": (
        {"stage": Stage.mediation, "due": {DeadlineName.handling: LATER, DeadlineName.mediation_window: LATER}},
        {"mediation_result", "extend", "issue_opinion", "redirect", "pause_clock"},
    ),
    "handling": (
        {"stage": Stage.handling, "due": {DeadlineName.handling: LATER}},
        {"mediation_result", "extend", "issue_opinion", "redirect", "pause_clock"},
    ),
    "opinion_issued": ({"stage": Stage.opinion_issued, "due": {DeadlineName.review_request: LATER}}, {"request_review"}),
    "review": ({"stage": Stage.review, "due": {DeadlineName.review_decision: LATER}}, {"review_decision", "pause_clock"}),
    "review_decided": (
        {"stage": Stage.review, "review_decided": True, "due": {DeadlineName.re_review_request: LATER}},
        {"request_re_review"},
    ),
    "re_review": (
        {"stage": Stage.re_review, "due": {DeadlineName.re_review_decision: LATER}},
        {"re_review_decision", "pause_clock"},
    ),
}

SAMPLE_DATA = {
    "extend": ExtendInput(days=10, approved_by="局长", reason="复杂"),
    "pause_clock": None,  # filled per stage: the running administration period
    "arbitration": ArbitrationInput(event=ArbitrationEvent.filed),
}


def _data(action: str, facts: CaseFacts) -> object:
    if action in ("pause_clock", "resume_clock"):
        running = [d for d in facts.due if d in (DeadlineName.acceptance, DeadlineName.handling, DeadlineName.review_decision, DeadlineName.re_review_decision)]
        return PauseInput(deadline=running[0] if running else DeadlineName.handling)
    return SAMPLE_DATA.get(action)


@pytest.mark.parametrize("stage", sorted(MATRIX))
def test_every_action_in_every_stage(stage: str) -> None:
    changes, allowed = MATRIX[stage]
    facts = replace(BASE, **changes)  # type: ignore[arg-type]
    got = {a for a in ACTION_INPUTS if refusal(a, facts, NOW, RULES, _data(a, facts)) is None}
    assert got == allowed | ALWAYS


def test_closed_case_refuses_everything() -> None:
    facts = replace(BASE, stage=Stage.closed, closed=True, outcome=Outcome.mediated)
    for action in ACTION_INPUTS:
        reason = refusal(action, facts, NOW, RULES, _data(action, facts))
        assert reason == "案件已办结（调解结案），不再接受任何操作。"


def test_ladder_actions_need_a_running_ladder() -> None:
    under = replace(BASE, ladder_stage="warning")
    assert refusal("report_progress", under, NOW, RULES) is None
    assert refusal("risk_resolved", under, NOW, RULES) is None
    assert refusal("flag_major_risk", under, NOW, RULES) is not None


def test_windows_close_at_their_instant() -> None:
    facts = replace(BASE, stage=Stage.opinion_issued, due={DeadlineName.review_request: NOW})
    assert refusal("request_review", facts, NOW - timedelta(seconds=1), RULES) is None
    # the period named as the rules give it (rules/default.toml: 30 days)
    assert refusal("request_review", facts, NOW, RULES) == "申请复查的30日期限已过，不能再申请复查。"


def test_extension_rules() -> None:
    facts = replace(BASE, stage=Stage.handling, due={DeadlineName.handling: LATER})
    assert refusal("extend", facts, NOW, RULES, ExtendInput(days=30, approved_by="a", reason="b")) is None
    assert "延期最多 30 日，本次申请延期 31 日" in (refusal("extend", facts, NOW, RULES, ExtendInput(days=31, approved_by="a", reason="b")) or "")
    assert "最多允许延期 1 次" in (refusal("extend", replace(facts, extension_used=1), NOW, RULES, None) or "")
    assert "办理期限已经届满" in (refusal("extend", facts, LATER, RULES, None) or "")


@pytest.mark.parametrize(
    ("category", "facts_clear", "amount", "eligible"),
    [
        (Category.labor_social_security, True, 50000, True),
        (Category.labor_social_security, True, 50000.01, False),
        (Category.labor_social_security, True, None, True),
        (Category.labor_social_security, False, 1000, False),
        (Category.labor_social_security, None, 1000, False),
        (Category.law_litigation, True, 1000, False),
        (Category.land_expropriation, True, 1000, False),
        (Category.environment, True, 0, True),
    ],
)
def test_mediation_eligibility(category: Category, facts_clear: bool | None, amount: float | None, eligible: bool) -> None:
    assert mediation_eligible(RULES, category, facts_clear, amount) is eligible


def test_supervision_re_arms_once() -> None:
    assert supervision_deadline_outcome(True, 0, RULES) == "supervision"
    assert supervision_deadline_outcome(True, 1, RULES) == "accountability"
    assert supervision_deadline_outcome(False, 0, RULES) == "accountability"


def test_rule_file_errors_name_file_rule_and_field(tmp_path: Path) -> None:
    text = (RULES_DIR / "default.toml").read_text(encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"x\.toml: rule 'deadlines', field 'acceptance\.length'"):
        parse_rules(text.replace("length = 15\nunit = \"days\"\nstarts = \"registration\"", "length = -15\nunit = \"days\"\nstarts = \"registration\""), "x.toml")
    with pytest.raises(RuleFileError, match=r"rule 'mediation', field 'civil_categories\.0'"):
        parse_rules(text.replace('"labor_social_security", "rural_agriculture"', '"labour", "rural_agriculture"'), "x.toml")
    with pytest.raises(RuleFileError, match=r"rule 'notifications', field 'batch_time'"):
        parse_rules(text.replace('batch_time = "09:00"', 'batch_time = "9am"'), "x.toml")
    with pytest.raises(RuleFileError, match=r"not valid TOML"):
        parse_rules("version = ", "x.toml")
    bench = RULES_DIR / "bench.toml"
    if bench.exists():
        assert load_rules(bench).version != RULES.version


def test_a_rules_file_may_not_move_a_periods_start_or_its_time_zone() -> None:
    from rules.ruleset import RuleFileError, parse_rules

    text = (RULES_DIR / "default.toml").read_text(encoding="utf-8")
    moved = text.replace('length = 15\nunit = "days"\nstarts = "registration"', 'length = 15\nunit = "days"\nstarts = "triage"', 1)
    assert moved != text
    with pytest.raises(RuleFileError, match="acceptance starts at 'registration', not 'triage'"):
        parse_rules(moved)
    with pytest.raises(RuleFileError, match="Asia/Shanghai"):
        parse_rules(text.replace('timezone = "Asia/Shanghai"', 'timezone = "Europe/Paris"'))


def test_refusals_name_the_periods_and_thresholds_of_the_rules_in_force() -> None:
    from rules.lifecycle import _period

    rules = load_rules(RULES_DIR / "default.toml")
    assert _period(rules, DeadlineName.review_request) == "30日"
    assert _period(rules, DeadlineName.arbitration_filing) == "5个工作日"
    assert _period(rules, DeadlineName.notify_immediate) == "30分钟"
