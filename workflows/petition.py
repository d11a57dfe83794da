"""The life of one petition as a durable workflow: every deadline, escalation and document.

This class keeps the handlers (updates, signals, queries), their validators and the order of
steps; what it needs is beside it, each part readable on its own:

- `workflows/case_model.py`: the one state model (`CaseModel`) and what is derived from it (the
  `state` query, the snapshot the database keeps, the facts the rules look at);
- `workflows/effects.py`: the side effects (activities by typed name, documents, scores, notices,
  saves, search attributes), the base class of this one;
- `workflows/clocks.py`: the statutory clocks (arm, recompute, lapse order), pure computation;
- `workflows/notices.py`: what notices and reasons say; `workflows/names.py`: activity and
  signal names; `workflows/patches.py`: the patch ids that keep running cases replaying;
- `rules/lifecycle.py`: what each action may do now; `rules/ladder.py`: the three-letters ladder.

Every side effect is an activity (this module never imports database or network code); every
rule comes from the case's own rule set (`CaseStart.rules`). Actions from people are updates
whose validators ask `rules.lifecycle.refusal`, so a refused action leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

# Pure, stateless modules (this package's too: clocks, notices, names...) pass through the sandbox:
# imported once, not again for every workflow run (docs/benchmarks.md).
with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from rules import ladder
    from rules.access import action_refusal
    from rules.deadlines import CalendarSnapshot, HolidayCalendar, compute_deadline
    from rules.lifecycle import (
        AWAITING_ACCEPTANCE,
        CaseFacts,
        closing_outcome_when_window_lapses,
        mediation_eligible,
        mediation_points,
        refusal,
    )
    from rules.vocabulary import (
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
    from workflows import case_model, clocks, notices
    from workflows.case_model import ClockState
    from workflows.models import (
        ACTION_INPUTS,
        ARBITRATION_WORKFLOW,
        PETITION_WORKFLOW,
        AcceptInput,
        ActionResult,
        Actor,
        ArbitrationInput,
        ArbitrationOverdue,
        ArbitrationStart,
        ArbitrationStep,
        BatchDelivered,
        CaseSnapshot,
        CaseStart,
        CaseState,
        ExtendInput,
        FlagRiskInput,
        LeaderInput,
        MediationResultInput,
        NoInput,
        NoteInput,
        PauseInput,
        ProgressInput,
        ReasonInput,
        RedirectInput,
        RepeatVisitInput,
        TextInput,
        Timeline,
        TriageRequest,
        WithdrawInput,
    )
    from workflows.names import (
        ACTION_REFUSED,
        ARBITRATION_OVERDUE,
        ARBITRATION_RECORD,
        ARBITRATION_STOP,
        BATCH_DELIVERED,
        CALENDAR_IS_PUBLISHED,
        REGISTER_CASE,
        RELOAD_CALENDAR,
        RESOLVE_OFFICIALS,
        TRIAGE_PETITION,
        send,
    )
    from workflows.notices import DUTY_LOG
    from workflows.patches import (
        AWAIT_ARBITRATION_TRACK,
        CONTINUE_AS_NEW,
        MORE_SEARCH_ATTRIBUTES,
        SIGNAL_TOKENS,
        URGENT_NOTICE,
    )


from workflows.effects import CaseEffects

T = TypeVar("T", bound=BaseModel)

__all__ = ["PetitionWorkflow", "AWAITING_ACCEPTANCE", "DUTY_LOG", "DeadlineStart", "MORE_SEARCH_ATTRIBUTES", "URGENT_NOTICE"]


def _action(name: str) -> Any:
    """The update for action `name` (rules.lifecycle's vocabulary), taking `ACTION_INPUTS[name]`.

    Its validator asks who may act (rules/access.py) and what the rules allow now; a refused
    update is rejected before it is written to history. Its handler waits for registration and
    triage, takes the case's lock, asks the rules again, runs `PetitionWorkflow._do_<name>` and
    saves the case (`PetitionWorkflow._act`).
    """

    async def handler(self: PetitionWorkflow, data: BaseModel) -> ActionResult:
        return await self._act(name, data, getattr(self, f"_do_{name}"))

    def validator(self: PetitionWorkflow, data: BaseModel) -> None:
        self._validate(name, data)

    # The SDK reads the update's argument type from the annotations (to decode its payload), and
    # checks that the validator takes the same.
    handler.__annotations__ = {"data": ACTION_INPUTS[name], "return": ActionResult}
    validator.__annotations__ = {"data": ACTION_INPUTS[name], "return": None}
    handler.__name__ = handler.__qualname__ = name
    validator.__name__ = validator.__qualname__ = f"_validate_{name}"
    update = workflow.update(name=name)(handler)
    update.validator(validator)
    return update


@workflow.defn(name=PETITION_WORKFLOW)
class PetitionWorkflow(CaseEffects):
    @workflow.init
    def __init__(self, start: CaseStart) -> None:
        super().__init__(start)  # the start, the state model, the calendar (workflows/effects.py)
        # Run-time only (never carried): wake-ups, the lock actions and clocks take turns with,
        # the arbitration child's handle, a calendar waiting to be checked.
        self.changed = False
        self.lock = asyncio.Lock()
        self.arb_handle: ChildWorkflowHandle[Any, Any] | None = None
        self.pending_calendar: CalendarSnapshot | None = None

    # ----------------------------------------------------------------------------------------
    # The run: register, triage, notify, then keep every clock until the case closes.
    # ----------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, start: CaseStart) -> CaseSnapshot:
        if start.carried is None:  # a continued run resumes where the last one stopped
            await self._register(start)
            if start.prior_final_case:
                await self._refuse_finalised_matter(start.prior_final_case)
                return self._snapshot()
            await self._triage_and_notify()
        await self._keep_clocks()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.arb_handle is not None and workflow.patched(AWAIT_ARBITRATION_TRACK):
            await self._arbitration_track_ended()
        return self._snapshot()

    async def _register(self, start: CaseStart) -> None:
        m = self.case
        # Offsets and the acceptance period count from the intake: the workflow's start, not its
        # first task (which runs later when workers are behind).
        m.registered_at = t0 = workflow.info().workflow_start_time
        await self._call(REGISTER_CASE, self._registration())
        self._emit(
            "stage",
            stage=Stage.registered.value,
            channel=self.intake.channel.value,
            office_level=self.intake.office_level.value,
            locality=self.intake.locality,
            rules_version=self.rules.version,
            calendar=self.calendar.name,
            intake_at=t0.isoformat(),
            by=start.registered_by.record() if start.registered_by else None,
        )
        if workflow.patched(SIGNAL_TOKENS):
            m.signal_token = str(workflow.uuid4())

    async def _refuse_finalised_matter(self, prior_case: str) -> None:
        """A matter finalised by re-review is not accepted again on the same facts and reasons."""
        async with self.lock:
            await self._document(
                DocumentKind.not_accepted_notice, reason=notices.finalised_reason(prior_case), prior_case=prior_case
            )
            self._set_stage(Stage.not_accepted, reason="finalised_by_re_review", prior_case=prior_case)
            await self._close(Outcome.not_accepted)
            await self._persist()

    async def _triage_and_notify(self) -> None:
        """Triage; the arbitration track if due; the notice of the risk's tier; the ladder for a
        major risk."""
        m = self.case
        assert m.registered_at is not None
        self._arm(DeadlineName.acceptance, m.registered_at)
        m.triage = t = await self._call(
            TRIAGE_PETITION,
            TriageRequest(
                case_id=self.case_id,
                intake=self.intake,
                collective_min_workers=self.rules.arbitration.collective_wage_min_workers,
            ),
        )
        async with self.lock:
            m.category, m.risk = t.category, t.risk
            m.unit = m.unit or t.unit
            if m.stage == Stage.registered:
                m.stage = Stage.triaged
            self._emit(
                "stage",
                stage=Stage.triaged.value,
                category=t.category.value,
                risk=t.risk.value,
                unit=m.unit,
                reasons=t.reasons,
                category_source=t.category_source,
                risk_source=t.risk_source,
                statutory_channel=t.statutory_channel,
                model_version=t.model_version,
            )
            self._upsert_search_attributes()
            m.ready = True
            if t.collective_wage_arrears and not m.closed:
                # Collective wage arrears go straight to the arbitration green channel; the
                # petition itself is still accepted and handled in parallel.
                self._set_stage(Stage.arbitration, track=notices.ARBITRATION_TRACK, workers=t.worker_count)
                self.arb_handle = await workflow.start_child_workflow(
                    ARBITRATION_WORKFLOW,
                    ArbitrationStart(
                        case_id=self.case_id,
                        unit=m.unit or t.unit,
                        workers=t.worker_count,
                        amount=t.amount,
                        rules=self.rules,
                        calendar=self.start.calendar,
                        parent_token=m.signal_token,
                    ),
                    id=self._arbitration_id(),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
                m.arbitration = "started"
            await self._persist()
        await self._notify_by_tier()
        async with self.lock:
            high = m.risk == Risk.high and not m.closed
            if ladder.starts_at_triage(self.rules, high, running=m.ladder.step is not None):
                # A major risk from triage (an operator's override counts) starts the ladder at once.
                m.ladder.reason = ladder.TRIAGE_HIGH_RISK_REASON
                await self._ladder_letter(ladder.WARNING)
            await self._persist()

    async def _keep_clocks(self) -> None:
        """Wait for the earliest due instant or a change; lapse what is due, in order; until closed.
        A long life continues as new from here (a safe point: no step of the case is under way)."""
        m = self.case
        while not m.closed:
            if self._history_is_long():
                await self._continue_as_new()  # returns only when the case changed meanwhile
                continue
            now = workflow.now()
            nxt = clocks.next_due(m.clocks)
            self.changed = False
            if nxt is None or nxt > now:
                try:
                    await workflow.wait_condition(
                        lambda: self.changed
                        or m.closed
                        or self.pending_calendar is not None
                        # a signal's event that arrived during the last save
                        or (len(m.events) > m.persisted and not self.lock.locked()),
                        timeout=(nxt - now) if nxt is not None else None,
                    )
                    if self.pending_calendar is not None:
                        async with self.lock:
                            await self._check_calendar()
                    # Woken by a signal (digest sent, calendar reloaded): keep the record current.
                    if len(m.events) > m.persisted and not self.lock.locked():
                        async with self.lock:
                            await self._persist()
                    continue
                except TimeoutError:
                    pass
            async with self.lock:
                now = workflow.now()
                for clock in clocks.by_due(m.clocks):
                    if clocks.has_lapsed(clock, now) and not m.closed:
                        await self._lapse(clock)
                await self._persist()

    def _history_is_long(self) -> bool:
        """Time for a fresh history: the server suggests it, or the run passed the case's own limit
        (`CaseStart.continue_as_new_after`). Not while this run's arbitration track runs: its handle
        (the track's steps are signalled through it, and the case waits for it to end) stays here."""
        info, limit = workflow.info(), self.start.continue_as_new_after
        long = info.is_continue_as_new_suggested() or (limit is not None and info.get_current_history_length() >= limit)
        return long and self.arb_handle is None and workflow.patched(CONTINUE_AS_NEW)

    async def _continue_as_new(self) -> None:
        """Carry the whole state model into a new run of the same workflow id: same stage, clocks with
        their due instants (the timers are armed again from them), ladder, timeline, keys, visits.
        First the actions being handled finish and the case is saved; signals and updates that
        arrive after this run closes go to the new one."""
        m = self.case
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self.lock.locked())
        if m.closed:
            return
        async with self.lock:
            if self.pending_calendar is not None:
                await self._check_calendar()
            await self._persist()
        if m.closed or self.pending_calendar is not None or not workflow.all_handlers_finished():
            return  # something came in during the save: again at the next turn of the loop
        workflow.logger.info("case %s continues as new after %d events", self.case_id, workflow.info().get_current_history_length())
        workflow.continue_as_new(self.start.model_copy(update={"calendar": self.calendar_snapshot, "carried": m}))

    # ----------------------------------------------------------------------------------------
    # Actions: one update per action of ACTION_INPUTS (see `_action`); `_do_<name>` below acts.
    # ----------------------------------------------------------------------------------------
    accept = _action("accept")
    not_accept = _action("not_accept")
    redirect = _action("redirect")
    mediation_result = _action("mediation_result")
    extend = _action("extend")
    issue_opinion = _action("issue_opinion")
    request_review = _action("request_review")
    review_decision = _action("review_decision")
    request_re_review = _action("request_re_review")
    re_review_decision = _action("re_review_decision")
    flag_major_risk = _action("flag_major_risk")
    report_progress = _action("report_progress")
    risk_resolved = _action("risk_resolved")
    repeat_visit = _action("repeat_visit")
    assign_leader = _action("assign_leader")
    withdraw = _action("withdraw")
    pause_clock = _action("pause_clock")
    resume_clock = _action("resume_clock")
    arbitration = _action("arbitration")

    # ----------------------------------------------------------------------------------------
    # Signals (only the engine sends them: the case's own digest and arbitration track echo its
    # token) and queries.
    # ----------------------------------------------------------------------------------------
    @workflow.signal(name=ARBITRATION_OVERDUE.name)
    async def arbitration_overdue(self, data: ArbitrationOverdue) -> None:
        """The arbitration track missed its filing or decision deadline."""
        if data.token != self.case.signal_token:
            self._signal_refused(ARBITRATION_OVERDUE.name, "it did not come from this case's own arbitration track")
            return
        async with self.lock:
            if self.case.closed:
                return
            self._emit("overdue", deadline=data.deadline.value, due=data.due.isoformat())
            await self._overdue_notice(data.deadline)
            await self._persist()

    @workflow.signal(name=BATCH_DELIVERED.name)
    async def batch_delivered(self, data: BatchDelivered) -> None:
        """The unit's daily digest (low-risk tier) went out with this case in it."""
        if data.token != self.case.signal_token:
            self._signal_refused(BATCH_DELIVERED.name, "it did not come from the digest this case joined")
            return
        if self.case.closed:
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

    @workflow.signal(name=RELOAD_CALENDAR.name)
    def reload_calendar(self, snapshot: CalendarSnapshot) -> None:
        """A newly published holiday schedule (`starter.py calendar push`). It is applied only if
        it is the calendar file the engine publishes: the run loop asks an activity to compare."""
        if snapshot.name != self.calendar.name or self.case.closed:
            return  # a weekends-only case stays weekends-only
        self.pending_calendar = snapshot

    async def _check_calendar(self) -> None:
        snapshot, self.pending_calendar = self.pending_calendar, None
        if snapshot is None:
            return
        if not await self._call(CALENDAR_IS_PUBLISHED, snapshot):
            self._signal_refused(RELOAD_CALENDAR.name, "the calendar it carries is not the published calendar file")
            return
        self.calendar_snapshot = snapshot
        self.calendar = HolidayCalendar.from_snapshot(snapshot)
        changed = clocks.reload_calendar(self.case.clocks, self.rules, self.calendar, workflow.now())
        self._emit("info", calendar_reloaded=True, official_years=snapshot.official_years, changed=changed)
        self.changed = True

    @workflow.query
    def state(self) -> CaseState:
        return case_model.case_state(self.case, self.start, self.calendar.name)

    @workflow.query
    def available(self, by: Actor) -> list[str]:
        """The actions `by` may take on this case now (the case page offers exactly these).

        The same checks as the validators (workflows/case_model.py, `available_actions`).
        """
        return case_model.available_actions(self.case, self.rules, by, workflow.now())

    @workflow.query
    def timeline(self) -> Timeline:
        return Timeline(case_id=self.case_id, events=list(self.case.events))

    # ----------------------------------------------------------------------------------------
    # Action handlers
    # ----------------------------------------------------------------------------------------
    async def _do_accept(self, d: AcceptInput) -> None:
        m, now = self.case, workflow.now()
        m.unit = d.unit
        facts_clear = d.facts_clear if d.facts_clear is not None else self.intake.facts_clear
        amount = d.disputed_amount if d.disputed_amount is not None else self.intake.disputed_amount
        self._finish(DeadlineName.acceptance)
        self._set_stage(Stage.accepted, unit=d.unit)
        await self._document(DocumentKind.acceptance_notice, unit=d.unit)
        m.mediation_eligible = mediation_eligible(self.rules, m.category, facts_clear, amount)
        if m.mediation_eligible:
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
        m, now = self.case, workflow.now()
        window = m.clocks.get(DeadlineName.mediation_window)
        within = window is not None and window.status == "running" and now < window.due
        if d.success:
            await self._document(
                DocumentKind.mediation_agreement, fulfilled=d.fulfilled, other_party=d.other_party, terms=d.terms
            )
        self._emit("stage", stage=Stage.mediation.value, success=d.success, fulfilled=d.fulfilled, within_window=within)
        if window is not None and window.status == "running":
            self._finish(DeadlineName.mediation_window)
        if d.success and d.fulfilled:
            m.mediated = True
            points = mediation_points(self.rules, True, True, within, m.mediation_eligible)
            if points is not None and m.unit:
                await self._score(ScoreRule.mediation_success, points)
            await self._close(Outcome.mediated)
            return
        if d.success:
            # Agreed but not yet carried out: the case stays in handling until it is.
            m.mediation_agreed_unfulfilled = True
        else:
            m.mediation_failed = True
        if m.stage == Stage.mediation:
            self._set_stage(Stage.handling)

    async def _do_extend(self, d: ExtendInput) -> None:
        clock = self.case.clocks[DeadlineName.handling]
        self.case.extension_used += 1
        clocks.extend(clock, d.days, self.rules, self.calendar, workflow.now())
        self.changed = True
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
        if DeadlineName.mediation_window in self.case.clocks:
            self._finish(DeadlineName.mediation_window)
        self.case.opinion = opinion = await self._document(DocumentKind.handling_opinion, text=d.text)
        await self._delivery_receipt(opinion)
        self._set_stage(Stage.opinion_issued)
        self._arm(DeadlineName.review_request, now)

    async def _do_request_review(self, d: NoInput) -> None:
        await self._enter_review(DeadlineName.review_request, Stage.review, DeadlineName.review_decision)

    async def _do_review_decision(self, d: TextInput) -> None:
        now = workflow.now()
        self._finish(DeadlineName.review_decision)
        await self._delivery_receipt(await self._document(DocumentKind.review_opinion, text=d.text))
        self.case.review_decided = True
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

    async def _score_failed_mediation(self) -> None:
        m = self.case
        if m.mediation_failed and not m.failed_review_scored and m.unit:
            m.failed_review_scored = True
            await self._score(ScoreRule.mediation_failed_review, self.rules.scores.mediation_failed_review)

    async def _do_re_review_decision(self, d: TextInput) -> None:
        self._finish(DeadlineName.re_review_decision)
        await self._delivery_receipt(await self._document(DocumentKind.re_review_opinion, text=d.text))
        await self._close(Outcome.final_after_re_review)

    async def _do_flag_major_risk(self, d: FlagRiskInput) -> None:
        m = self.case
        m.ladder.reason = d.reason
        m.ladder.officials = list(d.officials)
        data: dict[str, Any] = {}
        if workflow.patched(MORE_SEARCH_ATTRIBUTES) and m.risk != Risk.high:
            # A major risk is a high risk from now on (the case's record and PetitionRisk say so;
            # the triage event keeps what triage said).
            data = {"risk": Risk.high.value, "previous_risk": m.risk.value if m.risk else None}
            m.risk = Risk.high
        self._emit("ladder", ladder="flagged", reason=d.reason, **data)
        await self._ladder_letter(ladder.WARNING)

    async def _do_report_progress(self, d: ProgressInput) -> None:
        counts = ladder.progress_counts(d.substantive, self.case.ladder.step)
        if counts:
            self.case.ladder.progress = True
        self._emit("ladder", ladder="progress", substantive=d.substantive, counts=counts, note=d.note)

    async def _do_risk_resolved(self, d: NoteInput) -> None:
        self._end_ladder(ladder.RESOLVED, note=d.note)

    async def _do_repeat_visit(self, d: RepeatVisitInput) -> None:
        m = self.case
        m.visits += 1
        came: dict[str, Any] = {"channel": d.channel.value, "persons": d.persons} if d.channel else {}
        self._emit("visit", visits=m.visits, **came)
        if not m.nail_case and m.visits >= self.rules.repeat_visits.nail_case_threshold:
            m.nail_case = True
            # 钉子案: the backlog register, a dedicated task team and third-party evaluation.
            self._emit("visit", visits=m.visits, nail_case=True, backlog_register=True, task_team=True, third_party_evaluation=True)

    async def _do_assign_leader(self, d: LeaderInput) -> None:
        previous, self.case.leader = self.case.leader, d.leader
        self._emit("leader", leader=d.leader, previous=previous, note=d.note)

    async def _do_pause_clock(self, d: PauseInput) -> None:
        clocks.pause(self.case.clocks[d.deadline], workflow.now())
        self.changed = True
        self._emit("info", clock_paused=d.deadline.value, reason=d.reason)

    async def _do_resume_clock(self, d: PauseInput) -> None:
        clock = self.case.clocks[d.deadline]
        clocks.resume(clock, self.rules, self.calendar, workflow.now())
        self.changed = True
        self._emit("info", clock_resumed=d.deadline.value, due=clock.due.isoformat())

    async def _do_arbitration(self, d: ArbitrationInput) -> None:
        self.case.arbitration = d.event.value
        if self.arb_handle is not None:
            await send(self.arb_handle, ARBITRATION_RECORD, ArbitrationStep(event=d.event, at=workflow.now(), note=d.note))
        self._emit("stage", stage=Stage.arbitration.value, step=d.event.value, note=d.note or None)
        if d.event == ArbitrationEvent.confirmed:
            await self._close(Outcome.resolved)
        elif d.event == ArbitrationEvent.court:
            self._finish(DeadlineName.acceptance)
            await self._document(DocumentKind.redirect_notice, route="litigation", reason=notices.ARBITRATION_FAILED_REASON)
            self._set_stage(Stage.redirected, route="litigation", after="arbitration_failed")
            await self._close(Outcome.redirected)

    async def _do_withdraw(self, d: WithdrawInput) -> None:
        self._emit("stage", stage=self.case.stage.value, withdrawn=True, reason=d.reason)
        await self._close(Outcome.withdrawn)

    # ----------------------------------------------------------------------------------------
    # Deadlines (the computation is workflows/clocks.py; here: the state changes and wake-ups)
    # ----------------------------------------------------------------------------------------
    def _arm(self, name: DeadlineName, started_at: datetime) -> ClockState:
        clock = self.case.clocks[name] = clocks.arm(name, started_at, self.rules, self.calendar)
        self.changed = True
        return clock

    def _finish(self, name: DeadlineName) -> None:
        if clocks.finish(self.case.clocks.get(name)):
            self.changed = True

    async def _lapse(self, clock: ClockState) -> None:
        m, name = self.case, clock.name
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
        step = ladder.next_step(name, m.ladder.progress, m.ladder.rearms, self.rules)
        if step is not None:
            if name == DeadlineName.supervision and step == ladder.SUPERVISION:
                m.ladder.rearms += 1
            await self._ladder_letter(step)
            return
        await self._overdue_notice(name)
        if name == DeadlineName.mediation_window:
            if m.unit:
                await self._score(ScoreRule.mediation_window_missed, self.rules.scores.mediation_window_missed)
            if m.stage == Stage.mediation:
                self._set_stage(Stage.handling, after="mediation_window_missed")

    # ----------------------------------------------------------------------------------------
    # The three-letters ladder (三函两书): its steps are rules/ladder.py
    # ----------------------------------------------------------------------------------------
    async def _ladder_letter(self, step: str) -> None:
        m, now = self.case, workflow.now()
        unit = m.unit or self.intake.locality
        fields: dict[str, Any] = {"unit": unit, "locality": self.intake.locality, "reason": m.ladder.reason}
        if step == ladder.ACCOUNTABILITY:
            officials = m.ladder.officials or await self._call(RESOLVE_OFFICIALS, unit)
            fields["officials"] = officials
            letter = await self._document(ladder.LETTER[step], **fields)
            self._emit("ladder", ladder=ladder.ACCOUNTABILITY, unit=unit, officials=officials, letter=letter.sha256)
            await self._petitioner_notice(step)
            await self._score(ScoreRule.accountability, self.rules.scores.accountability)
            for official in officials:
                await self._score(ScoreRule.accountability, 0, official=official, rule_name="accountability_official")
            self._end_ladder(ladder.ACCOUNTABILITY)
            return
        name = ladder.PERIOD[step]
        rule = self.rules.deadline(name)
        d = compute_deadline(now, rule.length, rule.unit, self.calendar)
        fields["deadline"] = d.due.isoformat()
        letter = await self._document(ladder.LETTER[step], **fields)
        m.ladder.step = step
        m.ladder.search_value = step
        m.ladder.progress = False
        self._emit("ladder", ladder=step, unit=unit, due=d.due.isoformat(), letter=letter.sha256)
        await self._petitioner_notice(step)
        self._arm(name, now)
        if workflow.patched(MORE_SEARCH_ATTRIBUTES):
            self._upsert_search_attributes()

    async def _petitioner_notice(self, step: str) -> None:
        enclosures = [self.case.opinion.sha256] if self.case.opinion else []
        await self._document(DocumentKind.petitioner_notice, ladder_step=step, enclosures=enclosures)

    def _end_ladder(self, how: str, note: str = "", upsert: bool = True) -> None:
        lad = self.case.ladder
        for name in ladder.CLOCKS:
            clock = self.case.clocks.get(name)
            if clock is not None and clock.status == "running":
                clock.status = ladder.clock_status_at_end(how)
        if lad.step is not None or how == ladder.ACCOUNTABILITY:
            self._emit("ladder", ladder="ended", how=how, note=note)
            lad.search_value = ladder.search_value_at_end(how)
            if upsert and workflow.patched(MORE_SEARCH_ATTRIBUTES):
                self._upsert_search_attributes()
        lad.step = None
        self.changed = True

    # ----------------------------------------------------------------------------------------
    # Plumbing
    # ----------------------------------------------------------------------------------------
    def _facts(self) -> CaseFacts:
        return case_model.facts(self.case)

    def _validate(self, action: str, data: BaseModel) -> None:
        # Who may act comes first (rules/access.py); then what the rules allow at this moment.
        # Validators do not run on replay, so cases started before actors existed still replay.
        by: Actor | None = getattr(data, "by", None)
        reason = action_refusal(action, by.role if by else None, by.unit if by else None, self.case.unit) or refusal(
            action, self._facts(), workflow.now(), self.rules, data
        )
        if reason:
            raise ApplicationError(reason, type=ACTION_REFUSED, non_retryable=True)

    async def _act(self, action: str, data: T, handler: Callable[[T], Awaitable[None]]) -> ActionResult:
        m = self.case
        # Actions that arrive while registration and triage are still running wait for them.
        await workflow.wait_condition(lambda: m.ready or m.closed)
        async with self.lock:
            # The state may have moved between validation and now (another action, a deadline).
            reason = refusal(action, self._facts(), workflow.now(), self.rules, data)
            if reason:
                raise ApplicationError(reason, type=ACTION_REFUSED, non_retryable=True)
            mark = len(m.events)
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
            return ActionResult(case_id=self.case_id, action=action, stage=m.stage, outcome=m.outcome, events=m.events[mark:])

    def _arbitration_id(self) -> str:
        return f"{self.case_id}-arbitration"

    async def _arbitration_track_ended(self) -> None:
        """The case closed: its arbitration track (told to stop, or at its final step) ends just
        after; the case waits for it, so that no track outlives its case (and the time-skipping
        test server does not see a child finish after its parent: temporalio/sdk-typescript#1101)."""
        assert self.arb_handle is not None
        try:
            await self.arb_handle
        except ChildWorkflowError as err:  # terminated or failed: the case is closed all the same
            workflow.logger.warning("arbitration track of %s ended with %s", self.case_id, err.cause or err)

    async def _close(self, outcome: Outcome) -> None:
        m = self.case
        m.outcome = outcome
        clocks.stop_all(m.clocks)
        if m.ladder.step is not None:
            self._end_ladder(ladder.CASE_CLOSED, upsert=False)  # upserted below, with the closed stage
        if self.arb_handle is not None and m.arbitration not in (ArbitrationEvent.confirmed.value, ArbitrationEvent.court.value):
            await send(self.arb_handle, ARBITRATION_STOP, outcome.value)
        m.stage = Stage.closed
        m.closed = True
        self._emit("stage", stage=Stage.closed.value, outcome=outcome.value)
        self._upsert_search_attributes()
        self.changed = True
