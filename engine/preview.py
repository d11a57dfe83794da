"""Rule-change impact preview (`starter.py rules preview`): a past period's cases replayed under a
proposed rules file.

The plan comes from an engine's read model (activities/db.py): the cases registered in the period,
each with its intake (the case row, its petitioners, the triage event's category, risk, amount
and workers), its repeat visits (the intakes table) and the actions its timeline records (each on
its local day, by the role the action belongs to, with the data the timeline kept). That plan is
run twice through the simulation machinery (engine/simulate.py: the real PetitionWorkflow and
activities on the time-skipping test server, started at the period's first day under
libfaketime, day by day), each time into a scratch data folder:

- the **baseline**: every case under the rules it recorded (its `rules_version`, found among the
  engine's rules file and rules/*.toml), which also measures how faithfully a replay reproduces
  what happened (its outcomes against the recorded ones);
- the **proposal**: every case under the proposed rules file (validated first).

The two read models are then compared: deadlines lapsed (by deadline), letters issued by ladder
step, accountability recommendations, score points by unit, mediation-eligible cases, cases on
the arbitration track, actions the rules refused, outcomes; and each case whose life differs.

Nothing personal leaves this module: figures, case ids, units and titles (masked like the case
desk's exports). The scratch folders hold the replayed petitions and are deleted afterwards.

What a replay cannot know (docs/rules.md, "Previewing a rule change"): what people would have
done differently under other rules (a unit told of a shorter window might have mediated sooner);
actions are replayed on their recorded day (at 15:00; registrations at 09:00); whether the facts
were clear is not in the read model and is inferred from the recorded mediation eligibility.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from activities.db import CaseRow, IntakeRow, PetitionerRow, TimelineRow, TriageDecisionRow, get_engine
from engine.cockpit import Period
from engine.config import RULES_DIR, Settings
from engine.desk import InputError
from engine.simulate import Draft, Matter, Options, Step, YearDraw
from rules.deadlines import SHANGHAI
from rules.lifecycle import mediation_eligible
from rules.ruleset import RuleFileError, RuleSet, load_rules
from rules.vocabulary import (
    ACTION_CN,
    DEADLINE_CN,
    LADDER_CN,
    OUTCOME_CN,
    Category,
    Channel,
    OfficeLevel,
    Risk,
)
from workflows.models import ACTION_INPUTS, Intake, Petitioner, mask_personal_data

# A replayed day's stops: registrations (and repeat visits) in the morning, actions in the afternoon.
SLOTS = (timedelta(hours=9), timedelta(hours=15))
REGISTRATION_SLOT, ACTION_SLOT = 0, 1
PLACEHOLDER = "（规则影响预估：重放记录的操作，原文不在读模型中）"
SAMPLE_SEED = 2026
LETTERS = ("risk_warning_letter", "supervision_letter", "accountability_letter")
LETTER_STEP = {"risk_warning_letter": "warning", "supervision_letter": "supervision",
               "accountability_letter": "accountability"}  # fmt: skip
# Data a timeline event keeps under another name than the action's input field.
_RENAMED = {"extended_days": "days", "step": "event", "clock_paused": "deadline", "clock_resumed": "deadline"}
_AMOUNT = re.compile(r"争议金额 ([\d,]+(?:\.\d+)?) 元")
_WORKERS = re.compile(r"工人数 (\d+)")


class PreviewError(InputError):
    """A preview that cannot be run as asked (a sentence; nothing was run)."""


# --------------------------------------------------------------------------------------------
# The plan, from the read model
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    period: Period
    draw: YearDraw  # baseline: each new case's draft carries the rules it recorded
    case_ids: list[str]
    titles: dict[str, str]  # case id -> masked title
    cases_in_period: int
    sample: int | None
    horizon: date  # the last replayed day (the read model's last recorded day)
    versions: Counter[str] = field(default_factory=Counter)
    unknown_versions: Counter[str] = field(default_factory=Counter)  # replayed under the engine's rules
    facts_inferred: int = 0  # accepted cases whose facts_clear was inferred as unknown (None)
    actions: Counter[str] = field(default_factory=Counter)
    unreplayable: Counter[str] = field(default_factory=Counter)  # recorded actions whose data is not kept

    def proposed(self) -> YearDraw:
        """The same plan, every new case under the run's (proposed) rules."""
        return replace(self.draw, drafts=[replace(d, rules=None) for d in self.draw.drafts])


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _local_day(value: datetime) -> date:
    return _utc(value).astimezone(SHANGHAI).date()


def _naive(d: date) -> datetime:
    """Local midnight of `d`, in UTC."""
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI).astimezone(UTC)


def rules_by_version(settings: Settings, extra: Iterable[Path] = ()) -> dict[str, RuleSet]:
    """The rule sets this engine knows, by version: its rules file and rules/*.toml that load."""
    found: dict[str, RuleSet] = {}
    for path in [settings.rules_file, *sorted(RULES_DIR.glob("*.toml")), *extra]:
        try:
            rs = load_rules(path)
        except (RuleFileError, OSError, ValueError):
            continue  # routing.toml, officials.toml…: not rule sets
        found.setdefault(rs.version, rs)
    return found


def action_data(action: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An action's input as its timeline kept it: the event that names the action and the events it
    caused at the same instant; text the read model does not keep (an opinion's wording, a reason)
    is a placeholder. InputError when a field the action needs is not there."""
    from engine.desk import parse_action

    merged: dict[str, Any] = {}
    for e in events:
        for key, value in e.items():
            merged.setdefault(_RENAMED.get(key, key), value)
    model: type[BaseModel] = ACTION_INPUTS[action]
    data = {k: v for k, v in merged.items() if k in model.model_fields and k not in ("by", "unit")}
    for name, info in model.model_fields.items():
        if name not in data and info.is_required() and info.annotation is str:
            data[name] = PLACEHOLDER
    if action == "accept":
        data.pop("facts_clear", None)
        data.pop("disputed_amount", None)
    parse_action(action, data)  # InputError when it cannot be replayed
    return data


def _facts_clear(rules: RuleSet | None, row: CaseRow, category: Category | None, amount: float | None) -> bool | None:
    """Whether the facts were clear (not in the read model): eligible under the recorded rules means
    clear; a civil case within the limit that was not eligible means not clear; else unknown."""
    if rules is None or row.accepted_at is None or category is None:
        return None
    if row.mediation_eligible:
        return True if rules.mediation.requires_facts_clear else None
    if mediation_eligible(rules, category, True, amount):
        return False  # it would have been eligible with clear facts: they were not
    return None


def build_plan(
    settings: Settings, period: Period, *, sample: int | None = None, seed: int = SAMPLE_SEED
) -> Plan:
    """The period's cases (registered in it) as a plan for engine.simulate's runner."""
    db = get_engine(settings.resolved_database_url())
    known = rules_by_version(settings)
    lo, hi = _naive(period.first_day), _naive(period.next_first_day)
    with Session(db) as s:
        rows = list(s.exec(select(CaseRow).where(CaseRow.registered_at >= lo, CaseRow.registered_at < hi)
                           .order_by(CaseRow.registered_at, CaseRow.case_id)))  # type: ignore[arg-type]  # fmt: skip
    with db.connect() as c:
        last = c.execute(text("SELECT MAX(at) FROM timeline")).scalar()
    if not rows:
        raise PreviewError(f"--period {period.code}: 该期间没有登记的案件，无可重放；未运行任何重放。")
    total = len(rows)
    if sample is not None and sample < total:
        keep = set(random.Random(seed).sample([r.case_id for r in rows], sample))
        rows = [r for r in rows if r.case_id in keep]
    horizon = _local_day(datetime.fromisoformat(str(last))) if last else _local_day(rows[-1].registered_at)
    first = period.first_day
    plan_drafts: list[tuple[datetime, int, Draft]] = []
    matters: dict[str, Matter] = {}
    plan = Plan(period=period, draw=YearDraw(period.year, first, (horizon - first).days + 1, [], [], SLOTS, False),
                case_ids=[r.case_id for r in rows], titles={}, cases_in_period=total, sample=sample if sample
                is not None and sample < total else None, horizon=horizon)  # fmt: skip
    with Session(db) as s:
        for row in rows:
            people = list(s.exec(select(PetitionerRow).where(PetitionerRow.case_id == row.case_id)
                                 .order_by(PetitionerRow.position)))  # type: ignore[arg-type]  # fmt: skip
            intakes = list(s.exec(select(IntakeRow).where(IntakeRow.case_id == row.case_id)
                                  .order_by(IntakeRow.at)))  # type: ignore[arg-type]  # fmt: skip
            events = list(s.exec(select(TimelineRow).where(TimelineRow.case_id == row.case_id)
                                 .order_by(TimelineRow.seq)))  # type: ignore[arg-type]  # fmt: skip
            triage = s.get(TriageDecisionRow, row.case_id)
            plan.titles[row.case_id] = mask_personal_data(row.title, [p.name for p in people])
            plan.versions[row.rules_version] += 1
            rules = known.get(row.rules_version)
            if rules is None:
                plan.unknown_versions[row.rules_version] += 1
            triaged = next((e.data for e in events if e.kind == "stage" and e.data.get("stage") == "triaged"), {})
            reasons = " ".join(str(r) for r in triaged.get("reasons", []))
            amount_m, workers_m = _AMOUNT.search(reasons), _WORKERS.search(reasons)
            amount = float(amount_m.group(1).replace(",", "")) if amount_m else None
            workers = int(workers_m.group(1)) if workers_m else None
            category = Category(triaged["category"]) if triaged.get("category") else (
                Category(row.category) if row.category else None)  # fmt: skip
            risk = Risk(triaged["risk"]) if triaged.get("risk") else (Risk(row.risk) if row.risk else None)
            facts = _facts_clear(rules, row, category, amount)
            if facts is None and row.accepted_at is not None and category in (rules.mediation.civil_categories if rules else ()):
                plan.facts_inferred += 1
            petitioners = [Petitioner(name=p.name, id_number=p.id_number, phone=p.phone) for p in people] or [
                Petitioner(name="信访人")]  # fmt: skip
            first_intake = intakes[0] if intakes else None
            channel = Channel(first_intake.channel if first_intake else row.channel)
            persons = first_intake.persons if first_intake else len(petitioners)
            intake = Intake(
                channel=channel, office_level=OfficeLevel(row.office_level), locality=row.locality,
                petitioners=_people(petitioners, persons), title=row.title,
                content=(triage.content_masked if triage and triage.content_masked.strip() else row.title),
                category=category, risk=risk, disputed_amount=amount, facts_clear=facts, worker_count=workers,
            )  # fmt: skip
            matter = matters.get(row.matter_key)
            if matter is None:
                matter = Matter(index=len(matters), day=0, category=category or Category.other, risk=risk or Risk.low,
                                locality=row.locality, title=row.title, content="", petitioner=petitioners[0],
                                facts_clear=facts, amount=amount, worker_count=workers, party="")  # fmt: skip
                matters[row.matter_key] = matter
            registered = _utc(row.registered_at)
            reg_day = (_local_day(registered) - first).days
            steps = _steps(plan, events, _local_day(registered))
            draft = Draft(index=0, day=reg_day, slot=REGISTRATION_SLOT, channel=channel, persons=persons,
                          office_level=OfficeLevel(row.office_level), matter=matter, repeat=row.repeat, steps=steps,
                          given=intake, case_id=row.case_id, rules=rules)  # fmt: skip
            plan_drafts.append((registered, 0, draft))
            for again in intakes[1:]:
                matter.repeats += 1
                at = _utc(again.at)
                day = (_local_day(at) - first).days
                if day >= plan.draw.days:
                    continue
                visit = intake.model_copy(update={"channel": Channel(again.channel),
                                                  "petitioners": _people(petitioners[:1], again.persons)})  # fmt: skip
                plan_drafts.append((at, 1, Draft(index=0, day=day, slot=REGISTRATION_SLOT, channel=Channel(again.channel),
                                                 persons=again.persons, office_level=OfficeLevel(row.office_level),
                                                 matter=matter, repeat=True, given=visit, rules=rules)))  # fmt: skip
    plan_drafts.sort(key=lambda t: (t[0], t[1]))
    for i, (_, _, d) in enumerate(plan_drafts):
        d.index = i
    plan.draw.drafts = [d for _, _, d in plan_drafts]
    plan.draw.matters = list(matters.values())
    return plan


def _people(petitioners: list[Petitioner], persons: int) -> list[Petitioner]:
    """The intake's petitioners, padded (without personal data) to the persons who came."""
    out = list(petitioners[: max(persons, 1)])
    while len(out) < persons:
        out.append(Petitioner(name=f"同行人{len(out)}"))
    return out


def _steps(plan: Plan, events: list[TimelineRow], registered: date) -> list[Step]:
    """The actions the case's timeline records (repeat visits come from the intakes)."""
    steps: list[Step] = []
    for i, e in enumerate(events):
        action = e.data.get("action")
        if not action or action == "repeat_visit" or action not in ACTION_INPUTS:
            continue
        same = [e.data]
        for later in events[i + 1:]:
            if later.at != e.at or later.data.get("action"):
                break
            same.append(later.data)
        try:
            data = action_data(action, same)
        except InputError:
            plan.unreplayable[action] += 1
            continue
        plan.actions[action] += 1
        steps.append(Step((_local_day(e.at) - registered).days, ACTION_SLOT, action, data))
    return steps


# --------------------------------------------------------------------------------------------
# Figures of one read model, and each case's life in brief
# --------------------------------------------------------------------------------------------


def figures(db: Engine, case_ids: list[str] | None = None) -> dict[str, Any]:
    """What the preview compares, from one read model (of `case_ids` only, when given)."""
    if case_ids is not None and not case_ids:
        case_ids = ["-"]
    ids = f" AND case_id IN ({', '.join(repr(c) for c in case_ids)})" if case_ids is not None else ""
    with db.connect() as c:

        def rows(sql: str) -> list[Any]:
            return list(c.execute(text(sql)))

        overdue = Counter(_json(r[0]).get("deadline") for r in rows(f"SELECT data FROM timeline WHERE kind = 'overdue'{ids}"))
        letters = dict(rows(f"SELECT kind, COUNT(*) FROM documents WHERE kind IN {LETTERS!r}{ids} GROUP BY kind"))
        points = {r[0]: int(r[1] or 0) for r in rows(f"SELECT unit, SUM(points) FROM score_events WHERE 1=1{ids} GROUP BY unit")}
        by_rule = {r[0]: (r[1], int(r[2] or 0)) for r in rows(
            f"SELECT rule, COUNT(*), SUM(points) FROM score_events WHERE 1=1{ids} GROUP BY rule")}  # fmt: skip
        flags = rows(
            "SELECT COUNT(*), SUM(CASE WHEN mediation_eligible THEN 1 ELSE 0 END), SUM(CASE WHEN mediation_succeeded "
            "THEN 1 ELSE 0 END), SUM(CASE WHEN ladder_end = 'accountability' THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN status = 'closed' THEN 1 ELSE 0 END) FROM cases WHERE 1=1{ids}"
        )[0]
        outcomes = dict(rows(f"SELECT COALESCE(outcome, 'open'), COUNT(*) FROM cases WHERE 1=1{ids} GROUP BY 1"))
        arbitration = rows(f"SELECT COUNT(*) FROM arbitration_tracks WHERE 1=1{ids}")[0][0]
        refused = dict(rows(f"SELECT action, COUNT(*) FROM refusals WHERE 1=1{ids} GROUP BY action"))
    return {
        "cases": flags[0], "closed": int(flags[4] or 0), "mediation_eligible": int(flags[1] or 0),
        "mediated": int(flags[2] or 0), "accountability_cases": int(flags[3] or 0), "overdue": overdue,
        "letters": letters, "points_by_unit": points, "score_rules": by_rule, "outcomes": outcomes,
        "arbitration_tracks": arbitration, "refused": refused,
    }  # fmt: skip


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as SQLite (text) or PostgreSQL (decoded) gives it back."""
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def case_lives(db: Engine, case_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each case's life in brief: outcome, deadlines lapsed, letters, points, eligibility, refusals."""
    lives: dict[str, dict[str, Any]] = {c: {"exists": False} for c in case_ids}
    with db.connect() as c:
        for cid, outcome, eligible in c.execute(text("SELECT case_id, outcome, mediation_eligible FROM cases")):
            if cid in lives:
                lives[cid] = {"exists": True, "outcome": outcome or "open", "eligible": bool(eligible),
                              "overdue": Counter(), "letters": Counter(), "points": 0, "refused": Counter(),
                              "arbitration": False}  # fmt: skip
        for cid, data in c.execute(text("SELECT case_id, data FROM timeline WHERE kind = 'overdue'")):
            if lives.get(cid, {}).get("exists"):
                lives[cid]["overdue"][_json(data).get("deadline")] += 1
        for cid, kind in c.execute(text(f"SELECT case_id, kind FROM documents WHERE kind IN {LETTERS!r}")):
            if lives.get(cid, {}).get("exists"):
                lives[cid]["letters"][kind] += 1
        for cid, pts in c.execute(text("SELECT case_id, SUM(points) FROM score_events GROUP BY case_id")):
            if lives.get(cid, {}).get("exists"):
                lives[cid]["points"] = int(pts or 0)
        for cid, action in c.execute(text("SELECT case_id, action FROM refusals")):
            if lives.get(cid, {}).get("exists"):
                lives[cid]["refused"][action] += 1
        for (cid,) in c.execute(text("SELECT case_id FROM arbitration_tracks")):
            if lives.get(cid, {}).get("exists"):
                lives[cid]["arbitration"] = True
    return lives


def life_differences(a: Mapping[str, Any], b: Mapping[str, Any], *, refusals: bool = True) -> list[str]:
    """What differs between two lives of a case, in Chinese (empty: the same)."""
    if not a.get("exists") or not b.get("exists"):
        if a.get("exists") == b.get("exists"):
            return []
        return ["案件未重放成独立案件（并入了同一事项的在办案件）" if a.get("exists") else "重放中成为独立案件"]
    out: list[str] = []
    if a["outcome"] != b["outcome"]:
        out.append(f"结果 {_outcome_cn(a['outcome'])}→{_outcome_cn(b['outcome'])}")
    for name in sorted(set(a["overdue"]) | set(b["overdue"])):
        if a["overdue"][name] != b["overdue"][name]:
            out.append(f"逾期（{DEADLINE_CN.get(name, name)}）{a['overdue'][name]}→{b['overdue'][name]}")
    for kind in LETTERS:
        if a["letters"][kind] != b["letters"][kind]:
            out.append(f"{LADDER_CN[LETTER_STEP[kind]]} {a['letters'][kind]}→{b['letters'][kind]}")
    if a["points"] != b["points"]:
        out.append(f"考核分 {a['points']:+d}→{b['points']:+d}")
    if a["eligible"] != b["eligible"]:
        out.append(f"可调解 {'是' if a['eligible'] else '否'}→{'是' if b['eligible'] else '否'}")
    if a["arbitration"] != b["arbitration"]:
        out.append(f"仲裁绿通 {'是' if a['arbitration'] else '否'}→{'是' if b['arbitration'] else '否'}")
    if refusals:
        for action in sorted(set(a["refused"]) | set(b["refused"])):
            if a["refused"][action] != b["refused"][action]:
                out.append(f"规则拒绝（{ACTION_CN.get(action, action)}）{a['refused'][action]}→{b['refused'][action]}")
    return out


def _outcome_cn(outcome: str) -> str:
    return "在办" if outcome == "open" else str(OUTCOME_CN.get(outcome, outcome))  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------
# The preview
# --------------------------------------------------------------------------------------------


def _count(table: str, key: str) -> Callable[[Mapping[str, Any]], int]:
    return lambda f: int(f[table].get(key, 0))


def _rows(recorded: Mapping[str, Any], base: Mapping[str, Any], prop: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The compared figures, each with its Chinese label."""
    out: list[dict[str, Any]] = []

    def add(key: str, label: str, get: Callable[[Mapping[str, Any]], int]) -> None:
        b, p = get(base), get(prop)
        out.append({"key": key, "label": label, "recorded": get(recorded), "baseline": b, "proposed": p,
                    "difference": p - b})  # fmt: skip

    add("cases", "案件（重放中另立的新案也计入）", lambda f: f["cases"])
    add("closed", "已办结", lambda f: f["closed"])
    deadlines = sorted(set(base["overdue"]) | set(prop["overdue"]) | set(recorded["overdue"]), key=str)
    for name in deadlines:
        add(f"overdue.{name}", f"逾期：{DEADLINE_CN.get(name, name)}", _count("overdue", name))
    for kind in LETTERS:
        add(f"letters.{LETTER_STEP[kind]}", f"发函：{LADDER_CN[LETTER_STEP[kind]]}", _count("letters", kind))
    add("accountability_cases", "问责建议（案件）", lambda f: f["accountability_cases"])
    add("mediation_eligible", "首办调解期可调解案件", lambda f: f["mediation_eligible"])
    add("mediated", "调解成功", lambda f: f["mediated"])
    add("arbitration_tracks", "仲裁绿通案件", lambda f: f["arbitration_tracks"])
    add("points", "考核分合计", lambda f: sum(f["points_by_unit"].values()))
    actions = sorted(set(base["refused"]) | set(prop["refused"]))
    add("refused", "规则拒绝的操作", lambda f: sum(f["refused"].values()))
    for action in actions:
        add(f"refused.{action}", f"  拒绝：{ACTION_CN.get(action, action)}", _count("refused", action))
    for outcome in sorted(set(base["outcomes"]) | set(prop["outcomes"])):
        add(f"outcome.{outcome}", f"结果：{_outcome_cn(outcome)}", _count("outcomes", outcome))
    return out


async def run_preview(
    settings: Settings, period: Period, proposed_file: Path, *, sample: int | None = None,
    cases_csv: Path | None = None, concurrency: int = 8, say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay the period under its recorded rules and under `proposed_file`; compare. The proposed
    file is validated before anything runs (RuleFileError with the loader's sentence)."""
    from engine.simulate import check_options, run_simulation

    say = say or (lambda line: None)
    try:
        proposed = load_rules(proposed_file)
    except FileNotFoundError:
        raise PreviewError(f"--proposed {proposed_file}: 文件不存在；未运行任何重放。") from None
    if sample is not None and sample < 1:
        raise PreviewError(f"--sample {sample}: 请给出至少 1 件的样本量。")
    try:
        check_options(Options(year=period.year, data_dir=Path("."), cases=1))  # the year can be replayed
    except InputError as exc:
        raise PreviewError(f"--period {period.code}: {exc}") from None
    plan = build_plan(settings, period, sample=sample)
    source = get_engine(settings.resolved_database_url())
    recorded = figures(source, plan.case_ids)
    recorded_lives = case_lives(source, plan.case_ids)
    scratch = Path(tempfile.mkdtemp(prefix="petition-preview-"))
    scratch.chmod(0o700)
    runs: dict[str, Any] = {}
    names = sorted({p.name for d in plan.draw.drafts if d.given for p in d.given.petitioners}, key=len, reverse=True)
    results: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
    try:
        for name, draw, rules_file in (("baseline", plan.draw, settings.rules_file),
                                       ("proposed", plan.proposed(), proposed_file)):  # fmt: skip
            folder = scratch / name
            say(f"重放（{'记录的规则' if name == 'baseline' else '拟议规则'}）：{len(plan.case_ids):,} 件案件，"
                f"{plan.draw.first_day} 至 {plan.horizon}")  # fmt: skip
            began = time.monotonic()
            opts = Options(year=period.year, data_dir=folder, cases=1, concurrency=concurrency, rules_file=rules_file)
            summary = await run_simulation(opts, say, plan=draw)
            run = summary["run"]
            runs[name] = {"actions": run["actions_total"], "refused": run["refused_total"],
                          "errors": run["errors_total"], "error_examples": [mask_personal_data(e, names) for e in run["errors"][:5]],
                          "steps_after_period": run["steps_after_period"], "wall_s": round(time.monotonic() - began, 1)}  # fmt: skip
            db = get_engine(f"sqlite:///{folder / 'petitions.db'}")
            results[name] = (figures(db, None), case_lives(db, plan.case_ids))
            db.dispose()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the replayed petitions are personal data
    (base, base_lives), (prop, prop_lives) = results["baseline"], results["proposed"]
    compared = [c for c in plan.case_ids if recorded_lives[c].get("exists")]
    same_outcome = sum(1 for c in compared if base_lives[c].get("outcome") == recorded_lives[c].get("outcome"))
    same_life = sum(1 for c in compared if not life_differences(recorded_lives[c], base_lives[c], refusals=False))
    differing = []
    for c in plan.case_ids:
        diff = life_differences(base_lives[c], prop_lives[c])
        if diff:
            differing.append({"case_id": c, "title": plan.titles[c], "differences": diff})
    units = sorted(set(base["points_by_unit"]) | set(prop["points_by_unit"]))
    points = [{"unit": u, "baseline": base["points_by_unit"].get(u, 0), "proposed": prop["points_by_unit"].get(u, 0),
               "difference": prop["points_by_unit"].get(u, 0) - base["points_by_unit"].get(u, 0)} for u in units]  # fmt: skip
    points.sort(key=lambda r: (-abs(r["difference"]), r["unit"]))
    if cases_csv is not None:
        write_cases_csv(cases_csv, differing)
    return {
        "period": period.code,
        "replayed_until": plan.horizon.isoformat(),
        "proposed": {"file": str(proposed_file), "version": proposed.version},
        "baseline_rules": {"versions": dict(plan.versions), "unknown_versions": dict(plan.unknown_versions)},
        "cases_in_period": plan.cases_in_period,
        "cases_replayed": len(plan.case_ids),
        "sample": ({"size": plan.sample, "of": plan.cases_in_period, "seed": SAMPLE_SEED, "scaled": False}
                   if plan.sample is not None else None),  # fmt: skip
        "fidelity": {
            "cases_compared": len(compared),
            "outcome_agreement": round(same_outcome / len(compared), 4) if compared else None,
            "life_agreement": round(same_life / len(compared), 4) if compared else None,
        },
        "figures": _rows(recorded, base, prop),
        "points_by_unit": points,
        "differing_cases": len(differing),
        "differing_examples": differing[:20],
        "actions_replayed": dict(plan.actions.most_common()),
        "actions_not_replayable": dict(plan.unreplayable),
        "facts_clear_unknown": plan.facts_inferred,
        "runs": runs,
    }


def write_cases_csv(path: Path, differing: list[dict[str, Any]]) -> None:
    """Each case whose life differs under the proposed rules: id, masked title, what differed."""
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(["案件编号", "标题", "差异（基线→拟议规则）"])
        for row in differing:
            w.writerow([row["case_id"], row["title"], "；".join(row["differences"])])


def print_preview(report: Mapping[str, Any]) -> None:
    """The preview as Chinese tables (engine/console.py's building blocks)."""
    from engine.console import _fields, _table, console
    from engine.console import _percent as pct

    out = console()
    fid = report["fidelity"]

    sample = report.get("sample")
    facts: list[tuple[str, Any]] = [
        ("期间", report["period"]),
        ("重放至", report["replayed_until"]),
        ("拟议规则", f"{report['proposed']['file']}（版本 {report['proposed']['version']}）"),
        ("记录的规则版本", "，".join(f"{k} {v} 件" for k, v in report["baseline_rules"]["versions"].items())),
        ("案件", f"{report['cases_replayed']:,} 件重放 / 期间登记 {report['cases_in_period']:,} 件"),
        ("基线还原度", f"结果一致 {pct(fid['outcome_agreement'])}，全部指标一致 {pct(fid['life_agreement'])}"
                      f"（对比 {fid['cases_compared']:,} 件）"),  # fmt: skip
        ("结果不同的案件", f"{report['differing_cases']:,} 件"),
    ]
    if sample:
        facts.insert(4, ("样本", f"以下数字来自 {sample['size']:,} 件的确定性样本（种子 {sample['seed']}，"
                                 f"共 {sample['of']:,} 件），未按比例放大"))  # fmt: skip
    if report["baseline_rules"]["unknown_versions"]:
        facts.append(("未找到的规则版本", "，".join(f"{k} {v} 件（按引擎当前规则重放）"
                                                 for k, v in report["baseline_rules"]["unknown_versions"].items())))  # fmt: skip
    if report["actions_not_replayable"]:
        facts.append(("无法重放的操作", report["actions_not_replayable"]))
    if report["facts_clear_unknown"]:
        facts.append(("事实是否清楚", f"{report['facts_clear_unknown']:,} 件已受理的民生案件无从推断（读模型未记录），按未明确重放"))
    errors = {k: v["errors"] for k, v in report["runs"].items() if v["errors"]}
    if errors:
        facts.append(("重放错误", f"基线 {errors.get('baseline', 0)}，拟议规则 {errors.get('proposed', 0)}（见 --json 的 runs）"))
    out.print(_fields("规则变更影响预估" + ("（样本）" if sample else ""), facts))
    t = _table("各项指标", "指标", "实际记录", "基线重放", "拟议规则", "差异")
    for r in report["figures"]:
        t.add_row(r["label"], f"{r['recorded']:,}", f"{r['baseline']:,}", f"{r['proposed']:,}",
                  f"{r['difference']:+,}" if r["difference"] else "0")  # fmt: skip
    out.print(t)
    changed = [p for p in report["points_by_unit"] if p["difference"]]
    if changed:
        u = _table("考核分（按单位，有变化的）", "单位", "基线重放", "拟议规则", "差异")
        for p in changed[:30]:
            u.add_row(p["unit"], f"{p['baseline']:+d}", f"{p['proposed']:+d}", f"{p['difference']:+d}")
        out.print(u)
    if report["differing_examples"]:
        d = _table("结果不同的案件（前 20 件；全部见 --cases-csv）", "案件编号", "标题", "差异", wrap=("标题", "差异"))
        for row in report["differing_examples"]:
            d.add_row(row["case_id"], row["title"], "；".join(row["differences"]))
        out.print(d)
