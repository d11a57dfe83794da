"""Throughput: petitions per second end to end, against bare workflows of the same shape, in one run.

    .venv/bin/python bench/throughput.py [--count 200] [--concurrency 20] [--rounds 4]
                                         [--no-search-attributes] [--ballast] [--profile FILE]

On the embedded dev server (`temporal server start-dev` with its SQLite file, in a temporary data
folder) and the real worker (`worker.build_worker`), each petition is registered with the bench
rule set (rules/bench.toml; medium risk, category given so triage is cheap), accepted, given a
successful and fulfilled mediation result, and closes; the time runs from the register call to the
workflow's result. The same number of bare workflows (bench/bare.py: the same activities, search
attribute upserts and updates, read from a real petition's history, with trivial bodies) run in the
same process against the same server. Petitions and bare workflows alternate in rounds (P,B then
B,P ...) so that drift and noise on the machine fall on both alike.

The last line is machine-readable: petitions/s=X bare/s=Y ratio=Z
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from bench._common import (  # noqa: E402
    CpuMeter,
    Profiling,
    bench_parser,
    bench_rules,
    bounded,
    exit_with,
    intake,
    median,
    percentile,
    start_bench,
    step_spans,
)
from bench.bare import BARE_WORKFLOW, BareWorkflow, bare_step  # noqa: E402
from rules.vocabulary import Risk  # noqa: E402

ACCEPT = {"unit": "青山区人社局"}
MEDIATED = {"success": True, "fulfilled": True}
_COUNTED = {
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED": "activities",
    "EVENT_TYPE_TIMER_STARTED": "timers",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "updates",
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "upserts",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED": "workflow_tasks",
}


def history_shape(events: list[Any]) -> dict[str, int]:
    counts = Counter(EventType.Name(e.event_type) for e in events)
    shape = {label: counts.get(name, 0) for name, label in _COUNTED.items()}
    shape["events"] = len(events)
    shape["kB"] = round(sum(e.ByteSize() for e in events) / 1024, 1)
    return shape


def step_times(events: list[Any]) -> dict[str, list[float]]:
    """Seconds each step of a life spent waiting to be picked up (queue: scheduled -> started) and
    running (started -> completed), for workflow tasks and for each activity type."""
    out: dict[str, list[float]] = {}
    for name, queued, ran, _ in step_spans(events, "workflow task"):
        out.setdefault(f"{name} queue", []).append(queued)
        out.setdefault(f"{name} run", []).append(ran)
    life = events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
    out["life (first to last event)"] = [life.total_seconds()]
    return out


def print_step_times(kind: str, histories: list[list[Any]]) -> None:
    """Per life, the summed time of each step kind, averaged over lives (ms)."""
    per_life: dict[str, list[float]] = {}
    for events in histories:
        for k, v in step_times(events).items():
            per_life.setdefault(k, []).append(sum(v))
    n = len(histories)
    parts = [f"{k}={1000 * sum(v) / n:.0f}" for k, v in sorted(per_life.items(), key=lambda kv: -sum(kv[1]))]
    print(f"{kind} time per life by step, ms (mean of {n}; queue = scheduled->started, run = started->completed): " + ", ".join(parts))


def plan_from_history(events: list[Any], ready_after: str = "triage_petition") -> dict[str, Any]:
    """The bare plan: ops before the case is ready for actions, after, and in each update."""
    phases: list[list[tuple[str, str]]] = [[]]
    names: list[str] = []
    for e in events:
        t = EventType.Name(e.event_type)
        if t == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            names.append(e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name)
            phases.append([])
        elif t == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            phases[-1].append(("a", e.activity_task_scheduled_event_attributes.activity_type.name))
        elif t == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
            phases[-1].append(("s", ""))
    first = phases[0]
    cut = next((i + 1 for i, (op, name) in enumerate(first) if op == "a" and name == ready_after), 0)
    return {
        "pre": "".join(op for op, _ in first[:cut]),
        "post": "".join(op for op, _ in first[cut:]),
        "updates": {name: "".join(op for op, _ in ops) for name, ops in zip(names, phases[1:], strict=True)},
        "activity_names": [[n for op, n in ph if op == "a"] for ph in phases],
    }


async def wait_idle(handle: Any, settle_s: float = 0.15, timeout_s: float = 30.0) -> None:
    """Until the workflow has no pending activity and its history stops growing."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        desc = await handle.describe()
        length = desc.raw_description.workflow_execution_info.history_length
        if not desc.raw_description.pending_activities and length == last:
            return
        last = length
        await asyncio.sleep(settle_s)


class Runner:
    def __init__(self, bench: Any, rules: Any, use_sa: bool, plan: dict[str, Any] | None = None) -> None:
        self.bench = bench
        self.rules = rules
        self.use_sa = use_sa
        self.plan = plan
        self.tag = uuid.uuid4().hex[:6]
        self.n = 0
        self.petition_ids: list[str] = []
        self.bare_ids: list[str] = []

    async def petition(self, i: int) -> float:
        from engine.desk import register
        from engine.scenario import SCENARIO_DESK, act_scripted

        client, settings = self.bench.client, self.bench.settings
        t0 = time.perf_counter()
        self.n += 1  # a new petitioner and matter every time: never a repeat visit of an earlier case
        reg = await register(
            client, settings, intake(self.n, Risk.medium, tag=self.tag), task_queue=PETITION_QUEUE, rules=self.rules,
            use_search_attributes=self.use_sa, actor=SCENARIO_DESK)
        await act_scripted(client, settings, reg.case_id, "accept", ACCEPT)
        await act_scripted(client, settings, reg.case_id, "mediation_result", MEDIATED)
        result = await client.get_workflow_handle(reg.case_id).result()
        self.petition_ids.append(reg.case_id)
        if result.get("outcome") != "mediated":
            raise RuntimeError(f"{reg.case_id} ended {result.get('outcome')!r}, not mediated")
        return time.perf_counter() - t0

    async def bare(self, i: int) -> float:
        client = self.bench.client
        t0 = time.perf_counter()
        self.n += 1
        handle = await client.start_workflow(BARE_WORKFLOW, self.plan, id=f"bare-{self.tag}-{self.n}", task_queue=BARE_QUEUE)
        await handle.execute_update("accept", ACCEPT)
        await handle.execute_update("mediation_result", MEDIATED)
        await handle.result()
        self.bare_ids.append(handle.id)
        return time.perf_counter() - t0


PETITION_QUEUE = "bench-petitions"
BARE_QUEUE = "bench-bare"


async def sample_petition(runner: Runner) -> tuple[dict[str, Any], dict[str, int]]:
    """One petition driven step by step on an idle system; its history gives the bare plan."""
    from engine.desk import register
    from engine.scenario import SCENARIO_DESK, act_scripted

    client, settings = runner.bench.client, runner.bench.settings
    reg = await register(
        client, settings, intake(10**6, Risk.medium, tag=runner.tag), task_queue=PETITION_QUEUE, rules=runner.rules,
        use_search_attributes=runner.use_sa, actor=SCENARIO_DESK)
    handle = client.get_workflow_handle(reg.case_id)
    await wait_idle(handle)
    await act_scripted(client, settings, reg.case_id, "accept", ACCEPT)
    await wait_idle(handle)
    await act_scripted(client, settings, reg.case_id, "mediation_result", MEDIATED)
    await handle.result()
    events = (await handle.fetch_history()).events
    return plan_from_history(events), history_shape(events)


async def run(args: argparse.Namespace) -> int:
    rules = bench_rules()
    bench = await start_bench("throughput", keep=args.keep, server_args=args.server_arg)
    from worker import SANDBOX, build_worker  # after start_bench has configured logging

    prof = Profiling(args.profile)
    executor = prof.executor(500) if args.profile else None
    use_sa = not args.no_search_attributes
    try:
        extra: dict[str, Any] = {"workflow_task_executor": executor} if executor else {}
        for kv in args.worker_option or []:
            k, _, v = kv.partition("=")
            extra[k] = int(v)
        pw = build_worker(bench.client, bench.settings, task_queue=PETITION_QUEUE, **extra)
        bw = Worker(
            bench.client, task_queue=BARE_QUEUE, workflows=[BareWorkflow], activities=[bare_step],
            workflow_runner=SANDBOX, **extra,  # type: ignore[arg-type]
        )
        async with pw, bw:
            runner = Runner(bench, rules, use_sa)
            plan, pshape = await sample_petition(runner)
            if args.ballast:
                # The petition's input carries its rule set and calendar; give the bare one as big.
                from engine.desk import load_calendar

                cal = load_calendar(bench.settings).to_snapshot(range(2025, 2029))
                plan["ballast"] = "x" * (len(rules.model_dump_json()) + len(cal.model_dump_json()))
            runner.plan = plan
            print(f"rules {rules.version}; search attributes {'on' if use_sa else 'off'}; server pid {bench.server_pid}")
            print(f"petition history: {pshape}")
            print(f"petition activities by phase: {plan['activity_names']}")
            probe = await bench.client.start_workflow(BARE_WORKFLOW, plan, id=f"bare-probe-{runner.tag}", task_queue=BARE_QUEUE)
            await wait_idle(probe)
            await probe.execute_update("accept", ACCEPT)
            await wait_idle(probe)
            await probe.execute_update("mediation_result", MEDIATED)
            await probe.result()
            bshape = history_shape((await probe.fetch_history()).events)
            print(f"bare history:     {bshape}  (both driven one step at a time on an idle system)")

            # Warm-up: imports, caches, connections, the server's first writes.
            await bounded(args.warmup, args.concurrency, runner.petition)
            # Driven at full speed, an action can arrive while the case is still being triaged and
            # its save then carries the events of both: the bare runs as many activities as the
            # petitions do when driven this way (the surplus is taken from after the ready point).
            loaded = sorted(
                [
                    history_shape((await bench.client.get_workflow_handle(i).fetch_history()).events)["activities"]
                    for i in runner.petition_ids
                ]
            )
            target = loaded[len(loaded) // 2]
            while plan["post"].count("a") and sum(ops.count("a") for ops in [plan["pre"], plan["post"], *plan["updates"].values()]) > target:
                i = plan["post"].rindex("a")
                plan["post"] = plan["post"][:i] + plan["post"][i + 1 :]
            print(f"petition activities when driven at full speed (median of {len(loaded)}): {target}; bare plan {plan['pre']}|{plan['post']}|{plan['updates']}")
            await bounded(args.warmup, args.concurrency, runner.bare)
            runner.petition_ids.clear()
            runner.bare_ids.clear()

            per = max(1, args.count // args.rounds)
            sizes = [per] * args.rounds
            sizes[-1] += args.count - per * args.rounds
            took = {"petitions": 0.0, "bare": 0.0}
            lat: dict[str, list[float]] = {"petitions": [], "bare": []}
            meters: dict[str, list[CpuMeter]] = {"petitions": [], "bare": []}
            prof.start()
            for r, size in enumerate(sizes):
                order = ["petitions", "bare"] if r % 2 == 0 else ["bare", "petitions"]
                for kind in order:
                    job = runner.petition if kind == "petitions" else runner.bare
                    meter = CpuMeter(bench.server_pid).start()
                    t0 = time.perf_counter()
                    lat[kind] += await bounded(size, args.concurrency, job)
                    took[kind] += time.perf_counter() - t0
                    meters[kind].append(meter.stop())
                    print(f"round {r + 1}/{len(sizes)} {kind:9s} n={size} {size / meters[kind][-1].wall_s:6.1f}/s", flush=True)
            prof.stop(executor)
            # The shape under load (actions arrive while the case is still being triaged), averaged.
            for kind, ids in (("petitions", runner.petition_ids[-20:]), ("bare", runner.bare_ids[-20:])):
                histories = [list((await bench.client.get_workflow_handle(i).fetch_history()).events) for i in ids]
                shapes = [history_shape(h) for h in histories]
                avg = {k: round(sum(s[k] for s in shapes) / len(shapes), 1) for k in shapes[0]}
                print(f"{kind} history under load (mean of {len(ids)}): {avg}")
                print_step_times(kind, histories)

            for kind in ("petitions", "bare"):
                total = CpuMeter(bench.server_pid)
                for m in meters[kind]:
                    total.add(m)
                n = len(lat[kind])
                print(
                    f"{kind}: n={n} {n / took[kind]:.1f}/s latency p50={median(lat[kind]):.2f}s "
                    f"p95={percentile(lat[kind], 95):.2f}s; per item: server {1000 * total.server_s / n:.1f} ms CPU, "
                    f"this process {1000 * total.worker_s / n:.1f} ms CPU"
                )
                print(total.summary(kind))
            p_rate = args.count / took["petitions"]
            b_rate = args.count / took["bare"]
            print(f"petitions/s={p_rate:.1f} bare/s={b_rate:.1f} ratio={p_rate / b_rate:.2f}")
    finally:
        await bench.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, keep="the data folder", profile="", concurrency=(20, "lives"))
    lives = parser.add_argument_group("the lives")
    lives.add_argument("--count", type=int, default=200, help="petitions (and as many bare workflows)")
    lives.add_argument("--rounds", type=int, default=4, help="alternating petition/bare rounds")
    lives.add_argument("--warmup", type=int, default=10, help="unmeasured lives of each kind first")
    lives.add_argument("--no-search-attributes", action="store_true", help="petitions upsert no search attributes")
    lives.add_argument("--ballast", action="store_true", help="give the bare input the size of a petition's rules+calendar")
    experiments = parser.add_argument_group("experiments")
    experiments.add_argument(
        "--server-arg", action="append", help="an extra `temporal server start-dev` argument (repeatable), "
        "e.g. --server-arg=--sqlite-pragma --server-arg=journal_mode=wal",
    )
    experiments.add_argument(
        "--worker-option", action="append", help="an integer Worker option for both workers, NAME=VALUE "
        "(e.g. max_concurrent_workflow_task_polls=10)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    exit_with(main)
