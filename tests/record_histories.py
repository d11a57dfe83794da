"""Record the workflow histories that tests/test_replay.py replays.

    .venv/bin/python tests/record_histories.py

Run it only when a workflow change is meant to be incompatible with running cases (and then
gate the change with `workflow.patched()` instead, if any case may still be running); commit
the JSON files it writes under tests/histories/.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The payload key ring the histories are encrypted with: a test key, committed, never used elsewhere.
KEY_RING = ROOT / "tests" / "histories" / "payload.keys"

# Each recorded life: (name, scenario file under tests/scenarios, extra workflows to save).
LIVES = [a for a in os.environ.get("LIVES", "mediation-success,high-risk-ladder,review-path,collective-arbitration,low-risk-batch").split(",")]


async def main() -> int:
    from temporalio.client import WorkflowExecutionStatus

    from engine.config import Settings
    from engine.desk import history as case_history
    from engine.desk import register
    from engine.scenario import SCENARIO_DESK, act_scripted, load_scenario, parse_duration
    from engine.servers import start_test_server
    from worker import build_worker

    out_dir = ROOT / "tests" / "histories"
    for name in LIVES:
        # One server per life, as the scenario runner does, so lives cannot disturb each other.
        with tempfile.TemporaryDirectory() as tmp:
            # Recorded through the payload codec, with the test-only key ring committed beside them.
            settings = Settings(data_dir=Path(tmp), payload_key_file=KEY_RING)
            env = await start_test_server(settings)
            try:
                task_queue = f"record-{uuid.uuid4().hex[:6]}"
                async with build_worker(env.client, settings, task_queue=task_queue):
                    scenario, intake = load_scenario(ROOT / "tests" / "scenarios" / f"{name}.json")
                    reg = await register(env.client, settings, intake, task_queue=task_queue, calendar=scenario.calendar, actor=SCENARIO_DESK)
                    handle = env.client.get_workflow_handle(reg.case_id)
                    start = (await handle.describe()).start_time
                    for step in scenario.steps:
                        target = start + parse_duration(step.after)
                        now = await env.get_current_time()
                        if target > now:
                            await env.sleep(target - now)
                        try:
                            await act_scripted(env.client, settings, reg.case_id, step.action, step.data)
                        except Exception as exc:  # refusals are part of some lives
                            print(f"{name}: {step.action} refused: {exc}", file=sys.stderr)
                    target = start + parse_duration(scenario.until)
                    now = await env.get_current_time()
                    # Like the scenario runner: sleep on only while the case runs (the
                    # time-skipping server's sleep has hung here with nothing left to run).
                    if target > now and (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                        await env.sleep(target - now)
                    watched = [reg.case_id] + ([f"{reg.case_id}-arbitration"] if name == "collective-arbitration" else [])
                    for _ in range(50):  # let an abandoned child finish its last step
                        statuses = [(await env.client.get_workflow_handle(w).describe()).status for w in watched]
                        if WorkflowExecutionStatus.RUNNING not in statuses:
                            break
                        await asyncio.sleep(0.1)
                    files = {reg.case_id: name}
                    if name == "collective-arbitration":
                        files[f"{reg.case_id}-arbitration"] = f"{name}-arbitration"
                    for event in case_history(settings, reg.case_id)["events"]:
                        if event.get("digest_id"):  # the unit's morning digest
                            files[event["digest_id"]] = f"{name}-digest"
                    for wid, stem in files.items():
                        history = await env.client.get_workflow_handle(wid).fetch_history()
                        path = out_dir / f"{stem}.json"
                        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
                        print(f"wrote {path.relative_to(ROOT)}")
            finally:
                await env.shutdown()
    return 0


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    os._exit(code)
