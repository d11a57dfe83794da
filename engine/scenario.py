"""The scenario runner (../shared/scenario-contract.md): one scripted life of a petition, driven
through the real worker, workflows and activities on the time-skipping test server.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from temporalio.client import WorkflowExecutionStatus

from activities.db import dispose_engines
from activities.petition import pdfs_written
from engine.config import Settings
from engine.desk import (
    InputError,
    Refused,
    act,
    history,
    parse_action,
    parse_intake,
    read_json_input,
    register,
)
from engine.servers import start_test_server
from rules.access import REVIEWING_BODY_ACTIONS, roles_for
from rules.vocabulary import StaffRole, Stage
from workflows.models import Actor, CaseState, Intake, describe_validation_error

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """ISO-8601 durations in weeks, days, hours, minutes and seconds (PnWnDTnHnMnS)."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"'{text}' is not an ISO-8601 duration such as P2D, PT30M or P1DT12H")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: str
    action: str
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("after")
    @classmethod
    def _after(cls, v: str) -> str:
        parse_duration(v)
        return v


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    petition: dict[str, Any]
    steps: list[Step] = Field(default_factory=list)
    until: str = "P400D"
    calendar: Literal["official", "weekends_only"] = "official"

    @field_validator("until")
    @classmethod
    def _until(cls, v: str) -> str:
        parse_duration(v)
        return v


def load_scenario(path: Path) -> tuple[Scenario, Intake]:
    """Parse and validate a scenario file; InputError with a one-line reason when it is not valid."""
    raw = read_json_input(str(path))  # size, encoding, nesting, a folder: refused with a sentence
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {describe_validation_error(exc, 'scenario')}") from exc
    intake = parse_intake(scenario.petition)
    previous = timedelta(0)
    for i, step in enumerate(scenario.steps):
        parse_action(step.action, step.data)
        after = parse_duration(step.after)
        if after < previous:
            raise InputError(f"{path}: step {i + 1} ('{step.action}' after {step.after}) comes before the step above it.")
        previous = after
    return scenario, intake


# What makes a folder an engine data folder (engine/config.py, activities/notify.py, activities/ledger/store.py).
_DATA_FOLDER_MARKS = ("petitions.db", "petitions.db-wal", "documents", "keys", "notifications.jsonl")


def refuse_used_keep_dir(keep: Path, option: str = "--keep") -> None:
    """`--keep DIR` must name a new or empty-of-engine-data folder: a scenario's case, documents and
    ledger entries must not be mixed into another engine's data (nor its keys reused).

    Raises InputError naming `option` DIR and what is there; nothing is created or changed.
    """
    if keep.exists() and not keep.is_dir():
        raise InputError(f"{option} {keep}: is a file, not a folder; nothing was changed.")
    if not keep.is_dir():
        return
    found = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in keep.iterdir()
        if p.name in _DATA_FOLDER_MARKS or p.name.startswith("ledger")
    )
    if found:
        raise InputError(
            f"{option} {keep}: already holds a data folder ({', '.join(found)}); nothing was changed. "
            "Name a new or empty folder."
        )


async def run_scenario(
    scenario: Scenario, intake: Intake, keep: Path | None = None, *, notify_adapter: str = "recording"
) -> dict[str, Any]:
    """Run one scenario and return the contract's timeline JSON (as a dict).

    `notify_adapter` lets a fault drill run the same scenario with an unreachable channel.
    """
    if keep is not None:
        refuse_used_keep_dir(Path(keep))  # before anything starts or is written
    from worker import build_worker  # the real worker, as an operator runs it

    data_dir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="petition-scenario-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, notify_adapter=notify_adapter)
    task_queue = f"scenario-{uuid.uuid4().hex[:8]}"
    env = await start_test_server(settings)
    try:
        async with build_worker(env.client, settings, task_queue=task_queue):
            reg = await register(
                env.client, settings, intake, task_queue=task_queue, calendar=scenario.calendar, actor=SCENARIO_DESK
            )
            handle = env.client.get_workflow_handle(reg.case_id)
            t0 = await _start_time(handle)
            rejected: list[dict[str, Any]] = []
            for step in scenario.steps:
                offset = parse_duration(step.after)
                await _advance_to(env, t0 + offset)
                try:
                    actor = await scenario_actor(handle, step.action)
                    await act(env.client, settings, reg.case_id, step.action, step.data, actor=actor)
                except Refused as ref:
                    rejected.append(
                        {"offset_s": int(offset.total_seconds()), "kind": "rejected", "action": step.action, "error": ref.error}
                    )
            until = t0 + parse_duration(scenario.until)
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                await _advance_to(env, until)
                desc = await handle.describe()
            status = "completed" if desc.status == WorkflowExecutionStatus.COMPLETED else "running"
            hist = history(settings, reg.case_id)
            await pdfs_written()  # the documents' PDFs, rendered in the background, are all there
        events = [e for e in hist["events"] if e["kind"] != "rejected"]
        merged = sorted(events + rejected, key=lambda e: e["offset_s"])
        return {
            "case_id": reg.case_id,
            # The instant offsets count from, as the workflow itself saw it.
            "intake_at": next((e.get("intake_at") for e in events if e.get("stage") == "registered"), t0.isoformat()),
            "status": status,
            "outcome": hist["outcome"] if status == "completed" else None,
            "category": hist["category"],
            "risk": hist["risk"],
            "unit": hist["unit"],
            "rules_version": hist["rules_version"],
            "data_dir": str(data_dir) if keep else None,
            "events": merged,
        }
    finally:
        await env.shutdown()
        dispose_engines()
        if keep is None:
            shutil.rmtree(data_dir, ignore_errors=True)


SCENARIO_DESK = Actor(name="scenario", role=StaffRole.operator)
REVIEWING_BODY = "上一级复查机关"


def acting_as(action: str, unit: str | None = None, name: str = "scenario") -> Actor:
    """The staff member a scripted step acts as: the role the action belongs to
    (rules/access.py); for a unit action, staff of `unit` (the case's), or of the reviewing body."""
    roles = roles_for(action)
    role = roles[0] if roles else StaffRole.operator
    if role != StaffRole.unit:
        return Actor(name=name, role=role)
    return Actor(name=name, role=role, unit=REVIEWING_BODY if action in REVIEWING_BODY_ACTIONS else unit)


async def scenario_actor(handle: Any, action: str) -> Actor:
    """A scenario's steps name no one: each is taken by `acting_as`, once the case is routed."""
    if StaffRole.unit not in roles_for(action) or action in REVIEWING_BODY_ACTIONS:
        return acting_as(action)
    state = await handle.query("state", result_type=CaseState)
    for _ in range(100):  # a unit acts once the case is routed to it (triage, moments after intake)
        if state.stage != Stage.registered or state.status == "closed":
            break
        await asyncio.sleep(0.05)
        state = await handle.query("state", result_type=CaseState)
    return acting_as(action, state.unit)


async def act_scripted(client: Any, settings: Settings, case_id: str, action: str, data: Any) -> Any:
    """`engine.desk.act` as a scripted step: the actor is the one `scenario_actor` picks."""
    actor = await scenario_actor(client.get_workflow_handle(case_id), action)
    return await act(client, settings, case_id, action, data, actor=actor)


async def _start_time(handle: Any) -> Any:
    desc = await handle.describe()
    return desc.start_time


async def _advance_to(env: Any, target: Any) -> None:
    now = await env.get_current_time()
    if target > now:
        await env.sleep(target - now)
