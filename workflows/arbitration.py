"""The arbitration green channel (仲裁绿通 + 司法确认) for collective wage arrears, as a child
workflow of the petition: filing, then a mediated settlement or an award, then judicial
confirmation; only when arbitration fails does the dispute go to court.

The petition workflow validates and forwards each step (`arbitration` action); this workflow
keeps the track's own deadlines (filing, decision) and its record for the return-to-court rate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

# Pure, stateless modules (this package's too: clocks, notices, names...) pass through the sandbox:
# imported once, not again for every workflow run (docs/benchmarks.md).
with workflow.unsafe.imports_passed_through():
    from rules.deadlines import HolidayCalendar, compute_deadline
    from rules.vocabulary import ArbitrationEvent, DeadlineName
    from workflows.models import (
        ARBITRATION_WORKFLOW,
        ArbitrationOverdue,
        ArbitrationRecord,
        ArbitrationStart,
        ArbitrationStep,
    )
    from workflows.names import (
        ARBITRATION_OVERDUE,
        ARBITRATION_RECORD,
        ARBITRATION_STOP,
        RECORD_ARBITRATION,
        send,
    )


_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
_FINAL = {ArbitrationEvent.confirmed, ArbitrationEvent.court}


@workflow.defn(name=ARBITRATION_WORKFLOW)
class ArbitrationWorkflow:
    def __init__(self) -> None:
        self.steps: list[ArbitrationStep] = []
        self.stopped: str | None = None
        self.seen = 0  # steps already acted on

    @workflow.signal(name=ARBITRATION_RECORD.name)
    def record(self, step: ArbitrationStep) -> None:
        self.steps.append(step)

    @workflow.signal(name=ARBITRATION_STOP.name)
    def stop(self, reason: str) -> None:
        """The petition closed for another reason (mediated, withdrawn...): the track ends."""
        self.stopped = reason

    @workflow.run
    async def run(self, start: ArbitrationStart) -> str:
        calendar = HolidayCalendar.from_snapshot(start.calendar)
        filing_rule = start.rules.deadline(DeadlineName.arbitration_filing)
        decision_rule = start.rules.deadline(DeadlineName.arbitration_decision)
        started = workflow.now()
        due: dict[DeadlineName, datetime] = {
            DeadlineName.arbitration_filing: compute_deadline(started, filing_rule.length, filing_rule.unit, calendar).due
        }
        await self._save(start, "open", None, started)
        outcome: str | None = None
        while outcome is None:
            nxt = min(due.values(), default=None)
            now = workflow.now()
            if nxt is None or nxt > now:
                try:
                    # Wake on unprocessed steps (not a flag: a step may arrive while we save).
                    await workflow.wait_condition(
                        lambda: len(self.steps) > self.seen or self.stopped is not None,
                        timeout=(nxt - now) if nxt else None,
                    )
                except TimeoutError:
                    pass
            now = workflow.now()
            for step in self.steps[self.seen :]:
                self.seen += 1
                if step.event == ArbitrationEvent.filed:
                    due.pop(DeadlineName.arbitration_filing, None)
                    due[DeadlineName.arbitration_decision] = compute_deadline(
                        step.at, decision_rule.length, decision_rule.unit, calendar
                    ).due
                elif step.event in (ArbitrationEvent.settled, ArbitrationEvent.award, ArbitrationEvent.failed):
                    due.pop(DeadlineName.arbitration_decision, None)
                    due.pop(DeadlineName.arbitration_filing, None)
                await self._save(start, step.event.value, None, step.at)
                if step.event in _FINAL:
                    outcome = "court" if step.event == ArbitrationEvent.court else "resolved"
            if self.stopped is not None and outcome is None:
                outcome = f"stopped:{self.stopped}"
                break
            for name, when in list(due.items()):
                if when <= now:
                    del due[name]
                    await send(
                        workflow.get_external_workflow_handle(start.case_id),
                        ARBITRATION_OVERDUE,
                        ArbitrationOverdue(deadline=name, due=when, token=start.parent_token),
                    )
        await self._save(start, "closed", outcome, workflow.now())
        return outcome or "closed"

    async def _save(self, start: ArbitrationStart, status: str, outcome: str | None, at: datetime) -> None:
        await workflow.execute_activity(
            RECORD_ARBITRATION.name,
            ArbitrationRecord(
                case_id=start.case_id,
                unit=start.unit,
                workers=start.workers,
                amount=start.amount,
                status=status,
                outcome=outcome,
                at=at,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_RETRY,
        )
