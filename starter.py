"""The operator's tool.

    python starter.py register [FILE|-]                 register a petition (prints the case id)
    python starter.py act CASE ACTION [--data JSON] [--request-id ID]
                                                        send an action (accept, issue_opinion, ...)
    python starter.py history CASE                      a case's timeline (the contract's events)
    python starter.py state CASE                        a running case's state and deadlines
    python starter.py list [--open] [--overdue]         cases, newest first
    python starter.py scenario FILE [--keep DIR]        run a scenario on the time-skipping server
    python starter.py simulate [--year Y] [--scale S]   a simulated year of petitions into a new data folder
    python starter.py triage                            classify intake JSON lines from stdin
    python starter.py triage train [--corpus DIR]       rebuild rules/triage_model.json from the corpus
    python starter.py triage corrections [--out FILE]   operators' corrections as labelled examples
    python starter.py triage drift                      how often triage is overridden, by month and category
    python starter.py scores [--since CURSOR]           the HR score stream, as JSON lines
    python starter.py assessment --year YEAR            each unit's mediation rate and points
    python starter.py arbitration                       the green channel's return-to-court rate
    python starter.py brief --period 2026-11 [--locality X] [--out FILE]   the monthly data brief (PDF)
    python starter.py rules preview --proposed FILE [--period P] [--data DIR] [--sample N] [--cases-csv FILE]
                                                        replay a past period under a proposed rules file
    python starter.py verify FILE [--data DIR]          check that a document is genuine
    python starter.py ledger head | consistency OLD NEW the log's signed head and proofs
    python starter.py ledger monitor --url BASE | --data DIR [--state FILE] [--public-key B64]
                      [--accept-new-key] [--once | --interval SECONDS] [--json] [--timeout S]
                                                        witness the log: it only ever grows (docs/ledger.md)
    python starter.py calendar status | push            the holiday calendar; push recomputes deadlines
    python starter.py users add NAME --role ROLE [--unit UNIT] | list | disable NAME
    python starter.py keys rotate                       a new payload key encrypts from now on

Staff sign in: every command that reads or changes cases acts as a named account, given by
`--as NAME` (its token file, written by `users add`) or PETITION_TOKEN_FILE. `users add` on an
engine without accounts creates the first admin without signing in.

Output: Chinese tables with Asia/Shanghai times on a terminal, JSON when stdout is piped or
redirected (what scripts read); `--json` or `--table`, before or after the command, forces either.
`scenario` always prints the contract's JSON; `triage` and `ledger monitor --json` print JSON lines.

Exit status: 0 done; 1 a verification that failed or an action the rules refused (also a
`register` of a matter finalised by re-review: the new case records the refusal and its notice);
2 bad input, with a sentence naming the field, and nothing stored (for `ledger monitor` also: the
log could not be reached); 3 the log failed a witness check; 4 the engine (Temporal) could not be
reached (start it with `make run`, or set TEMPORAL_ADDRESS), no worker serves the case, or it was
busy recovering and did not take an action in time (the sentence says whether it may have been
applied; `act --request-id ID` with the id it names sends it again without applying it twice).
Connects to TEMPORAL_ADDRESS, else to the embedded dev server that `python worker.py` started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from temporalio.service import RPCError, RPCStatusCode

from engine.config import Settings, load_settings
from engine.desk import (
    EngineBusy,
    InputError,
    NoWorker,
    Refused,
    check_case_id,
    check_request_id,
    parse_json_text,
    read_json_input,
)
from engine.staff import AccessError, AccountError, require, require_view
from rules.access import may
from rules.ruleset import RuleFileError
from workflows.models import Actor, printable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 4


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def _tables(args: argparse.Namespace) -> bool:
    """Tables for people or JSON for machines: `--table` / `--json` (before or after the command)
    decide; unasked, tables when stdout is a terminal and JSON when it is piped or redirected, so
    scripts read what they always read (engine/console.py)."""
    from engine.console import wants_table

    output = getattr(args, "output", None)
    if output is None and getattr(args, "json", False):  # a command's own --json (ledger monitor, simulate)
        output = "json"
    return wants_table(output)


def _show(args: argparse.Namespace, data: Any, table: Callable[[Any], None], *, lines: bool = False) -> int:
    """`data` for people as a table (`table`, a view of engine/console.py) or for machines as JSON
    (`_tables` decides): one document, or with `lines` one object a line (the items of `data`)."""
    if _tables(args):
        table(data)
    elif lines:
        for item in data:
            print(json.dumps(item, ensure_ascii=False))
    else:
        _print(data)
    return EXIT_OK


def _engine_address(settings: Settings) -> str:
    """Where engine.servers.connect connects."""
    return settings.temporal_address or f"127.0.0.1:{settings.server_port}"


def _unreachable(exc: BaseException) -> bool:
    """True when `exc` says the Temporal server did not answer (no connection, or it went away)."""
    if isinstance(exc, RPCError):
        return exc.status == RPCStatusCode.UNAVAILABLE
    return isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect")


async def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    from engine.desk import parse_intake, register
    from engine.servers import connect

    intake = parse_intake(read_json_input(args.file))
    actor = _actor(args, settings)
    client = await connect(settings)
    reg = await register(client, settings, intake, calendar=args.calendar, actor=actor)
    if reg.prior_final_case:
        # The case exists only to record the refusal and send the petitioner its notice.
        raise Refused(
            reg.case_id,
            "register",
            f"该事项已在案件 {reg.prior_final_case} 经复核终结，同一事实和理由不再受理；"
            f"案件 {reg.case_id} 记录了这次不予受理，并向信访人发出告知书。",
        )
    if _tables(args):
        from engine.console import print_registration

        print_registration(reg.case_id, repeat_visit=reg.repeat_visit, visits=reg.visits)
    elif getattr(args, "output", None) == "json":
        _print({"case_id": reg.case_id, "repeat_visit": reg.repeat_visit, "visits": reg.visits})
    elif reg.repeat_visit:  # piped, unasked: the case id first, as scripts have always read it
        print(f"{reg.case_id}\t重复来访（第 {reg.visits} 次）")
    else:
        print(reg.case_id)
    return EXIT_OK


async def cmd_act(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_act
    from engine.desk import act, parse_action
    from engine.servers import connect

    check_case_id(args.case)
    data = parse_json_text(args.data, "--data") if args.data else {}
    parse_action(args.action, data)
    # The same request id sends the same action again (after a timeout, a lost answer): the engine
    # answers with the first outcome instead of acting twice or refusing it as a second action.
    # Checked here, before the engine is contacted; `act` makes one up when none is given.
    if args.request_id is not None:
        check_request_id(args.request_id)
    actor = _actor(args, settings)
    client = await connect(settings)
    result = await act(client, settings, args.case, args.action, data, actor=actor, request_id=args.request_id)
    done = {"case_id": result.case_id, "stage": result.stage, "outcome": result.outcome, "events": [e.contract() for e in result.events]}
    return _show(args, done, lambda d: print_act(args.action, d))


async def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_history
    from engine.desk import history

    case = history(settings, args.case)
    require_view(_actor(args, settings), case["unit"])
    return _show(args, case, print_history)


async def cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_state
    from engine.servers import connect
    from workflows.models import CaseState

    check_case_id(args.case)
    actor = _actor(args, settings)
    client = await connect(settings)
    try:
        state = await client.get_workflow_handle(args.case).query("state", result_type=CaseState)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise InputError(f"没有案件“{args.case}”。") from None
        raise
    require_view(actor, state.unit)
    return _show(args, state.model_dump(mode="json"), print_state)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import Session, col, select

    from activities.db import CaseRow, get_engine
    from engine.console import print_cases

    actor = _actor(args, settings)
    with Session(get_engine(settings.resolved_database_url())) as s:
        q = select(CaseRow).order_by(col(CaseRow.registered_at).desc()).limit(args.limit)
        if not may(actor.role, "view_cases"):
            require_view(actor, actor.unit)
            q = q.where(CaseRow.unit == actor.unit)
        if args.open:
            q = q.where(CaseRow.status == "open")
        if args.overdue:
            q = q.where(CaseRow.overdue == True)  # noqa: E712
        rows = [row.model_dump(mode="json", exclude={"matter_key"}) for row in s.exec(q)]
    return _show(args, rows, print_cases, lines=True)


async def cmd_scenario(args: argparse.Namespace, settings: Settings) -> int:
    from engine.scenario import load_scenario, run_scenario

    scenario, intake = load_scenario(Path(args.file))
    result = await run_scenario(scenario, intake, keep=Path(args.keep) if args.keep else None)
    if not args.keep:
        result.pop("data_dir", None)
    _print(result)
    return EXIT_OK


async def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date

    from engine.simulate import Options, SimulationFailed, format_summary, run_simulation, this_year

    try:
        until = date.fromisoformat(args.until) if args.until else None
    except ValueError:
        raise InputError(f"--until {printable(args.until)}: give a day as YYYY-MM-DD.") from None
    opts = Options(year=args.year or this_year(), data_dir=Path(args.data) if args.data else settings.data_dir, scale=args.scale,
                   cases=args.cases, until=until, seed=args.seed, concurrency=args.concurrency, pdf=args.pdf)
    try:
        summary = await run_simulation(opts)
    except SimulationFailed as exc:
        _say(f"error: {exc}")
        return EXIT_FAILED
    if args.json:
        _print(summary)
    else:
        print(format_summary(summary))
    return EXIT_OK


async def cmd_triage(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "train":
        from rules.triage_model import build_model

        require(_actor(args, settings), "rules")
        out = Path(args.out) if args.out else None
        model = build_model(Path(args.corpus) if args.corpus else None, out=out)
        _print({"version": model.version, "written": str(out or "rules/triage_model.json"), "corpus": model.corpus,
                "thresholds": model.thresholds.model_dump(), "terms": len(model.terms)})
        return EXIT_OK
    if args.what == "corrections":
        from engine.reports import triage_corrections

        require(_actor(args, settings), "view_cases")
        lines = [json.dumps(ex, ensure_ascii=False) for ex in triage_corrections(settings)]
        if args.out:
            Path(args.out).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
            print(f"已将 {len(lines)} 条人工更正写入 {args.out}", file=sys.stderr)
        else:
            for line in lines:
                print(line)
        return EXIT_OK
    if args.what == "drift":
        from engine.reports import triage_drift

        require(_actor(args, settings), "view_cases")
        for row in triage_drift(settings):
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    return await _classify_lines()


async def _classify_lines() -> int:
    from rules.triage import TriageInput, load_triage

    triage = load_triage()
    bad = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = TriageInput.model_validate({k: raw.get(k) for k in TriageInput.model_fields if k in raw})
        except Exception as exc:  # one bad line must not stop the batch; say which line
            bad += 1
            print(json.dumps({"line": n, "error": f"第 {n} 行不是信访事项记录：{exc}"}, ensure_ascii=False))
            continue
        r = triage.classify(item)
        print(
            json.dumps(
                {
                    "category": r.category.value,
                    "risk": r.risk.value,
                    "unit": r.unit,
                    "reasons": r.reasons,
                    "statutory_channel": r.statutory_channel,
                    "collective_wage_arrears": r.collective_wage_arrears,
                    "cues": r.cues,
                    "model_version": r.model_version,
                },
                ensure_ascii=False,
            ),
            flush=True,
        )
    return EXIT_BAD_INPUT if bad else EXIT_OK


async def cmd_scores(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import score_events

    require(_actor(args, settings), "scores")
    events, cursor = score_events(settings, args.since, args.limit)
    if _tables(args):
        from engine.console import print_scores

        print_scores(events, cursor)
        return EXIT_OK
    for e in events:
        print(json.dumps(e, ensure_ascii=False, default=str))
    print(json.dumps({"next_cursor": cursor}))
    return EXIT_OK


async def cmd_assessment(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_assessment
    from engine.reports import assessment

    require(_actor(args, settings), "assessment")
    report = assessment(settings, args.year)
    return _show(args, report, print_assessment)


async def cmd_arbitration(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_arbitration
    from engine.reports import arbitration_stats

    actor = _actor(args, settings)
    if not (may(actor.role, "view_cases") or may(actor.role, "scores")):
        require(actor, "view_cases")
    stats = arbitration_stats(settings)
    return _show(args, stats, print_arbitration)


async def cmd_brief(args: argparse.Namespace, settings: Settings) -> int:
    from activities.db import get_engine
    from activities.documents import NoPdfFont
    from engine.brief import brief_filename, render_brief
    from engine.cockpit import parse_period

    require(_actor(args, settings), "view_cockpit")
    try:
        period = parse_period(args.period)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        data = render_brief(get_engine(settings.resolved_database_url()), period, locality=args.locality)
    except NoPdfFont as exc:
        raise InputError(f"{exc}.") from None
    out = Path(args.out) if args.out else Path.cwd() / brief_filename(period)
    out.write_bytes(data)
    print(out)
    return EXIT_OK


async def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    """`rules preview`: a past period's cases replayed under the recorded and the proposed rules
    (engine/preview.py), compared. A supervision-office report: the cockpit's permission."""
    from engine.cockpit import current_period, parse_period
    from engine.preview import print_preview, run_preview
    from engine.simulate import SimulationFailed
    from rules.ruleset import load_rules

    source = settings.model_copy(update={"data_dir": Path(args.data), "database_url": None}) if args.data else settings
    require(_actor(args, settings), "view_cockpit")
    if not args.proposed:
        raise InputError("--proposed FILE: name the proposed rules file to preview.")
    try:
        load_rules(Path(args.proposed))  # an invalid file is refused with the loader's sentence, before anything runs
    except FileNotFoundError:
        raise InputError(f"--proposed {printable(args.proposed)}: no such file; nothing was run.") from None
    try:
        period = parse_period(args.period) if args.period else current_period("year")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.data and not (Path(args.data) / "petitions.db").is_file():
        raise InputError(f"--data {printable(args.data)}: holds no engine database (petitions.db); nothing was run.")
    try:
        report = await run_preview(source, period, Path(args.proposed), sample=args.sample,
                                   cases_csv=Path(args.cases_csv) if args.cases_csv else None, say=_say)  # fmt: skip
    except SimulationFailed as exc:
        _say(f"错误：{exc}")
        return EXIT_FAILED
    return _show(args, report, print_preview)


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import verify_file

    s = Settings(data_dir=Path(args.data)) if args.data else settings
    if not Path(args.file).exists() and re.fullmatch(r"L\d+-[0-9a-f]{8}", args.file.strip()):
        return _verify_code(args, s, args.file.strip())
    ok, message, detail = verify_file(s, Path(args.file))
    if _tables(args):
        from engine.console import print_verification

        print_verification(ok, message, detail)
    else:
        _print({"genuine": ok, "message": message, **(detail or {})})
    return EXIT_OK if ok else EXIT_FAILED


def _verify_code(args: argparse.Namespace, settings: Settings, code: str) -> int:
    """`verify L4-e237b9dc`: the code printed on a document names its entry in the log."""
    from engine.public import document_view
    from engine.reports import existing_ledger

    existing_ledger(settings)  # refuses, creating nothing, where there is no engine data
    view = document_view(settings, code)
    if view is None:
        message = f"不真实：本日志中没有验证码为 {code} 的文书。"
        if _tables(args):
            from engine.console import console

            console().print(message)
        else:
            _print({"genuine": False, "message": message, "code": code})
        return EXIT_FAILED
    message = (f"日志中有验证码为 {code} 的《{view['title']}》，{view['date']}由{view['issuer'] or '本引擎'}出具；"
               f"要核对一份副本的内容，请运行 starter.py verify 文件，或打开 {settings.resolved_public_url()}/v/{code}")
    found = {k: view[k] for k in ("code", "kind", "case", "sha256", "index")} | {"signed_head": view["sth"]}
    if _tables(args):
        from engine.console import print_code_view

        print_code_view(message, found)
    else:
        _print({"genuine": True, "message": message, **found})
    return EXIT_OK


_MONITOR_ONLY = ("url", "state", "public_key", "accept_new_key", "once", "interval", "timeout")
_HEAD_CN = {"tree_size": "日志大小", "root_hex": "根哈希", "timestamp": "签署时间", "signature_b64": "签名",
            "public_key_b64": "公钥", "key_id": "密钥编号", "old_size": "旧大小", "new_size": "新大小",
            "old_root": "旧根哈希", "new_root": "新根哈希", "proof": "一致性证明", "proof_b64": "一致性证明（base64）",
            "signed_head": "签名树头"}  # fmt: skip


async def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_fields
    from engine.reports import ledger_consistency, ledger_head

    if args.what == "monitor":
        return await _ledger_monitor(args, settings)
    given = [f"--{n.replace('_', '-')}" for n in _MONITOR_ONLY if getattr(args, n) not in (None, False)]
    if given:
        raise InputError(f"{', '.join(given)}：只用于 `ledger monitor`。")
    s = Settings(data_dir=Path(args.data)) if args.data else settings
    if args.what == "head":
        title, out = "签名树头", ledger_head(s)
    else:
        if args.old is None or args.new is None:
            raise InputError("ledger consistency 需要 OLD_SIZE 和 NEW_SIZE 两个参数。")
        title, out = "一致性证明", ledger_consistency(s, args.old, args.new)
    return _show(args, out, lambda d: print_fields(title, d, _HEAD_CN))


async def _ledger_monitor(args: argparse.Namespace, settings: Settings) -> int:
    """`ledger monitor`: one witness check (--once, the default) or one every --interval seconds."""
    import signal

    from engine.witness import (
        CheckResult,
        FolderLog,
        HttpLog,
        LogSource,
        Witness,
        WitnessError,
        default_state_path,
        parse_public_key,
        watch,
    )

    if args.old is not None or args.new is not None:
        raise InputError("ledger monitor 不接受日志大小参数：它从上次认可的树头开始核验。")
    if bool(args.url) == bool(args.data):
        raise InputError("ledger monitor 需要 --url BASE（引擎的网址）或 --data DIR（引擎的数据文件夹）二者之一，"
                         "不能两者都给。")
    if args.once and args.interval is not None:
        raise InputError("--once 与 --interval 不能同时使用。")
    if args.data and args.timeout is not None:
        raise InputError("--timeout 只用于 --url：数据文件夹是直接读取的。")
    if args.interval is not None and not args.interval > 0:
        raise InputError("--interval 必须是正数（秒）。")
    source: LogSource | None = None
    try:
        key = parse_public_key(args.public_key) if args.public_key else None
        if args.url:
            source = HttpLog(args.url, timeout=args.timeout if args.timeout is not None else 10.0)
        else:
            source = FolderLog(Settings(data_dir=Path(args.data)))
        state = Path(args.state).expanduser() if args.state else default_state_path(source.source_id)
        witness = Witness(source, state, public_key=key, accept_new_key=args.accept_new_key)
    except WitnessError as exc:
        if source is not None:
            source.close()
        raise InputError(str(exc)) from None

    as_json = bool(args.json) or getattr(args, "output", None) == "json"

    def emit(result: CheckResult) -> None:
        if as_json:
            sys.stdout.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False) + "\n")
        else:
            (sys.stderr if result.status == "error" else sys.stdout).write(result.line() + "\n")
        sys.stdout.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous: Any = None
    if args.interval is not None:
        try:  # Ctrl-C ends the watch after the check under way, with the summary status
            previous = signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(stop.set))
        except ValueError:  # not the main thread
            previous = None
    try:
        return await watch(witness, emit, interval=args.interval, stop=stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        source.close()


async def cmd_calendar(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_calendar_push, print_calendar_status
    from engine.reports import calendar_push, calendar_status

    if args.what == "status":
        status = calendar_status(settings)
        return _show(args, status, print_calendar_status)
    require(_actor(args, settings), "calendar_push")
    pushed = await calendar_push(settings)
    return _show(args, pushed, print_calendar_push)


async def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from engine.console import print_users
    from engine.staff import add_user, disable_user, has_accounts, list_users
    from rules.access import ROLE_CN
    from rules.vocabulary import StaffRole

    first = args.what == "add" and not has_accounts(settings)
    admin = None if first else require(_actor(args, settings), "accounts")
    if args.what == "list":
        rows = [{"username": row.username, "display_name": row.display_name, "role": row.role,
                 "role_cn": ROLE_CN[StaffRole(row.role)], "unit": row.unit, "disabled": row.disabled,
                 "created_at": row.created_at.isoformat(), "created_by": row.created_by} for row in list_users(settings)]
        return _show(args, rows, print_users, lines=True)
    if not args.name:
        raise InputError(f"users {args.what} 需要账号名 NAME。")
    if args.what == "disable":
        disable_user(settings, args.name)
        print(f"账号 {args.name} 已停用，它的所有登录均已失效。")
        return EXIT_OK
    if args.role is None:
        raise InputError("users add 需要 --role：operator（登记窗口）、unit（责任单位）、supervision（督查室）、hr（组织人事）或 admin（系统管理员）。")
    role = StaffRole(args.role)
    if first and role != StaffRole.admin:
        raise InputError("本引擎还没有任何账号：第一个账号必须是系统管理员（--role admin）。")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    password, token = add_user(settings, args.name, role, unit=args.unit, display_name=args.display_name,
                               password=password, created_by=admin.name if admin else "first admin")
    print(f"已创建账号 {args.name}（{ROLE_CN[role]}{'，' + args.unit if args.unit else ''}）。")
    if not args.password_stdin:
        print(f"密码（只显示这一次）：{password}")
    print(f"命令行登录凭据：{token}（使用方法：`starter.py --as {args.name} …`）")
    return EXIT_OK


async def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from engine.codec import append_new_key

    require(_actor(args, settings), "accounts")
    if settings.payload_keys:
        raise InputError("载荷密钥来自环境变量 PETITION_PAYLOAD_KEYS；请在设置该变量的地方轮换密钥。")
    path = settings.resolved_payload_key_file()
    kid = append_new_key(path)
    print(f"已在 {path} 中加入载荷密钥 {kid}：此后用它加密，旧密钥仍可解密。"
          "请重启工作进程，并备份该文件（见 docs/privacy.md）。")
    return EXIT_OK


def _actor(args: argparse.Namespace, settings: Settings) -> Actor:
    from engine.staff import cli_actor

    return cli_actor(settings, getattr(args, "as_user", None))


class _Parser(argparse.ArgumentParser):
    """argparse, saying a usage error in Chinese (exit 2, as any bad input)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}：错误：{message}（用 -h 查看用法）\n")


def _output_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """`--json` / `--table`: before the command, or after it (a command's own `--json` is kept)."""
    if "--json" not in parser._option_string_actions:
        parser.add_argument("--json", dest="output", action="store_const", const="json", default=default,
                            help="输出 JSON（供程序读取；输出到管道或文件时的默认方式）")
    if "--table" not in parser._option_string_actions:
        parser.add_argument("--table", dest="output", action="store_const", const="table", default=default,
                            help="输出中文表格（输出到终端时的默认方式）")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="starter.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--as", dest="as_user", default=None, metavar="NAME",
                   help="act as this account (its token file from `users add`); else PETITION_TOKEN_FILE")
    _output_options(p, None)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("register", help="register a petition from a JSON file or stdin")
    r.add_argument("file", nargs="?", default="-")
    r.add_argument("--calendar", choices=["official", "weekends_only"], default="official")
    a = sub.add_parser("act", help="send an action to a case")
    a.add_argument("case")
    a.add_argument("action")
    a.add_argument("--data", default=None, help="the action's data as JSON")
    a.add_argument("--request-id", default=None, metavar="ID",
                   help="this action's request id (made up when not given, and shown when the engine does not "
                        "answer): the same id sends the same action again without applying it twice")  # fmt: skip
    h = sub.add_parser("history", help="a case's timeline")
    h.add_argument("case")
    st = sub.add_parser("state", help="a running case's state and deadlines")
    st.add_argument("case")
    ls = sub.add_parser("list", help="cases, newest first")
    ls.add_argument("--open", action="store_true")
    ls.add_argument("--overdue", action="store_true")
    ls.add_argument("--limit", type=int, default=50)
    sc = sub.add_parser("scenario", help="run a scenario file on the time-skipping server")
    sc.add_argument("file")
    sc.add_argument("--keep", default=None, metavar="DIR", help="keep the data folder (documents, ledger) here")
    sm = sub.add_parser(
        "simulate", help="a simulated year of petitions, through the real workflows, into a data folder",
        description="Register a year of synthetic petitions (the source's volumes times --scale: channels, "
        "categories, 36%% repeats) through the real workflows on the time-skipping test server, day by day, "
        "with the units' actions, into a data folder's read model for the cockpit "
        "(PETITION_DATA_DIR=DIR make run). The server's clock starts on 1 January under libfaketime.",
    )  # fmt: skip
    sm.add_argument("--year", type=int, default=None, help="the year to simulate (default: this year)")
    sm.add_argument("--scale", type=float, default=0.1, help="fraction of the source's yearly volumes (default 0.1)")
    sm.add_argument("--cases", type=int, default=None, metavar="N", help="N registrations instead of --scale")
    sm.add_argument("--until", default=None, metavar="YYYY-MM-DD", help="the last simulated day (default 31 December)")
    sm.add_argument("--seed", type=int, default=2026, help="the random draw's seed (default 2026)")
    sm.add_argument("--data", default=None, metavar="DIR", help="the data folder to write (default PETITION_DATA_DIR "
                    "or data/); it must be new or hold no engine data, else nothing is changed")  # fmt: skip
    sm.add_argument("--concurrency", type=int, default=16, help="registrations and actions in flight (default 16)")
    sm.add_argument("--pdf", action="store_true", help="also render each document's PDF (about 0.5 s each)")
    sm.add_argument("--json", action="store_true", help="the summary as JSON")
    tr = sub.add_parser("triage", help="classify intake JSON lines from stdin; train; corrections; drift")
    tr.add_argument("what", nargs="?", choices=["classify", "train", "corrections", "drift"], default="classify")
    tr.add_argument("--corpus", default=None, metavar="DIR", help="train: the labelled corpus (rules/triage_corpus)")
    tr.add_argument("--out", default=None, metavar="FILE", help="train: the model file; corrections: a JSONL file")
    so = sub.add_parser("scores", help="the HR score stream")
    so.add_argument("--since", type=int, default=0, metavar="CURSOR")
    so.add_argument("--limit", type=int, default=1000)
    asm = sub.add_parser("assessment", help="units' mediation rate and points for a year")
    asm.add_argument("--year", type=int, required=True)
    sub.add_parser("arbitration", help="the arbitration green channel and its return-to-court rate")
    br = sub.add_parser("brief", help="the monthly data brief (月度数据快报) as a PDF")
    br.add_argument("--period", required=True, help="a month (2026-11), a quarter (2026-Q4) or a year (2026)")
    br.add_argument("--locality", default=None, help="one locality only (default: the whole city)")
    br.add_argument("--out", default=None, metavar="FILE", help="default: 月度数据快报-PERIOD.pdf in the current folder")
    ru = sub.add_parser("rules", help="rules: preview a proposed rules file's impact on a past period")
    ru.add_argument("what", choices=["preview"])
    ru.add_argument("--proposed", default=None, metavar="FILE", help="the proposed rules file (rules/default.toml's format)")
    ru.add_argument("--period", default=None, help="a year (2026), a quarter (2026-Q3) or a month (2026-11); default this year")
    ru.add_argument("--data", default=None, metavar="DIR", help="the engine's data folder to read (default PETITION_DATA_DIR)")
    ru.add_argument("--sample", type=int, default=None, metavar="N",
                    help="replay a deterministic sample of N cases (figures are the sample's, not scaled)")
    ru.add_argument("--cases-csv", default=None, metavar="FILE", help="write each case whose outcome differs (no personal data)")
    v = sub.add_parser("verify", help="check that a document is genuine")
    v.add_argument("file")
    v.add_argument("--data", default=None, metavar="DIR")
    lg = sub.add_parser("ledger", help="signed tree head and consistency proofs; monitor: witness the log")
    lg.add_argument("what", choices=["head", "consistency", "monitor"])
    lg.add_argument("old", nargs="?", type=int)
    lg.add_argument("new", nargs="?", type=int)
    lg.add_argument("--data", default=None, metavar="DIR",
                    help="the engine's data folder (monitor: read the log there instead of at --url)")
    lg.add_argument("--url", default=None, metavar="BASE", help="monitor: the engine's web address")
    lg.add_argument("--state", default=None, metavar="FILE",
                    help="monitor: the witness's state file (default ~/.petition-witness/state-<sha>.json)")
    lg.add_argument("--public-key", default=None, metavar="B64",
                    help="monitor: the log's Ed25519 key (base64) to pin, instead of the first one seen")
    lg.add_argument("--accept-new-key", action="store_true",
                    help="monitor: accept (and pin) a head signed by a new key, if consistent with history")
    lg.add_argument("--once", action="store_true", help="monitor: check once (the default)")
    lg.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                    help="monitor: check every SECONDS until Ctrl-C")
    lg.add_argument("--json", action="store_true",
                    help="JSON (head, consistency: as when piped); monitor: one JSON object per check")
    lg.add_argument("--timeout", type=float, default=None, metavar="S",
                    help="monitor: HTTP timeout in seconds (default 10)")
    cal = sub.add_parser("calendar", help="holiday calendar status, or push it to running cases")
    cal.add_argument("what", choices=["status", "push"])
    us = sub.add_parser("users", help="staff accounts: add, list, disable")
    us.add_argument("what", choices=["add", "list", "disable"])
    us.add_argument("name", nargs="?")
    us.add_argument("--role", choices=["operator", "unit", "supervision", "hr", "admin"])
    us.add_argument("--unit", default=None, help="a unit account's unit")
    us.add_argument("--display-name", default=None)
    us.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead of generating one")
    ky = sub.add_parser("keys", help="payload encryption keys")
    ky.add_argument("what", choices=["rotate"])
    for command in sub.choices.values():  # every command, those added later too
        _output_options(command, argparse.SUPPRESS)
    return p


COMMANDS = {
    "register": cmd_register,
    "act": cmd_act,
    "history": cmd_history,
    "state": cmd_state,
    "list": cmd_list,
    "scenario": cmd_scenario,
    "simulate": cmd_simulate,
    "triage": cmd_triage,
    "scores": cmd_scores,
    "assessment": cmd_assessment,
    "arbitration": cmd_arbitration,
    "brief": cmd_brief,
    "rules": cmd_rules,
    "verify": cmd_verify,
    "ledger": cmd_ledger,
    "calendar": cmd_calendar,
    "users": cmd_users,
    "keys": cmd_keys,
}


async def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "output", None) == "json" and getattr(args, "json", None) is False:
        args.json = True  # `starter.py --json CMD` for a command with a --json of its own
    settings = load_settings()
    from engine.logs import configure_logging

    configure_logging(settings.log_json)
    try:
        return await COMMANDS[args.command](args, settings)
    except (InputError, RuleFileError, AccountError) as exc:
        _say(f"错误：{exc}")
        return EXIT_BAD_INPUT
    except (Refused, AccessError) as exc:
        _say(f"拒绝：{exc.error if isinstance(exc, Refused) else exc}")
        return EXIT_FAILED
    except (NoWorker, EngineBusy) as exc:
        _say(f"错误：{exc}")
        return EXIT_UNREACHABLE
    except (RuntimeError, RPCError) as exc:
        if not _unreachable(exc):
            raise
        address = printable(_engine_address(settings), 120)
        how = "请用 `make run` 启动引擎，或设置 TEMPORAL_ADDRESS"
        _say(f"错误：无法连接引擎（{address}）：{how}。")
        return EXIT_UNREACHABLE


def _say(line: str) -> None:
    """`line` on stderr, whatever it holds: a lone surrogate (from a file name or an argument that
    is not UTF-8) is written as an escape, never as a UnicodeEncodeError."""
    encoding = sys.stderr.encoding or "utf-8"
    sys.stderr.write(line.encode(encoding, "backslashreplace").decode(encoding, "replace") + "\n")


if __name__ == "__main__":
    os.umask(0o077)  # what this tool writes (database, documents, tokens) is for its owner only
    try:
        code = asyncio.run(main())
    except SystemExit as exc:  # argparse: usage errors are bad input
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can crash the interpreter at exit; our status is ours.
    os._exit(code)
