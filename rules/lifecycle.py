"""What each action and each lapsed deadline does, as pure functions of a case's facts.

The workflow asks `refusal(...)` in every update validator: `None` means the rules allow the
action now; otherwise the sentence says why not, and the case is left exactly as it was.
Time is an argument (`now`), never the system clock, so the same code runs in a workflow, in
a unit test and in a what-if report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rules.ruleset import RuleSet
from rules.vocabulary import ArbitrationEvent, Category, DeadlineName, Outcome, Stage

# Stages in which a unit still has to decide on acceptance (triage done or in progress; a
# collective wage case runs its arbitration track in parallel and is still accepted as usual).
AWAITING_ACCEPTANCE = frozenset({Stage.registered, Stage.triaged, Stage.arbitration})
# Accepted and before the handling opinion: mediation, extension and the opinion itself.
IN_HANDLING = frozenset({Stage.accepted, Stage.mediation, Stage.handling})


@dataclass(frozen=True)
class CaseFacts:
    """The facts of a case that the rules look at."""

    stage: Stage
    closed: bool
    outcome: Outcome | None
    ready: bool  # registration and triage have run
    extension_used: int
    mediation_failed: bool
    mediation_agreed_unfulfilled: bool
    review_decided: bool
    ladder_stage: str | None  # None, "warning", "supervision"; ended ladders are None
    # Running clocks: deadline name -> due instant.
    due: dict[DeadlineName, datetime]
    # The arbitration green channel's last step ("started", "filed", ...), None when not on it.
    arbitration_state: str | None = None
    # Clocks paused while waiting for the petitioner (e.g. supplementary materials).
    paused: frozenset[DeadlineName] = frozenset()


# The administration's own periods can be paused while it waits for the petitioner (补正材料);
# a pause extends the period by the paused time. The petitioner's windows and the ladder cannot.
PAUSABLE = frozenset(
    {DeadlineName.acceptance, DeadlineName.handling, DeadlineName.review_decision, DeadlineName.re_review_decision}
)


# The arbitration green channel: arbitration first (settlement or award, then judicial
# confirmation); only when arbitration fails does the dispute go to court.
ARBITRATION_NEXT: dict[str, frozenset[ArbitrationEvent]] = {
    "started": frozenset({ArbitrationEvent.filed}),
    ArbitrationEvent.filed.value: frozenset({ArbitrationEvent.settled, ArbitrationEvent.award, ArbitrationEvent.failed}),
    ArbitrationEvent.settled.value: frozenset({ArbitrationEvent.confirmed, ArbitrationEvent.failed}),
    ArbitrationEvent.award.value: frozenset({ArbitrationEvent.confirmed, ArbitrationEvent.failed}),
    ArbitrationEvent.failed.value: frozenset({ArbitrationEvent.court}),
}


def mediation_eligible(
    rules: RuleSet, category: Category | None, facts_clear: bool | None, amount: float | None
) -> bool:
    """The 7-day first-handling window: a civil case, facts clear, amount within the limit (inclusive)."""
    m = rules.mediation
    if category is None or category not in m.civil_categories:
        return False
    if m.requires_facts_clear and facts_clear is not True:
        return False
    if amount is None:
        return m.missing_amount_eligible
    return amount <= m.max_amount


# The periods a petitioner waits on (the case's next deadline at /q); the ladder's and the
# notices' periods are the office's own.
PETITIONER_PERIODS = frozenset(
    {
        DeadlineName.acceptance,
        DeadlineName.mediation_window,
        DeadlineName.handling,
        DeadlineName.review_request,
        DeadlineName.review_decision,
        DeadlineName.re_review_request,
        DeadlineName.re_review_decision,
    }
)


def _period(rules: RuleSet, name: DeadlineName) -> str:
    """A period as a message names it: `30-day`, `5-working-day`, `30-minute`."""
    rule = rules.deadline(name)
    return f"{rule.length}-{rule.unit.value.removesuffix('s').replace('_', '-')}"


def refusal(action: str, facts: CaseFacts, now: datetime, rules: RuleSet, data: object = None) -> str | None:
    """Why the rules refuse `action` at `now`, or None when it is allowed."""
    if facts.closed:
        outcome = facts.outcome.value if facts.outcome else "closed"
        return f"The case is closed ({outcome}); no further action is accepted on it."
    stage = facts.stage

    if action in ("accept", "not_accept"):
        if stage not in AWAITING_ACCEPTANCE:
            return f"The case was already decided on acceptance (stage {stage.value}); it cannot be {_verb(action)} again."
        return None

    if action == "redirect":
        if stage not in AWAITING_ACCEPTANCE | IN_HANDLING:
            return (
                f"A case can be redirected to a statutory channel only before its handling opinion is issued "
                f"(stage {stage.value})."
            )
        return None

    if action == "mediation_result":
        if stage in AWAITING_ACCEPTANCE:
            return "A mediation result can only be recorded after the case has been accepted."
        if stage not in IN_HANDLING:
            return f"Mediation belongs to first handling; the case is past it (stage {stage.value})."
        return None

    if action == "extend":
        if stage not in IN_HANDLING:
            return f"Only a case being handled can have its handling period extended (stage {stage.value})."
        if facts.extension_used >= rules.extension.max_count:
            return "The handling period has already been extended once; the rules allow no second extension."
        days = getattr(data, "days", None)
        if days is not None and days > rules.extension.max_days:
            return f"An extension may add at most {rules.extension.max_days} days; {days} were asked for."
        handling_due = facts.due.get(DeadlineName.handling)
        if handling_due is not None and now >= handling_due:
            return "The handling period has already run out; an extension must be approved before it ends."
        return None

    if action == "issue_opinion":
        if stage in AWAITING_ACCEPTANCE:
            return "A handling opinion can only be issued after the case has been accepted."
        if stage not in IN_HANDLING:
            return f"The handling opinion was already issued (stage {stage.value})."
        return None

    if action == "request_review":
        if stage != Stage.opinion_issued:
            return f"Review can be requested only after the handling opinion and before any review (stage {stage.value})."
        due = facts.due.get(DeadlineName.review_request)
        if due is None or now >= due:
            return f"The {_period(rules, DeadlineName.review_request)} window to request review has closed."
        return None

    if action == "review_decision":
        if stage != Stage.review or facts.review_decided:
            return f"There is no review waiting for a decision (stage {stage.value})."
        return None

    if action == "request_re_review":
        if stage != Stage.review or not facts.review_decided:
            return f"Re-review can be requested only after the review decision (stage {stage.value})."
        due = facts.due.get(DeadlineName.re_review_request)
        if due is None or now >= due:
            return f"The {_period(rules, DeadlineName.re_review_request)} window to request re-review has closed."
        return None

    if action == "re_review_decision":
        if stage != Stage.re_review:
            return f"There is no re-review waiting for a decision (stage {stage.value})."
        return None

    if action == "flag_major_risk":
        if facts.ladder_stage is not None:
            return "The case is already under the three-letters ladder for a major risk."
        return None

    if action in ("report_progress", "risk_resolved"):
        if facts.ladder_stage is None:
            return "No major-risk ladder is running on this case; flag the risk first."
        return None

    if action in ("repeat_visit", "withdraw", "assign_leader"):
        return None

    if action in ("pause_clock", "resume_clock"):
        name = getattr(data, "deadline", None)
        if name not in PAUSABLE:
            names = ", ".join(sorted(d.value for d in PAUSABLE))
            return f"Only these periods can be paused: {names}."
        if action == "pause_clock" and name not in facts.due:
            return f"The {name.value} period is not running, so it cannot be paused."
        if action == "resume_clock" and name not in facts.paused:
            return f"The {name.value} period is not paused."
        return None

    if action == "arbitration":
        event = getattr(data, "event", None)
        if facts.arbitration_state is None:
            return (
                "This case is not on the arbitration green channel (collective wage arrears of "
                f"{rules.arbitration.collective_wage_min_workers} or more workers)."
            )
        allowed = ARBITRATION_NEXT.get(facts.arbitration_state, frozenset())
        if event not in allowed:
            nxt = ", ".join(sorted(a.value for a in allowed)) or "nothing"
            return f"The arbitration track is at '{facts.arbitration_state}'; the next step can be: {nxt}."
        return None

    return f"Unknown action '{action}'."


def _verb(action: str) -> str:
    return "accepted" if action == "accept" else "refused"


def closing_outcome_when_window_lapses(window: DeadlineName) -> Outcome:
    """No request within a review window: the case closes, the last answer standing."""
    if window == DeadlineName.review_request:
        return Outcome.resolved
    return Outcome.final_after_review


def supervision_deadline_outcome(progress_since_letter: bool, rearms_used: int, rules: RuleSet) -> str:
    """At a supervision letter's deadline: another supervision letter, or the accountability letter."""
    if progress_since_letter and rearms_used < rules.ladder.supervision_rearms:
        return "supervision"
    return "accountability"


def mediation_points(rules: RuleSet, success: bool, fulfilled: bool, within_window: bool, eligible: bool) -> int | None:
    """Points for the first-handling unit when a mediation result is recorded, or None for no score event."""
    if not (success and fulfilled and eligible):
        return None
    if rules.mediation.points_only_within_window and not within_window:
        return None
    return rules.scores.mediation_success
