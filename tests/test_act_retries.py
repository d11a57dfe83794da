"""Issue 12, the fault drill's raw errors: while a case's workflow task is being retried (its worker
just died) the server refuses updates with FAILED_PRECONDITION; `engine.desk.act` sends the action
again with backoff, with the same update id, until the action's deadline, and then says in Chinese
that the engine is busy and whether the action may have been applied (`EngineBusy`; exit 4 from the
tool, a 503 page on the web). No server here: a client whose answers the test scripts."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import RefusalRow, get_engine
from engine.config import Settings
from engine.desk import EngineBusy, NoWorker, act
from engine.scenario import acting_as
from engine.staff import add_user
from rules.vocabulary import StaffRole
from starter import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNREACHABLE, main
from workflows.models import ActionResult, Stage

CASE = "XF-20260315-1A2B3C4D"
UNIT = "青山区人社局"
DONE = ActionResult(case_id=CASE, action="accept", stage=Stage.accepted, outcome=None, events=[])


def failed_task() -> RPCError:
    return RPCError(
        "Unable to perform workflow execution update due to Workflow Task in failed state.",
        RPCStatusCode.FAILED_PRECONDITION,
        b"",
    )


def unavailable() -> RPCError:
    return RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b"")


class _Update:
    def __init__(self, value: ActionResult) -> None:
        self.value = value

    async def result(self, *, rpc_timeout: timedelta | None = None) -> ActionResult:
        return self.value


class ScriptedHandle:
    """A case whose answers to `start_update` are `script`, in turn (the last one repeats)."""

    def __init__(self, *script: ActionResult | BaseException) -> None:
        self.script = list(script)
        self.update_ids: list[str] = []
        self.queries = 0

    async def query(self, name: str, *, rpc_timeout: timedelta | None = None) -> dict[str, Any]:
        self.queries += 1
        return {}

    async def start_update(self, action: str, payload: Any, *, id: str, **_: Any) -> _Update:
        self.update_ids.append(id)
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        return _Update(answer)


class ScriptedClient:
    def __init__(self, handle: ScriptedHandle) -> None:
        self.handle = handle

    def get_workflow_handle(self, case_id: str) -> ScriptedHandle:
        return self.handle


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds, so a test's deadline of a second holds several attempts."""
    monkeypatch.setattr("engine.desk.RETRY_BACKOFF", (0.01, 0.02, 0.05))


def refusals(settings: Settings) -> list[RefusalRow]:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return list(s.exec(select(RefusalRow)))


async def _act(handle: ScriptedHandle, settings: Settings, **kwargs: Any) -> ActionResult:
    return await act(
        ScriptedClient(handle),  # type: ignore[arg-type]
        settings,
        CASE,
        "accept",
        {"unit": UNIT},
        actor=acting_as("accept", UNIT),
        **kwargs,
    )


async def test_a_case_recovering_from_a_dead_worker_gets_the_action_once_it_is_served(
    settings: Settings, quick: None
) -> None:
    handle = ScriptedHandle(failed_task(), failed_task(), unavailable(), DONE)
    assert await _act(handle, settings, worker_wait=timedelta(seconds=5)) == DONE
    assert len(handle.update_ids) == 4 and len(set(handle.update_ids)) == 1  # one update id throughout
    assert handle.update_ids[0].startswith("accept:")
    assert handle.queries == 4  # each attempt first makes sure a worker serves the case
    assert refusals(settings) == []


async def test_the_request_id_given_is_the_update_id_of_every_attempt(settings: Settings, quick: None) -> None:
    handle = ScriptedHandle(failed_task(), DONE)
    await _act(handle, settings, request_id="web-42")
    assert handle.update_ids == ["accept:web-42", "accept:web-42"]


async def test_still_recovering_at_the_deadline_is_a_chinese_sentence_saying_nothing_was_applied(
    settings: Settings, quick: None
) -> None:
    handle = ScriptedHandle(failed_task())
    started = asyncio.get_running_loop().time()
    with pytest.raises(EngineBusy) as info:
        await _act(handle, settings, worker_wait=timedelta(seconds=1), request_id="r-7")
    took = asyncio.get_running_loop().time() - started
    assert 1 <= took < 4  # the action's deadline, not more
    busy = info.value
    assert not busy.maybe_applied and busy.request_id == "r-7"
    assert "引擎忙或正在恢复" in str(busy) and "没有生效" in str(busy) and "受理" in str(busy)
    assert "FAILED_PRECONDITION" not in str(busy) and "Workflow Task" not in str(busy)
    assert len(handle.update_ids) > 3
    assert refusals(settings) == []  # not a refusal by the rules: nothing recorded


async def test_an_unanswered_attempt_makes_the_outcome_unknown_and_says_how_to_retry_safely(
    settings: Settings, quick: None
) -> None:
    handle = ScriptedHandle(WorkflowUpdateRPCTimeoutOrCancelledError(), failed_task())
    with pytest.raises(EngineBusy) as info:
        await _act(handle, settings, worker_wait=timedelta(seconds=1), request_id="r-8")
    assert info.value.maybe_applied
    assert "无法确定它是否已生效" in str(info.value) and "--request-id r-8" in str(info.value)


async def test_other_rpc_errors_are_not_retried(settings: Settings, quick: None) -> None:
    handle = ScriptedHandle(RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""), DONE)
    with pytest.raises(RPCError):
        await _act(handle, settings)
    assert len(handle.update_ids) == 1


async def test_no_worker_at_first_is_still_no_worker(settings: Settings) -> None:
    class Unserved(ScriptedHandle):
        async def query(self, name: str, *, rpc_timeout: timedelta | None = None) -> dict[str, Any]:
            raise RPCError("Timeout expired", RPCStatusCode.DEADLINE_EXCEEDED, b"")

    handle = Unserved(DONE)
    with pytest.raises(NoWorker, match="没有发出"):
        await _act(handle, settings, worker_wait=timedelta(seconds=1))
    assert handle.update_ids == []


# --- through the operator's tool --------------------------------------------------------------


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    folder = tmp_path / "data"
    monkeypatch.setenv("PETITION_DATA_DIR", str(folder))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    monkeypatch.delenv("PETITION_DATABASE_URL", raising=False)
    folder.mkdir(mode=0o700)
    settings = Settings(data_dir=folder)
    add_user(settings, "qs", StaffRole.unit, unit=UNIT)
    return settings


def _engine(monkeypatch: pytest.MonkeyPatch, handle: ScriptedHandle) -> None:
    async def connect(settings: Settings) -> ScriptedClient:
        return ScriptedClient(handle)

    monkeypatch.setattr("engine.servers.connect", connect)
    monkeypatch.setattr("engine.desk.WORKER_PROBE", timedelta(seconds=1))  # the action's deadline


async def test_the_tool_says_the_engine_is_busy_with_exit_4(
    tool: Settings, quick: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = ScriptedHandle(failed_task())
    _engine(monkeypatch, handle)
    code = await main(["--as", "qs", "--json", "act", CASE, "accept", "--data", '{"unit": "青山区人社局"}',
                       "--request-id", "desk-1"])  # fmt: skip
    out = capsys.readouterr()
    assert code == EXIT_UNREACHABLE and out.out == ""
    assert out.err.startswith("错误：引擎忙或正在恢复") and "没有生效" in out.err and "Traceback" not in out.err
    assert set(handle.update_ids) == {"accept:desk-1"}


async def test_the_tool_makes_a_request_id_when_none_is_given_and_refuses_a_bad_one(
    tool: Settings, quick: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = ScriptedHandle(failed_task(), DONE)
    _engine(monkeypatch, handle)
    code = await main(["--as", "qs", "--json", "act", CASE, "accept", "--data", '{"unit": "青山区人社局"}'])
    assert code == EXIT_OK, capsys.readouterr().err
    assert len(set(handle.update_ids)) == 1 and len(handle.update_ids[0]) > len("accept:")
    capsys.readouterr()
    code = await main(["--as", "qs", "act", CASE, "accept", "--data", '{"unit": "青山区人社局"}',
                       "--request-id", "两次"])  # fmt: skip
    out = capsys.readouterr()
    assert code == EXIT_BAD_INPUT and out.err.startswith("错误：--request-id“两次”不是有效的请求编号")
    assert handle.update_ids[-1] != "accept:两次"


def test_the_busy_sentence_names_the_action_in_chinese() -> None:
    from engine.desk import _busy

    for accepted, unknown, words in [
        (False, False, "没有生效"),
        (False, True, "无法确定它是否已生效"),
        (True, True, "已接受操作“受理”"),
    ]:
        said = str(_busy(CASE, "accept", "r1", timedelta(seconds=30), accepted=accepted, unknown=unknown))
        assert words in said and "30 秒" in said and said.endswith("。"), said


# --- through the web form -----------------------------------------------------------------------


async def test_the_web_form_says_the_engine_is_busy_with_a_503(
    settings: Settings, quick: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from activities.db import CaseRow
    from engine.web import create_app

    monkeypatch.setattr("engine.desk.WORKER_PROBE", timedelta(seconds=1))
    with Session(get_engine(settings.resolved_database_url())) as s:
        s.add(CaseRow(case_id=CASE, matter_key="k", locality="青山区", channel="visit", office_level="county",
                      title="拖欠工资", rules_version="test", registered_at=datetime(2026, 3, 15, tzinfo=UTC),
                      stage="triaged", unit=UNIT))  # fmt: skip
        s.commit()
    add_user(settings, "qs", StaffRole.unit, unit=UNIT, password="correct-horse-battery", write_token=False)
    handle = ScriptedHandle(failed_task())
    app = create_app(settings, client=ScriptedClient(handle))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as web:
        page = await web.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
        assert token
        data = {"username": "qs", "password": "correct-horse-battery", "next": "/", "csrf_token": token.group(1)}
        assert (await web.post("/login", data=data)).status_code == 303
        home = await web.get("/")
        token = re.search(r'name="csrf_token" value="([^"]*)"', home.text)
        assert token
        form = {"csrf_token": token.group(1), "unit": UNIT, "request_id": "form-1"}
        busy = await web.post(f"/cases/{CASE}/actions/accept", data=form)
    assert busy.status_code == 503
    assert "引擎忙或正在恢复" in busy.text and "没有生效" in busy.text and "FAILED_PRECONDITION" not in busy.text
    assert set(handle.update_ids) == {"accept:form-1"}
    assert refusals(settings) == []


# --- calendar push: the same "not now" answers, for a signal ----------------------------------


async def test_calendar_push_retries_a_case_the_engine_answers_not_now_and_says_why_in_chinese(quick: None) -> None:
    from engine.reports import _push_to

    class Signalled:
        def __init__(self, *answers: BaseException | None) -> None:
            self.answers = list(answers)
            self.sent = 0

        async def signal(self, name: str, arg: Any, *, rpc_timeout: timedelta | None = None) -> None:
            self.sent += 1
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if answer is not None:
                raise answer

    recovering = Signalled(unavailable(), unavailable(), None)
    assert await _push_to(recovering, None, lambda: True) is None and recovering.sent == 3
    gone = Signalled(RPCError("workflow execution already completed", RPCStatusCode.NOT_FOUND, b""))
    assert await _push_to(gone, None, lambda: True) == "案件在推送时已办结，无需推送。"
    down = Signalled(unavailable())
    said = await _push_to(down, None, lambda: False)
    assert said is not None and said.startswith("引擎忙或正在恢复") and down.sent == 1
    wrong = Signalled(RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""))
    said = await _push_to(wrong, None, lambda: True)
    assert said is not None and said.startswith("引擎没有接收（INVALID_ARGUMENT") and wrong.sent == 1
