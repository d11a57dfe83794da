"""Screenshots of the supervision cockpit's pages (docs/screenshots/cockpit.png, alerts.png, leaders.png).

    .venv/bin/python docs/screenshots/make_cockpit_shots.py [--out docs/screenshots] [--period 2026-11]

Builds a demo read model in a temporary data folder (about 450 cases across eight localities and
every category, with Chinese titles, registrations, documents, letters, leaders, arbitration;
seeded: the same cases for the same day, from 1 September 2026 to today), serves the real web app (uvicorn, `engine.web.serve`) on a free
port, signs in as a supervisor with Debian's chromium driven by Playwright and takes full-page
screenshots 1280 px wide. It fails if the browser reports a Content-Security-Policy violation or
a script error, or if a chart is not drawn: the pages must work under `default-src 'self'`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from activities.db import ArbitrationRow, CaseRow, DocumentRow, IntakeRow, ScoreEventRow, get_engine
from engine.cockpit import store_rows
from engine.config import Settings
from engine.staff import add_user
from engine.web import free_port, serving
from rules.deadlines import SHANGHAI
from rules.vocabulary import StaffRole

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "cockpit-demo-password"
WIDTH = 1280

LOCALITIES = [("青山区", 1.6), ("江岸区", 1.3), ("东湖区", 1.1), ("西城区", 1.0), ("高新区", 0.7), ("临江县", 0.9), ("北山县", 0.6), ("南湖镇", 0.4)]
PLACES = ["幸福小区", "兴隆村", "建设路", "滨江花园", "红星村", "工业园区", "和平街道", "锦绣家园", "东风村", "新华路", "金桂苑", "柳树湾"]
CATEGORIES: dict[str, tuple[float, str, list[str]]] = {
    "labor_social_security": (2.2, "人社局", ["拖欠农民工工资", "企业未缴纳社会保险", "工伤认定久拖未决", "解除劳动合同补偿争议", "退休待遇核定有异议"]),
    "urban_construction_transport": (1.8, "住建局", ["物业管理纠纷", "夜间施工噪音扰民", "老旧小区加装电梯分歧", "违章建筑长期未查处", "公交线路调整出行不便"]),
    "land_expropriation": (1.2, "自然资源局", ["征地补偿款迟迟未发放", "拆迁安置房交付延期", "宅基地确权纠纷", "集体土地征收补偿标准争议"]),
    "rural_agriculture": (0.9, "农业农村局", ["土地承包经营权纠纷", "村务财务不公开", "耕地地力补贴未发放", "灌溉水渠损毁未修复"]),
    "education_health": (0.9, "教育局", ["学区划分争议", "医疗纠纷处理不满", "校外培训退费难", "医保报销比例有异议"]),
    "environment": (0.7, "生态环境分局", ["工厂排放异味", "河道污染", "搅拌站粉尘污染", "垃圾中转站选址有异议"]),
    "law_litigation": (0.5, "司法局", ["判决执行不力", "执行款长期未到账", "申诉材料未获答复"]),
    "other": (0.4, "信访局", ["户籍迁移办理受阻", "政府信息公开申请未答复", "对行政处罚有异议"]),
}
CHANNELS = [("visit", 0.30), ("online", 0.38), ("letter", 0.12), ("phone", 0.15), ("video", 0.05)]
LEADERS = ["市委常委 王某某", "副市长 李某某", "市政府秘书长 赵某某", "青山区委书记 陈某某", "江岸区区长 刘某某", "市信访局局长 周某某"]
OPEN_STAGES = [("triaged", 1), ("accepted", 2), ("mediation", 1.2), ("handling", 3), ("opinion_issued", 1), ("review", 0.6), ("re_review", 0.2), ("arbitration", 0.3)]
OUTCOMES = [("resolved", 5), ("mediated", 3), ("final_after_review", 0.6), ("redirected", 0.8), ("not_accepted", 0.5), ("withdrawn", 0.6)]


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _office_time(rng: random.Random, day: datetime) -> datetime:
    local = day.replace(hour=8, minute=30) + timedelta(minutes=rng.randrange(0, 9 * 60))
    return local.astimezone(UTC)


def build_demo_data(settings: Settings, seed: int = 2026, now: datetime | None = None) -> int:
    """Fill the read model with a seeded autumn of petitions (September to the current day); returns
    how many cases."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    engine = get_engine(settings.resolved_database_url())
    start = datetime(2026, 9, 1, tzinfo=SHANGHAI)
    days = max(1, (now.astimezone(SHANGHAI).replace(tzinfo=SHANGHAI) - start).days)
    cases: list[CaseRow] = []
    intakes: list[IntakeRow] = []
    docs: list[DocumentRow] = []
    scores: list[ScoreEventRow] = []
    arbitrations: list[ArbitrationRow] = []
    doc_no = 0

    def doc(case: CaseRow, kind: str, at: datetime) -> None:
        nonlocal doc_no
        doc_no += 1
        if at > now:
            return
        docs.append(
            DocumentRow(
                idempotency_key=f"{case.case_id}:{kind}", case_id=case.case_id, kind=kind, sha256=f"{doc_no:064x}",
                path=f"/demo/{doc_no}.txt", ledger_index=doc_no, verification_code=f"L{doc_no}-{doc_no:08x}", issued_at=at,
            )
        )

    n = 0
    for offset in range(days + 1):
        day = start + timedelta(days=offset)
        weight = 0.35 if day.weekday() >= 5 else 1.0
        weight *= 1.0 + 0.5 * (day.month == 11)  # a busier November
        for _ in range(rng.choices([2, 3, 4, 5, 6, 7], weights=[1, 2, 3, 3, 2, 1])[0]):
            if rng.random() > weight:
                continue
            registered = _office_time(rng, day)
            if registered > now:
                continue
            n += 1
            locality = _pick(rng, LOCALITIES)
            category = _pick(rng, [(k, v[0]) for k, v in CATEGORIES.items()])
            _, unit_suffix, titles = CATEGORIES[category]
            risk = rng.choices(["high", "medium", "low"], weights=[6, 30, 64])[0]
            channel = _pick(rng, CHANNELS)
            persons = 1 if channel != "visit" else rng.choices([1, 2, 3, 5, 12], weights=[10, 4, 2, 1, 0.4])[0]
            age = (now - registered).days
            closed = age > 12 and rng.random() < min(0.85, age / 60)
            case = CaseRow(
                case_id=f"XF-{registered.astimezone(SHANGHAI):%Y%m%d}-{rng.getrandbits(32):08X}",
                matter_key=f"demo-{n}", locality=locality, channel=channel, office_level="county", rules_version="demo",
                title=f"{rng.choice(PLACES)}{rng.choice(titles)}", category=category, risk=risk,
                unit=f"{locality}{unit_suffix}", person_count=persons, registered_at=registered,
                repeat=rng.random() < 0.18, mediation_eligible=rng.random() < 0.35,
            )
            if rng.random() < 0.93:
                case.accepted_at = registered + timedelta(days=rng.uniform(1, 16))
                case.acceptance_late = rng.random() < 0.07
            if closed:
                case.status, case.stage = "closed", "closed"
                case.outcome = "mediated" if case.mediation_eligible and rng.random() < 0.6 else _pick(rng, OUTCOMES)
                case.closed_at = min(now, registered + timedelta(days=rng.uniform(6, min(60, max(7, age)))))
                case.mediation_succeeded = case.mediation_eligible and case.outcome == "mediated"
                if case.outcome in ("resolved", "final_after_review", "mediated"):
                    case.answered_at = case.closed_at - timedelta(days=rng.uniform(0, 3))
                    case.handling_late = rng.random() < 0.08
            else:
                case.stage = _pick(rng, OPEN_STAGES)
                if case.stage in ("opinion_issued", "review", "re_review"):
                    case.answered_at = registered + timedelta(days=rng.uniform(10, 40))
                    case.handling_late = rng.random() < 0.12
                if rng.random() < 0.16:
                    case.overdue = True
                    case.overdue_deadline = {"triaged": "acceptance", "review": "review_decision", "re_review": "re_review_decision"}.get(
                        case.stage, "handling"
                    )
                    case.overdue_since = now - timedelta(days=rng.uniform(0.5, min(45, max(1, age))))
                ladder = rng.random()
                if risk == "high" and ladder < 0.6 or ladder < 0.08:
                    case.ladder = rng.choices(["warning", "supervision", "accountability"], weights=[3, 2, 1])[0]
            case.reviewed = case.stage in ("review", "re_review") or (closed and case.outcome == "final_after_review")
            case.re_reviewed = case.stage == "re_review"
            case.review_late = case.reviewed and rng.random() < 0.15
            if risk == "high":
                case.urgent_notice_s = int(rng.choice([rng.uniform(40, 1500), rng.uniform(1500, 3600)]))
            if rng.random() < 0.035:
                case.nail_case, case.visits = True, rng.randint(5, 9)
            cases.append(case)
            intakes.append(
                IntakeRow(key=f"{case.case_id}:1", case_id=case.case_id, at=registered, channel=channel, persons=persons,
                          repeat=case.repeat, locality=locality)
            )
            for v in range(2, (case.visits if case.nail_case else rng.choices([1, 2, 3], weights=[12, 2, 1])[0]) + 1):
                at = registered + timedelta(days=rng.uniform(2, 25) * (v - 1))
                if at < (case.closed_at or now):
                    intakes.append(
                        IntakeRow(key=f"{case.case_id}:{v}", case_id=case.case_id, at=at, channel="visit",
                                  persons=rng.choice([1, 1, 2, 4]), repeat=True, locality=locality)
                    )
            if case.accepted_at:
                doc(case, "acceptance_notice", case.accepted_at)
            if case.answered_at:
                doc(case, "handling_opinion", case.answered_at)
            if case.mediation_succeeded and case.closed_at:
                doc(case, "mediation_agreement", case.closed_at)
            steps = ["warning", "supervision", "accountability"]
            if case.ladder:
                for k, step in enumerate(steps[: steps.index(case.ladder) + 1]):
                    letter = {"warning": "risk_warning_letter", "supervision": "supervision_letter", "accountability": "accountability_letter"}[step]
                    doc(case, letter, registered + timedelta(days=3 + 7 * k))
                if case.ladder == "accountability":
                    for j in range(rng.randint(1, 2)):
                        scores.append(
                            ScoreEventRow(
                                idempotency_key=f"{case.case_id}:official:{j}", case_id=case.case_id, unit=case.unit or "",
                                rule="accountability_official", points=-5, official=f"干部{j + 1}",
                                occurred_at=min(now, registered + timedelta(days=18)), rules_version="demo",
                            )
                        )
            if category == "labor_social_security" and rng.random() < 0.12:
                outcome = rng.choice(["court", "resolved", "resolved", None])
                arbitrations.append(
                    ArbitrationRow(
                        case_id=case.case_id, unit=f"{locality}劳动人事争议仲裁院", status="closed" if outcome else "open",
                        outcome=outcome, started_at=registered + timedelta(days=2), updated_at=min(now, registered + timedelta(days=20)),
                        workers=rng.randint(3, 40), amount=float(rng.randint(2, 80) * 10_000),
                    )
                )
    # Leaders take the pressing cases: high risk, nail cases, the ladder; and a few others.
    pressing = [c for c in cases if c.risk == "high" or c.nail_case or c.ladder]
    rng.shuffle(pressing)
    for k, case in enumerate(pressing[:30] + rng.sample(cases, 8)):
        case.leader = LEADERS[k % len(LEADERS)] if k < 30 else rng.choice(LEADERS)
    store_rows(engine, [*cases, *intakes, *docs, *scores, *arbitrations])
    return len(cases)


async def shoot(settings: Settings, out: Path | None, period: str, username: str = "sup") -> list[str]:
    """Sign in and open the three pages; screenshots into `out` (None: none). Returns the problems
    the browser reported (CSP violations, script errors, charts not drawn)."""
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with serving(settings) as base:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = await browser.new_context(viewport={"width": WIDTH, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
            # Before any of the page's own scripts: collect what the CSP refuses.
            await context.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page = await context.new_page()
            # "Failed to load resource" names no address: the failed responses are taken below instead.
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning") and not m.text.startswith("Failed to load resource")
                else None,
            )
            page.on(
                "response",
                lambda r: problems.append(f"HTTP {r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None,
            )
            page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
            await page.goto(f"{base}/login")
            await page.fill("#username", username)
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/")
            for path, name in ((f"/cockpit?period={period}", "cockpit"), ("/alerts", "alerts"), ("/leaders", "leaders")):
                await page.goto(base + path)
                charts = await page.locator("[data-chart]").count()
                if charts:
                    await page.wait_for_function(
                        "() => document.querySelectorAll('[data-chart]').length"
                        " === document.querySelectorAll('[data-chart][data-drawn=yes]').length",
                        timeout=10_000,
                    )
                    # A tooltip (drawn on the canvas: no inline style for the CSP to refuse).
                    box = await page.locator("[data-chart]").first.bounding_box()
                    if box:
                        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                        await page.wait_for_timeout(300)
                        await page.mouse.move(0, 0)
                        await page.wait_for_timeout(200)
                    canvases = await page.locator("[data-chart] canvas").count()
                    if canvases < charts:
                        problems.append(f"{path}: {charts} charts but {canvases} canvases")
                problems.extend(f"{path}: CSP {v}" for v in await page.evaluate("() => window.__csp"))
                if out is not None:
                    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            await browser.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--period", default="2026-11")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("Debian's chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", web_port=free_port())
        add_user(settings, "sup", StaffRole.supervision, display_name="督查员", password=PASSWORD, write_token=False)
        count = build_demo_data(settings)
        problems = asyncio.run(shoot(settings, args.out, args.period))
    print(f"{count} demo cases; screenshots in {args.out}: cockpit.png, alerts.png, leaders.png")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
