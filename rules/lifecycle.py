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
from rules.vocabulary import (
    ACTION_CN,
    ARBITRATION_EVENT_CN,
    DEADLINE_CN,
    OUTCOME_CN,
    STAGE_CN,
    ArbitrationEvent,
    Category,
    DeadlineName,
    DeadlineUnit,
    Outcome,
    Stage,
)

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


_UNIT_CN = {DeadlineUnit.days: "日", DeadlineUnit.working_days: "个工作日", DeadlineUnit.hours: "小时", DeadlineUnit.minutes: "分钟"}


def _period(rules: RuleSet, name: DeadlineName) -> str:
    """A period as a message names it, with the length the rules give: `30日`, `5个工作日`, `30分钟`."""
    rule = rules.deadline(name)
    return f"{rule.length}{_UNIT_CN[rule.unit]}"


def _at(stage: Stage) -> str:
    """`（当前阶段：已受理）`: where the case stands, in the words staff read."""
    return f"（当前阶段：{STAGE_CN.get(stage, stage.value)}）"


def _first_handling(stage: Stage, not_yet: str, too_late: str) -> str | None:
    """A first-handling step (the mediation result, the handling opinion): only once the case is
    accepted (else `not_yet`) and before its opinion is issued (else `too_late`)."""
    if stage in AWAITING_ACCEPTANCE:
        return not_yet
    if stage not in IN_HANDLING:
        return too_late
    return None


def _window_lapsed(facts: CaseFacts, now: datetime, rules: RuleSet, window: DeadlineName, request: str) -> str | None:
    """A petitioner's request (申请复查, 申请复核) once its window has run out (or never ran)."""
    due = facts.due.get(window)
    if due is None or now >= due:
        return f"{request}的{_period(rules, window)}期限已过，不能再{request}。"
    return None


def closed_refusal(outcome: str | None) -> str:
    """The refusal of any action on a closed case: the rules' own, and the desk's when the case's
    workflow has already ended (engine/desk.py)."""
    shown = f"（{OUTCOME_CN.get(outcome, outcome)}）" if outcome else ""  # type: ignore[call-overload]
    return f"案件已办结{shown}，不再接受任何操作。"


def refusal(action: str, facts: CaseFacts, now: datetime, rules: RuleSet, data: object = None) -> str | None:
    """Why the rules refuse `action` at `now` (a Chinese sentence), or None when it is allowed."""
    if facts.closed:
        return closed_refusal(facts.outcome)
    stage = facts.stage

    if action in ("accept", "not_accept"):
        if stage not in AWAITING_ACCEPTANCE:
            again = "受理" if action == "accept" else "作出不予受理决定"
            return f"本案已作出是否受理的决定{_at(stage)}，不能再次{again}。"
        return None

    if action == "redirect":
        if stage not in AWAITING_ACCEPTANCE | IN_HANDLING:
            return f"只有在出具办理意见之前，才能将案件导入法定途径{_at(stage)}。"
        return None

    if action == "mediation_result":
        return _first_handling(stage, "案件受理后才能记录调解结果。", f"调解属于首次办理环节，本案已过该环节{_at(stage)}。")

    if action == "extend":
        if stage not in IN_HANDLING:
            return f"只有办理中的案件才能延长办理期限{_at(stage)}。"
        if facts.extension_used >= rules.extension.max_count:
            n = rules.extension.max_count
            return f"办理期限已延期 {facts.extension_used} 次，规则最多允许延期 {n} 次，不能再次延期。"
        days = getattr(data, "days", None)
        if days is not None and days > rules.extension.max_days:
            return f"延期最多 {rules.extension.max_days} 日，本次申请延期 {days} 日。"
        handling_due = facts.due.get(DeadlineName.handling)
        if handling_due is not None and now >= handling_due:
            return "办理期限已经届满；延期须在办理期限届满前批准。"
        return None

    if action == "issue_opinion":
        return _first_handling(stage, "案件受理后才能出具办理意见。", f"办理意见已经出具{_at(stage)}。")

    if action == "request_review":
        if stage != Stage.opinion_issued:
            return f"只有在出具办理意见之后、复查之前，才能申请复查{_at(stage)}。"
        return _window_lapsed(facts, now, rules, DeadlineName.review_request, "申请复查")

    if action == "review_decision":
        if stage != Stage.review or facts.review_decided:
            return f"本案没有等待作出决定的复查{_at(stage)}。"
        return None

    if action == "request_re_review":
        if stage != Stage.review or not facts.review_decided:
            return f"作出复查决定后才能申请复核{_at(stage)}。"
        return _window_lapsed(facts, now, rules, DeadlineName.re_review_request, "申请复核")

    if action == "re_review_decision":
        if stage != Stage.re_review:
            return f"本案没有等待作出决定的复核{_at(stage)}。"
        return None

    if action == "flag_major_risk":
        if facts.ladder_stage is not None:
            return "本案已因重大风险进入“三函”督办程序，不能重复标记。"
        return None

    if action in ("report_progress", "risk_resolved"):
        if facts.ladder_stage is None:
            return "本案没有正在进行的重大风险“三函”督办程序；请先标记重大风险。"
        return None

    if action in ("repeat_visit", "withdraw", "assign_leader"):
        return None

    if action in ("pause_clock", "resume_clock"):
        name = getattr(data, "deadline", None)
        if name not in PAUSABLE:
            names = "、".join(DEADLINE_CN[d] for d in sorted(PAUSABLE))
            return f"只有这些期限可以暂停计时：{names}。"
        if action == "pause_clock" and name not in facts.due:
            return f"{DEADLINE_CN[name]}没有在计时，不能暂停。"
        if action == "resume_clock" and name not in facts.paused:
            return f"{DEADLINE_CN[name]}没有暂停，无需恢复。"
        return None

    if action == "arbitration":
        event = getattr(data, "event", None)
        if facts.arbitration_state is None:
            return (
                "本案不在仲裁绿色通道上（仅适用于 "
                f"{rules.arbitration.collective_wage_min_workers} 名及以上劳动者的集体欠薪案件）。"
            )
        allowed = ARBITRATION_NEXT.get(facts.arbitration_state, frozenset())
        if event not in allowed:
            state = facts.arbitration_state
            at = "已转入仲裁绿色通道" if state == "started" else ARBITRATION_EVENT_CN.get(state, state)  # type: ignore[call-overload]
            nxt = "、".join(ARBITRATION_EVENT_CN[a] for a in sorted(allowed)) or "无"
            return f"仲裁绿色通道当前处于“{at}”环节；下一步只能是：{nxt}。"
        return None

    return f"未知的操作“{ACTION_CN.get(action, action)}”。"


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
