"""The petition workflow's one state model, and what is derived from it.

`CaseModel` (in workflows/models.py, so that it can travel in `CaseStart.carried` when a long life
continues as new) holds everything about a case that changes; `CaseStart` holds what is fixed at
registration. From the two come, as pure functions:

- `standing`: where the case stands (stage, status, outcome, category, risk, unit…): the next two begin with it;
- `case_state`: the `state` query (what the desk and the case page show);
- `snapshot`: what the database keeps between steps (`save_case`);
- `facts`: what the rules look at (`rules.lifecycle.refusal`).
"""

from __future__ import annotations

from datetime import datetime

from rules.access import action_refusal
from rules.lifecycle import ARBITRATION_NEXT, PAUSABLE, CaseFacts, refusal
from rules.ruleset import RuleSet
from workflows import clocks
from workflows.models import (
    ACTION_INPUTS,
    Actor,
    CaseModel,
    CaseSnapshot,
    CaseStanding,
    CaseStart,
    CaseState,
    ClockState,
    LadderState,
    TimelineEvent,
)

__all__ = [
    "CaseModel", "ClockState", "LadderState", "available_actions", "case_state", "facts", "new_case", "snapshot",
    "standing",
]


def new_case(start: CaseStart) -> CaseModel:
    """A case's state at intake: what the operator stated, nothing decided yet."""
    i = start.intake
    return CaseModel(category=i.category, risk=i.risk, unit=i.responsible_unit)


def facts(m: CaseModel) -> CaseFacts:
    return CaseFacts(
        # the facts the state model keeps under the same names
        **m.model_dump(
            include={
                "stage", "closed", "outcome", "ready", "extension_used", "review_decided", "mediation_failed",
                "mediation_agreed_unfulfilled",
            }
        ),
        ladder_stage=m.ladder.step,
        arbitration_state=m.arbitration,
        paused=clocks.paused_names(m.clocks),
        due=clocks.running_due(m.clocks),
    )


def standing(m: CaseModel, case_id: str) -> CaseStanding:
    """Where the case stands: what its snapshot and its `state` both begin with."""
    return CaseStanding(
        case_id=case_id,
        status="closed" if m.closed else "open",
        # the rest the state model keeps under the same names
        **m.model_dump(
            include={"stage", "outcome", "category", "risk", "unit", "visits", "nail_case", "mediation_eligible"}
        ),
    )


def snapshot(m: CaseModel, case_id: str, now: datetime, events: list[TimelineEvent] | None = None) -> CaseSnapshot:
    """The case's row (and `events`, its timeline events not saved yet) for the database."""
    nxt = clocks.petitioner_waits_on(m.clocks)
    late = clocks.first_overdue(m.clocks)
    return CaseSnapshot(
        **dict(standing(m, case_id)),
        mediation_succeeded=m.mediated,
        overdue=late is not None,
        closed_at=now if m.closed else None,
        events=events if events is not None else [],
        next_deadline=nxt.name if nxt else None,
        next_due=nxt.due if nxt else None,
        next_due_provisional=nxt.provisional if nxt else False,
        overdue_deadline=late.name if late else None,
        overdue_due=late.due if late else None,
    )


def case_state(m: CaseModel, start: CaseStart, calendar: str) -> CaseState:
    """The `state` query: the case as the desk shows it (petitioners masked)."""
    i = start.intake
    return CaseState(
        **dict(standing(m, start.case_id)),
        locality=i.locality,
        title=i.title,
        petitioners=[p.masked() for p in i.petitioners],
        extension_used=m.extension_used,
        ladder_stage=m.ladder.step,
        rules_version=start.rules.version,
        calendar=calendar,
        deadlines=clocks.views(m.clocks.values()),
        overdue=clocks.overdue_names(m.clocks),
        registered_at=m.registered_at,
        leader=m.leader,
    )


def available_actions(m: CaseModel, rules: RuleSet, by: Actor, now: datetime) -> list[str]:
    """The actions `by` may take on the case now (the `available` query; the case page offers
    exactly these): the validators' checks without an action's data. A pause or a resume is offered
    for the periods it could apply to (PAUSABLE); the data is checked on sending."""
    if not m.ready:
        return []
    f = facts(m)
    allowed = []
    for action in ACTION_INPUTS:
        if action_refusal(action, by.role, by.unit, m.unit):
            continue
        if action in ("pause_clock", "resume_clock"):
            names = f.due if action == "pause_clock" else f.paused
            if f.closed or not any(n in PAUSABLE for n in names):
                continue
        elif action == "arbitration":
            if f.closed or not ARBITRATION_NEXT.get(f.arbitration_state or ""):
                continue
        elif refusal(action, f, now, rules, None):
            continue
        allowed.append(action)
    return allowed
