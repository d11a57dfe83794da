"""The bare workflow of the throughput benchmark: the shape of a petition's life, none of its logic.

It runs a plan read from a real petition's history -- so many activities (with trivial bodies)
and search-attribute upserts before it is ready for actions, so many after, so many in each of
the `accept` and `mediation_result` updates -- and between steps waits on a condition with a timer,
like the petition's deadline loop. The last update closes it. Kept tiny on purpose: the sandbox
re-imports a workflow's module for every run, and this module's cost is part of the floor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey

BARE_WORKFLOW = "BareBenchWorkflow"
BARE_ACTIVITY = "bare_step"
_STAGE = SearchAttributeKey.for_keyword("PetitionStage")
_TIMEOUT = timedelta(seconds=60)


@activity.defn(name=BARE_ACTIVITY)
async def bare_step(n: int) -> int:
    return n + 1


def _action(name: str) -> Any:
    """The update `name`, as the petition has it: once the workflow is ready it runs the plan's ops
    for that update; its validator refuses it once the workflow has closed. (`self` is left
    unannotated: the SDK would take its annotation for the type of an argument.)"""

    async def handler(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._update(name)

    def validator(self, data: dict[str, Any]) -> None:
        if self.closed:
            raise ValueError("closed")

    update = workflow.update(name=name)(handler)
    update.validator(validator)
    return update


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    """plan = {"pre": ops, "post": ops, "updates": {update name: ops}, "ballast": str}; ops are
    "a" (an activity) or "s" (a search-attribute upsert)."""

    accept = _action("accept")
    mediation_result = _action("mediation_result")

    @workflow.init
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.ready = False
        self.closed = False
        self.changed = False
        self.done: list[str] = []

    @workflow.run
    async def run(self, plan: dict[str, Any]) -> int:
        await self._ops(plan["pre"])
        self.ready = True
        await self._ops(plan["post"])
        while not self.closed:
            self.changed = False
            try:
                await workflow.wait_condition(lambda: self.changed or self.closed, timeout=timedelta(hours=1))
            except TimeoutError:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self.done)

    async def _ops(self, ops: str) -> None:
        for i, op in enumerate(ops):
            if op == "a":
                await workflow.execute_activity(BARE_ACTIVITY, i, result_type=int, start_to_close_timeout=_TIMEOUT)
            elif op == "s":
                workflow.upsert_search_attributes([_STAGE.value_set(f"s{i}")])

    async def _update(self, name: str) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.ready)
        await self._ops(self.plan["updates"].get(name, ""))
        self.done.append(name)
        if len(self.done) == len(self.plan["updates"]):
            self.closed = True
        self.changed = True
        return {"action": name, "done": len(self.done)}
