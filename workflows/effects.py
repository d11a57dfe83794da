"""What a petition case does to the world, for `PetitionWorkflow` (workflows/petition.py), which
decides when: activities with their idempotency keys and typed names, timeline events, documents,
score events, notices by tier with their escalation, saves to the database, search attributes.

A base class rather than free functions because every effect reads the same case: its fixed start
(`CaseStart`), its one state model (`CaseModel`) and the calendar in force. Deterministic like the
workflow itself: time is `workflow.now()`, every side effect an activity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Pure, stateless modules (this package's too: clocks, notices, names...) pass through the sandbox:
# imported once, not again for every workflow run (docs/benchmarks.md).
with workflow.unsafe.imports_passed_through():
    from rules.deadlines import CalendarSnapshot, HolidayCalendar, compute_deadline, next_local_time
    from rules.vocabulary import (
        MAX_NAME_CHARS,
        DeadlineName,
        DocumentKind,
        NotificationTier,
        NotifyChannel,
        RecipientRole,
        ScoreRule,
        Stage,
    )
    from workflows import case_model, clocks, notices
    from workflows.models import (
        SA_CATEGORY,
        SA_LADDER,
        SA_LOCALITY,
        SA_OUTCOME,
        SA_OVERDUE,
        SA_RISK,
        SA_STAGE,
        SA_UNIT,
        URGENT_PRIORITY,
        Actor,
        BatchEnqueue,
        CaseModel,
        CaseSnapshot,
        CaseStart,
        DocumentIssued,
        DocumentRequest,
        NotificationRequest,
        RegisterCaseInput,
        ScoreRequest,
        TimelineEvent,
    )
    from workflows.names import (
        CASE_NOT_REGISTERED,
        ENQUEUE_BATCH,
        ISSUE_DOCUMENT,
        RECORD_SCORE,
        REGISTER_CASE,
        SAVE_CASE,
        SEND_FALLBACK_NOTIFICATION,
        SEND_NOTIFICATION,
        ActivityName,
    )
    from workflows.patches import MORE_SEARCH_ATTRIBUTES, REREGISTER_LOST_CASE, UPSERT_CHANGED, URGENT_NOTICE


A = TypeVar("A")
R = TypeVar("R")

# Side effects are idempotent (each carries a key), so retrying them forever is safe; a worker
# or database outage delays a case, it never loses a step.
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
ACTIVITY_TIMEOUT = timedelta(seconds=60)
# A notice is retried until its tier's deadline (the activity's schedule-to-close timeout is the
# time left to it), at most a minute apart; then it escalates instead. Activity options are not
# part of the commands replay compares, so running cases replay unchanged.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60))


def failed_with(err: ActivityError, error_type: str) -> bool:
    """Did the activity fail with an ApplicationError of `error_type` (workflows/names.py)?"""
    return isinstance(err.cause, ApplicationError) and err.cause.type == error_type


class CaseEffects:
    """The case's fixed start, its state model, the calendar in force, and every side effect."""

    def __init__(self, start: CaseStart) -> None:
        self.start = start
        self.rules = start.rules
        self.intake = start.intake
        self.case_id = start.case_id
        # The calendar in force (a published schedule may replace it: reload_calendar).
        self.calendar_snapshot: CalendarSnapshot = start.calendar
        self.calendar = HolidayCalendar.from_snapshot(start.calendar)
        # Everything that changes in the case's life; a continued run resumes from the carried one.
        self.case: CaseModel = start.carried.model_copy(deep=True) if start.carried else case_model.new_case(start)
        # Who takes the action being handled now (documents name them); see rules/access.py.
        self.actor: Actor | None = None

    # ----------------------------------------------------------------------------------------
    # Activities, keys, the timeline
    # ----------------------------------------------------------------------------------------
    async def _call(self, act: ActivityName[A, R], arg: A, **options: Any) -> R:
        """Run activity `act` (retried until done unless `options` say otherwise); its typed result."""
        options.setdefault("start_to_close_timeout", ACTIVITY_TIMEOUT)
        options.setdefault("retry_policy", RETRY)
        result: R = await workflow.execute_activity(act.name, arg, result_type=act.result, **options)
        return result

    def _key(self, what: str) -> str:
        """The idempotency key of the next effect of kind `what` (the n-th document of a kind…)."""
        n = self.case.occurrences.get(what, 0) + 1
        self.case.occurrences[what] = n
        return f"{self.case_id}:{what}:{n}"

    def _emit(self, kind: str, **data: Any) -> TimelineEvent:
        now, events = workflow.now(), self.case.events
        t0 = self.case.registered_at or now
        ev = TimelineEvent(
            seq=len(events) + 1,
            at=now,
            offset_s=round((now - t0).total_seconds()),
            kind=kind,  # type: ignore[arg-type]
            data={k: v for k, v in data.items() if v is not None},
        )
        events.append(ev)
        return ev

    def _record_actor(self, action: str, by: Actor, mark: int) -> None:
        """The timeline says who took each action: on its first event, or an event of its own."""
        events = self.case.events
        if len(events) > mark:
            events[mark].data.setdefault("action", action)
            events[mark].data["by"] = by.record()
        else:
            self._emit("info", action=action, by=by.record())

    def _signal_refused(self, signal: str, why: str) -> None:
        """A signal only the engine may send, sent by someone else: recorded, nothing changed."""
        workflow.logger.warning("signal %s refused: %s", signal, why)
        self._emit("rejected", action=signal, error=f"Signal '{signal}' ignored: {why}.")
        self.changed = True

    def _set_stage(self, stage: Stage, **data: Any) -> None:
        self.case.stage = stage
        self._emit("stage", stage=stage.value, **data)
        self._upsert_search_attributes()

    # ----------------------------------------------------------------------------------------
    # Documents, scores, saves
    # ----------------------------------------------------------------------------------------
    async def _document(self, kind: DocumentKind, **fields: Any) -> DocumentIssued:
        fields.setdefault("title", self.intake.title)
        fields.setdefault("locality", self.intake.locality)
        if self.case.unit:
            fields.setdefault("unit", self.case.unit)
        if self.actor is not None:
            fields.setdefault("handled_by", self.actor.name)
        issued = await self._call(
            ISSUE_DOCUMENT,
            DocumentRequest(
                idempotency_key=self._key(f"doc:{kind.value}"),
                case_id=self.case_id,
                kind=kind,
                issued_at=workflow.now(),
                fields=fields,
            ),
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
        await self._document(DocumentKind.delivery_receipt, delivered_document=notices.delivered_document(doc))

    async def _score(self, rule: ScoreRule, points: int, official: str | None = None, rule_name: str | None = None) -> None:
        unit = self.case.unit or self.intake.locality
        name = rule_name or rule.value
        await self._call(
            RECORD_SCORE,
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
        )
        self._emit("score", unit=unit, points=points, rule=name, official=official or None)

    def _registration(self) -> RegisterCaseInput:
        assert self.case.registered_at is not None
        return RegisterCaseInput(
            case_id=self.case_id,
            matter_key=self.start.matter_key,
            intake=self.intake,
            rules_version=self.rules.version,
            registered_at=self.case.registered_at,
        )

    async def _persist(self) -> None:
        """Save the case's row and its timeline events not saved yet."""
        m = self.case
        if m.persisted == len(m.events) and not m.closed:
            return
        mark = len(m.events)  # events a signal adds during the save are saved next time
        try:
            await self._call(SAVE_CASE, self._snapshot(m.events[m.persisted : mark]))
        except ActivityError as err:
            if not failed_with(err, CASE_NOT_REGISTERED) or not workflow.patched(REREGISTER_LOST_CASE):
                raise
            # The case's row is gone (deleted, or a database restored from an older backup): register
            # the case again (idempotent) and save it once more, with its whole timeline (rows the
            # database still has are skipped; the others come back).
            workflow.logger.warning("case %s was not in the database: registered again", self.case_id)
            await self._call(REGISTER_CASE, self._registration())
            await self._call(SAVE_CASE, self._snapshot(m.events[:mark]))
        m.persisted = mark

    def _snapshot(self, events: list[TimelineEvent] | None = None) -> CaseSnapshot:
        return case_model.snapshot(self.case, self.case_id, workflow.now(), events)

    def _upsert_search_attributes(self) -> None:
        if not self.start.use_search_attributes:
            return
        m = self.case
        wanted: dict[str, tuple[Any, Any]] = {
            SA_STAGE.name: (SA_STAGE, m.stage.value),
            SA_OVERDUE.name: (SA_OVERDUE, clocks.any_overdue(m.clocks)),
        }
        for key, value in ((SA_CATEGORY, m.category), (SA_RISK, m.risk), (SA_UNIT, m.unit), (SA_OUTCOME, m.outcome)):
            if value:
                wanted[key.name] = (key, value.value if hasattr(value, "value") else value)
        if workflow.patched(MORE_SEARCH_ATTRIBUTES):
            # A place name (intake caps it at 100 characters; older cases are cut to that here).
            wanted[SA_LOCALITY.name] = (SA_LOCALITY, self.intake.locality[:MAX_NAME_CHARS])
            if m.ladder.search_value:
                wanted[SA_LADDER.name] = (SA_LADDER, m.ladder.search_value)
        if workflow.patched(UPSERT_CHANGED):
            # Only what changed since the last upsert, and nothing when nothing did: every upsert
            # is a server write (docs/benchmarks.md measured them as the engine's main overhead).
            wanted = {name: kv for name, kv in wanted.items() if m.search_attributes.get(name) != kv[1]}
            if not wanted:
                return
            m.search_attributes.update({name: kv[1] for name, kv in wanted.items()})
        workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted.values()])

    # ----------------------------------------------------------------------------------------
    # Notices (their wording is workflows/notices.py)
    # ----------------------------------------------------------------------------------------
    async def _notify_by_tier(self) -> None:
        """The notice of the case's risk tier: the unit's next-morning digest (low), or a notice
        to a leader within the tier's period (high: SMS to the principal leader; medium: push)."""
        m = self.case
        if m.closed or m.risk is None:
            return
        rule = self.rules.notifications.tiers[m.risk]
        t = m.triage
        assert t is not None
        now = workflow.now()
        if rule.tier == NotificationTier.batch:
            clock = self.rules.notifications.batch_clock()
            await self._call(
                ENQUEUE_BATCH,
                BatchEnqueue(
                    case_id=self.case_id,
                    unit=m.unit or t.unit,
                    title=self.intake.title,
                    batch_at=next_local_time(now, clock.hour, clock.minute),
                    task_queue=workflow.info().task_queue,
                    token=m.signal_token,
                ),
            )
            return
        recipient = t.principal_leader if rule.recipient_role == RecipientRole.principal_leader else t.deputy_leader
        due = None
        if rule.within is not None:
            within = self.rules.deadline(rule.within)
            due = compute_deadline(now, within.length, within.unit, self.calendar).due
        await self._send(rule.tier, rule.recipient_role, recipient, rule.channel, due, within=rule.within)

    async def _overdue_notice(self, name: DeadlineName) -> None:
        rule = self.rules.notifications.overdue
        recipient = notices.unit_leader(self.case.unit or self.intake.locality)
        what = notices.overdue_request(name)
        await self._send(NotificationTier.overdue, rule.recipient_role, recipient, rule.channel, None, what=what, deadline=name.value)

    async def _send(
        self,
        tier: NotificationTier,
        role: RecipientRole,
        recipient: str,
        channel: NotifyChannel,
        due: datetime | None,
        within: DeadlineName | None = None,
        what: str = notices.DEFAULT_REQUEST,
        **extra: Any,
    ) -> None:
        """Send one notice, retried until `due`; if it cannot be delivered by then (or is refused for
        good), say so on the timeline and escalate to the supervision office's duty desk."""
        m = self.case
        req = NotificationRequest(
            idempotency_key=self._key(f"notify:{tier.value}"),
            case_id=self.case_id,
            tier=tier,
            recipient_role=role,
            recipient=recipient,
            channel=channel,
            subject=notices.subject(tier, self.case_id, self.intake.title),
            body=notices.body(self.case_id, self.intake.locality, m.category, m.risk, what),
            deadline=due,
        )
        # Retried until the tier's deadline (a notice without one, an overdue alert: for a minute).
        timeout = max((due - workflow.now()) if due else ACTIVITY_TIMEOUT, timedelta(seconds=1))
        # An immediate notice jumps the queue (cases started before this keep the default).
        urgent = tier == NotificationTier.immediate and workflow.patched(URGENT_NOTICE)
        priority = URGENT_PRIORITY if urgent else Priority.default
        common = {"tier": tier.value, "recipient_role": role.value, "recipient": recipient}
        shown_due = due.isoformat() if due else None
        try:
            sent = await self._call(
                SEND_NOTIFICATION,
                req,
                schedule_to_close_timeout=timeout,
                start_to_close_timeout=min(ACTIVITY_TIMEOUT, timeout),
                retry_policy=NOTIFY_RETRY,
                priority=priority,
            )
            self._emit(
                "notification", **common, channel=sent.channel.value, delivered=sent.delivered,
                adapter=sent.adapter, due=shown_due, **extra,
            )  # fmt: skip
            return
        except ActivityError as err:
            # Not delivered: what was tried, and why it stopped.
            failure = notices.notice_failure(err)
            self._emit("notification", **common, channel=channel.value, delivered=False, due=shown_due, **failure)
        escalation = NotificationRequest(
            idempotency_key=self._key("notify:fallback"),
            case_id=self.case_id,
            tier=NotificationTier.overdue,
            recipient_role=RecipientRole.supervision_office,
            recipient=notices.duty_desk(self.intake.locality),
            channel=self.rules.notifications.fallback_channel,
            subject=notices.undelivered_subject(req.subject),
            body=notices.undelivered_body(req.body, recipient),
            deadline=None,
        )
        fallback = await self._call(SEND_FALLBACK_NOTIFICATION, escalation, priority=priority)
        self._emit(
            "notification",
            tier=NotificationTier.overdue.value,
            deadline=(within.value if within else "notification"),
            recipient_role=RecipientRole.supervision_office.value,
            recipient=escalation.recipient,
            # The fallback writes the duty log through the recording adapter: that is its channel,
            # whatever channel the rules name for it.
            channel=notices.DUTY_LOG if fallback.adapter == "recording" else fallback.channel.value,
            adapter=fallback.adapter,
            delivered=fallback.delivered,
            escalated_from=role.value,
        )
