"""Escalation latency: from intake to the high-risk SMS leaving the notification adapter, under load.

    .venv/bin/python bench/escalation_latency.py [--rate 5] [--duration 30] [--high-share 0.5]

On the embedded dev server and the real worker, petitions are registered open-loop at a steady
rate (one every 1/rate seconds, whatever the engine's pace) with the bench rule set
(rules/bench.toml); a share of them are high risk (the rest medium). For each high-risk case the
latency runs from the moment the register call is made to the `sent_at` of its `immediate` SMS in
data_dir/notifications.jsonl (written by the recording adapter, activities/notify.py). Goal: p95 < 2 s.

The last line is machine-readable: escalation p50=Xs p95=Ys p99=Zs n=N lost=L
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    CpuMeter,
    Profiling,
    bench_parser,
    bench_rules,
    exit_with,
    intake,
    median,
    percentile,
    start_bench,
    utcnow,
)
from rules.vocabulary import Risk  # noqa: E402


def chain_until_sms(events: list[Any]) -> list[tuple[str, float]]:
    """The steps of a case's history up to its SMS: (step, seconds) for each activity from scheduled
    to completed, and for the gaps between them (workflow tasks and the server's bookkeeping)."""
    from temporalio.api.enums.v1 import EventType

    when = {e.event_id: e.event_time.ToDatetime() for e in events}
    names: dict[int, str] = {}
    steps: list[tuple[str, float]] = []
    last = events[0].event_time.ToDatetime()
    for e in events:
        t = EventType.Name(e.event_type)
        if t == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            steps.append(("workflow tasks", (when[e.event_id] - last).total_seconds()))
        elif t == "EVENT_TYPE_ACTIVITY_TASK_COMPLETED":
            sched = e.activity_task_completed_event_attributes.scheduled_event_id
            name = names.get(sched, "?")
            steps.append((name, (when[e.event_id] - when[sched]).total_seconds()))
            last = when[e.event_id]
            if name == "send_notification":
                break
    return steps


async def run(args: argparse.Namespace) -> int:
    bench = await start_bench("escalation", keep=args.keep)
    from activities.notify import read_notifications
    from engine.desk import new_case_id, register
    from engine.scenario import SCENARIO_DESK
    from worker import build_worker

    rules = bench_rules()
    prof = Profiling(args.profile)
    executor = prof.executor(500) if args.profile else None
    total = int(args.rate * args.duration)
    every = max(1, round(1 / args.high_share)) if args.high_share > 0 else 0
    intake_at: dict[str, datetime] = {}
    high: set[str] = set()
    register_s: list[float] = []
    lag_s: list[float] = []
    failures: list[str] = []
    try:
        extra = {"workflow_task_executor": executor} if executor else {}
        async with build_worker(bench.client, bench.settings, task_queue="bench-escalation", **extra):
            # Warm-up outside the measurement: the first case pays for imports and the server's first writes.
            for i in range(3):
                await register(bench.client, bench.settings, intake(10**6 + i, Risk.high, tag="warm"), task_queue="bench-escalation", rules=rules, actor=SCENARIO_DESK)
            await asyncio.sleep(2)

            async def one(i: int, due: float) -> None:
                risk = Risk.high if every and i % every == 0 else Risk.medium
                cid = new_case_id()
                lag_s.append(time.perf_counter() - due)
                intake_at[cid] = utcnow()
                if risk == Risk.high:
                    high.add(cid)
                t0 = time.perf_counter()
                try:
                    await register(bench.client, bench.settings, intake(i, risk), task_queue="bench-escalation", rules=rules, case_id=cid, actor=SCENARIO_DESK)
                except Exception as exc:  # report, keep the load going
                    failures.append(f"{cid}: {type(exc).__name__}: {exc}")
                register_s.append(time.perf_counter() - t0)

            meter = CpuMeter(bench.server_pid).start()
            prof.start()
            start = time.perf_counter()
            tasks = []
            for i in range(total):
                due = start + i / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i, due)))
            await asyncio.gather(*tasks)
            load_s = time.perf_counter() - start
            # Drain: until every high-risk case's SMS is in the log (or the timeout).
            deadline = time.monotonic() + args.drain_timeout
            sent: dict[str, dict[str, object]] = {}
            while time.monotonic() < deadline:
                sent = {
                    str(r["case_id"]): r
                    for r in read_notifications(bench.data_dir)
                    if r.get("tier") == "immediate" and r.get("delivered") and r.get("case_id") in high
                }
                if len(sent) >= len(high):
                    break
                await asyncio.sleep(0.5)
            prof.stop(executor)
            meter.stop()
            records = read_notifications(bench.data_dir)
            # Where the time goes on the way to the SMS, from the histories of some high-risk cases.
            chain: dict[str, list[float]] = {}
            sample = sorted(high)[:20]
            for cid in sample:
                events = list((await bench.client.get_workflow_handle(cid).fetch_history()).events)
                for name, secs in chain_until_sms(events):
                    chain.setdefault(name, []).append(secs)
    finally:
        await bench.close()

    lat = [(datetime.fromisoformat(str(r["sent_at"])) - intake_at[c]).total_seconds() for c, r in sent.items()]
    fallbacks = sum(1 for r in records if r.get("recipient_role") == "supervision_office" and r.get("case_id") in high)
    lost = len(high) - len(sent)
    print(
        f"load: {total} registrations at {args.rate:g}/s for {args.duration:g} s (took {load_s:.1f} s), "
        f"{len(high)} high risk, {total - len(high)} medium; rules {rules.version}"
    )
    print(
        f"register call: p50={median(register_s):.3f}s p95={percentile(register_s, 95):.3f}s; "
        f"open-loop schedule lag p95={percentile(lag_s, 95) * 1000:.0f} ms; failures={len(failures)}"
    )
    for f in failures[:5]:
        print(f"  failure: {f}")
    print(f"high-risk SMS delivered: {len(sent)}/{len(high)}; escalated to the fallback channel: {fallbacks}")
    print(meter.summary("escalation"))
    if chain:
        parts = [f"{name}={1000 * sum(v) / len(sample):.0f}" for name, v in chain.items()]
        print(f"workflow start -> SMS, ms per case (mean of {len(sample)}; activities scheduled->completed): " + ", ".join(parts))
    if lat:
        print(
            f"intake -> SMS sent: min={min(lat):.3f}s p50={median(lat):.3f}s p95={percentile(lat, 95):.3f}s "
            f"p99={percentile(lat, 99):.3f}s max={max(lat):.3f}s (goal p95 < 2 s)"
        )
        print(
            f"escalation p50={median(lat):.3f}s p95={percentile(lat, 95):.3f}s p99={percentile(lat, 99):.3f}s "
            f"n={len(lat)} lost={lost}"
        )
    else:
        print(f"escalation p50=nan p95=nan p99=nan n=0 lost={lost}")
    return 0 if lost == 0 and not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, keep="the data folder", profile="")
    parser.add_argument("--rate", type=float, default=5.0, help="registrations per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--high-share", type=float, default=0.5, help="share of high-risk petitions (rest medium)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the last SMS")
    args = parser.parse_args(argv)
    if not 0 < args.high_share <= 1:
        parser.error("--high-share must be in (0, 1]")
    return asyncio.run(run(args))


if __name__ == "__main__":
    exit_with(main)
