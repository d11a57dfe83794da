"""Deadline surge: N open cases whose acceptance deadline runs out at (nearly) the same instant.

    .venv/bin/python bench/deadline_surge.py [--cases 5000] [--concurrency 50] [--calibrate 100] [--urgent 10]

On the embedded dev server and the real worker, N medium-risk petitions are registered (bounded
concurrency) and left awaiting acceptance. Each case carries its own copy of rules/bench.toml whose
acceptance period is a whole number of minutes computed at its registration so that all of them run
out together at an instant T after the last registration: since the finest unit of a rule is the
minute and a clock starts when the case starts, the due instants fall within one minute after T
(each is reported from the `due` of its overdue event). Rules are data: nothing else changes.

Because of that minute, a surge of N cases arrives within about one minute: with fewer cases than
the engine handles in a minute there is no backlog (the drain is ~0 and alerts/s is just N/60);
the peak rate over 5 s windows shows the capacity once there is one.

Measured: the registration rate; the spread of the due instants; from the last due instant, the time
until every overdue alert has left the notification adapter (data_dir/notifications.jsonl) and every
overdue event is in the timeline table; alerts per second over the surge; lost = cases without an
overdue event or without an overdue alert (must be 0), and duplicates.

Urgent notices under the surge (`--urgent N`): while the deadlines expire, N high-risk petitions
(risk stated at intake, as in samples/02-pollution-high-risk.json) are registered through
engine.desk.register, evenly spread from T to T + --urgent-span seconds (default 60: the minute in
which the due instants fall, so the last ones meet the largest backlog). For each, the latency runs
from the register call to the `sent_at` of its delivered `immediate` SMS in notifications.jsonl. Their
rule set gives the SMS two hours (not bench.toml's minute), so that the real latency is measured
rather than the fallback to the duty log; how many took over 60 s is reported. Where that time went
(waiting for workflow tasks and activities vs running them) is read from their histories.

The last line is machine-readable: surge cases=N register/s=R drain_s=D alerts/s=A lost=L, followed
with --urgent by urgent=N urgent_sms_p50=S urgent_sms_max=S urgent_lost=L

5,000 cases (the default) take about 13 minutes on a 2-core machine, half of it registration;
--cases 2000 takes about 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Container
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.service import RPCError  # noqa: E402

from bench._common import (  # noqa: E402
    BENCH_RULES,
    CpuMeter,
    Profiling,
    bench_parser,
    bounded,
    exit_with,
    intake,
    median,
    percentile,
    rules_with,
    start_bench,
    step_spans,
    utcnow,
)
from rules.vocabulary import Risk  # noqa: E402

QUEUE = "bench-surge"


def _overdue_state(settings: Any) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """case -> due of its acceptance overdue event, and case -> when that event was recorded."""
    from sqlmodel import Session, select

    from activities.db import TimelineRow, get_engine

    due: dict[str, datetime] = {}
    at: dict[str, datetime] = {}
    with Session(get_engine(settings.resolved_database_url())) as s:
        for row in s.exec(select(TimelineRow).where(TimelineRow.kind == "overdue")):
            if row.data.get("deadline") == "acceptance":
                due[row.case_id] = datetime.fromisoformat(row.data["due"])
                at[row.case_id] = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return due, at


def _count(settings: Any, kind: str, version_prefix: str) -> int:
    """Cases of this rule-set family with at least one timeline event of `kind`."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from activities.db import CaseRow, TimelineRow, get_engine

    with Session(get_engine(settings.resolved_database_url())) as s:
        q = (
            select(func.count(func.distinct(TimelineRow.case_id)))
            .join(CaseRow, col(CaseRow.case_id) == col(TimelineRow.case_id))
            .where(TimelineRow.kind == kind, col(CaseRow.rules_version).startswith(version_prefix))
        )
        return int(s.exec(q).one())


async def _wait_count(settings: Any, kind: str, prefix: str, n: int, timeout: float, poll: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_count, settings, kind, prefix) >= n:
            return True
        await asyncio.sleep(poll)
    return False


class AlertLog:
    """Reads data_dir/notifications.jsonl incrementally: the delivered overdue alerts of our cases."""

    def __init__(self, data_dir: Path, cases: set[str], urgent: Container[str] = ()) -> None:
        self.path = data_dir / "notifications.jsonl"
        self.cases = cases
        self.urgent = urgent  # a live view: a case is in it before its register call is made
        self.offset = 0
        self.first: dict[str, datetime] = {}
        self.count: Counter[str] = Counter()
        self.fallback = 0
        self.sms: dict[str, datetime] = {}  # urgent case -> sent_at of its delivered immediate SMS
        self.urgent_fallback: set[str] = set()

    def read(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self.offset += end
            for raw in data[:end].splitlines():
                try:
                    r = json.loads(raw)
                except ValueError:
                    continue
                cid = str(r.get("case_id"))
                if cid in self.urgent:
                    if r.get("recipient_role") == "supervision_office":
                        self.urgent_fallback.add(cid)
                    elif r.get("tier") == "immediate" and r.get("delivered") and cid not in self.sms:
                        self.sms[cid] = datetime.fromisoformat(str(r["sent_at"]))
                    continue
                if r.get("tier") != "overdue" or not r.get("delivered") or cid not in self.cases:
                    continue
                self.count[cid] += 1
                self.fallback += r.get("recipient_role") == "supervision_office"
                sent = datetime.fromisoformat(str(r["sent_at"]))
                if cid not in self.first or sent < self.first[cid]:
                    self.first[cid] = sent
        return len(self.first)


def chain_until_sms(events: list[Any]) -> tuple[dict[str, float], int | None]:
    """Seconds from the workflow's start to its first SMS (the immediate notice) completed, split into
    waiting to be picked up (scheduled -> started) and running (started -> completed), for workflow
    tasks and per activity; "other" is the rest (the server between tasks). Also the priority key the
    workflow was started with (None: the default)."""
    out: dict[str, float] = {}
    first = events[0]
    key = first.workflow_execution_started_event_attributes.priority.priority_key or None
    for name, queued, ran, e in step_spans(events, "workflow tasks"):
        out[f"{name} queue"] = out.get(f"{name} queue", 0.0) + queued
        out[f"{name} run"] = out.get(f"{name} run", 0.0) + ran
        if name == "send_notification":
            total = (e.event_time.ToDatetime() - first.event_time.ToDatetime()).total_seconds()
            out["other"] = total - sum(out.values())
            out["total"] = total
            break
    return out, key


async def run(args: argparse.Namespace) -> int:
    bench = await start_bench("surge", keep=args.keep)
    from engine.desk import new_case_id, register
    from engine.scenario import SCENARIO_DESK
    from worker import build_worker

    prof = Profiling(args.profile)
    executor = prof.executor(500) if args.profile else None
    n = args.cases
    cases: set[str] = set()
    rule_sets: dict[int, Any] = {}
    lengths: Counter[int] = Counter()

    urgent: dict[str, datetime] = {}  # urgent case -> when its register call was made
    urgent_failures: list[str] = []

    def rules_for(minutes: int, family: str = "bench-surge") -> Any:
        key: Any = minutes if family == "bench-surge" else (family, minutes)
        if key not in rule_sets:
            extra = {"notify_immediate": (120, "minutes")} if family == "bench-urgent" else {}
            rs, text = rules_with(
                BENCH_RULES,
                f"{family}-{minutes}m",
                acceptance=(minutes, "minutes"),
                notify_priority=(120, "minutes"),  # the registration-time push must not be what is measured
                **extra,  # the urgent SMS: measured until delivered, not replaced by the duty-log fallback
            )
            (bench.data_dir / f"rules-{family}-{minutes}m.toml").write_text(text, encoding="utf-8")
            rule_sets[key] = rs
        return rule_sets[key]

    async def start_case(i: int, tag: str, rules: Any) -> str:
        """Register, then wait until the worker has run the case's first task: its clocks count
        from then (the workflow's start_time is its first task's time, not the register call's)."""
        reg = await register(bench.client, bench.settings, intake(i, Risk.medium, tag=tag), task_queue=QUEUE, rules=rules, actor=SCENARIO_DESK)
        for attempt in range(10):  # on a busy machine a query can time out or fail ("h2 protocol error")
            try:
                await bench.client.get_workflow_handle(reg.case_id).query("state", rpc_timeout=timedelta(seconds=60))
                break
            except RPCError:
                if attempt == 9:
                    raise
                await asyncio.sleep(1)
        return reg.case_id

    try:
        extra = {"workflow_task_executor": executor} if executor else {}
        async with build_worker(bench.client, bench.settings, task_queue=QUEUE, **extra):
            # Calibration (not part of the surge; these cases' deadline is two hours away): how many
            # cases per second this machine fully registers (started, triaged, notified, saved).
            k = min(args.calibrate, n)
            t0 = time.perf_counter()
            await bounded(k, args.concurrency, lambda i: start_case(i, "calib", rules_for(120, "bench-calib")))
            if not await _wait_count(bench.settings, "notification", "bench-calib", k, timeout=300):
                print("calibration cases did not finish registering within 300 s", flush=True)
                return 1
            rate = k / (time.perf_counter() - t0)
            budget = n / (rate * args.safety)
            target = utcnow() + timedelta(seconds=budget + args.margin)
            print(
                f"calibration: {k} cases fully registered at {rate:.1f}/s; {n} cases; expiry instant "
                f"T = {target.isoformat(timespec='seconds')} (budget {budget:.0f} s + margin {args.margin:g} s)",
                flush=True,
            )

            reg_meter = CpuMeter(bench.server_pid).start()

            async def one(i: int) -> None:
                minutes = max(1, math.ceil((target - utcnow()).total_seconds() / 60))
                lengths[minutes] += 1
                cases.add(await start_case(i, "surge", rules_for(minutes)))
                if len(cases) % max(1, n // 10) == 0:
                    print(f"  registered {len(cases)}/{n} ({len(cases) / (time.perf_counter() - t0):.1f}/s)", flush=True)

            t0 = time.perf_counter()
            await bounded(n, args.concurrency, one)
            calls_s = time.perf_counter() - t0
            complete = await _wait_count(bench.settings, "notification", "bench-surge", n, timeout=max(60.0, (target - utcnow()).total_seconds()))
            reg_s = time.perf_counter() - t0
            reg_meter.stop()
            reg_done = utcnow()
            print(
                f"registered {len(cases)}: started at {len(cases) / calls_s:.1f}/s, fully registered (triaged, notified, "
                f"saved) at {len(cases) / reg_s:.1f}/s{'' if complete else ' (NOT all complete)'}; "
                f"{(target - reg_done).total_seconds():.0f} s before T; acceptance lengths (minutes: cases): {dict(sorted(lengths.items()))}",
                flush=True,
            )
            print(reg_meter.summary("registration"), flush=True)

            # Idle until T, then watch the surge drain.
            wait = (target - utcnow()).total_seconds() - 5
            if wait > 0:
                await asyncio.sleep(wait)

            async def register_urgent(i: int) -> None:
                at = target + timedelta(seconds=args.urgent_span * i / max(1, args.urgent - 1))
                delay = (at - utcnow()).total_seconds()
                if delay > 0:
                    await asyncio.sleep(delay)
                cid = new_case_id()
                urgent[cid] = utcnow()
                try:
                    await register(
                        bench.client, bench.settings, intake(10**6 + i, Risk.high, tag="urgent"),
                        task_queue=QUEUE, rules=rules_for(120, "bench-urgent"), case_id=cid, actor=SCENARIO_DESK,
                    )  # fmt: skip
                except Exception as exc:  # report it; the surge goes on
                    urgent_failures.append(f"{cid}: {type(exc).__name__}: {exc}")

            urgent_tasks = [asyncio.create_task(register_urgent(i)) for i in range(args.urgent)]
            surge_meter = CpuMeter(bench.server_pid).start()
            prof.start()
            deadline = time.monotonic() + args.timeout
            seen_all_at: datetime | None = None
            progress_at = time.monotonic()
            log = AlertLog(bench.data_dir, cases, urgent)
            while time.monotonic() < deadline:
                n_events = await asyncio.to_thread(_count, bench.settings, "overdue", "bench-surge")
                n_alerts = await asyncio.to_thread(log.read)
                sms = f", urgent SMS {len(log.sms)}/{args.urgent}" if args.urgent else ""
                if time.monotonic() - progress_at >= 10:
                    progress_at = time.monotonic()
                    print(f"  {utcnow().isoformat(timespec='seconds')}: overdue events {n_events}/{n}, alerts {n_alerts}/{n}{sms}", flush=True)
                if n_events >= n and n_alerts >= n and seen_all_at is None:
                    seen_all_at = utcnow()
                urgent_done = all(t.done() for t in urgent_tasks) and len(log.sms) + len(urgent_failures) >= args.urgent
                if seen_all_at is not None and urgent_done:
                    break
                await asyncio.sleep(args.poll)
            prof.stop(executor)
            surge_meter.stop()
            await asyncio.sleep(2)  # a last look: anything written after the check counts as a duplicate
            due, recorded_at = await asyncio.to_thread(_overdue_state, bench.settings)
            due = {c: d for c, d in due.items() if c in cases}
            recorded_at = {c: d for c, d in recorded_at.items() if c in cases}
            log.read()
            alerts, deliveries, fallback = log.first, log.count, log.fallback
            # Where the urgent petitions' time went on the way to their SMS.
            chains: list[dict[str, float]] = []
            keys: Counter[int | None] = Counter()
            for cid in sorted(log.sms):
                events = list((await bench.client.get_workflow_handle(cid).fetch_history()).events)
                chain, key = chain_until_sms(events)
                keys[key] += 1
                if "total" in chain:
                    chains.append(chain)
    finally:
        await bench.close()

    lost_events = n - len(set(due) & cases)
    lost_alerts = n - len(set(alerts) & cases)
    duplicates = sum(c - 1 for c in deliveries.values() if c > 1)
    lost = max(lost_events, lost_alerts)
    if not due or not alerts:
        print(f"surge cases={n} register/s={len(cases) / reg_s:.1f} drain_s=nan alerts/s=nan lost={lost}")
        return 1
    first_due, last_due = min(due.values()), max(due.values())
    last_alert = max(alerts.values())
    last_recorded = max(recorded_at.values())
    alert_delay = [(alerts[c] - due[c]).total_seconds() for c in alerts if c in due]
    span = (last_alert - first_due).total_seconds()
    print(
        f"due instants: {first_due.isoformat(timespec='seconds')} .. {last_due.isoformat(timespec='seconds')} "
        f"(spread {(last_due - first_due).total_seconds():.1f} s; T was {target.isoformat(timespec='seconds')})"
    )
    print(
        f"overdue events in the timeline: {len(due)}/{n}; delivered overdue alerts: {len(alerts)}/{n} "
        f"({fallback} by the fallback channel); duplicates: {duplicates}; lost: {lost}"
    )
    print(
        f"alert delay after its own due instant: p50={median(alert_delay):.1f}s p95={percentile(alert_delay, 95):.1f}s "
        f"max={max(alert_delay):.1f}s"
    )
    drain = (last_alert - last_due).total_seconds()
    print(
        f"drain: last alert {drain:.1f} s after the last due instant; last overdue event (workflow time) "
        f"{(last_recorded - last_due).total_seconds():.1f} s after it"
        + (f"; all visible in the database {(seen_all_at - last_due).total_seconds():.1f} s after it" if seen_all_at else "")
    )
    times = sorted(a.timestamp() for a in alerts.values())
    window, peak, j = 5.0, 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        peak = max(peak, i - j + 1)
    print(
        f"alerts/s over the surge (first due -> last alert, {span:.1f} s): {len(alerts) / span:.1f}; "
        f"peak {peak / window:.1f}/s (best {window:g} s window)"
    )
    print(surge_meter.summary("surge"))
    tail = ""
    urgent_lost = 0
    if args.urgent:
        lat = sorted((log.sms[c] - urgent[c]).total_seconds() for c in log.sms if c in urgent)
        urgent_lost = args.urgent - len(lat)
        print(
            f"urgent: {args.urgent} high-risk petitions registered from T to T+{args.urgent_span:g} s; SMS delivered "
            f"{len(lat)}/{args.urgent}; fallbacks to the duty log: {len(log.urgent_fallback)}; register failures: "
            f"{len(urgent_failures)}; started with priority key {dict(keys)} (None = the default)"
        )
        for f in urgent_failures[:5]:
            print(f"  failure: {f}")
        if lat:
            print(
                f"urgent: register -> SMS sent: min={lat[0]:.1f}s p50={median(lat):.1f}s p95={percentile(lat, 95):.1f}s "
                f"max={lat[-1]:.1f}s; over 60 s: {sum(x > 60 for x in lat)}; each (in registration order): "
                + " ".join(f"{(log.sms[c] - urgent[c]).total_seconds():.1f}" for c in sorted(log.sms, key=lambda c: urgent[c]))
            )
        if chains:
            parts = sorted({k for c in chains for k in c} - {"total"}, key=lambda k: -sum(c.get(k, 0.0) for c in chains))
            print(
                f"urgent: workflow start -> SMS, s per case (mean of {len(chains)}; queue = scheduled->started, "
                f"run = started->completed): total={sum(c['total'] for c in chains) / len(chains):.1f} "
                + " ".join(f"{k}={sum(c.get(k, 0.0) for c in chains) / len(chains):.1f}" for k in parts)
            )
        p50 = f"{median(lat):.1f}" if lat else "nan"
        mx = f"{lat[-1]:.1f}" if lat else "nan"
        tail = f" urgent={args.urgent} urgent_sms_p50={p50} urgent_sms_max={mx} urgent_lost={urgent_lost}"
    print(f"surge cases={n} register/s={len(cases) / reg_s:.1f} drain_s={drain:.1f} alerts/s={len(alerts) / span:.1f} lost={lost}{tail}")
    return 0 if lost == 0 and urgent_lost == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, keep="the data folder", profile=" (during the surge)", concurrency=(50, "registrations"))
    surge = parser.add_argument_group("the surge")
    surge.add_argument("--cases", type=int, default=5000, help="open cases whose deadline runs out together")
    surge.add_argument("--calibrate", type=int, default=100, help="cases registered first to measure the rate (not in the surge)")
    surge.add_argument("--safety", type=float, default=0.8, help="plan the registration at this share of the calibrated rate")
    surge.add_argument("--margin", type=float, default=30.0, help="seconds between the planned end of registration and T")
    urgent = parser.add_argument_group("urgent petitions during the surge")
    urgent.add_argument("--urgent", type=int, default=0, help="high-risk petitions registered while the deadlines expire")
    urgent.add_argument("--urgent-span", type=float, default=60.0, help="seconds after T over which the urgent petitions are spread")
    waits = parser.add_argument_group("waiting")
    waits.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the surge to drain")
    waits.add_argument("--poll", type=float, default=1.0, help="seconds between checks of the database and the log")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    exit_with(main)
