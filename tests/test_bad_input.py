"""Issue 12, bad input never loses a case: every bad input is refused through the operator's tool
(`starter.main`, in process) with a sentence naming the field, exit 2 and nothing stored; an
engine that cannot be reached is exit 4; a matter finalised by re-review is a refusal (exit 1)
whose case still sends the petitioner its notice.

TEMPORAL_ADDRESS points at a closed port unless a test says otherwise: a refusal with exit 2 there
was made before anything was contacted (contacting it would be exit 4).
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import re
import sys
import types
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from activities.db import CaseRow, RefusalRow, get_engine
from engine.config import Settings
from engine.desk import InputError, history, matter_key, parse_action, parse_intake, register
from engine.scenario import SCENARIO_DESK, act_scripted
from engine.staff import add_user
from rules.vocabulary import MAX_INPUT_BYTES, StaffRole
from starter import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_UNREACHABLE, main
from tests.conftest import Harness
from tests.scenario_helpers import WAGES
from workflows.models import Intake, ValidationError

CLOSED = "127.0.0.1:1"
UNIT = "青山区人社局"
CASE = "XF-20260315-1A2B3C4D"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("PETITION_DATA_DIR", str(folder))
    monkeypatch.setenv("TEMPORAL_ADDRESS", CLOSED)
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    monkeypatch.delenv("PETITION_DATABASE_URL", raising=False)
    settings = Settings(data_dir=folder)
    folder.mkdir(mode=0o700)
    add_user(settings, "admin", StaffRole.admin)
    add_user(settings, "clerk", StaffRole.operator)
    add_user(settings, "qs", StaffRole.unit, unit=UNIT)
    add_user(settings, "duban", StaffRole.supervision)
    return folder


def run(*argv: str) -> int:
    return asyncio.run(main(list(argv)))


def stored(folder: Path) -> tuple[list[CaseRow], list[RefusalRow]]:
    with Session(get_engine(Settings(data_dir=folder).resolved_database_url())) as s:
        return list(s.exec(select(CaseRow))), list(s.exec(select(RefusalRow)))


def refused_with(capsys: pytest.CaptureFixture[str], folder: Path, code: int, *words: str) -> str:
    """The run's stderr, having checked that it is one `错误：` sentence holding `words`, that
    nothing went to stdout, and that no case (nor refusal) was stored."""
    out = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, out.err
    assert out.out == ""
    assert out.err.startswith("错误：") and out.err.rstrip().endswith((".", "。")), out.err
    assert "Traceback" not in out.err
    for w in words:
        assert w in out.err, out.err
    assert stored(folder) == ([], [])
    return out.err


def record(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p.update(changes)
    return p


def person(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p["petitioners"][0].update(changes)
    return p


def write(folder: Path, content: str | bytes, name: str = "intake.json") -> str:
    path = folder.parent / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def register_file(folder: Path, rec: dict[str, Any]) -> int:
    # ensure_ascii: Infinity, NaN and "\ud800" reach the file as JSON writes them
    return run("--as", "clerk", "register", write(folder, json.dumps(rec)))


# --- 1. unit and locality names that would become oversized search attributes -----------------


@pytest.mark.parametrize(
    ("rec", "field"),
    [
        (record(locality="青" * 342), "locality"),
        (record(responsible_unit="局" * 342), "responsible_unit"),
        (record(responsible_unit="a" * 3000), "responsible_unit"),
        (person(name="张" * 101), "petitioners[0].name"),
    ],
)
def test_long_unit_and_locality_names_are_refused_at_the_desk(
    data: Path, capsys: pytest.CaptureFixture[str], rec: dict[str, Any], field: str
) -> None:
    refused_with(
        capsys, data, register_file(data, rec), f"信访事项记录字段“{field}”", "may be at most 100 characters"
    )


def test_an_action_naming_a_long_unit_is_refused_before_the_case_is_contacted(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run("--as", "qs", "act", CASE, "accept", "--data", json.dumps({"unit": "局" * 3000}))
    refused_with(capsys, data, code, "（accept）的数据字段“unit”（承办单位）", "3,000 characters", "at most 100 characters")


def test_a_hundred_character_unit_is_accepted() -> None:
    # 100 characters is at most 1,202 bytes JSON-escaped, even for characters outside the BMP;
    # the server's limit for a search attribute is 2,048 (342 CJK characters already exceed it).
    assert (
        parse_intake(record(locality="青" * 100, responsible_unit="\U00020000" * 100)).locality == "青" * 100
    )
    assert parse_action("accept", {"unit": "局" * 100})


# --- 2. accepted but harmful ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rec", "field", "words"),
    [
        (record(disputed_amount=float("inf")), "disputed_amount", "is not a finite number"),
        (record(disputed_amount=float("nan")), "disputed_amount", "is not a finite number"),
        (record(disputed_amount="1e999"), "disputed_amount", "is not a finite number"),
        (record(disputed_amount=True), "disputed_amount", "is true, not an amount of money"),
        (record(disputed_amount=1e13), "disputed_amount", "at most 1,000,000,000,000 yuan"),
        (record(worker_count=1e30), "worker_count", "at most 100,000 workers"),
        (record(worker_count=2.5), "worker_count", "is not a whole number"),
        (record(worker_count=False), "worker_count", "is false, not a number of workers"),
    ],
)
def test_numbers_that_are_not_amounts_or_counts_are_refused(
    data: Path, capsys: pytest.CaptureFixture[str], rec: dict[str, Any], field: str, words: str
) -> None:
    refused_with(capsys, data, register_file(data, rec), f"信访事项记录字段“{field}”", words)


def test_an_infinite_amount_in_an_action_is_refused(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "--as", "qs", "act", CASE, "accept", "--data", '{"unit": "青山区人社局", "disputed_amount": Infinity}'
    )
    refused_with(capsys, data, code, "（accept）的数据字段“disputed_amount”", "not a finite number")
    code = run(
        "--as",
        "qs",
        "act",
        CASE,
        "extend",
        "--data",
        '{"days": true, "approved_by": "局长", "reason": "调查"}',
    )
    refused_with(capsys, data, code, "（extend）的数据字段“days”", "is true")


@pytest.mark.parametrize(
    ("rec", "field", "words"),
    [
        (record(title="装修公司\x00拖欠工资"), "title", "control character (U+0000) at character 5"),
        (record(content="公司拖欠工资\x1b[31m"), "content", "control character (U+001B)"),
        (person(name="赵\x00某"), "petitioners[0].name", "control character (U+0000)"),
        (record(responsible_unit="人社局\x85"), "responsible_unit", "control character (U+0085)"),
        (record(locality="青山\ud800区"), "locality", "lone surrogate (U+D800)"),
        (record(content="拖欠工资\udfff"), "content", "lone surrogate (U+DFFF)"),
        (record(title="装修公司\n拖欠工资"), "title", "line break or tab"),
    ],
)
def test_control_characters_and_lone_surrogates_are_refused_in_any_text(
    data: Path, capsys: pytest.CaptureFixture[str], rec: dict[str, Any], field: str, words: str
) -> None:
    err = refused_with(capsys, data, register_file(data, rec), f"信访事项记录字段“{field}”", words)
    assert "\x00" not in err and "\x1b" not in err


def test_a_lone_surrogate_as_a_field_name_is_named_not_a_traceback(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = record()
    rec["\ud800备注"] = "x"
    refused_with(
        capsys, data, register_file(data, rec), "信访事项记录字段“\\ud800备注”", "不是此记录的字段"
    )


def test_control_characters_in_action_text_are_refused(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "--as", "duban", "act", CASE, "flag_major_risk", "--data", json.dumps({"reason": "扬言\x00上访"})
    )
    refused_with(capsys, data, code, "（flag_major_risk）的数据字段“reason”", "U+0000")


def test_content_keeps_line_breaks_and_tabs_and_crlf_becomes_lf() -> None:
    intake = parse_intake(record(content="第一段\r\n第二段\t附表\r第三段"))
    assert intake.content == "第一段\n第二段\t附表\n第三段"
    assert parse_action("issue_opinion", {"text": "意见：\r\n一、……"}).text == "意见：\n一、……"  # type: ignore[attr-defined]


def test_full_width_identity_numbers_and_phones_are_stored_normalised_and_recognised(
    settings: Settings,
) -> None:
    full = parse_intake(
        person(id_number="１１０１０５１９４９１２３１００２Ｘ", phone="１３８ ００００ ００００")
    )
    ascii_ = parse_intake(person(id_number="11010519491231002x", phone="13800000000"))
    assert full.petitioners[0].id_number == "11010519491231002X"
    assert full.petitioners[0].phone == "13800000000"
    assert matter_key(settings, full) == matter_key(settings, ascii_)  # the same person: a repeat visit
    # digits of other scripts are not an identity number (NFKC leaves them as they are)
    with pytest.raises(
        InputError, match=r"信访事项记录字段“petitioners\[0\]\.id_number”（身份证号）：a mainland identity number"
    ):
        parse_intake(person(id_number="١١٠١٠١١٩٩٠٠١٠١١٢٣٧"))


def test_a_hundred_thousand_character_title_is_refused_everywhere(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_title = "拖欠工资" * 25_000
    refused_with(
        capsys,
        data,
        register_file(data, record(title=long_title)),
        "信访事项记录字段“title”",
        "100,000 characters long",
        "at most 200 characters",
    )
    # a scenario file
    scenario = write(data, json.dumps({"petition": record(title=long_title), "steps": []}), "scenario.json")
    refused_with(capsys, data, run("scenario", scenario), "信访事项记录字段“title”", "at most 200 characters")
    # anything that validates an Intake
    with pytest.raises(ValidationError, match="a title may be at most 200 characters"):
        Intake.model_validate(record(title=long_title))


@pytest.mark.parametrize(
    ("people", "why"),
    [
        (
            [
                {"name": "赵某", "id_number": "110101199001011237"},
                {"name": "钱某", "id_number": "110101199001011237"},
            ],
            "the same identity number",
        ),
        (
            [
                {"name": "赵某", "id_number": "110101199001011237"},
                {"name": "赵某", "id_number": "１１０１０１１９９００１０１１２３７"},
            ],
            "the same identity number",
        ),
        (
            [{"name": "赵某", "phone": "13800000000"}, {"name": "赵某", "phone": "138 0000 0000"}],
            "the same name and phone",
        ),
    ],
)
def test_the_same_petitioner_twice_is_refused(
    data: Path, capsys: pytest.CaptureFixture[str], people: list[dict[str, str]], why: str
) -> None:
    refused_with(
        capsys,
        data,
        register_file(data, record(petitioners=people)),
        "信访事项记录字段“petitioners”",
        "petitioners[1] is petitioners[0] again",
        why,
        "list each petitioner once",
    )


def test_namesakes_with_their_own_identity_numbers_are_two_petitioners() -> None:
    people = [
        {"name": "赵某", "id_number": "110101199001011237"},
        {"name": "赵某", "id_number": "11010519491231002X"},
    ]
    assert len(parse_intake(record(petitioners=people)).petitioners) == 2


# --- 3. what used to be a traceback --------------------------------------------------------


def test_a_20_mb_input_file_is_refused(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = write(data, b" " * (20 * 1024 * 1024))
    refused_with(capsys, data, run("--as", "clerk", "register", big), "超过 1,000,000 字节")


def test_stdin_is_read_up_to_the_limit_and_one_byte_only(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []

    class Endless(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            asked.append(size)
            return b"[" * size

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=Endless()))
    refused_with(capsys, data, run("--as", "clerk", "register", "-"), "stdin：超过 1,000,000 字节")
    assert asked == [MAX_INPUT_BYTES + 1]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (json.dumps(WAGES, ensure_ascii=False).encode("gbk"), "不是 UTF-8 文本（第 "),
        (b"[" * 100_000, "嵌套层数过多"),
        (b'{"channel": "visit", "worker_count": 1' + b"0" * 5000 + b"}", "位数过多、无法读取的数字"),
        (b'{"channel": "visit",', "不是有效的 JSON"),
        (b'["not", "an", "intake"]', "信访事项记录应为 JSON 对象"),
    ],
)
def test_unreadable_files_are_refused_with_a_sentence(
    data: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    refused_with(capsys, data, run("--as", "clerk", "register", write(data, content)), words)


def test_a_missing_file_or_a_folder_is_refused(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_with(
        capsys,
        data,
        run("--as", "clerk", "register", str(data.parent / "nope.json")),
        "nope.json：文件不存在。",
    )
    refused_with(capsys, data, run("--as", "clerk", "register", str(data.parent)), "是文件夹，不是文件")


def test_bad_action_data_is_refused_with_a_sentence(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused_with(
        capsys,
        data,
        run("--as", "qs", "act", CASE, "accept", "--data", "[" * 100_000),
        "--data：嵌套层数过多",
    )
    refused_with(
        capsys,
        data,
        run("--as", "qs", "act", CASE, "accept", "--data", '["青山区人社局"]'),
        "accept 的数据应为由该操作的字段组成的 JSON 对象，而不是列表",
    )
    officials = json.dumps({"reason": "扬言集体上访", "officials": [f"官员{n}" for n in range(21)]})
    refused_with(
        capsys,
        data,
        run("--as", "duban", "act", CASE, "flag_major_risk", "--data", officials),
        "（flag_major_risk）的数据字段“officials”",
        "最多 20 项",
    )


def test_a_byte_order_mark_is_read_and_an_unreachable_engine_is_exit_4(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(data, b"\xef\xbb\xbf" + json.dumps(WAGES, ensure_ascii=False).encode("utf-8"))
    assert run("--as", "clerk", "register", path) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err == (
        f"错误：无法连接引擎（{CLOSED}）：请用 `make run` 启动引擎，或设置 TEMPORAL_ADDRESS。\n"
    )
    assert stored(data) == ([], [])


@pytest.mark.parametrize(
    "argv",
    [
        ("--as", "duban", "state", CASE),
        ("--as", "qs", "act", CASE, "accept", "--data", '{"unit": "青山区人社局"}'),
        ("--as", "admin", "calendar", "push"),
    ],
)
def test_every_command_that_needs_the_engine_says_it_is_unreachable(
    data: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert run(*argv) == EXIT_UNREACHABLE
    out = capsys.readouterr()
    assert (
        out.err.startswith(f"错误：无法连接引擎（{CLOSED}）") and "Traceback" not in out.err
    )
    assert stored(data) == ([], [])


async def test_state_of_an_unknown_case_says_there_is_no_such_case(
    env: WorkflowEnvironment, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    code = await main(["--as", "duban", "state", CASE])
    refused_with(capsys, data, code, f"没有案件“{CASE}”。")
    code = await main(["--as", "duban", "history", CASE])
    refused_with(capsys, data, code, f"没有案件“{CASE}”。")


# --- 4. workflow ids that are not case numbers -----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("--as", "qs", "act", "digest-青山区人社局-20260315", "accept", "--data", '{"unit": "青山区人社局"}'),
        ("--as", "qs", "act", f"{CASE}-arbitration", "arbitration", "--data", '{"event": "filed"}'),
        ("--as", "duban", "state", f"{CASE}-arbitration"),
        ("--as", "duban", "state", "xf-20260315-1a2b3c4d"),
        ("--as", "duban", "history", "digest-青山区人社局-20260315"),
        ("--as", "duban", "history", "XF-2026315-1A2B3C4D\x00"),
    ],
)
def test_ids_that_are_not_case_numbers_are_refused_before_contacting_anything(
    data: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    err = refused_with(
        capsys, data, run(*argv), "不是案件编号；案件编号形如 XF-20260315-1A2B3C4D。"
    )
    assert "\x00" not in err


# --- 5. a matter finalised by re-review --------------------------------------------------------


async def _settle(h: Harness, case_id: str) -> None:
    handle = h.env.client.get_workflow_handle(case_id)
    for _ in range(100):
        if (await handle.query("state"))["stage"] != "registered":
            return
        await h.env.sleep(timedelta(seconds=1))


async def test_registering_a_matter_finalised_by_re_review_is_refused_and_its_notice_still_issued(
    harness: Harness,
    payload_key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    c = h.env.client
    intake = parse_intake(record(disputed_amount=90000))
    first = await register(
        c, h.settings, intake, task_queue=h.task_queue, calendar="weekends_only", actor=SCENARIO_DESK
    )
    await _settle(h, first.case_id)
    for action, step in [
        ("accept", {"unit": UNIT}),
        ("issue_opinion", {"text": "意见"}),
        ("request_review", {}),
        ("review_decision", {"text": "维持"}),
        ("request_re_review", {}),
        ("re_review_decision", {"text": "终结"}),
    ]:
        await act_scripted(c, h.settings, first.case_id, action, step)
    assert history(h.settings, first.case_id)["outcome"] == "final_after_re_review"

    # the operator registers the same matter again, through the tool
    add_user(h.settings, "clerk", StaffRole.operator)
    for name, value in {
        "PETITION_DATA_DIR": str(h.settings.data_dir),
        "PETITION_PAYLOAD_KEY_FILE": str(payload_key_file),
        "PETITION_TASK_QUEUE": h.task_queue,
        "PETITION_NOTIFY_ADAPTER": "recording",
        "TEMPORAL_ADDRESS": c.service_client.config.target_host,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    path = h.settings.data_dir.parent / "again.json"
    path.write_text(json.dumps(record(disputed_amount=90000), ensure_ascii=False), encoding="utf-8")
    code = await main(["--as", "clerk", "register", str(path), "--calendar", "weekends_only"])
    out = capsys.readouterr()
    assert code == EXIT_FAILED and out.out == ""
    # (the in-process worker logs to stderr too: the tool's own line is the one that says `拒绝：`)
    said = [line for line in out.err.splitlines() if not line.startswith("{")]
    assert len(said) == 1, out.err
    found = re.fullmatch(
        rf"拒绝：该事项已在案件 {first.case_id} 经复核终结，同一事实和理由不再受理；案件 (XF-\d{{8}}-[0-9A-F]{{8}}) "
        r"记录了这次不予受理，并向信访人发出告知书。",
        said[0],
    )
    assert found, said
    again = found.group(1)
    assert again != first.case_id
    await c.get_workflow_handle(again).result()
    hist = history(h.settings, again)
    assert hist["outcome"] == "not_accepted"
    assert len([e for e in hist["events"] if e.get("document") == "not_accepted_notice"]) == 1


async def test_an_action_with_no_worker_is_not_sent_and_never_applied_later(harness: Any) -> None:
    """No ghost actions: with no worker serving the case, `act` says so and sends nothing; when a
    worker comes back, the case has not been acted on."""
    import uuid

    from engine.desk import NoWorker, act, parse_intake, register
    from engine.scenario import SCENARIO_DESK, acting_as
    from tests.scenario_helpers import petition
    from worker import build_worker

    h = harness
    queue = f"nobody-{uuid.uuid4().hex[:6]}"  # no worker polls it yet
    reg = await register(
        h.env.client, h.settings, parse_intake(petition(responsible_unit="青山区人社局")), task_queue=queue,
        calendar="weekends_only", actor=SCENARIO_DESK,
    )  # fmt: skip
    with pytest.raises(NoWorker, match="没有发出"):
        await act(h.env.client, h.settings, reg.case_id, "accept", {"unit": "青山区人社局"},
                  actor=acting_as("accept", "青山区人社局"), worker_wait=timedelta(seconds=5))  # fmt: skip
    async with build_worker(h.env.client, h.settings, task_queue=queue):
        handle = h.env.client.get_workflow_handle(reg.case_id)
        for _ in range(50):
            state = await handle.query("state")
            if state["stage"] != "registered":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        state = await handle.query("state")
        assert state["stage"] in ("triaged", "registered"), state["stage"]  # not accepted
