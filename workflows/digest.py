"""The low-risk tier: each unit's next-morning digest of the previous day's low-risk cases.

One workflow per unit and batch instant, started with signal-with-start by the first case that
joins it; it sleeps until the batch time, sends one digest, and tells each case it went out.
(Temporal Schedules would also do, but the time-skipping test server does not implement them,
and the batch must fire under the scenario runner too.)
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        DIGEST_WORKFLOW,
        BatchDelivered,
        DigestItem,
        DigestRequest,
        DigestStart,
    )
    from workflows.names import BATCH_DELIVERED, DIGEST_ADD_CASE, SEND_DIGEST, send


@workflow.defn(name=DIGEST_WORKFLOW)
class BatchDigestWorkflow:
    def __init__(self) -> None:
        self.items: list[DigestItem] = []
        self.sent = 0

    @workflow.signal(name=DIGEST_ADD_CASE.name)
    def add_case(self, item: DigestItem) -> None:
        if all(i.case_id != item.case_id for i in self.items):
            self.items.append(item)

    @workflow.run
    async def run(self, start: DigestStart) -> int:
        wait = start.batch_at - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)
        # Loop so that a case which joins while the digest is being sent is not dropped.
        while self.sent < len(self.items):
            batch = self.items[self.sent :]
            sent = await workflow.execute_activity(
                SEND_DIGEST.name,
                DigestRequest(digest_id=start.digest_id, unit=start.unit, batch_at=start.batch_at, items=batch),
                result_type=SEND_DIGEST.result,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
            )
            self.sent += len(batch)
            for item in batch:
                try:
                    await send(
                        workflow.get_external_workflow_handle(item.case_id),
                        BATCH_DELIVERED,
                        BatchDelivered(
                            digest_id=start.digest_id,
                            delivered_at=workflow.now(),
                            recipient=start.unit,
                            delivered=sent.delivered,
                            token=item.token,
                        ),
                    )
                except ApplicationError:
                    # The case closed before its digest went out; the digest itself was still sent.
                    workflow.logger.info("case %s closed before its digest", item.case_id)
        return self.sent
