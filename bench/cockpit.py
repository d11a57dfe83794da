"""The supervision cockpit at the source city's full scale: a year of cases in the read model.

    .venv/bin/python bench/cockpit.py [--cases 245000] [--db sqlite|postgres|both] [--repeat 30]

Issue 10's goal: the cockpit's overview for one year at the source city's scale (about 245,000
cases) in p95 < 500 ms, on SQLite and on PostgreSQL. No workflow runs here: a realistic year
(calendar 2026, seen on 1 January 2027) is generated and loaded straight into the read model with
bulk inserts (cases, intakes, documents, score events, arbitration tracks, in the shapes the
activities write them), `activities.db.rebuild_tallies` computes the tallies from the rows (timed:
what recomputing them costs at this size), then every cockpit query runs `--repeat` times after a
warm-up and its median and p95 are printed. The monthly brief (engine/brief.py) is timed too, its
queries and the whole PDF (5 times: most of it is fontTools subsetting the CJK font); it is a
download, not a page, and not under the goal.

The year follows the source's figures, scaled to `--cases`: registrations by channel (online
165,432; visits 48,762 batches / 71,203 person-times; letters 8,745; calls 22,366; video 2,901),
categories (征地拆迁 28.6 %, 劳动保障 19.7 %, 涉法涉诉 15.4 %, 农村农业 12.1 %, 城建交通 9.8 %,
教育医疗 6.5 %, 环境保护 5.3 %, 其他 2.6 %), 36 % repeat registrations, fifteen localities of
uneven size, months with the Spring Festival and National Day dips; each case's life (acceptance,
mediation, handling, review and re-review, late periods, the three-letters ladder, package
leaders, overdue periods, the high-risk notice latency) is drawn from plain distributions and its
documents (about four a case) and score events follow from it.

SQLite: a file in a temporary folder opened with `activities.db.get_engine` (the engine's pragmas
and indexes). PostgreSQL: a database `cockpit_bench` created on the server of `--pg-url` (default
PETITION_TEST_POSTGRES_URL, else the CI's `postgresql+psycopg://postgres@127.0.0.1:5432/test`),
vacuumed and analysed after the load as autovacuum would, and dropped at the end. Nothing is left
behind. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from activities.db import (  # noqa: E402
    ArbitrationRow,
    CaseRow,
    CaseTally,
    DocumentRow,
    DocumentTally,
    IntakeRow,
    IntakeTally,
    ScoreEventRow,
    dispose_engines,
    get_engine,
    rebuild_tallies,
)
from bench._common import machine_cpu, proc_cpu_s  # noqa: E402
from engine.cockpit import CaseFilter, Period, case_list, heatmap, leader_packages, overview, red_alerts  # noqa: E402
from rules.deadlines import SHANGHAI  # noqa: E402

SOURCE_CASES = 245_000
# Registrations (batches) by channel in the source's year; visits also as person-times.
SOURCE_CHANNELS = {"online": 165_432, "visit": 48_762, "letter": 8_745, "phone": 22_366, "video": 2_901}
SOURCE_VISIT_PERSONS = 71_203
CATEGORIES = {
    "land_expropriation": 28.6,
    "labor_social_security": 19.7,
    "law_litigation": 15.4,
    "rural_agriculture": 12.1,
    "urban_construction_transport": 9.8,
    "education_health": 6.5,
    "environment": 5.3,
    "other": 2.6,
}
REPEAT_SHARE = 0.36  # of registrations (batches)
# Fifteen localities, busiest first (shares of the cases, in per cent).
LOCALITIES = {
    "青山区": 17, "东湖区": 13, "西城区": 11, "南湖区": 9, "高新区": 8, "经开区": 7, "临江县": 6, "云溪县": 6,
    "桃源县": 5, "石门县": 4, "龙泉市": 4, "白沙镇": 3, "东湖镇": 3, "江口镇": 2, "北山乡": 2,
}
UNIT_SUFFIX = {
    "land_expropriation": "自然资源局", "labor_social_security": "人社局", "law_litigation": "政法委",
    "rural_agriculture": "农业农村局", "urban_construction_transport": "住建局", "education_health": "卫健委",
    "environment": "生态环境分局", "other": "信访局",
}
TITLES = {
    "land_expropriation": ["征地补偿款未足额发放", "房屋征收评估价格过低", "安置房迟迟未交付", "强拆未依法补偿"],
    "labor_social_security": ["建筑工地拖欠农民工工资", "企业拒缴社会保险", "工伤认定久拖不决", "公司破产拖欠工资"],
    "law_litigation": ["不服法院民事判决", "判决生效后执行不到位", "刑事案件立案不及时", "申诉多年无结果"],
    "rural_agriculture": ["土地承包经营权纠纷", "村集体收益分配不公", "宅基地确权争议", "惠农补贴被截留"],
    "urban_construction_transport": ["小区电梯长期故障", "物业收费不合理", "道路施工噪声扰民", "公交线路调整不便"],
    "education_health": ["学校乱收费", "医疗纠纷赔偿", "入学划片不合理", "医保报销被拒"],
    "environment": ["化工厂排放刺鼻气体", "养殖场污水直排河道", "渣土车扬尘污染", "夜间施工噪声超标"],
    "other": ["低保资格被取消", "户口迁移受阻", "网购纠纷投诉无门", "邻里纠纷调处不力"],
}
LEADERS = [f"{office} {surname}某某" for office, surname in zip(
    ["市委书记", "市长", "市委副书记", "常务副市长", "市委常委", "市委常委", "市委常委", "副市长", "副市长", "副市长",
     "市人大常委会副主任", "市政协副主席", "市委秘书长", "市政法委书记", "市纪委书记", "副市长"],
    ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"], strict=True)]
OFFICIALS = ["科长 甲某", "副局长 乙某", "主任 丙某", "所长 丁某", "站长 戊某", "副主任 己某"]

YEAR = 2026
NOW = datetime(YEAR + 1, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)  # the year is seen on 1 January of the next
DAY = timedelta(days=1)
CHUNK = 5_000  # cases per load transaction


def _local(dt: datetime) -> date:
    return dt.astimezone(SHANGHAI).date()


# ---------------------------------------------------------------------------------------------
# The year
# ---------------------------------------------------------------------------------------------


def _day_weights() -> list[tuple[date, float]]:
    """Each day of the year and its weight: months, weekends, the Spring Festival and National Day."""
    month = [1.10, 0.70, 1.10, 1.00, 0.95, 1.00, 1.00, 0.95, 1.00, 0.85, 1.05, 1.10]
    out = []
    d = date(YEAR, 1, 1)
    while d.year == YEAR:
        w = month[d.month - 1] * (0.55 if d.weekday() >= 5 else 1.0)
        if date(YEAR, 2, 15) <= d <= date(YEAR, 2, 23) or date(YEAR, 10, 1) <= d <= date(YEAR, 10, 7):
            w *= 0.35
        out.append((d, w))
        d += DAY
    return out


def _exact(total: int, weights: dict[str, float]) -> list[str]:
    """`total` labels in the proportions of `weights` (largest remainders), unshuffled."""
    s = sum(weights.values())
    raw = {k: total * w / s for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return [k for k, n in counts.items() for _ in range(n)]


@dataclass
class Plan:
    """What the year holds before each case's life is drawn."""

    cases: int
    repeat_visits: int
    registered: list[datetime]
    channels: list[str]
    categories: list[str]
    localities: list[str]
    repeat: list[bool]
    visit_persons: int


def plan_year(n: int, rng: random.Random) -> Plan:
    scale = n / SOURCE_CASES
    batches = round(sum(SOURCE_CHANNELS.values()) * scale)
    repeat_visits = max(0, batches - n)  # registrations beyond the cases: more visits on open cases
    per_channel = {ch: round(v * scale) for ch, v in SOURCE_CHANNELS.items() if ch != "visit"}
    per_channel["visit"] = n - sum(per_channel.values())  # the visits that opened a case
    channels = [ch for ch, k in per_channel.items() for _ in range(k)]
    rng.shuffle(channels)
    categories = _exact(n, CATEGORIES)
    rng.shuffle(categories)
    localities = rng.choices(list(LOCALITIES), weights=list(LOCALITIES.values()), k=n)
    # Repeat registrations: every repeat visit, and enough new cases on a matter already seen.
    repeat_cases = max(0, round(REPEAT_SHARE * batches) - repeat_visits)
    repeat = [True] * repeat_cases + [False] * (n - repeat_cases)
    rng.shuffle(repeat)
    days = _day_weights()
    picked = rng.choices([d for d, _ in days], weights=[w for _, w in days], k=n)
    registered = []
    for d, ch in zip(picked, channels, strict=True):
        office = ch in ("visit", "phone", "video") or rng.random() < 0.6
        hour = rng.uniform(8.5, 17.5) if office else rng.uniform(0, 24)
        local = datetime(d.year, d.month, d.day, tzinfo=SHANGHAI) + timedelta(hours=hour)
        registered.append(local.astimezone(UTC))
    order = sorted(range(n), key=lambda i: registered[i])  # case ids grow with time
    return Plan(
        cases=n,
        repeat_visits=repeat_visits,
        registered=[registered[i] for i in order],
        channels=[channels[i] for i in order],
        categories=[categories[i] for i in order],
        localities=[localities[i] for i in order],
        repeat=repeat,
        visit_persons=round(SOURCE_VISIT_PERSONS * scale),
    )


def _visit_persons(rng: random.Random) -> int:
    r = rng.random()  # a mean of about 1.46, the source's 71,203 person-times in 48,762 batches
    if r < 0.84:
        return 1
    if r < 0.93:
        return 2
    if r < 0.965:
        return 3
    if r < 0.99:
        return rng.randint(4, 8)
    return rng.randint(10, 30)  # a collective visit


@dataclass
class Batch:
    cases: list[dict[str, Any]] = field(default_factory=list)
    intakes: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    arbitration: list[dict[str, Any]] = field(default_factory=list)


class Year:
    """Draws each case's life as the workflow would have left its row, as of NOW."""

    def __init__(self, plan: Plan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self.matters: list[str] = []  # matter key of each case so far
        self.ledger_index = 0
        # Which cases get a repeat visit (another registration on the open case, by visit).
        self.repeat_visit_cases = set(rng.sample(range(plan.cases), min(plan.repeat_visits, plan.cases)))
        self.visit_cases = sum(1 for ch in plan.channels if ch == "visit") + len(self.repeat_visit_cases)

    def batches(self) -> Iterator[Batch]:
        batch = Batch()
        for i in range(self.plan.cases):
            self._case(i, batch)
            if len(batch.cases) >= CHUNK:
                yield batch
                batch = Batch()
        if batch.cases:
            yield batch

    def _persons(self, channel: str) -> int:
        if channel == "visit":
            return _visit_persons(self.rng)
        return 2 if channel == "letter" and self.rng.random() < 0.05 else 1

    def _doc(self, b: Batch, case_id: str, kind: str, at: datetime, n: int = 1) -> None:
        if at > NOW:
            return
        self.ledger_index += 1
        sha = f"{self.rng.getrandbits(256):064x}"
        b.documents.append({
            "idempotency_key": f"{case_id}:{kind}:{n}", "case_id": case_id, "kind": kind, "sha256": sha,
            "path": f"documents/{case_id}/{kind}-{n}.txt", "ledger_index": self.ledger_index,
            "verification_code": f"L{self.ledger_index}-{sha[:8]}", "issued_at": at,
        })

    def _score(self, b: Batch, case_id: str, unit: str, rule: str, points: int, at: datetime, n: int = 1,
               official: str | None = None) -> None:
        if at > NOW:
            return
        b.scores.append({
            "idempotency_key": f"{case_id}:{rule}:{n}", "case_id": case_id, "unit": unit, "rule": rule, "points": points,
            "official": official, "note": "", "occurred_at": at, "rules_version": "2026.3", "recorded_at": at,
        })

    def _case(self, i: int, b: Batch) -> None:  # noqa: C901 -- one life, step by step
        rng, p = self.rng, self.plan
        reg, channel, category, locality = p.registered[i], p.channels[i], p.categories[i], p.localities[i]
        repeat = p.repeat[i] and i > 0
        if repeat:  # the same matter as an earlier case: same place and kind of matter
            j = rng.randrange(max(0, i - 40_000), i)
            matter, category, locality = self.matters[j], p.categories[j], p.localities[j]
        else:
            matter = hashlib.sha256(f"matter-{i}".encode()).hexdigest()[:32]
        self.matters.append(matter)
        case_id = f"XF-{_local(reg):%Y%m%d}-{i:08X}"
        unit = f"{locality}{UNIT_SUFFIX[category]}"
        r = rng.random()
        risk = "high" if r < 0.04 else "medium" if r < 0.30 else "low"
        persons = self._persons(channel)
        nail = rng.random() < 0.004
        title = f"{rng.choice(TITLES[category])}（{locality}）"

        row: dict[str, Any] = {
            "case_id": case_id, "matter_key": matter, "status": "open", "stage": "triaged", "outcome": None,
            "category": category, "risk": risk, "unit": unit, "locality": locality, "channel": channel,
            "office_level": "county" if rng.random() < 0.7 else "city", "title": title, "person_count": persons,
            "visits": 1, "nail_case": nail, "mediation_eligible": False, "mediation_succeeded": False, "overdue": False,
            "next_deadline": None, "next_due": None, "next_due_provisional": False, "rules_version": "2026.3",
            "registered_at": reg, "closed_at": None, "updated_at": reg, "repeat": repeat, "accepted_at": None,
            "answered_at": None, "acceptance_late": False, "handling_late": False, "review_late": False,
            "reviewed": False, "re_reviewed": False, "ladder": None, "ladder_end": None, "leader": None,
            "overdue_deadline": None, "overdue_since": None, "urgent_notice_s": None,
        }
        if risk == "high":
            row["urgent_notice_s"] = (
                rng.randint(1_801, 7_200) if rng.random() < 0.05 else min(1_800, int(rng.lognormvariate(math.log(300), 0.9)))
            )
        pending: tuple[str, datetime] | None = None  # the period awaited now
        closed: datetime | None = None
        outcome: str | None = None
        last = reg

        def done(at: datetime) -> bool:
            return at <= NOW

        path = rng.random()
        if path < 0.12:  # not accepted (5 %) or redirected to a statutory route (7 %)
            kind = "not_accepted_notice" if path < 0.05 else "redirect_notice"
            at = reg + rng.uniform(0.5, 14) * DAY
            if done(at):
                closed, outcome, last = at, "not_accepted" if path < 0.05 else "redirected", at
                self._doc(b, case_id, kind, at)
                self._doc(b, case_id, "delivery_receipt", at + rng.uniform(0.1, 3) * DAY)
            else:
                pending = ("acceptance", reg + 15 * DAY)
        elif category == "labor_social_security" and rng.random() < 0.06:  # the arbitration green channel
            start = reg + rng.uniform(0.5, 5) * DAY
            end = start + rng.uniform(15, 70) * DAY
            court = rng.random() < 0.12
            arb = {
                "case_id": case_id, "unit": f"{locality}劳动人事争议仲裁院", "workers": rng.randint(3, 120),
                "amount": round(rng.uniform(2e4, 2e6), 2), "status": "open", "outcome": None, "started_at": start,
                "updated_at": start,
            }
            if done(start):
                row["stage"], last = "arbitration", start
                if done(end):
                    arb.update(status="closed", outcome="court" if court else "resolved", updated_at=end)
                    closed, outcome, last = end, "redirected" if court else "resolved", end
                b.arbitration.append(arb)
        else:
            late = rng.random() < 0.03
            acc = reg + (rng.uniform(15.5, 30) if late else rng.uniform(0.3, 12)) * DAY
            if not done(acc):
                pending = ("acceptance", reg + 15 * DAY)
            else:
                row.update(accepted_at=acc, acceptance_late=acc > reg + 15 * DAY, stage="accepted")
                last = acc
                self._doc(b, case_id, "acceptance_notice", acc)
                self._doc(b, case_id, "delivery_receipt", acc + rng.uniform(0.1, 3) * DAY)
                eligible = category != "law_litigation" and rng.random() < 0.45
                row["mediation_eligible"] = eligible
                mediated = eligible and rng.random() < 0.62
                if mediated:
                    at = acc + rng.uniform(1, 7) * DAY
                    if done(at):
                        row.update(mediation_succeeded=True)
                        closed, outcome, last = at, "mediated", at
                        self._doc(b, case_id, "mediation_agreement", at)
                        self._doc(b, case_id, "delivery_receipt", at + rng.uniform(0.1, 2) * DAY, 2)
                        self._score(b, case_id, unit, "mediation_success", 2, at)
                    else:
                        row["stage"] = "mediation"
                        pending = ("mediation_window", acc + 7 * DAY)
                else:
                    if eligible and rng.random() < 0.25:
                        self._score(b, case_id, unit, "mediation_window_missed", -1, acc + 7 * DAY)
                    stuck = rng.random() < 0.015
                    days = (
                        rng.uniform(90, 300) if stuck
                        else rng.uniform(61, 90) if rng.random() < 0.05
                        else min(59.5, rng.lognormvariate(math.log(28), 0.45))
                    )
                    if days > 45 and rng.random() < 0.5:
                        self._doc(b, case_id, "extension_notice", acc + 45 * DAY)
                    ans = acc + days * DAY
                    if not done(ans):
                        row["stage"] = "handling"
                        pending = ("handling", acc + 60 * DAY)
                    else:
                        row.update(answered_at=ans, handling_late=ans > acc + 60 * DAY, stage="opinion_issued")
                        last = ans
                        self._doc(b, case_id, "handling_opinion", ans)
                        self._doc(b, case_id, "delivery_receipt", ans + rng.uniform(0.1, 3) * DAY, 2)
                        if eligible and rng.random() < 0.3:
                            self._score(b, case_id, unit, "mediation_failed_review", -1, ans)
                        closed, outcome, last = self._reviews(b, row, case_id, ans)
                        if closed is None and row["stage"] in ("review", "re_review"):
                            name = "review_decision" if row["stage"] == "review" else "re_review_decision"
                            pending = (name, last + 30 * DAY)
                        elif closed is None:
                            pending = ("review_request", ans + 30 * DAY)
        # Withdrawn now and then, while still open.
        if closed is None and rng.random() < 0.01:
            at = last + rng.uniform(1, 20) * DAY
            if done(at):
                closed, outcome, pending = at, "withdrawn", None

        # The three-letters ladder: most high-risk cases, a few others.
        if risk == "high" and rng.random() < 0.35 or risk == "medium" and rng.random() < 0.004:
            self._ladder(b, row, case_id, unit, reg, closed)
        if nail or row["ladder"] and rng.random() < 0.35 or rng.random() < 0.002:
            row["leader"] = rng.choice(LEADERS)

        # Another visit on the open case (a registration by visit, as a repeat).
        if i in self.repeat_visit_cases:
            until = min(closed or NOW, reg + 120 * DAY, NOW)
            at = reg + rng.uniform(0.1, max(0.2, (until - reg) / DAY)) * DAY
            if at <= NOW:
                row["visits"] = 2
                b.intakes.append({"key": f"{case_id}:2", "case_id": case_id, "at": at, "channel": "visit",
                                  "persons": _visit_persons(rng), "repeat": True, "locality": locality})
        b.intakes.append({"key": f"{case_id}:1", "case_id": case_id, "at": reg, "channel": channel,
                          "persons": persons, "repeat": repeat, "locality": locality})

        if closed is not None:
            row.update(status="closed", stage="closed", outcome=outcome, closed_at=closed, updated_at=closed)
            if row["ladder"] not in (None, "accountability"):
                row.update(ladder=None, ladder_end="resolved")
        else:
            row["updated_at"] = min(NOW, last)
            if pending is not None:
                name, due = pending
                row.update(next_deadline=name, next_due=due)
                if due <= NOW and name != "review_request":
                    row.update(overdue=True, overdue_deadline=name, overdue_since=due)
        b.cases.append(row)

    def _reviews(self, b: Batch, row: dict[str, Any], case_id: str, ans: datetime) -> tuple[datetime | None, str | None, datetime]:
        """Review (复查) and re-review (复核) after the opinion; returns (closed at, outcome, last step)."""
        rng = self.rng
        if rng.random() >= 0.07:
            end = ans + 30 * DAY  # the review window passes: the case is closed
            return (end, "resolved", end) if end <= NOW else (None, None, ans)
        asked = ans + rng.uniform(3, 29) * DAY
        if asked > NOW:
            return None, None, ans
        row.update(reviewed=True, stage="review")
        decided = asked + (rng.uniform(31, 50) if rng.random() < 0.10 else rng.uniform(8, 29)) * DAY
        if decided > NOW:
            return None, None, asked
        row["review_late"] = decided > asked + 30 * DAY
        self._doc(b, case_id, "review_opinion", decided)
        self._doc(b, case_id, "delivery_receipt", decided + rng.uniform(0.1, 3) * DAY, 3)
        if rng.random() >= 0.2:
            end = decided + 30 * DAY
            row["stage"] = "opinion_issued"
            return (end, "final_after_review", end) if end <= NOW else (None, None, decided)
        asked2 = decided + rng.uniform(3, 29) * DAY
        if asked2 > NOW:
            row["stage"] = "opinion_issued"
            return None, None, decided
        row.update(re_reviewed=True, stage="re_review")
        decided2 = asked2 + (rng.uniform(31, 50) if rng.random() < 0.10 else rng.uniform(8, 29)) * DAY
        if decided2 > NOW:
            return None, None, asked2
        row["review_late"] = row["review_late"] or decided2 > asked2 + 30 * DAY
        self._doc(b, case_id, "re_review_opinion", decided2)
        self._doc(b, case_id, "delivery_receipt", decided2 + rng.uniform(0.1, 3) * DAY, 4)
        return decided2, "final_after_re_review", decided2

    def _ladder(self, b: Batch, row: dict[str, Any], case_id: str, unit: str, reg: datetime, closed: datetime | None) -> None:
        rng = self.rng
        at = reg + rng.uniform(0.5, 5) * DAY
        steps = [("warning", "risk_warning_letter", 1.0), ("supervision", "supervision_letter", 0.4),
                 ("accountability", "accountability_letter", 0.3)]
        for n, (step, letter, chance) in enumerate(steps, start=1):
            if rng.random() >= chance or at > NOW or (closed is not None and at >= closed):
                return
            row["ladder"] = step
            self._doc(b, case_id, letter, at)
            self._doc(b, case_id, "petitioner_notice", at, n)
            if step == "accountability":
                self._score(b, case_id, unit, "accountability", -5, at)
                for k, official in enumerate(rng.sample(OFFICIALS, rng.randint(1, 3)), start=1):
                    self._score(b, case_id, unit, "accountability_official", 0, at, k, official=official)
            at += (15 if step == "warning" else 10) * DAY


# ---------------------------------------------------------------------------------------------
# Loading and measuring
# ---------------------------------------------------------------------------------------------

TABLES = {
    "cases": CaseRow.__table__,  # type: ignore[attr-defined]
    "intakes": IntakeRow.__table__,  # type: ignore[attr-defined]
    "documents": DocumentRow.__table__,  # type: ignore[attr-defined]
    "score_events": ScoreEventRow.__table__,  # type: ignore[attr-defined]
    "arbitration_tracks": ArbitrationRow.__table__,  # type: ignore[attr-defined]
}


def load(engine: Engine, n: int, seed: int) -> tuple[dict[str, int], float]:
    rng = random.Random(seed)
    year = Year(plan_year(n, rng), rng)
    counts = dict.fromkeys(TABLES, 0)
    t0 = time.perf_counter()
    for batch in year.batches():
        with engine.begin() as conn:
            for name, rows in (("cases", batch.cases), ("intakes", batch.intakes), ("documents", batch.documents),
                               ("score_events", batch.scores), ("arbitration_tracks", batch.arbitration)):
                for k in range(0, len(rows), 10_000):
                    conn.execute(TABLES[name].insert(), rows[k : k + 10_000])
                counts[name] += len(rows)
        if sys.stdout.isatty():
            print(f"\r  loaded {counts['cases']:,} / {n:,} cases", end="", flush=True)
    if sys.stdout.isatty():
        print()
    return counts, time.perf_counter() - t0


def _pad(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (a Chinese character takes two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    max_ms: float
    n: int


def measure(name: str, fn: Callable[[], Any], repeat: int, warmup: int = 3) -> Timing:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return Timing(name, statistics.median(times), nearest_rank(times, 0.95), max(times), repeat)


def busiest_locality(engine: Engine) -> str:
    c = CaseRow.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return str(conn.execute(
            sa.select(c.locality).group_by(c.locality).order_by(sa.func.count().desc()).limit(1)
        ).scalar_one())


def queries(engine: Engine, locality: str) -> list[tuple[str, Callable[[], Any]]]:
    year, month = Period("year", YEAR), Period("month", YEAR, 11)
    qs: list[tuple[str, Callable[[], Any]]] = [
        ("overview, year, all localities", lambda: overview(engine, year)),
        (f"overview, year, {locality}", lambda: overview(engine, year, locality)),
        ("overview, month (2026-11)", lambda: overview(engine, month)),
        ("heat map, year, by category", lambda: heatmap(engine, year, "category")),
        ("heat map, year, by risk", lambda: heatmap(engine, year, "risk")),
        ("red alerts (top 200)", lambda: red_alerts(engine, now=NOW)),
        ("case list, page 1, locality+category",
         lambda: case_list(engine, CaseFilter(locality=locality, category="land_expropriation"))),
        ("leader packages", lambda: leader_packages(engine)),
    ]
    return qs


def brief_timings(engine: Engine, repeat: int) -> list[Timing]:
    """The monthly brief (engine/brief.py): its queries (two overviews and the top red alerts),
    and the whole PDF, whose time is mostly fontTools subsetting the CJK font."""
    from engine.brief import TOP_ALERTS, render_brief

    month = Period("month", YEAR, 11)

    def figures() -> None:
        overview(engine, month)
        overview(engine, month.previous())
        red_alerts(engine, now=NOW, limit=TOP_ALERTS)

    return [
        measure("monthly brief: its queries", figures, repeat),
        measure("monthly brief: the whole PDF", lambda: render_brief(engine, month, now=NOW), min(repeat, 5), warmup=1),
    ]


def _has_brief() -> bool:
    try:
        from activities.documents import find_pdf_font
        from engine import brief  # noqa: F401
    except ImportError:
        return False
    return find_pdf_font() is not None


def _db_size(engine: Engine, sqlite_path: Path | None) -> str:
    if sqlite_path is not None:
        size = sum(p.stat().st_size for p in sqlite_path.parent.glob(sqlite_path.name + "*"))
    else:
        with engine.connect() as conn:
            size = int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
    return f"{size / 2**20:,.0f} MiB"


def run_db(label: str, engine: Engine, args: argparse.Namespace, sqlite_path: Path | None = None) -> dict[str, Any]:
    print(f"\n=== {label}: {args.cases:,} cases", flush=True)
    counts, load_s = load(engine, args.cases, args.seed)
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; loaded in {load_s:.1f} s")
    maint_s = 0.0
    if engine.dialect.name == "postgresql":  # what autovacuum does after a load, done now
        t0 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        maint_s = time.perf_counter() - t0
        print(f"  VACUUM ANALYZE {maint_s:.1f} s")
    t0 = time.perf_counter()
    rebuild_tallies(engine)
    rebuild_s = time.perf_counter() - t0
    with engine.connect() as conn:
        tallies = {t.__tablename__: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                   for t in (CaseTally, IntakeTally, DocumentTally)}
    print(f"  rebuild_tallies {rebuild_s:.1f} s (" + ", ".join(f"{k} {v:,} rows" for k, v in tallies.items())
          + f"); database {_db_size(engine, sqlite_path)}")
    locality = busiest_locality(engine)
    o = overview(engine, Period("year", YEAR))
    assert o.cases == counts["cases"] and o.batches == counts["intakes"], (o.cases, o.batches)
    channels = ", ".join(f"{c.channel} {c.batches:,}" + (f"/{c.persons:,}" if c.channel == "visit" else "") for c in o.by_channel)
    print(f"  the year: {o.batches:,} registrations ({channels}), {o.persons:,} person-times, repeat "
          f"{o.repeat_share:.1%}; cases {o.cases:,}, mediation {o.mediation_rate:.1%}, on time: acceptance "
          f"{o.acceptance_on_time_rate:.1%} handling {o.handling_on_time_rate:.1%} review {o.review_on_time_rate:.1%}; "
          f"high risk {o.high_risk:,} (notice within 30 min {o.urgent_within_rate:.1%}); letters "
          f"{sum(o.letters.values()):,}, officials {o.officials_accountable}; documents {o.documents:,}; "
          f"arbitration {o.arbitration_entries:,} (to court {o.return_to_court_rate:.1%}); open {o.open_now:,}, "
          f"overdue {o.overdue_now:,}")
    load0, cpu0, mine0, t0 = os.getloadavg()[0], machine_cpu(), proc_cpu_s(), time.perf_counter()
    timings = [measure(name, fn, args.repeat) for name, fn in queries(engine, locality)]
    wall = time.perf_counter() - t0
    others = (machine_cpu()[0] - cpu0[0] - (proc_cpu_s() - mine0)) / wall / (os.cpu_count() or 1)
    print(f"  {'query':42s} {'median':>9s} {'p95':>9s} {'max':>9s}   (n={args.repeat} after 3 warm-up calls)")
    for t in timings:
        mark = "" if t.p95_ms < 500 else "  ← over 500 ms"
        print(f"  {_pad(t.name, 42)} {t.median_ms:7.1f}ms {t.p95_ms:7.1f}ms {t.max_ms:7.1f}ms{mark}", flush=True)
    server = " (the PostgreSQL server's own work included)" if engine.dialect.name == "postgresql" else ""
    print(f"  while measuring ({wall:.0f} s): load average {load0:.1f} → {os.getloadavg()[0]:.1f}; processes "
          f"other than this one used {others:.0%} of the {os.cpu_count()} cores{server}")
    brief = brief_timings(engine, args.repeat) if args.brief else []
    for t in brief:  # not under the goal: the PDF is a download, not a cockpit page
        print(f"  {_pad(t.name, 42)} {t.median_ms:7.1f}ms {t.p95_ms:7.1f}ms {t.max_ms:7.1f}ms   (n={t.n})", flush=True)
    return {"load_s": load_s, "rebuild_s": rebuild_s, "maint_s": maint_s, "timings": timings, "brief": brief,
            "counts": counts, "others": others}


def bench_sqlite(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="petition-cockpit-"))
    try:
        path = folder / "cockpit.db"
        engine = get_engine(f"sqlite:///{path}")
        return run_db("SQLite", engine, args, path)
    finally:
        dispose_engines()
        shutil.rmtree(folder, ignore_errors=True)


def bench_postgres(args: argparse.Namespace) -> dict[str, Any] | None:
    base = sa.engine.make_url(args.pg_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = "cockpit_bench"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if args.db == "postgres":
            raise
        print(f"\n=== PostgreSQL: not reachable at {base.render_as_string(hide_password=True)}; skipped "
              f"({str(exc).splitlines()[0]})")
        return None
    try:
        engine = get_engine(base.set(database=name).render_as_string(hide_password=False))
        with engine.connect() as conn:
            version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        return run_db(f"PostgreSQL {version}", engine, args)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=SOURCE_CASES, help="cases in the year (default: the source's 245,000)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per query, after 3 warm-up calls")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--pg-url", default=os.environ.get("PETITION_TEST_POSTGRES_URL")
                        or "postgresql+psycopg://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server (its database is not touched: cockpit_bench is created beside it)")
    parser.add_argument("--no-brief", dest="brief", action="store_false", help="leave out the monthly brief PDF")
    args = parser.parse_args(argv)
    if args.cases < 100:
        parser.error("--cases: at least 100")
    args.brief = args.brief and _has_brief()
    results: dict[str, dict[str, Any]] = {}
    if args.db in ("sqlite", "both"):
        results["sqlite"] = bench_sqlite(args)
    if args.db in ("postgres", "both"):
        pg = bench_postgres(args)
        if pg is not None:
            results["postgres"] = pg
    parts = [f"cockpit cases={args.cases}"]
    worst_all = 0.0
    for db, r in results.items():
        worst = max(t.p95_ms for t in r["timings"])
        overview_p95 = next(t.p95_ms for t in r["timings"] if t.name.startswith("overview, year, all"))
        worst_all = max(worst_all, worst)
        parts += [f"{db}_overview_year_p95_ms={overview_p95:.1f}", f"{db}_worst_p95_ms={worst:.1f}",
                  f"{db}_load_s={r['load_s']:.0f}", f"{db}_rebuild_s={r['rebuild_s']:.1f}"]
        parts += [f"{db}_brief_pdf_median_ms={t.median_ms:.0f}" for t in r["brief"] if t.name.endswith("PDF")]
    print()
    print(" ".join(parts))
    return 0 if worst_all < 500 else 1


if __name__ == "__main__":
    sys.exit(main())
