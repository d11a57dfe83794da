"""Read-side operations: the HR score stream, the annual assessment, document verification, the
ledger's signed heads and proofs, and the holiday calendar's status and push.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlmodel import Session, col, select
from temporalio.service import RPCError, RPCStatusCode

from activities.db import (
    CaseRow,
    DocumentRow,
    ScoreEventRow,
    TriageCorrectionRow,
    TriageDecisionRow,
    get_engine,
)
from activities.documents import read_copy
from activities.ledger import Ledger, LedgerState, verification_code, verify_document
from engine.config import Settings
from engine.desk import InputError, load_calendar, read_file
from rules.deadlines import SHANGHAI
from rules.ruleset import load_rules
from workflows.models import printable
from workflows.names import RELOAD_CALENDAR


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for another database, or an in-memory one)."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database.removeprefix("file:"))


def _read_only_sqlite(path: Path) -> sa.Engine:
    """An engine on an existing SQLite file that can neither create nor change anything.

    A read-only connection to a WAL database still makes its `-wal`/`-shm` files when they are
    missing (and, read-only, never removes them). They are missing only when no connection is open
    and everything was checkpointed into the file; the file then holds all there is, so it is read
    as immutable, which touches nothing else.
    """
    wal = path.with_name(path.name + "-wal")
    uri = f"file:{quote(str(path.resolve()))}?" + ("mode=ro" if wal.exists() else "mode=ro&immutable=1")
    return sa.create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=sa.pool.NullPool
    )


def existing_ledger(settings: Settings) -> Ledger:
    """The ledger of an engine data folder that already exists; never creates anything.

    `get_engine` and `Ledger` create what they miss (the SQLite file and its folders, the tables,
    the signing key): right for the worker, wrong for `verify` and `ledger` pointed at the wrong
    folder, which would leave an empty database behind and answer about it. So first check, without
    writing, that the folder, its database and the ledger's tables are there.
    """
    data_dir = settings.data_dir
    url = settings.resolved_database_url()
    db_file = _sqlite_path(url)
    if db_file is not None:
        if not data_dir.is_dir():
            what = "不是文件夹" if data_dir.exists() else "不存在"
            raise InputError(
                f"{data_dir} {what}，其中没有引擎数据；未创建任何文件。"
                "请用 --data DIR 指定引擎的数据文件夹（或 `scenario --keep` 保留的文件夹）。"
            )
        if not db_file.is_file():
            raise InputError(
                f"{data_dir} 中没有引擎数据（{db_file} 处没有数据库）；未创建任何文件。"
                "请用 --data DIR 指定引擎的数据文件夹（或 `scenario --keep` 保留的文件夹）。"
            )
        probe = _read_only_sqlite(db_file)  # even the check cannot create or change the file
    else:
        probe = sa.create_engine(url)
    where = str(db_file) if db_file is not None else "PETITION_DATABASE_URL 所指的数据库"
    try:
        has_log = sa.inspect(probe).has_table(LedgerState.__tablename__)
    except sa.exc.DBAPIError as exc:
        raise InputError(f"{where} 无法作为引擎的数据库读取（{type(exc.orig).__name__}）；未创建任何文件。") from None
    finally:
        probe.dispose()
    if not has_log:
        raise InputError(f"{where} 中没有文书存证日志（从未在此记录过文书）；未创建任何文件。")
    return Ledger(get_engine(url), settings.resolved_ledger_key_file())


def _require_signing_key(settings: Settings) -> None:
    """Signing a head needs the log's key; a read must not make a new one (it would sign nothing true)."""
    key = settings.resolved_ledger_key_file()
    if not key.is_file():
        raise InputError(
            f"文书存证日志的签名密钥 {key} 缺失，无法签署树头；未创建任何文件。"
            "请恢复该数据文件夹的 keys 文件夹（或设置 PETITION_LEDGER_KEY_FILE）。"
        )


# --------------------------------------------------------------------------------------------
# HR
# --------------------------------------------------------------------------------------------


def score_events(settings: Settings, since: int = 0, limit: int = 1000) -> tuple[list[dict[str, Any]], int]:
    """Score events after `since` (a cursor: the last id seen), oldest first, and the next cursor.

    Rows are appended exactly once and ids only grow, so polling with the returned cursor never
    misses or repeats an event.
    """
    with Session(get_engine(settings.resolved_database_url())) as s:
        rows = s.exec(
            select(ScoreEventRow).where(col(ScoreEventRow.id) > since).order_by(col(ScoreEventRow.id)).limit(limit)
        ).all()
    events = [
        {
            "cursor": r.id,
            "case_id": r.case_id,
            "unit": r.unit,
            "rule": r.rule,
            "points": r.points,
            "official": r.official,
            "occurred_at": r.occurred_at.isoformat(),
            "rules_version": r.rules_version,
        }
        for r in rows
    ]
    return events, (rows[-1].id if rows else since) or since


def assessment(settings: Settings, year: int) -> dict[str, Any]:
    """Each unit's mediation rate (mediated / eligible) and points for one year (Asia/Shanghai)."""
    rules = load_rules(settings.rules_file)
    weight = rules.scores.mediation_rate_weight
    start = datetime(year, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)
    units: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"eligible": 0, "mediated": 0, "window_missed": 0, "points": 0, "accountability_officials": []}
    )
    with Session(get_engine(settings.resolved_database_url())) as s:
        for case in s.exec(select(CaseRow).where(CaseRow.mediation_eligible == True)):  # noqa: E712
            reg = case.registered_at if case.registered_at.tzinfo else case.registered_at.replace(tzinfo=UTC)
            if start <= reg < end and case.unit:
                units[case.unit]["eligible"] += 1
                if case.mediation_succeeded:
                    units[case.unit]["mediated"] += 1
        for ev in s.exec(select(ScoreEventRow)):
            occ = ev.occurred_at if ev.occurred_at.tzinfo else ev.occurred_at.replace(tzinfo=UTC)
            if not (start <= occ < end):
                continue
            u = units[ev.unit]
            u["points"] += ev.points
            if ev.rule == "mediation_window_missed":
                u["window_missed"] += 1
            if ev.official:
                u["accountability_officials"].append(ev.official)
    out = []
    for unit, u in sorted(units.items()):
        rate = (u["mediated"] / u["eligible"]) if u["eligible"] else None
        out.append(
            {
                "unit": unit,
                **u,
                "mediation_rate": round(rate, 4) if rate is not None else None,
                "mediation_rate_weighted": round(rate * weight, 4) if rate is not None else None,
            }
        )
    return {"year": year, "mediation_rate_weight": weight, "rules_version": rules.version, "units": out}


# --------------------------------------------------------------------------------------------
# Verifiable documents
# --------------------------------------------------------------------------------------------


def verify_file(settings: Settings, path: Path) -> tuple[bool, str, dict[str, Any] | None]:
    """Is this document file genuine? (ok, a sentence, the proof that was checked).

    Reads only: a data folder without the engine's database is refused with an InputError, and
    nothing is created (no database file, no folder, no key).
    """
    path = Path(path)
    data = read_file(path, str(path), folder="是文件夹；请指定其中的一份文书文件（documents/ 下的 .txt 文件）")
    ledger = existing_ledger(settings)
    try:
        # A copy re-saved with other line ends or in GBK is the same document (read_copy).
        body, code = read_copy(data)
    except ValueError:
        return False, f"不真实：{path} 不是文本文书（既不是 UTF-8 也不是 GBK/GB18030 编码）。", None
    sha = hashlib.sha256(body).hexdigest()
    if not settings.resolved_ledger_key_file().is_file() and ledger.find_by_document(sha):
        _require_signing_key(settings)  # a recorded document's proof needs a signed head
    result = verify_document(body, ledger)
    if not result.genuine:
        return False, result.message, None
    if code is not None and result.index is not None:
        expected = verification_code(result.index, sha)
        if code != expected:
            return False, f"不真实：文书上印的验证码（{code}）不是这份文书的验证码（{expected}）。", None
    detail = {
        "index": result.index,
        "tree_size": result.tree_size,
        "root": result.root_hex,
        "proof": result.proof_hex,
        "signed_head": result.signed_head.model_dump(mode="json") if result.signed_head else None,
        "verification_code": code,
    }
    return True, result.message, detail


def ledger_head(settings: Settings) -> dict[str, Any]:
    """The log's signed tree head now (refused, creating nothing, where there is no engine data)."""
    ledger = existing_ledger(settings)
    _require_signing_key(settings)
    return ledger.signed_head().model_dump(mode="json")


def ledger_consistency(settings: Settings, old: int, new: int) -> dict[str, Any]:
    """A consistency proof between two sizes of the log (refused, creating nothing, without engine data)."""
    ledger = existing_ledger(settings)
    _require_signing_key(settings)
    size = ledger.size()
    if not (0 < old <= new <= size):
        raise InputError(f"两个日志大小须满足 0 < OLD <= NEW <= {size}（{size} 为日志当前大小）。")
    proof = ledger.consistency_proof(old, new)
    return {
        "old_size": old,
        "new_size": new,
        "old_root": ledger.root(old).hex(),
        "new_root": ledger.root(new).hex(),
        "proof": [h.hex() for h in proof],
        "proof_b64": [base64.b64encode(h).decode() for h in proof],
        "signed_head": ledger.signed_head(new).model_dump(mode="json"),
    }


def documents_of(settings: Settings, case_id: str) -> list[dict[str, Any]]:
    with Session(get_engine(settings.resolved_database_url())) as s:
        rows = s.exec(select(DocumentRow).where(DocumentRow.case_id == case_id).order_by(col(DocumentRow.id))).all()
    return [r.model_dump(mode="json") for r in rows]


# --------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------


def calendar_status(settings: Settings) -> dict[str, Any]:
    cal = load_calendar(settings)
    this_year = datetime.now(UTC).astimezone(SHANGHAI).year
    return {
        "file": str(settings.calendar_file),
        "official_years": sorted(cal.official_years),
        "provisional_years": [y for y in (this_year, this_year + 1) if y not in cal.official_years],
        "note": "暂定年份在加入国务院公布的节假日安排之前，期限只把周末算作休息日；加入后用 `calendar push` 重新计算在办案件的期限。",
    }


# How long, in all, a push may spend retrying the cases the engine answered "not now" (the engine
# recovering or restarting): past it, each case is tried once more and reported if it fails.
PUSH_PATIENCE = timedelta(seconds=30)


async def calendar_push(settings: Settings) -> dict[str, Any]:
    """Send the calendar file to every open case, so provisional deadlines are recomputed.

    A case the engine does not take it for is listed in `failed` with a sentence saying why (the
    push is idempotent: run it again for those)."""
    from engine.desk import published_calendar_snapshot
    from engine.servers import connect

    snapshot = published_calendar_snapshot(settings)
    client = await connect(settings)
    with Session(get_engine(settings.resolved_database_url())) as s:
        open_ids = [c.case_id for c in s.exec(select(CaseRow).where(CaseRow.status == "open"))]
    loop = asyncio.get_running_loop()
    patience_ends = loop.time() + PUSH_PATIENCE.total_seconds()
    pushed, failed = 0, []
    for case_id in open_ids:
        error = await _push_to(client.get_workflow_handle(case_id), snapshot, lambda: loop.time() < patience_ends)
        if error is None:
            pushed += 1
        else:  # carry on with the rest
            failed.append({"case_id": case_id, "error": error})
    return {"pushed": pushed, "failed": failed, "official_years": snapshot.official_years}


async def _push_to(handle: Any, snapshot: Any, may_retry: Callable[[], bool]) -> str | None:
    """Signal one case its new calendar; None when sent, else a sentence saying why not."""
    from engine.desk import RETRY_BACKOFF, TRANSIENT

    for attempt in itertools.count():
        try:
            await handle.signal(RELOAD_CALENDAR.name, snapshot, rpc_timeout=timedelta(seconds=10))
            return None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND or "completed" in str(err) or "closed" in str(err):
                return "案件在推送时已办结，无需推送。"
            if err.status not in TRANSIENT:
                return f"引擎没有接收（{err.status.name}：{printable(str(err), 120)}）；请稍后重新运行 calendar push。"
            if not may_retry():
                return (f"引擎忙或正在恢复（{err.status.name}），没有推送到这个案件；"
                        "请稍后重新运行 calendar push（重复推送无害）。")  # fmt: skip
        await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Arbitration green channel
# --------------------------------------------------------------------------------------------


def arbitration_stats(settings: Settings) -> dict[str, Any]:
    """Tracks on the green channel and the return-to-court rate (回流率: court / concluded)."""
    from activities.db import ArbitrationRow

    with Session(get_engine(settings.resolved_database_url())) as s:
        rows = s.exec(select(ArbitrationRow)).all()
    court = sum(1 for r in rows if r.outcome == "court")
    resolved = sum(1 for r in rows if r.outcome == "resolved")
    concluded = court + resolved
    return {
        "tracks": len(rows),
        "open": sum(1 for r in rows if r.status != "closed"),
        "resolved_in_arbitration": resolved,
        "went_to_court": court,
        "stopped_by_case": sum(1 for r in rows if (r.outcome or "").startswith("stopped")),
        "return_to_court_rate": round(court / concluded, 4) if concluded else None,
    }


# --------------------------------------------------------------------------------------------
# Triage: operators' corrections as labelled examples, and how often triage is overridden
# --------------------------------------------------------------------------------------------


def triage_corrections(settings: Settings) -> list[dict[str, Any]]:
    """Every correction as a labelled example in the corpus's format (personal data masked).

    One example per case: its final category and risk (an intake override of either, or a later
    major-risk flag, makes the case a correction). `writer` is "corrections", so leave-one-writer-out
    evaluation treats them as one more hand.
    """
    with Session(get_engine(settings.resolved_database_url())) as s:
        rows = s.exec(select(TriageCorrectionRow).order_by(col(TriageCorrectionRow.id))).all()
    by_case: dict[str, dict[str, Any]] = {}
    for r in rows:
        ex = by_case.setdefault(
            r.case_id,
            {"writer": "corrections", "title": r.title_masked, "content": r.content_masked, "locality": r.locality,
             "category": r.category, "risk": r.risk, "why": "", "fields": []},
        )
        if r.field == "risk" and r.source == "flag_major_risk":
            ex["risk"] = "high"
        ex["fields"].append(f"{r.field}:{r.suggested}->{r.corrected}({r.source})")
    out = []
    for ex in by_case.values():
        ex["why"] = "人工更正：" + "；".join(ex.pop("fields"))
        out.append(ex)
    return out


def triage_drift(settings: Settings) -> list[dict[str, Any]]:
    """Per month (Asia/Shanghai) and suggested category: cases triaged and how often people overrode triage.

    `category`, `risk` and `unit` count intake overrides of that field; `flagged` counts cases the
    supervision office later flagged as a major risk that triage had not called high; `override_rate`
    is the share of cases with any of these.
    """
    with Session(get_engine(settings.resolved_database_url())) as s:
        decisions = s.exec(select(TriageDecisionRow)).all()
        corrections = s.exec(select(TriageCorrectionRow)).all()
    fixed: dict[str, set[str]] = defaultdict(set)
    for c in corrections:
        fixed[c.case_id].add("flagged" if c.source == "flag_major_risk" else c.field)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for d in decisions:
        at = d.decided_at if d.decided_at.tzinfo else d.decided_at.replace(tzinfo=UTC)
        month = at.astimezone(SHANGHAI).strftime("%Y-%m")
        row = table.setdefault(
            (month, d.suggested_category),
            {"month": month, "suggested_category": d.suggested_category, "cases": 0, "category": 0, "risk": 0,
             "unit": 0, "flagged": 0, "overridden": 0, "models": set()},
        )
        row["cases"] += 1
        row["models"].add(d.model_version.split(" / ")[0])
        got = fixed.get(d.case_id, set())
        for f in got:
            row[f] += 1
        row["overridden"] += bool(got)
    out = []
    for key in sorted(table):
        row = table[key]
        row["override_rate"] = round(row["overridden"] / row["cases"], 4) if row["cases"] else 0.0
        row["models"] = sorted(row["models"])
        out.append(row)
    return out
