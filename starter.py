"""The operator's tool.

    python starter.py register [FILE|-]                 register a petition (prints the case id)
    python starter.py act CASE ACTION [--data JSON]     send an action (accept, issue_opinion, ...)
    python starter.py history CASE                      a case's timeline (the contract's events)
    python starter.py state CASE                        a running case's state and deadlines
    python starter.py list [--open] [--overdue]         cases, newest first
    python starter.py scenario FILE [--keep DIR]        run a scenario on the time-skipping server
    python starter.py triage                            classify intake JSON lines from stdin
    python starter.py triage train [--corpus DIR]       rebuild rules/triage_model.json from the corpus
    python starter.py triage corrections [--out FILE]   operators' corrections as labelled examples
    python starter.py triage drift                      how often triage is overridden, by month and category
    python starter.py scores [--since CURSOR]           the HR score stream, as JSON lines
    python starter.py assessment --year YEAR            each unit's mediation rate and points
    python starter.py arbitration                       the green channel's return-to-court rate
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

Exit status: 0 done; 1 a verification that failed or an action the rules refused (also a
`register` of a matter finalised by re-review: the new case records the refusal and its notice);
2 bad input, with a sentence naming the field, and nothing stored (for `ledger monitor` also: the
log could not be reached); 3 the log failed a witness check; 4 the engine (Temporal) could not be
reached (start it with `make run`, or set TEMPORAL_ADDRESS).
Connects to TEMPORAL_ADDRESS, else to the embedded dev server that `python worker.py` started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from engine.config import Settings, load_settings
from engine.desk import InputError, NoWorker, Refused, check_case_id, parse_json_text, read_json_input
from engine.staff import AccessError, AccountError, require, require_view
from rules.access import may
from rules.ruleset import RuleFileError
from workflows.models import Actor, printable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 4


def _print(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


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
            f"This matter was finalised by re-review in case {reg.prior_final_case}; case {reg.case_id} "
            "records the refusal and its notice to the petitioner.",
        )
    if reg.repeat_visit:
        print(f"{reg.case_id}\trepeat visit {reg.visits}")
    else:
        print(reg.case_id)
    return EXIT_OK


async def cmd_act(args: argparse.Namespace, settings: Settings) -> int:
    from engine.desk import act, parse_action
    from engine.servers import connect

    check_case_id(args.case)
    data = parse_json_text(args.data, "--data") if args.data else {}
    parse_action(args.action, data)
    actor = _actor(args, settings)
    client = await connect(settings)
    result = await act(client, settings, args.case, args.action, data, actor=actor)
    _print({"case_id": result.case_id, "stage": result.stage, "outcome": result.outcome, "events": [e.contract() for e in result.events]})
    return EXIT_OK


async def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from engine.desk import history

    case = history(settings, args.case)
    require_view(_actor(args, settings), case["unit"])
    _print(case)
    return EXIT_OK


async def cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    from engine.servers import connect
    from workflows.models import CaseState

    check_case_id(args.case)
    actor = _actor(args, settings)
    client = await connect(settings)
    try:
        state = await client.get_workflow_handle(args.case).query("state", result_type=CaseState)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise InputError(f"There is no case '{args.case}'.") from None
        raise
    require_view(actor, state.unit)
    _print(state.model_dump(mode="json"))
    return EXIT_OK


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from sqlmodel import Session, col, select

    from activities.db import CaseRow, get_engine

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
        for row in s.exec(q):
            print(
                json.dumps(
                    row.model_dump(mode="json", exclude={"matter_key"}),
                    ensure_ascii=False,
                )
            )
    return EXIT_OK


async def cmd_scenario(args: argparse.Namespace, settings: Settings) -> int:
    from engine.scenario import load_scenario, run_scenario

    scenario, intake = load_scenario(Path(args.file))
    result = await run_scenario(scenario, intake, keep=Path(args.keep) if args.keep else None)
    if not args.keep:
        result.pop("data_dir", None)
    _print(result)
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
            print(f"{len(lines)} corrections written to {args.out}", file=sys.stderr)
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
            print(json.dumps({"line": n, "error": f"line {n} is not an intake record: {exc}"}, ensure_ascii=False))
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
    for e in events:
        print(json.dumps(e, ensure_ascii=False, default=str))
    print(json.dumps({"next_cursor": cursor}))
    return EXIT_OK


async def cmd_assessment(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import assessment

    require(_actor(args, settings), "assessment")
    _print(assessment(settings, args.year))
    return EXIT_OK


async def cmd_arbitration(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import arbitration_stats

    actor = _actor(args, settings)
    if not (may(actor.role, "view_cases") or may(actor.role, "scores")):
        require(actor, "view_cases")
    _print(arbitration_stats(settings))
    return EXIT_OK


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import verify_file

    s = Settings(data_dir=Path(args.data)) if args.data else settings
    if not Path(args.file).exists() and re.fullmatch(r"L\d+-[0-9a-f]{8}", args.file.strip()):
        return _verify_code(s, args.file.strip())
    ok, message, detail = verify_file(s, Path(args.file))
    print(message)
    if detail:
        _print(detail)
    return EXIT_OK if ok else EXIT_FAILED


def _verify_code(settings: Settings, code: str) -> int:
    """`verify L4-e237b9dc`: the code printed on a document names its entry in the log."""
    from engine.public import document_view
    from engine.reports import existing_ledger

    existing_ledger(settings)  # refuses, creating nothing, where there is no engine data
    view = document_view(settings, code)
    if view is None:
        print(f"not genuine: no document in this log has the verification code {code}.")
        return EXIT_FAILED
    print(f"the log holds a {view['kind']} ({view['title']}) with code {code}, issued {view['date']} by "
          f"{view['issuer'] or 'the engine'}; to check a copy's content: starter.py verify FILE, or "
          f"{settings.resolved_public_url()}/v/{code}")
    _print({k: view[k] for k in ("code", "kind", "case", "sha256", "index")} | {"signed_head": view["sth"]})
    return EXIT_OK


_MONITOR_ONLY = ("url", "state", "public_key", "accept_new_key", "once", "interval", "json", "timeout")


async def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from engine.reports import ledger_consistency, ledger_head

    if args.what == "monitor":
        return await _ledger_monitor(args, settings)
    given = [f"--{n.replace('_', '-')}" for n in _MONITOR_ONLY if getattr(args, n) not in (None, False)]
    if given:
        raise InputError(f"{', '.join(given)}: only for `ledger monitor`.")
    s = Settings(data_dir=Path(args.data)) if args.data else settings
    if args.what == "head":
        _print(ledger_head(s))
    else:
        if args.old is None or args.new is None:
            raise InputError("ledger consistency needs OLD_SIZE and NEW_SIZE.")
        _print(ledger_consistency(s, args.old, args.new))
    return EXIT_OK


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
        raise InputError("ledger monitor takes no sizes: it checks from the last head it accepted.")
    if bool(args.url) == bool(args.data):
        raise InputError("ledger monitor needs either --url BASE (the engine's web address) or --data DIR "
                         "(its data folder), not both.")
    if args.once and args.interval is not None:
        raise InputError("--once and --interval exclude each other.")
    if args.data and args.timeout is not None:
        raise InputError("--timeout is for --url: a data folder is read directly.")
    if args.interval is not None and not args.interval > 0:
        raise InputError("--interval must be a positive number of seconds.")
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

    def emit(result: CheckResult) -> None:
        if args.json:
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
    from engine.reports import calendar_push, calendar_status

    if args.what == "status":
        _print(calendar_status(settings))
        return EXIT_OK
    require(_actor(args, settings), "calendar_push")
    _print(await calendar_push(settings))
    return EXIT_OK


async def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from engine.staff import add_user, disable_user, has_accounts, list_users
    from rules.access import ROLE_CN
    from rules.vocabulary import StaffRole

    first = args.what == "add" and not has_accounts(settings)
    admin = None if first else require(_actor(args, settings), "accounts")
    if args.what == "list":
        for row in list_users(settings):
            role = StaffRole(row.role)
            print(json.dumps({"username": row.username, "display_name": row.display_name, "role": row.role,
                              "role_cn": ROLE_CN[role], "unit": row.unit, "disabled": row.disabled,
                              "created_at": row.created_at.isoformat(), "created_by": row.created_by}, ensure_ascii=False))
        return EXIT_OK
    if not args.name:
        raise InputError(f"users {args.what} needs the account's NAME.")
    if args.what == "disable":
        disable_user(settings, args.name)
        print(f"{args.name}: disabled; its sign-ins ended.")
        return EXIT_OK
    if args.role is None:
        raise InputError("users add needs --role: operator, unit, supervision, hr or admin.")
    role = StaffRole(args.role)
    if first and role != StaffRole.admin:
        raise InputError("This engine has no accounts yet: the first account must be an admin (--role admin).")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    password, token = add_user(settings, args.name, role, unit=args.unit, display_name=args.display_name,
                               password=password, created_by=admin.name if admin else "first admin")
    print(f"account {args.name} ({role.value}{', ' + args.unit if args.unit else ''}) created.")
    if not args.password_stdin:
        print(f"password (shown once): {password}")
    print(f"CLI token: {token}  (use `starter.py --as {args.name} …`)")
    return EXIT_OK


async def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from engine.codec import append_new_key

    require(_actor(args, settings), "accounts")
    if settings.payload_keys:
        raise InputError("The payload keys come from PETITION_PAYLOAD_KEYS; rotate them where that variable is set.")
    path = settings.resolved_payload_key_file()
    kid = append_new_key(path)
    print(f"payload key {kid} added to {path}; it encrypts from now on, the older keys still decrypt. "
          "Restart the worker and back the file up (docs/privacy.md).")
    return EXIT_OK


def _actor(args: argparse.Namespace, settings: Settings) -> Actor:
    from engine.staff import cli_actor

    return cli_actor(settings, getattr(args, "as_user", None))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="starter.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--as", dest="as_user", default=None, metavar="NAME",
                   help="act as this account (its token file from `users add`); else PETITION_TOKEN_FILE")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("register", help="register a petition from a JSON file or stdin")
    r.add_argument("file", nargs="?", default="-")
    r.add_argument("--calendar", choices=["official", "weekends_only"], default="official")
    a = sub.add_parser("act", help="send an action to a case")
    a.add_argument("case")
    a.add_argument("action")
    a.add_argument("--data", default=None, help="the action's data as JSON")
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
    lg.add_argument("--json", action="store_true", help="monitor: one JSON object per check")
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
    return p


COMMANDS = {
    "register": cmd_register,
    "act": cmd_act,
    "history": cmd_history,
    "state": cmd_state,
    "list": cmd_list,
    "scenario": cmd_scenario,
    "triage": cmd_triage,
    "scores": cmd_scores,
    "assessment": cmd_assessment,
    "arbitration": cmd_arbitration,
    "verify": cmd_verify,
    "ledger": cmd_ledger,
    "calendar": cmd_calendar,
    "users": cmd_users,
    "keys": cmd_keys,
}


async def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    from engine.logs import configure_logging

    configure_logging(settings.log_json)
    try:
        return await COMMANDS[args.command](args, settings)
    except (InputError, RuleFileError, AccountError) as exc:
        _say(f"error: {exc}")
        return EXIT_BAD_INPUT
    except (Refused, AccessError) as exc:
        _say(f"refused: {exc.error if isinstance(exc, Refused) else exc}")
        return EXIT_FAILED
    except NoWorker as exc:
        _say(f"error: {exc}")
        return EXIT_UNREACHABLE
    except (RuntimeError, RPCError) as exc:
        if not _unreachable(exc):
            raise
        address = printable(_engine_address(settings), 120)
        how = "start it with `make run` or set TEMPORAL_ADDRESS"
        _say(f"error: the engine is not reachable at {address}: {how}.")
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
