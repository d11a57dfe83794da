"""The life of one petition as a durable workflow: every deadline, escalation and document.

Deterministic orchestration only. Every side effect is an activity (called by name, so this
module never imports database or network code); every rule comes from the case's own rule set
(`CaseStart.rules`) and the pure functions in `rules/`. Actions from people are updates whose
validators ask `rules.lifecycle.refusal`, so a refused action leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from rules.access import action_refusal
    from rules.deadlines import CalendarSnapshot, HolidayCalendar, Pause, compute_deadline, next_local_time
    from rules.lifecycle import (
        ARBITRATION_NEXT,
        AWAITING_ACCEPTANCE,
        PAUSABLE,
        PETITIONER_PERIODS,
        CaseFacts,
        closing_outcome_when_window_lapses,
        mediation_eligible,
        mediation_points,
        refusal,
        supervision_deadline_outcome,
    )
    from rules.vocabulary import (
        CATEGORY_CN,
        DEADLINE_CN,
        MAX_NAME_CHARS,
        RISK_CN,
        TIER_CN,
        ArbitrationEvent,
        DeadlineName,
        DeadlineStart,
        DocumentKind,
        NotificationTier,
        NotifyChannel,
        Outcome,
        RecipientRole,
        Risk,
        ScoreRule,
        Stage,
    )
    from workflows.models import (
        ACTION_INPUTS,
        ARBITRATION_WORKFLOW,
        PETITION_WORKFLOW,
        SA_CATEGORY,
        SA_LADDER,
        SA_LOCALITY,
        SA_OUTCOME,
        SA_OVERDUE,
        SA_RISK,
        SA_STAGE,
        SA_UNIT,
        URGENT_PRIORITY,
        AcceptInput,
        ActionResult,
        Actor,
        ArbitrationInput,
        ArbitrationOverdue,
        ArbitrationStart,
        ArbitrationStep,
        BatchDelivered,
        BatchEnqueue,
        CaseSnapshot,
        CaseStart,
        CaseState,
        DeadlineView,
        DocumentIssued,
        DocumentRequest,
        ExtendInput,
        FlagRiskInput,
        LeaderInput,
        MediationResultInput,
        NoInput,
        NoteInput,
        NotificationRequest,
        NotificationSent,
        PauseInput,
        ProgressInput,
        ReasonInput,
        RedirectInput,
        RegisterCaseInput,
        RegisterCaseResult,
        RepeatVisitInput,
        ScoreRequest,
        TextInput,
        Timeline,
        TimelineEvent,
        TriageOutcome,
        TriageRequest,
        WithdrawInput,
    )

T = TypeVar("T", bound=BaseModel)

# Side effects are idempotent (each carries a key), so retrying them forever is safe; a worker
# or database outage delays a case, it never loses a step.
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_ACTIVITY_TIMEOUT = timedelta(seconds=60)
# A notice is retried until its tier's deadline (the activity's schedule-to-close timeout is the
# time left to it), at most a minute apart; then it escalates instead. Activity options are not
# part of the commands replay compares, so running cases replay unchanged.
_NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
# What the escalation really is: a line in the supervision office's duty log (`notifications.jsonl`,
# written by the recording adapter in `send_fallback_notification`), whatever channel the rules name.
DUTY_LOG = "duty_log"
# New search attributes (PetitionLocality, PetitionLadder) and the ones a later action changes
# (PetitionRisk on flag_major_risk): more upserts, so cases started before them keep the old path.
MORE_SEARCH_ATTRIBUTES = "more-search-attributes"
# Immediate notices (the high-risk SMS and its fallback) are scheduled with URGENT_PRIORITY, so that
# under a backlog (a deadline surge) they are taken before every default-priority activity.
URGENT_NOTICE = "urgent-notice-queue"

# Which clock each deadline name starts from, for the stages that arm them.
_LADDER_LETTER = {
    "warning": DocumentKind.risk_warning_letter,
    "supervision": DocumentKind.supervision_letter,
    "accountability": DocumentKind.accountability_letter,
}


@dataclass
class _Clock:
    """A running statutory period; its due instant is always recomputed from its start and rule."""

    name: DeadlineName
    started_at: datetime
    extra: int
    due: datetime
    provisional: bool
    status: str = "running"  # running | paused | met | overdue | stopped
    pauses: list[Pause] = field(default_factory=list)


@workflow.defn(name=PETITION_WORKFLOW)
class PetitionWorkflow:
    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        self.start = start
        self.rules = start.rules
        self.calendar = HolidayCalendar.from_snapshot(start.calendar)
        self.intake = start.intake
        self.case_id = start.case_id
        self.t0: datetime | None = None
        self.stage = Stage.registered
        self.outcome: Outcome | None = None
        self.closed = False
        self.ready = False
        self.events: list[TimelineEvent] = []
        self.persisted = 0
        self.clocks: dict[DeadlineName, _Clock] = {}
        self.changed = False
        self.lock = asyncio.Lock()
        self.triage: TriageOutcome | None = None
        self.category = self.intake.category
        self.risk = self.intake.risk
        self.unit: str | None = self.intake.responsible_unit
        self.visits = 1
        self.leader: str | None = None  # 领导包案
        self.nail_case = False
        self.eligible = False
        self.mediation_failed = False
        self.mediation_agreed_unfulfilled = False
        self.mediated = False
        self.failed_review_scored = False
        self.extension_used = 0
        self.review_decided = False
        self.opinion_doc: DocumentIssued | None = None
        self.ladder_stage: str | None = None
        self.ladder_progress = False
        self.ladder_rearms = 0
        self.ladder_officials: list[str] = []
        self.ladder_reason = ""
        # PetitionLadder: warning | supervision while a letter runs, then accountability (the ladder
        # ended in an accountability recommendation) or ended (resolved, or the case closed).
        self.ladder_sa: str | None = None
        self.arb_state: str | None = None
        self.sa_sent: dict[str, Any] = {}  # search attribute name -> value last upserted
        self.arb_handle: ChildWorkflowHandle[Any, Any] | None = None
        self.occurrences: dict[str, int] = {}
        # Who takes the action being handled now (documents name them); see rules/access.py.
        self.actor: Actor | None = None
        # Secrets that the case's own digest and arbitration track echo in their signals, so
        # that no one else can send those signals (payloads are encrypted; see docs/privacy.md).
        self.signal_token = ""
        self.pending_calendar: CalendarSnapshot | None = None

    # ----------------------------------------------------------------------------------------
    # The run: register, triage, notify, then keep every clock until the case closes.
    # ----------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, start: CaseStart) -> CaseSnapshot:
        # Offsets and the acceptance period count from the intake: the workflow's start, not its
        # first task (which runs later when workers are behind).
        self.t0 = workflow.info().workflow_start_time
        await self._activity(
            "register_case",
            RegisterCaseInput(
                case_id=self.case_id,
                matter_key=start.matter_key,
                intake=self.intake,
                rules_version=self.rules.version,
                registered_at=self.t0,
            ),
            RegisterCaseResult,
        )
        self._emit(
            "stage",
            stage=Stage.registered.value,
            channel=self.intake.channel.value,
            office_level=self.intake.office_level.value,
            locality=self.intake.locality,
            rules_version=self.rules.version,
            calendar=self.calendar.name,
            intake_at=self.t0.isoformat(),
            by=start.registered_by.record() if start.registered_by else None,
        )
        if workflow.patched("engine-signal-tokens"):
            self.signal_token = str(workflow.uuid4())
        if start.prior_final_case:
            # A matter finalised by re-review is not accepted again on the same facts and reasons.
            async with self.lock:
                await self._document(
                    DocumentKind.not_accepted_notice,
                    reason=f"该事项已于案件 {start.prior_final_case} 经复核终结，"
                    "同一事实和理由不再受理（《信访工作条例》）。",
                    prior_case=start.prior_final_case,
                )
                self._set_stage(Stage.not_accepted, reason="finalised_by_re_review", prior_case=start.prior_final_case)
                await self._close(Outcome.not_accepted)
                await self._persist()
            return self._snapshot()

        self._arm(DeadlineName.acceptance, self.t0)
        self.triage = await self._activity(
            "triage_petition",
            TriageRequest(
                case_id=self.case_id,
                intake=self.intake,
                collective_min_workers=self.rules.arbitration.collective_wage_min_workers,
            ),
            TriageOutcome,
        )
        async with self.lock:
            t = self.triage
            self.category, self.risk = t.category, t.risk
            self.unit = self.unit or t.unit
            if self.stage == Stage.registered:
                self.stage = Stage.triaged
            self._emit(
                "stage",
                stage=Stage.triaged.value,
                category=t.category.value,
                risk=t.risk.value,
                unit=self.unit,
                reasons=t.reasons,
                category_source=t.category_source,
                risk_source=t.risk_source,
                statutory_channel=t.statutory_channel,
                model_version=t.model_version,
            )
            self._upsert_search_attributes()
            self.ready = True
            if t.collective_wage_arrears and not self.closed:
                # Collective wage arrears go straight to the arbitration green channel; the
                # petition itself is still accepted and handled in parallel.
                self._set_stage(Stage.arbitration, track="仲裁绿通+司法确认", workers=t.worker_count)
                self.arb_handle = await workflow.start_child_workflow(
                    ARBITRATION_WORKFLOW,
                    ArbitrationStart(
                        case_id=self.case_id,
                        unit=self.unit or t.unit,
                        workers=t.worker_count,
                        amount=t.amount,
                        rules=self.rules,
                        calendar=self.start.calendar,
                        parent_token=self.signal_token,
                    ),
                    id=f"{self.case_id}-arbitration",
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
                self.arb_state = "started"
            await self._persist()
        await self._notify_by_tier()
        async with self.lock:
            if self.risk == Risk.high and self.rules.ladder.start_on_high_risk and not self.closed:
                # A major risk from triage (an operator's override counts) starts the ladder at once.
                if self.ladder_stage is None:
                    self.ladder_reason = "triage: high risk"
                    await self._ladder_letter("warning")
            await self._persist()

        while not self.closed:
            now = workflow.now()
            running = [c for c in self.clocks.values() if c.status == "running"]
            nxt = min((c.due for c in running), default=None)
            self.changed = False
            if nxt is None or nxt > now:
                try:
                    timeout = (nxt - now) if nxt is not None else None
                    await workflow.wait_condition(
                        lambda: self.changed
                        or self.closed
                        or self.pending_calendar is not None
                        # a signal's event that arrived during the last save
                        or (len(self.events) > self.persisted and not self.lock.locked()),
                        timeout=timeout,
                    )
                    if self.pending_calendar is not None:
                        async with self.lock:
                            await self._check_calendar()
                    # Woken by a signal (digest sent, calendar reloaded): keep the record current.
                    if len(self.events) > self.persisted and not self.lock.locked():
                        async with self.lock:
                            await self._persist()
                    continue
                except TimeoutError:
                    pass
            async with self.lock:
                now = workflow.now()
                for clock in sorted(self.clocks.values(), key=lambda c: c.due):
                    if clock.status == "running" and clock.due <= now and not self.closed:
                        await self._lapse(clock)
                await self._persist()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._snapshot()

    # ----------------------------------------------------------------------------------------
    # Actions (updates). Each validator asks the rules; each handler re-asks under the lock.
    # ----------------------------------------------------------------------------------------
    @workflow.update
    async def accept(self, data: AcceptInput) -> ActionResult:
        return await self._act("accept", data, self._do_accept)

    @accept.validator
    def _v_accept(self, data: AcceptInput) -> None:
        self._validate("accept", data)

    @workflow.update
    async def not_accept(self, data: ReasonInput) -> ActionResult:
        return await self._act("not_accept", data, self._do_not_accept)

    @not_accept.validator
    def _v_not_accept(self, data: ReasonInput) -> None:
        self._validate("not_accept", data)

    @workflow.update
    async def redirect(self, data: RedirectInput) -> ActionResult:
        return await self._act("redirect", data, self._do_redirect)

    @redirect.validator
    def _v_redirect(self, data: RedirectInput) -> None:
        self._validate("redirect", data)

    @workflow.update
    async def mediation_result(self, data: MediationResultInput) -> ActionResult:
        return await self._act("mediation_result", data, self._do_mediation_result)

    @mediation_result.validator
    def _v_mediation_result(self, data: MediationResultInput) -> None:
        self._validate("mediation_result", data)

    @workflow.update
    async def extend(self, data: ExtendInput) -> ActionResult:
        return await self._act("extend", data, self._do_extend)

    @extend.validator
    def _v_extend(self, data: ExtendInput) -> None:
        self._validate("extend", data)

    @workflow.update
    async def issue_opinion(self, data: TextInput) -> ActionResult:
        return await self._act("issue_opinion", data, self._do_issue_opinion)

    @issue_opinion.validator
    def _v_issue_opinion(self, data: TextInput) -> None:
        self._validate("issue_opinion", data)

    @workflow.update
    async def request_review(self, data: NoInput) -> ActionResult:
        return await self._act("request_review", data, self._do_request_review)

    @request_review.validator
    def _v_request_review(self, data: NoInput) -> None:
        self._validate("request_review", data)

    @workflow.update
    async def review_decision(self, data: TextInput) -> ActionResult:
        return await self._act("review_decision", data, self._do_review_decision)

    @review_decision.validator
    def _v_review_decision(self, data: TextInput) -> None:
        self._validate("review_decision", data)

    @workflow.update
    async def request_re_review(self, data: NoInput) -> ActionResult:
        return await self._act("request_re_review", data, self._do_request_re_review)

    @request_re_review.validator
    def _v_request_re_review(self, data: NoInput) -> None:
        self._validate("request_re_review", data)

    @workflow.update
    async def re_review_decision(self, data: TextInput) -> ActionResult:
        return await self._act("re_review_decision", data, self._do_re_review_decision)

    @re_review_decision.validator
    def _v_re_review_decision(self, data: TextInput) -> None:
        self._validate("re_review_decision", data)

    @workflow.update
    async def flag_major_risk(self, data: FlagRiskInput) -> ActionResult:
        return await self._act("flag_major_risk", data, self._do_flag_major_risk)

    @flag_major_risk.validator
    def _v_flag_major_risk(self, data: FlagRiskInput) -> None:
        self._validate("flag_major_risk", data)

    @workflow.update
    async def report_progress(self, data: ProgressInput) -> ActionResult:
        return await self._act("report_progress", data, self._do_report_progress)

    @report_progress.validator
    def _v_report_progress(self, data: ProgressInput) -> None:
        self._validate("report_progress", data)

    @workflow.update
    async def risk_resolved(self, data: NoteInput) -> ActionResult:
        return await self._act("risk_resolved", data, self._do_risk_resolved)

    @risk_resolved.validator
    def _v_risk_resolved(self, data: NoteInput) -> None:
        self._validate("risk_resolved", data)

    @workflow.update
    async def repeat_visit(self, data: RepeatVisitInput) -> ActionResult:
        return await self._act("repeat_visit", data, self._do_repeat_visit)

    @repeat_visit.validator
    def _v_repeat_visit(self, data: RepeatVisitInput) -> None:
        self._validate("repeat_visit", data)

    @workflow.update
    async def assign_leader(self, data: LeaderInput) -> ActionResult:
        return await self._act("assign_leader", data, self._do_assign_leader)

    @assign_leader.validator
    def _v_assign_leader(self, data: LeaderInput) -> None:
        self._validate("assign_leader", data)

    @workflow.update
    async def withdraw(self, data: WithdrawInput) -> ActionResult:
        return await self._act("withdraw", data, self._do_withdraw)

    @withdraw.validator
    def _v_withdraw(self, data: WithdrawInput) -> None:
        self._validate("withdraw", data)

    @workflow.update
    async def pause_clock(self, data: PauseInput) -> ActionResult:
        return await self._act("pause_clock", data, self._do_pause_clock)

    @pause_clock.validator
    def _v_pause_clock(self, data: PauseInput) -> None:
        self._validate("pause_clock", data)

    @workflow.update
    async def resume_clock(self, data: PauseInput) -> ActionResult:
        return await self._act("resume_clock", data, self._do_resume_clock)

    @resume_clock.validator
    def _v_resume_clock(self, data: PauseInput) -> None:
        self._validate("resume_clock", data)

    @workflow.update
    async def arbitration(self, data: ArbitrationInput) -> ActionResult:
        return await self._act("arbitration", data, self._do_arbitration)

    @arbitration.validator
    def _v_arbitration(self, data: ArbitrationInput) -> None:
        self._validate("arbitration", data)

    @workflow.signal
    async def arbitration_overdue(self, data: ArbitrationOverdue) -> None:
        """The arbitration track missed its filing or decision deadline."""
        if data.token != self.signal_token:
            self._signal_refused("arbitration_overdue", "it did not come from this case's own arbitration track")
            return
        async with self.lock:
            if self.closed:
                return
            self._emit("overdue", deadline=data.deadline.value, due=data.due.isoformat())
            await self._overdue_notice(data.deadline)
            await self._persist()

    @workflow.signal
    async def batch_delivered(self, data: BatchDelivered) -> None:
        """The unit's daily digest (low-risk tier) went out with this case in it."""
        if data.token != self.signal_token:
            self._signal_refused("batch_delivered", "it did not come from the digest this case joined")
            return
        if self.closed:
            return
        self._emit(
            "notification",
            tier=NotificationTier.batch.value,
            recipient_role=RecipientRole.handling_unit.value,
            recipient=data.recipient,
            channel=NotifyChannel.batch.value,
            digest_id=data.digest_id,
            delivered=data.delivered,
        )
        self.changed = True

    @workflow.signal
    def reload_calendar(self, snapshot: CalendarSnapshot) -> None:
        """A newly published holiday schedule (`starter.py calendar push`). It is applied only if
        it is the calendar file the engine publishes: the run loop asks an activity to compare."""
        if snapshot.name != self.calendar.name or self.closed:
            return  # a weekends-only case stays weekends-only
        self.pending_calendar = snapshot

    async def _check_calendar(self) -> None:
        snapshot, self.pending_calendar = self.pending_calendar, None
        if snapshot is None:
            return
        published = bool(await self._activity("calendar_is_published", snapshot, None))
        if not published:
            self._signal_refused("reload_calendar", "the calendar it carries is not the published calendar file")
            return
        self._apply_calendar(snapshot)

    def _signal_refused(self, signal: str, why: str) -> None:
        """A signal only the engine may send, sent by someone else: recorded, nothing changed."""
        workflow.logger.warning("signal %s refused: %s", signal, why)
        self._emit("rejected", action=signal, error=f"Signal '{signal}' ignored: {why}.")
        self.changed = True

    def _apply_calendar(self, snapshot: CalendarSnapshot) -> None:
        self.calendar = HolidayCalendar.from_snapshot(snapshot)
        changed = []
        for clock in self.clocks.values():
            if clock.status == "running" and clock.name not in (DeadlineName.notify_immediate, DeadlineName.notify_priority):
                before = clock.due
                self._recompute(clock)
                if clock.due != before:
                    changed.append({"deadline": clock.name.value, "due": clock.due.isoformat()})
        self._emit("info", calendar_reloaded=True, official_years=snapshot.official_years, changed=changed)
        self.changed = True

    @workflow.query
    def state(self) -> CaseState:
        return CaseState(
            case_id=self.case_id,
            stage=self.stage,
            status="closed" if self.closed else "open",
            outcome=self.outcome,
            category=self.category,
            risk=self.risk,
            unit=self.unit,
            locality=self.intake.locality,
            title=self.intake.title,
            petitioners=[p.masked() for p in self.intake.petitioners],
            visits=self.visits,
            nail_case=self.nail_case,
            mediation_eligible=self.eligible,
            extension_used=self.extension_used,
            ladder_stage=self.ladder_stage,
            rules_version=self.rules.version,
            calendar=self.calendar.name,
            deadlines=[
                DeadlineView(name=c.name, started_at=c.started_at, due=c.due, provisional=c.provisional, status=c.status)  # type: ignore[arg-type]
                for c in self.clocks.values()
            ],
            overdue=[c.name for c in self.clocks.values() if c.status == "overdue"],
            registered_at=self.t0,
            leader=self.leader,
        )

    @workflow.query
    def available(self, by: Actor) -> list[str]:
        """The actions `by` may take on this case now (the case page offers exactly these).

        The same checks as the validators, without an action's data: a pause or a resume is
        offered for the periods it could apply to (PAUSABLE), and the data is checked on sending.
        """
        if not self.ready:
            return []
        facts, now = self._facts(), workflow.now()
        allowed = []
        for action in ACTION_INPUTS:
            if action_refusal(action, by.role, by.unit, self.unit):
                continue
            if action in ("pause_clock", "resume_clock"):
                names = facts.due if action == "pause_clock" else facts.paused
                if facts.closed or not any(n in PAUSABLE for n in names):
                    continue
            elif action == "arbitration":
                if facts.closed or not ARBITRATION_NEXT.get(facts.arbitration_state or ""):
                    continue
            elif refusal(action, facts, now, self.rules, None):
                continue
            allowed.append(action)
        return allowed

    @workflow.query
    def timeline(self) -> Timeline:
        return Timeline(case_id=self.case_id, events=list(self.events))

    # ----------------------------------------------------------------------------------------
    # Action handlers
    # ----------------------------------------------------------------------------------------
    async def _do_accept(self, d: AcceptInput) -> None:
        now = workflow.now()
        self.unit = d.unit
        facts_clear = d.facts_clear if d.facts_clear is not None else self.intake.facts_clear
        amount = d.disputed_amount if d.disputed_amount is not None else self.intake.disputed_amount
        self._finish(DeadlineName.acceptance)
        self._set_stage(Stage.accepted, unit=d.unit)
        await self._document(DocumentKind.acceptance_notice, unit=d.unit)
        self.eligible = mediation_eligible(self.rules, self.category, facts_clear, amount)
        if self.eligible:
            self._set_stage(Stage.mediation, window=DeadlineName.mediation_window.value)
            self._arm(DeadlineName.mediation_window, now)
        else:
            self._set_stage(Stage.handling)
        self._arm(DeadlineName.handling, now)
        self._upsert_search_attributes()

    async def _do_not_accept(self, d: ReasonInput) -> None:
        self._finish(DeadlineName.acceptance)
        await self._document(DocumentKind.not_accepted_notice, reason=d.reason)
        self._set_stage(Stage.not_accepted, reason=d.reason)
        await self._close(Outcome.not_accepted)

    async def _do_redirect(self, d: RedirectInput) -> None:
        self._finish(DeadlineName.acceptance)
        await self._document(DocumentKind.redirect_notice, route=d.route.value, reason=d.reason or "")
        self._set_stage(Stage.redirected, route=d.route.value)
        await self._close(Outcome.redirected)

    async def _do_mediation_result(self, d: MediationResultInput) -> None:
        now = workflow.now()
        window = self.clocks.get(DeadlineName.mediation_window)
        within = window is not None and window.status == "running" and now < window.due
        if d.success:
            await self._document(
                DocumentKind.mediation_agreement, fulfilled=d.fulfilled, other_party=d.other_party, terms=d.terms
            )
        self._emit("stage", stage=Stage.mediation.value, success=d.success, fulfilled=d.fulfilled, within_window=within)
        if window is not None and window.status == "running":
            self._finish(DeadlineName.mediation_window)
        if d.success and d.fulfilled:
            self.mediated = True
            points = mediation_points(self.rules, True, True, within, self.eligible)
            if points is not None and self.unit:
                await self._score(ScoreRule.mediation_success, points)
            await self._close(Outcome.mediated)
            return
        if d.success:
            # Agreed but not yet carried out: the case stays in handling until it is.
            self.mediation_agreed_unfulfilled = True
        else:
            self.mediation_failed = True
        if self.stage == Stage.mediation:
            self._set_stage(Stage.handling)

    async def _do_extend(self, d: ExtendInput) -> None:
        clock = self.clocks[DeadlineName.handling]
        self.extension_used += 1
        clock.extra += d.days
        self._recompute(clock)
        await self._document(
            DocumentKind.extension_notice,
            days=d.days,
            approved_by=d.approved_by,
            reason=d.reason,
            new_due=clock.due.isoformat(),
        )
        self._emit("stage", stage=Stage.handling.value, extended_days=d.days, approved_by=d.approved_by, due=clock.due.isoformat())

    async def _do_issue_opinion(self, d: TextInput) -> None:
        now = workflow.now()
        self._finish(DeadlineName.handling)
        if DeadlineName.mediation_window in self.clocks:
            self._finish(DeadlineName.mediation_window)
        self.opinion_doc = await self._document(DocumentKind.handling_opinion, text=d.text)
        await self._delivery_receipt(self.opinion_doc)
        self._set_stage(Stage.opinion_issued)
        self._arm(DeadlineName.review_request, now)

    async def _do_request_review(self, d: NoInput) -> None:
        await self._enter_review(DeadlineName.review_request, Stage.review, DeadlineName.review_decision)

    async def _do_review_decision(self, d: TextInput) -> None:
        now = workflow.now()
        self._finish(DeadlineName.review_decision)
        await self._delivery_receipt(await self._document(DocumentKind.review_opinion, text=d.text))
        self.review_decided = True
        self._emit("stage", stage=Stage.review.value, decided=True)
        self._arm(DeadlineName.re_review_request, now)

    async def _do_request_re_review(self, d: NoInput) -> None:
        await self._enter_review(DeadlineName.re_review_request, Stage.re_review, DeadlineName.re_review_decision)

    async def _enter_review(self, window: DeadlineName, stage: Stage, decision: DeadlineName) -> None:
        """Review and re-review start alike: the petitioner's window is met, the body's clock starts,
        and a failed first-handling mediation costs its point (once)."""
        self._finish(window)
        self._set_stage(stage)
        self._arm(decision, workflow.now())
        await self._score_failed_mediation()

    async def _do_re_review_decision(self, d: TextInput) -> None:
        self._finish(DeadlineName.re_review_decision)
        await self._delivery_receipt(await self._document(DocumentKind.re_review_opinion, text=d.text))
        await self._close(Outcome.final_after_re_review)

    async def _do_flag_major_risk(self, d: FlagRiskInput) -> None:
        self.ladder_reason = d.reason
        self.ladder_officials = list(d.officials)
        data: dict[str, Any] = {}
        if workflow.patched(MORE_SEARCH_ATTRIBUTES) and self.risk != Risk.high:
            # A major risk is a high risk from now on (the case's record and PetitionRisk say so;
            # the triage event keeps what triage said).
            data = {"risk": Risk.high.value, "previous_risk": self.risk.value if self.risk else None}
            self.risk = Risk.high
        self._emit("ladder", ladder="flagged", reason=d.reason, **data)
        await self._ladder_letter("warning")

    async def _do_report_progress(self, d: ProgressInput) -> None:
        # Progress counts only against a supervision letter; under the warning letter it changes nothing.
        counts = d.substantive and self.ladder_stage == "supervision"
        if counts:
            self.ladder_progress = True
        self._emit("ladder", ladder="progress", substantive=d.substantive, counts=counts, note=d.note)

    async def _do_risk_resolved(self, d: NoteInput) -> None:
        self._end_ladder("resolved", note=d.note)

    async def _do_repeat_visit(self, d: RepeatVisitInput) -> None:
        self.visits += 1
        came: dict[str, Any] = {"channel": d.channel.value, "persons": d.persons} if d.channel else {}
        self._emit("visit", visits=self.visits, **came)
        if not self.nail_case and self.visits >= self.rules.repeat_visits.nail_case_threshold:
            self.nail_case = True
            # 钉子案: the backlog register, a dedicated task team and third-party evaluation.
            self._emit("visit", visits=self.visits, nail_case=True, backlog_register=True, task_team=True, third_party_evaluation=True)

    async def _do_assign_leader(self, d: LeaderInput) -> None:
        previous, self.leader = self.leader, d.leader
        self._emit("leader", leader=d.leader, previous=previous, note=d.note)

    async def _do_pause_clock(self, d: PauseInput) -> None:
        clock = self.clocks[d.deadline]
        clock.pauses.append(Pause(start=workflow.now()))
        clock.status = "paused"
        self.changed = True
        self._emit("info", clock_paused=d.deadline.value, reason=d.reason)

    async def _do_resume_clock(self, d: PauseInput) -> None:
        clock = self.clocks[d.deadline]
        clock.pauses[-1] = Pause(start=clock.pauses[-1].start, end=workflow.now())
        clock.status = "running"
        self._recompute(clock)
        self._emit("info", clock_resumed=d.deadline.value, due=clock.due.isoformat())

    async def _do_arbitration(self, d: ArbitrationInput) -> None:
        self.arb_state = d.event.value
        if self.arb_handle is not None:
            await self.arb_handle.signal("record", ArbitrationStep(event=d.event, at=workflow.now(), note=d.note))
        self._emit("stage", stage=Stage.arbitration.value, step=d.event.value, note=d.note or None)
        if d.event == ArbitrationEvent.confirmed:
            await self._close(Outcome.resolved)
        elif d.event == ArbitrationEvent.court:
            self._finish(DeadlineName.acceptance)
            await self._document(DocumentKind.redirect_notice, route="litigation", reason="劳动争议经仲裁未能解决")
            self._set_stage(Stage.redirected, route="litigation", after="arbitration_failed")
            await self._close(Outcome.redirected)

    async def _do_withdraw(self, d: WithdrawInput) -> None:
        self._emit("stage", stage=self.stage.value, withdrawn=True, reason=d.reason)
        await self._close(Outcome.withdrawn)

    # ----------------------------------------------------------------------------------------
    # Deadlines
    # ----------------------------------------------------------------------------------------
    def _arm(self, name: DeadlineName, started_at: datetime) -> _Clock:
        rule = self.rules.deadline(name)
        d = compute_deadline(started_at, rule.length, rule.unit, self.calendar)
        clock = _Clock(name=name, started_at=started_at, extra=0, due=d.due, provisional=d.provisional)
        self.clocks[name] = clock
        self.changed = True
        return clock

    def _recompute(self, clock: _Clock) -> None:
        rule = self.rules.deadline(clock.name)
        open_pause = bool(clock.pauses) and clock.pauses[-1].end is None
        d = compute_deadline(
            clock.started_at,
            rule.length + clock.extra,
            rule.unit,
            self.calendar,
            pauses=clock.pauses,
            as_of=workflow.now() if open_pause else None,
        )
        clock.due, clock.provisional = d.due, d.provisional
        self.changed = True

    def _finish(self, name: DeadlineName) -> None:
        clock = self.clocks.get(name)
        if clock is not None and clock.status in ("running", "paused"):
            clock.status = "met"
            self.changed = True

    async def _lapse(self, clock: _Clock) -> None:
        name = clock.name
        if name in (DeadlineName.review_request, DeadlineName.re_review_request):
            # The petitioner's window closed with no request: the last answer stands.
            clock.status = "met"
            outcome = closing_outcome_when_window_lapses(name)
            self._emit("info", window_closed=name.value)
            await self._close(outcome)
            return
        clock.status = "overdue"
        self._emit("overdue", deadline=name.value, due=clock.due.isoformat(), provisional=clock.provisional)
        self._upsert_search_attributes()
        if name == DeadlineName.risk_warning:
            await self._ladder_letter("supervision")
            return
        if name == DeadlineName.supervision:
            nxt = supervision_deadline_outcome(self.ladder_progress, self.ladder_rearms, self.rules)
            if nxt == "supervision":
                self.ladder_rearms += 1
            await self._ladder_letter(nxt)
            return
        await self._overdue_notice(name)
        if name == DeadlineName.mediation_window:
            if self.unit:
                await self._score(ScoreRule.mediation_window_missed, self.rules.scores.mediation_window_missed)
            if self.stage == Stage.mediation:
                self._set_stage(Stage.handling, after="mediation_window_missed")

    # ----------------------------------------------------------------------------------------
    # The three-letters ladder (三函两书)
    # ----------------------------------------------------------------------------------------
    async def _ladder_letter(self, step: str) -> None:
        now = workflow.now()
        unit = self.unit or self.intake.locality
        fields: dict[str, Any] = {"unit": unit, "locality": self.intake.locality, "reason": self.ladder_reason}
        if step == "accountability":
            officials = self.ladder_officials or await self._activity_list("resolve_officials", unit)
            fields["officials"] = officials
            letter = await self._document(_LADDER_LETTER[step], **fields)
            self._emit("ladder", ladder="accountability", unit=unit, officials=officials, letter=letter.sha256)
            await self._petitioner_notice(step)
            await self._score(ScoreRule.accountability, self.rules.scores.accountability)
            for official in officials:
                await self._score(ScoreRule.accountability, 0, official=official, rule_name="accountability_official")
            self._end_ladder("accountability")
            return
        name = DeadlineName.risk_warning if step == "warning" else DeadlineName.supervision
        rule = self.rules.deadline(name)
        d = compute_deadline(now, rule.length, rule.unit, self.calendar)
        fields["deadline"] = d.due.isoformat()
        letter = await self._document(_LADDER_LETTER[step], **fields)
        self.ladder_stage = step
        self.ladder_sa = step
        self.ladder_progress = False
        self._emit("ladder", ladder=step, unit=unit, due=d.due.isoformat(), letter=letter.sha256)
        await self._petitioner_notice(step)
        self._arm(name, now)
        if workflow.patched(MORE_SEARCH_ATTRIBUTES):
            self._upsert_search_attributes()

    async def _petitioner_notice(self, step: str) -> None:
        enclosures = [self.opinion_doc.sha256] if self.opinion_doc else []
        await self._document(DocumentKind.petitioner_notice, ladder_step=step, enclosures=enclosures)

    def _end_ladder(self, how: str, note: str = "", upsert: bool = True) -> None:
        for name in (DeadlineName.risk_warning, DeadlineName.supervision):
            clock = self.clocks.get(name)
            if clock is not None and clock.status == "running":
                clock.status = "stopped" if how != "resolved" else "met"
        if self.ladder_stage is not None or how == "accountability":
            self._emit("ladder", ladder="ended", how=how, note=note)
            self.ladder_sa = "accountability" if how == "accountability" else "ended"
            if upsert and workflow.patched(MORE_SEARCH_ATTRIBUTES):
                self._upsert_search_attributes()
        self.ladder_stage = None
        self.changed = True

    # ----------------------------------------------------------------------------------------
    # Notifications
    # ----------------------------------------------------------------------------------------
    async def _notify_by_tier(self) -> None:
        if self.closed or self.risk is None:
            return
        rule = self.rules.notifications.tiers[self.risk]
        t = self.triage
        assert t is not None
        now = workflow.now()
        if rule.tier == NotificationTier.batch:
            clock = self.rules.notifications.batch_clock()
            batch_at = next_local_time(now, clock.hour, clock.minute)
            await self._activity(
                "enqueue_batch",
                BatchEnqueue(
                    case_id=self.case_id,
                    unit=self.unit or t.unit,
                    title=self.intake.title,
                    batch_at=batch_at,
                    task_queue=workflow.info().task_queue,
                    token=self.signal_token,
                ),
                None,
            )
            return
        recipient = t.principal_leader if rule.recipient_role == RecipientRole.principal_leader else t.deputy_leader
        due = None
        if rule.within is not None:
            within = self.rules.deadline(rule.within)
            due = compute_deadline(now, within.length, within.unit, self.calendar).due
        await self._send(rule.tier, rule.recipient_role, recipient, rule.channel, due, within=rule.within)

    async def _send(
        self,
        tier: NotificationTier,
        role: RecipientRole,
        recipient: str,
        channel: NotifyChannel,
        due: datetime | None,
        within: DeadlineName | None = None,
        **extra: Any,
    ) -> None:
        key = self._key(f"notify:{tier.value}")
        subject = f"【{TIER_CN[tier]}】信访事项 {self.case_id}：{self.intake.title}"
        body = (
            f"案件 {self.case_id}（{self.intake.locality}，{CATEGORY_CN[self.category] if self.category else '待分拣'}，"
            f"风险{RISK_CN[self.risk] if self.risk else '未定'}）{extra.get('what', '请及时处理')}。"
        )
        req = NotificationRequest(
            idempotency_key=key,
            case_id=self.case_id,
            tier=tier,
            recipient_role=role,
            recipient=recipient,
            channel=channel,
            subject=subject,
            body=body,
            deadline=due,
        )
        # Retried until the tier's deadline (a notice without one, an overdue alert: for a minute).
        timeout = max((due - workflow.now()) if due else _ACTIVITY_TIMEOUT, timedelta(seconds=1))
        # An immediate notice jumps the queue (cases started before this keep the default).
        urgent = tier == NotificationTier.immediate and workflow.patched(URGENT_NOTICE)
        priority = URGENT_PRIORITY if urgent else Priority.default
        try:
            sent = await workflow.execute_activity(
                "send_notification",
                req,
                result_type=NotificationSent,
                schedule_to_close_timeout=timeout,
                start_to_close_timeout=min(_ACTIVITY_TIMEOUT, timeout),
                retry_policy=_NOTIFY_RETRY,
                priority=priority,
            )
            data: dict[str, Any] = {k: v for k, v in extra.items() if k != "what"}
            self._emit(
                "notification",
                tier=tier.value,
                recipient_role=role.value,
                recipient=recipient,
                channel=sent.channel.value,
                delivered=sent.delivered,
                adapter=sent.adapter,
                due=due.isoformat() if due else None,
                **data,
            )
        except ActivityError as err:
            # Not delivered before the tier's deadline (or refused for good): say so, with what was
            # tried, then escalate to the supervision office's duty desk as an overdue alert.
            failure = _notice_failure(err)
            self._emit(
                "notification",
                tier=tier.value,
                recipient_role=role.value,
                recipient=recipient,
                channel=channel.value,
                delivered=False,
                due=due.isoformat() if due else None,
                **failure,
            )
            fallback = self.rules.notifications.fallback_channel
            escalation = NotificationRequest(
                idempotency_key=self._key("notify:fallback"),
                case_id=self.case_id,
                tier=NotificationTier.overdue,
                recipient_role=RecipientRole.supervision_office,
                recipient=f"{self.intake.locality}信访督查室",
                channel=fallback,
                subject=f"[未送达] {subject}",
                body=f"{body}（原通知未能在时限内送达 {recipient}，请值班人员立即转告。）",
                deadline=None,
            )
            sent = await workflow.execute_activity(
                "send_fallback_notification",
                escalation,
                result_type=NotificationSent,
                start_to_close_timeout=_ACTIVITY_TIMEOUT,
                retry_policy=_RETRY,
                priority=priority,
            )
            self._emit(
                "notification",
                tier=NotificationTier.overdue.value,
                deadline=(within.value if within else "notification"),
                recipient_role=RecipientRole.supervision_office.value,
                recipient=escalation.recipient,
                # The fallback writes the duty log through the recording adapter: that is its channel,
                # whatever channel the rules name for it.
                channel=DUTY_LOG if sent.adapter == "recording" else sent.channel.value,
                adapter=sent.adapter,
                delivered=sent.delivered,
                escalated_from=role.value,
            )

    async def _overdue_notice(self, name: DeadlineName) -> None:
        rule = self.rules.notifications.overdue
        unit = self.unit or self.intake.locality
        recipient = f"{unit}负责人"
        what = f"{DEADLINE_CN[name]}已逾期，请立即处理"
        await self._send(NotificationTier.overdue, rule.recipient_role, recipient, rule.channel, None, deadline=name.value, what=what)

    # ----------------------------------------------------------------------------------------
    # Side effects
    # ----------------------------------------------------------------------------------------
    async def _activity(self, name: str, arg: Any, result_type: type[T] | None) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=_ACTIVITY_TIMEOUT,
            retry_policy=_RETRY,
        )

    async def _activity_list(self, name: str, arg: str) -> list[str]:
        result = await workflow.execute_activity(
            name, arg, result_type=list[str], start_to_close_timeout=_ACTIVITY_TIMEOUT, retry_policy=_RETRY
        )
        return list(result)

    def _key(self, what: str) -> str:
        n = self.occurrences.get(what, 0) + 1
        self.occurrences[what] = n
        return f"{self.case_id}:{what}:{n}"

    async def _document(self, kind: DocumentKind, **fields: Any) -> DocumentIssued:
        now = workflow.now()
        fields.setdefault("title", self.intake.title)
        fields.setdefault("locality", self.intake.locality)
        if self.unit:
            fields.setdefault("unit", self.unit)
        if self.actor is not None:
            fields.setdefault("handled_by", self.actor.name)
        issued = await self._activity(
            "issue_document",
            DocumentRequest(
                idempotency_key=self._key(f"doc:{kind.value}"),
                case_id=self.case_id,
                kind=kind,
                issued_at=now,
                fields=fields,
            ),
            DocumentIssued,
        )
        self._emit(
            "document",
            document=kind.value,
            sha256=issued.sha256,
            ledger_index=issued.ledger_index,
            verification_code=issued.verification_code,
        )
        return issued

    async def _delivery_receipt(self, doc: DocumentIssued) -> None:
        """送达回证: an opinion's receipt starts the petitioner's window, so it is recorded too."""
        await self._document(
            DocumentKind.delivery_receipt,
            delivered_document=f"{doc.kind.value}（存证核验码 {doc.verification_code}）",
        )

    async def _score(self, rule: ScoreRule, points: int, official: str | None = None, rule_name: str | None = None) -> None:
        unit = self.unit or self.intake.locality
        name = rule_name or rule.value
        await self._activity(
            "record_score",
            ScoreRequest(
                idempotency_key=self._key(f"score:{name}"),
                case_id=self.case_id,
                unit=unit,
                rule=name,
                points=points,
                occurred_at=workflow.now(),
                rules_version=self.rules.version,
                official=official,
            ),
            None,
        )
        data: dict[str, Any] = {"unit": unit, "points": points, "rule": name}
        if official:
            data["official"] = official
        self._emit("score", **data)

    async def _score_failed_mediation(self) -> None:
        if self.mediation_failed and not self.failed_review_scored and self.unit:
            self.failed_review_scored = True
            await self._score(ScoreRule.mediation_failed_review, self.rules.scores.mediation_failed_review)

    async def _persist(self) -> None:
        if self.persisted == len(self.events) and not self.closed:
            return
        mark = len(self.events)  # events a signal adds during the save are saved next time
        snap = self._snapshot(self.events[self.persisted : mark])
        await self._activity("save_case", snap, None)
        self.persisted = mark

    def _snapshot(self, events: list[TimelineEvent] | None = None) -> CaseSnapshot:
        waiting = [c for c in self.clocks.values() if c.status == "running" and c.name in PETITIONER_PERIODS]
        nxt = min(waiting, key=lambda c: c.due, default=None)
        late = min((c for c in self.clocks.values() if c.status == "overdue"), key=lambda c: c.due, default=None)
        return CaseSnapshot(
            case_id=self.case_id,
            stage=self.stage,
            status="closed" if self.closed else "open",
            outcome=self.outcome,
            category=self.category,
            risk=self.risk,
            unit=self.unit,
            visits=self.visits,
            nail_case=self.nail_case,
            mediation_eligible=self.eligible,
            mediation_succeeded=self.mediated,
            overdue=late is not None,
            closed_at=workflow.now() if self.closed else None,
            events=events if events is not None else [],
            next_deadline=nxt.name if nxt else None,
            next_due=nxt.due if nxt else None,
            next_due_provisional=nxt.provisional if nxt else False,
            overdue_deadline=late.name if late else None,
            overdue_due=late.due if late else None,
        )

    # ----------------------------------------------------------------------------------------
    # Plumbing
    # ----------------------------------------------------------------------------------------
    def _facts(self) -> CaseFacts:
        return CaseFacts(
            stage=self.stage,
            closed=self.closed,
            outcome=self.outcome,
            ready=self.ready,
            extension_used=self.extension_used,
            mediation_failed=self.mediation_failed,
            mediation_agreed_unfulfilled=self.mediation_agreed_unfulfilled,
            review_decided=self.review_decided,
            ladder_stage=self.ladder_stage,
            arbitration_state=self.arb_state,
            paused=frozenset(c.name for c in self.clocks.values() if c.status == "paused"),
            due={c.name: c.due for c in self.clocks.values() if c.status == "running"},
        )

    def _validate(self, action: str, data: BaseModel) -> None:
        # Who may act comes first (rules/access.py); then what the rules allow at this moment.
        # Validators do not run on replay, so cases started before actors existed still replay.
        by: Actor | None = getattr(data, "by", None)
        reason = action_refusal(action, by.role if by else None, by.unit if by else None, self.unit) or refusal(
            action, self._facts(), workflow.now(), self.rules, data
        )
        if reason:
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)

    async def _act(self, action: str, data: T, handler: Callable[[T], Awaitable[None]]) -> ActionResult:
        # Actions that arrive while registration and triage are still running wait for them.
        await workflow.wait_condition(lambda: self.ready or self.closed)
        async with self.lock:
            # The state may have moved between validation and now (another action, a deadline).
            reason = refusal(action, self._facts(), workflow.now(), self.rules, data)
            if reason:
                raise ApplicationError(reason, type="ActionRefused", non_retryable=True)
            mark = len(self.events)
            by: Actor | None = getattr(data, "by", None)
            self.actor = by
            try:
                await handler(data)
            finally:
                self.actor = None
            if by is not None:
                self._record_actor(action, by, mark)
            await self._persist()
            self.changed = True
            return ActionResult(
                case_id=self.case_id, action=action, stage=self.stage, outcome=self.outcome, events=self.events[mark:]
            )

    def _record_actor(self, action: str, by: Actor, mark: int) -> None:
        """The timeline says who took each action: on its first event, or an event of its own."""
        if len(self.events) > mark:
            self.events[mark].data.setdefault("action", action)
            self.events[mark].data["by"] = by.record()
        else:
            self._emit("info", action=action, by=by.record())

    def _emit(self, kind: str, **data: Any) -> TimelineEvent:
        now = workflow.now()
        t0 = self.t0 or now
        ev = TimelineEvent(
            seq=len(self.events) + 1,
            at=now,
            offset_s=round((now - t0).total_seconds()),
            kind=kind,  # type: ignore[arg-type]
            data={k: v for k, v in data.items() if v is not None},
        )
        self.events.append(ev)
        return ev

    def _set_stage(self, stage: Stage, **data: Any) -> None:
        self.stage = stage
        self._emit("stage", stage=stage.value, **data)
        self._upsert_search_attributes()

    async def _close(self, outcome: Outcome) -> None:
        self.outcome = outcome
        for clock in self.clocks.values():
            if clock.status in ("running", "paused"):
                clock.status = "stopped"
        if self.ladder_stage is not None:
            self._end_ladder("case_closed", upsert=False)  # upserted below, with the closed stage
        if self.arb_handle is not None and self.arb_state not in (ArbitrationEvent.confirmed.value, ArbitrationEvent.court.value):
            await self.arb_handle.signal("stop", outcome.value)
        self.stage = Stage.closed
        self.closed = True
        self._emit("stage", stage=Stage.closed.value, outcome=outcome.value)
        self._upsert_search_attributes()
        self.changed = True

    def _upsert_search_attributes(self) -> None:
        if not self.start.use_search_attributes:
            return
        wanted: dict[str, tuple[Any, Any]] = {
            SA_STAGE.name: (SA_STAGE, self.stage.value),
            SA_OVERDUE.name: (SA_OVERDUE, any(c.status == "overdue" for c in self.clocks.values())),
        }
        for key, value in ((SA_CATEGORY, self.category), (SA_RISK, self.risk), (SA_UNIT, self.unit), (SA_OUTCOME, self.outcome)):
            if value:
                wanted[key.name] = (key, value.value if hasattr(value, "value") else value)
        if workflow.patched(MORE_SEARCH_ATTRIBUTES):
            # A place name (intake caps it at 100 characters; older cases are cut to that here).
            wanted[SA_LOCALITY.name] = (SA_LOCALITY, self.intake.locality[:MAX_NAME_CHARS])
            if self.ladder_sa:
                wanted[SA_LADDER.name] = (SA_LADDER, self.ladder_sa)
        if workflow.patched("upsert-changed-search-attributes"):
            # Only what changed since the last upsert, and nothing when nothing did: every upsert
            # is a server write (docs/benchmarks.md measured them as the engine's main overhead).
            wanted = {name: kv for name, kv in wanted.items() if self.sa_sent.get(name) != kv[1]}
            if not wanted:
                return
            self.sa_sent.update({name: kv[1] for name, kv in wanted.items()})
        workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted.values()])


def _notice_failure(err: ActivityError) -> dict[str, Any]:
    """What a failed notice's activity tells the timeline: the adapter that tried, how many attempts,
    why it stopped (its deadline passed, or the receiver refused it for good) and the last error.

    `send_notification` puts {"adapter", "attempt"} in its error's details; when the deadline passes
    the server reports a timeout whose cause is the last attempt's error.
    """
    cause = err.cause
    if isinstance(cause, ActivityTimeout):
        cause = cause.cause or cause
    if err.retry_state == RetryState.NON_RETRYABLE_FAILURE:
        gave_up = "refused"  # the receiver rejected it: retrying would not help
    elif err.retry_state == RetryState.TIMEOUT or isinstance(err.cause, ActivityTimeout):
        gave_up = "deadline"  # the next attempt would come after the tier's deadline
    else:
        gave_up = "error"
    out: dict[str, Any] = {"gave_up": gave_up}
    if isinstance(cause, ApplicationError):
        info = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        if isinstance(info.get("adapter"), str):
            out["adapter"] = info["adapter"]
        if isinstance(info.get("attempt"), int):
            out["attempts"] = info["attempt"]
        out["error"] = cause.message
    else:
        out["error"] = str(cause or err)
    return out


__all__ = ["PetitionWorkflow", "AWAITING_ACCEPTANCE", "DeadlineStart"]
