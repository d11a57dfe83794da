"""Issue 12, for the operator: `starter.py` shows readable Chinese tables with Asia/Shanghai times on
a terminal (and with `--table`), JSON with `--json` and whenever its output is piped or redirected
(as here, under pytest's capture), so scripts read what they always read (engine/console.py)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings
from engine.console import print_cases, wants_table
from engine.desk import Refused, history, parse_intake, register
from engine.scenario import SCENARIO_DESK, act_scripted
from engine.staff import add_user
from engine.wording import due_time, event_text, local_time, span, time_left
from rules.vocabulary import StaffRole
from starter import EXIT_OK, main
from tests.conftest import Harness
from tests.scenario_helpers import petition

UNIT = "青山区人社局"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _local(at: str) -> str:
    """A UTC timestamp as the tables show it: eight hours later, to the minute."""
    return (datetime.fromisoformat(at).astimezone(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M")


# --- which view --------------------------------------------------------------------------------


def test_tables_on_a_terminal_json_when_piped_and_the_flags_win() -> None:
    assert wants_table(None, _Terminal()) is True
    assert wants_table(None, io.StringIO()) is False  # piped or redirected
    assert wants_table("json", _Terminal()) is False
    assert wants_table("table", io.StringIO()) is True


# --- words and times ---------------------------------------------------------------------------


def test_times_are_local_and_periods_end_at_24_00_of_their_last_day() -> None:
    assert local_time("2026-03-15T01:41:00+00:00") == "2026-03-15 09:41"
    assert local_time("2026-03-15T01:41:00") == "2026-03-15 09:41"  # as SQLite gives it back: UTC
    assert local_time(None) == "—"
    due = datetime(2026, 3, 30, 16, 0, tzinfo=UTC)  # 2026-03-31 00:00 in Shanghai
    assert due_time(due) == "2026-03-30 24:00"
    assert due_time(datetime(2026, 3, 30, 2, 30, tzinfo=UTC)) == "2026-03-30 10:30"
    assert time_left(due, datetime(2026, 3, 20, 2, 0, tzinfo=UTC)) == "剩 10 天"
    assert time_left(due, datetime(2026, 3, 30, 15, 0, tzinfo=UTC)) == "今日到期"
    assert time_left(due, datetime(2026, 3, 31, 2, 0, tzinfo=UTC)) == "已逾期 1 天"
    # a notice's half hour, in minutes
    now = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)
    assert time_left(now + timedelta(minutes=25), now) == "剩 25分钟"
    assert time_left(now - timedelta(minutes=5), now) == "已逾期 5分钟"
    assert span(timedelta(days=2, hours=3)) == "2天3小时" and span(timedelta(minutes=90)) == "1小时30分钟"


@pytest.mark.parametrize(
    ("kind", "data", "text"),
    [
        ("stage", {"stage": "registered", "channel": "visit", "office_level": "county", "locality": "青山区"},
         "登记信访事项（来访，县区级，青山区）"),
        ("stage", {"stage": "triaged", "category": "labor_social_security", "risk": "medium", "unit": UNIT},
         f"分办（类别：劳动保障，风险：中，责任单位：{UNIT}）"),
        ("stage", {"stage": "accepted", "unit": UNIT}, f"受理（承办单位：{UNIT}）"),
        ("stage", {"stage": "closed", "outcome": "mediated"}, "办结：调解结案"),
        ("notification", {"tier": "immediate", "recipient_role": "principal_leader", "channel": "sms", "delivered": True},
         "即时通知主要领导（短信）：已送达"),
        ("notification", {"tier": "overdue", "deadline": "notify_immediate", "recipient": "青山区信访督查室",
                          "channel": "duty_log", "escalated_from": "principal_leader"},
         "原通知未能按时送达，已转青山区信访督查室值班处理（值班记录，已送达）"),
        ("document", {"document": "acceptance_notice", "verification_code": "L3-0a1b2c3d"},
         "出具《信访事项受理告知书》（核验码 L3-0a1b2c3d）"),
        ("score", {"unit": UNIT, "points": 2, "rule": "mediation_success"}, f"考核积分：{UNIT} +2 分（调解成功）"),
        ("overdue", {"deadline": "acceptance", "due": "2026-03-30T16:00:00+00:00"}, "受理期限已逾期（期限至 2026-03-30 24:00）"),
        ("rejected", {"action": "accept", "error": "案件已办结（调解结案），不再接受任何操作。"},
         "拒绝“受理”：案件已办结（调解结案），不再接受任何操作。"),
        ("ladder", {"ladder": "warning", "unit": UNIT, "due": "2026-04-14T16:00:00+00:00"},
         f"发出风险提示函（致 {UNIT}），整改期限至 2026-04-14 24:00"),
        ("visit", {"visits": 2, "channel": "online", "persons": 3}, "重复来访（第 2 次，网上信访，3 人）"),
        ("info", {"clock_paused": "handling", "reason": "等待补充材料"}, "暂停计时：办理期限（等待补充材料）"),
        ("leader", {"leader": "市委常委 王某某"}, "领导包案：市委常委 王某某"),
    ],
)  # fmt: skip
def test_every_kind_of_event_reads_as_chinese(kind: str, data: dict[str, Any], text: str) -> None:
    assert event_text(kind, data) == text


def test_the_case_list_names_everything_in_chinese_and_prints_text_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)
    row = {
        "case_id": "XF-20260315-1A2B3C4D", "title": "[bold]装修公司拖欠工资[/bold]", "locality": "青山区", "unit": UNIT,
        "category": "labor_social_security", "risk": "high", "status": "open", "stage": "handling", "outcome": None,
        "registered_at": "2026-03-15T01:41:00", "next_deadline": "handling", "next_due": "2026-05-14T16:00:00",
        "next_due_provisional": True, "overdue": False, "nail_case": False,
    }  # fmt: skip
    closed = {**row, "case_id": "XF-20260301-00000000", "status": "closed", "stage": "closed", "outcome": "mediated"}
    print_cases([row, closed], now=now)
    out = capsys.readouterr().out
    for header in ("案件编号", "标题", "属地", "责任单位", "类别", "风险", "阶段/结果", "登记时间", "下一期限"):
        assert header in out
    assert "[bold]装修公司拖欠工资[/bold]" in out  # no markup: a title is shown as it was typed
    assert "劳动保障" in out and "办理中" in out and "2026-03-15 09:41" in out
    assert "办理期限 2026-05-14 24:00（剩 55 天，暂定）" in out
    assert "已办结（调解结案）" in out


# --- through the tool: accounts, calendar, reports (no engine needed) ----------------------------


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    settings = Settings(data_dir=tmp_path)
    add_user(settings, "admin", StaffRole.admin)
    add_user(settings, "hr01", StaffRole.hr)
    add_user(settings, "qs", StaffRole.unit, unit=UNIT)
    return tmp_path


def run(*argv: str) -> int:
    return asyncio.run(main(list(argv)))


def test_accounts_calendar_and_reports_as_tables_or_json(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--as", "admin", "users", "list", "--table") == EXIT_OK
    out = capsys.readouterr().out
    assert "工作人员账号" in out and "系统管理员" in out and "组织人事" in out and UNIT in out and "正常" in out
    assert run("--as", "admin", "users", "list") == EXIT_OK  # piped: JSON lines, as before
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["username"] for r in rows} == {"admin", "hr01", "qs"}

    assert run("--table", "calendar", "status") == EXIT_OK
    out = capsys.readouterr().out
    assert "节假日日历" in out and "已公布安排的年份" in out
    assert run("calendar", "status", "--json") == EXIT_OK
    assert "official_years" in json.loads(capsys.readouterr().out)

    assert run("--as", "hr01", "--table", "scores") == EXIT_OK
    out = capsys.readouterr().out
    assert "考核积分事件" in out and "共 0 条" in out and "--since 0" in out
    assert run("--as", "hr01", "scores", "--json") == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"next_cursor": 0}
    assert run("--as", "hr01", "assessment", "--year", "2026", "--table") == EXIT_OK
    assert "2026 年度考核" in capsys.readouterr().out
    assert run("--as", "hr01", "arbitration", "--table") == EXIT_OK
    assert "回流率" in capsys.readouterr().out

    # a unit account's list: its own unit's cases only (none yet), with the Chinese headers
    assert run("--as", "qs", "list", "--table") == EXIT_OK
    assert "案件列表（0 件" in capsys.readouterr().out
    # messages are Chinese too
    assert run("--as", "qs", "users", "list") == 1
    assert capsys.readouterr().err == "拒绝：“责任单位”角色无权管理工作人员账号；当前登录的账号是 qs。\n"


# --- through the tool: a real case ---------------------------------------------------------------


async def test_list_history_state_and_act_as_tables_with_local_times(
    harness: Harness, payload_key_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    c = h.env.client
    for name, value in {
        "PETITION_DATA_DIR": str(h.settings.data_dir),
        "PETITION_PAYLOAD_KEY_FILE": str(payload_key_file),
        "PETITION_TASK_QUEUE": h.task_queue,
        "TEMPORAL_ADDRESS": c.service_client.config.target_host,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    add_user(h.settings, "duban", StaffRole.supervision)
    add_user(h.settings, "qs", StaffRole.unit, unit=UNIT)

    reg = await register(c, h.settings, parse_intake(petition(responsible_unit=UNIT)), task_queue=h.task_queue,
                         calendar="weekends_only", actor=SCENARIO_DESK)  # fmt: skip
    handle = c.get_workflow_handle(reg.case_id)
    for _ in range(100):
        if (await handle.query("state"))["stage"] != "registered":
            break
        await h.env.sleep(timedelta(seconds=1))

    # act, as a table: what the action did
    assert await main(["--as", "qs", "--table", "act", reg.case_id, "accept", "--data", json.dumps({"unit": UNIT})]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"已办理“受理”：案件 {reg.case_id}，当前阶段：") and f"受理（承办单位：{UNIT}）" in out
    with pytest.raises(Refused):  # refused, and the refusal is in the history
        await act_scripted(c, h.settings, reg.case_id, "accept", {"unit": UNIT})

    # list
    assert await main(["--as", "duban", "list", "--table"]) == EXIT_OK
    out = capsys.readouterr().out
    case = history(h.settings, reg.case_id)
    registered = next(e for e in case["events"] if e.get("stage") == "registered")
    assert "案件列表（1 件" in out and reg.case_id in out and "下一期限" in out
    assert _local(registered["at"]) in out and "劳动保障" in out

    # history: the Chinese timeline, in local time, with who acted
    assert await main(["--as", "duban", "--table", "history", reg.case_id]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"案件 {reg.case_id}" in out and "办理经过（北京时间）" in out and "经办人" in out
    for e in case["events"]:
        assert _local(e["at"]) in out
    assert "登记信访事项（来访，县区级，青山区）" in out and f"受理（承办单位：{UNIT}）" in out
    assert f"qs（责任单位，{UNIT}）" in out and f"scenario（责任单位，{UNIT}）" in out  # who accepted, who was refused
    assert "拒绝“受理”：本案已作出是否受理的决定" in out
    assert "出具《信访事项受理告知书》" in out

    # --json (after the command, too) and the piped default are the contract's JSON, unchanged
    assert await main(["--as", "duban", "history", reg.case_id, "--json"]) == EXIT_OK
    as_json = json.loads(capsys.readouterr().out)
    assert await main(["--as", "duban", "history", reg.case_id]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == as_json
    assert as_json["case_id"] == reg.case_id and [e["kind"] for e in as_json["events"]] == [e["kind"] for e in case["events"]]
    assert await main(["--as", "duban", "--json", "list"]) == EXIT_OK
    assert [json.loads(line)["case_id"] for line in capsys.readouterr().out.splitlines()] == [reg.case_id]

    # state: the periods with their due time, days left and status
    assert await main(["--as", "duban", "state", reg.case_id, "--table"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "期限（北京时间）" in out and "办理期限" in out and "计时中" in out and "剩 " in out and "24:00" in out
    assert await main(["--as", "duban", "state", reg.case_id]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["case_id"] == reg.case_id
