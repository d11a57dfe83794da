"""Privacy and access, the operations side: signed webhooks, read-only `verify`/`ledger`, a `--keep`
folder that is not another engine's, and failing activities' errors with the personal data masked.

No Temporal server here: the scenario check refuses before one would start, and the masking
interceptor is run around plain coroutines, with the SDK's own log line and failure converter.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import temporalio.activity
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, DefaultPayloadConverter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from activities.masking import MaskedActivityError, MaskingInterceptor, mask_error_message, names_in
from activities.notify import (
    SIGNATURE_HEADER,
    Notice,
    WebhookNotifier,
    build_notifier,
    load_or_create_webhook_secret,
    sign_webhook,
    verify_webhook_signature,
    webhook_key_path,
)
from engine.config import Settings
from engine.desk import InputError
from rules.vocabulary import NotificationTier, NotifyChannel, RecipientRole
from workflows.models import Petitioner

NAME = "张三丰"
ID_NUMBER = "110101199001011237"
PHONE = "13800000000"
PII = (NAME, ID_NUMBER, PHONE)


def _no_pii(text: str) -> None:
    for value in PII:
        assert value not in text, f"{value!r} leaked into: {text!r}"


# --------------------------------------------------------------------------------------------
# 1. Signed webhooks
# --------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.requests.append({"headers": dict(self.headers), "body": raw})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/petition"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()


def _notice(key: str = "XF-2026-000123:immediate:principal_leader") -> Notice:
    return Notice(
        idempotency_key=key,
        case_id="XF-2026-000123",
        tier=NotificationTier.immediate,
        recipient_role=RecipientRole.principal_leader,
        recipient="青山区主要领导",
        channel=NotifyChannel.sms,
        subject="高风险信访件 XF-2026-000123",
        body="案件 XF-2026-000123，请于30分钟内阅处。",
        deadline=(datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    )


async def test_webhook_is_signed_over_the_exact_bytes_sent(receiver: Receiver, tmp_path: Path) -> None:
    secret = "whsec-test-0123456789"
    await WebhookNotifier(receiver.url, tmp_path, timeout_s=2, secret=secret).send(_notice())

    (request,) = receiver.requests
    body: bytes = request["body"]
    header = request["headers"][SIGNATURE_HEADER]
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert json.loads(body)["case_id"] == "XF-2026-000123"
    t = int(header.split(",")[0].removeprefix("t="))
    assert abs(time.time() - t) < 60 and header.startswith(f"t={t},v1=")
    assert verify_webhook_signature(secret.encode(), body, header)
    # No key file is made when the secret is configured.
    assert not webhook_key_path(tmp_path).exists()

    # One changed byte, another secret, an old or a future timestamp: refused.
    assert not verify_webhook_signature(
        secret.encode(), body.replace(b"XF-2026-000123", b"XF-2026-000124"), header
    )
    assert not verify_webhook_signature(b"another secret", body, header)
    assert not verify_webhook_signature(secret.encode(), body, header, now=t + 301)
    assert verify_webhook_signature(secret.encode(), body, header, now=t + 299)
    assert not verify_webhook_signature(secret.encode(), body, header, now=t - 301)
    # A replayed old request, re-signed with a fresh timestamp by someone without the secret, fails too.
    v1 = header.split("v1=")[1]
    assert not verify_webhook_signature(secret.encode(), body, f"t={t + 10},v1={v1}", now=t + 10)


def test_signature_header_parsing_and_rotation() -> None:
    body = b'{"case_id": "XF-1"}'
    old, new = b"old-secret", b"new-secret"
    now = 1_800_000_000
    signed_old = sign_webhook(old, body, now)
    signed_new = sign_webhook(new, body, now)
    both = f"{signed_old},v1={signed_new.split('v1=')[1]}"  # a sender rotating keys signs with each
    assert verify_webhook_signature(old, body, both, now=now)
    assert verify_webhook_signature(new, body, both, now=now)
    assert not verify_webhook_signature(b"third", body, both, now=now)
    assert verify_webhook_signature(
        old, body, f" t={now} , v1={signed_old.split('v1=')[1].upper()} ", now=now
    )
    for bad in (
        "",
        "t=abc,v1=00",
        f"v1={signed_old.split('v1=')[1]}",
        f"t={now}",
        f"t={now},t={now},v1=00",
        f"t=-{now},v1=00",
        "garbage",
        f"t={now},v1=é",
    ):
        assert not verify_webhook_signature(old, body, bad, now=now), bad
    assert not verify_webhook_signature(b"", body, sign_webhook(b"", body, now), now=now)


async def test_webhook_key_file_is_made_once_owner_only(receiver: Receiver, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, notify_adapter="webhook", webhook_url=receiver.url, webhook_secret=None
    )
    notifier = build_notifier(settings)
    assert isinstance(notifier, WebhookNotifier)
    await notifier.send(_notice("k-1"))

    key_file = webhook_key_path(tmp_path)
    assert key_file == tmp_path / "keys" / "webhook_hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    secret = key_file.read_bytes().strip()
    assert len(secret) == 64 and int(secret, 16) >= 0  # 32 random bytes, hex
    (request,) = receiver.requests
    assert verify_webhook_signature(secret, request["body"], request["headers"][SIGNATURE_HEADER])
    # Later senders (this process or another) use the same key; it is not remade.
    assert load_or_create_webhook_secret(tmp_path) == secret
    await build_notifier(settings).send(_notice("k-2"))
    assert verify_webhook_signature(
        secret, receiver.requests[1]["body"], receiver.requests[1]["headers"][SIGNATURE_HEADER]
    )

    # With PETITION_WEBHOOK_SECRET set, that secret signs.
    configured = Settings(
        data_dir=tmp_path, notify_adapter="webhook", webhook_url=receiver.url, webhook_secret="s3"
    )
    await build_notifier(configured).send(_notice("k-3"))
    assert verify_webhook_signature(
        b"s3", receiver.requests[2]["body"], receiver.requests[2]["headers"][SIGNATURE_HEADER]
    )


# --------------------------------------------------------------------------------------------
# 2. verify / ledger never create a database, nor a data folder
# --------------------------------------------------------------------------------------------


def _document(tmp_path: Path) -> Path:
    doc = tmp_path / "elsewhere" / "letter.txt"
    doc.parent.mkdir()
    doc.write_bytes("风险提示函\n内容\n".encode())
    return doc


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else ["<absent>"]


def test_verify_and_ledger_refuse_an_empty_data_folder_and_create_nothing(tmp_path: Path) -> None:
    from engine.reports import ledger_consistency, ledger_head, verify_file

    doc = _document(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = Settings(data_dir=empty, database_url=None)
    with pytest.raises(
        InputError, match=r"中没有引擎数据（.*petitions\.db 处没有数据库）；未创建任何文件"
    ):
        verify_file(settings, doc)
    with pytest.raises(InputError, match="未创建任何文件"):
        ledger_head(settings)
    with pytest.raises(InputError, match="未创建任何文件"):
        ledger_consistency(settings, 1, 2)
    assert list(empty.iterdir()) == []

    missing = tmp_path / "no" / "such" / "dir"
    settings = Settings(data_dir=missing, database_url=None)
    with pytest.raises(InputError, match=r"不存在，其中没有引擎数据；未创建任何文件"):
        verify_file(settings, doc)
    with pytest.raises(InputError, match="未创建任何文件"):
        ledger_head(settings)
    assert not (tmp_path / "no").exists()


def test_verify_refuses_a_database_without_a_log_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    from engine.reports import ledger_head, verify_file

    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "petitions.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE unrelated (x INTEGER)")
    db.commit()
    db.close()
    before = (_tree(data), (data / "petitions.db").read_bytes())
    with pytest.raises(InputError, match="中没有文书存证日志"):
        verify_file(Settings(data_dir=data, database_url=None), _document(tmp_path))
    with pytest.raises(InputError, match="中没有文书存证日志"):
        ledger_head(Settings(data_dir=data, database_url=None))
    assert (_tree(data), (data / "petitions.db").read_bytes()) == before

    (data / "petitions.db").write_bytes(b"not a database at all")
    with pytest.raises(InputError, match="无法作为引擎的数据库读取"):
        verify_file(Settings(data_dir=data, database_url=None), tmp_path / "elsewhere" / "letter.txt")


def test_verify_names_a_missing_file_or_a_folder(tmp_path: Path) -> None:
    from engine.reports import verify_file

    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    with pytest.raises(InputError, match=r"nope\.txt：文件不存在。"):
        verify_file(settings, tmp_path / "nope.txt")
    with pytest.raises(InputError, match="是文件夹；请指定其中的一份文书文件"):
        verify_file(settings, tmp_path)
    assert not (tmp_path / "data").exists()


def test_verify_still_verifies_a_real_data_folder(tmp_path: Path) -> None:
    import hashlib

    from activities.db import dispose_engines, get_engine
    from activities.documents import footer
    from activities.ledger import Ledger, make_entry, verification_code
    from engine.reports import ledger_consistency, ledger_head, verify_file

    data = tmp_path / "data"
    settings = Settings(data_dir=data, database_url=None)
    try:
        ledger = Ledger(get_engine(settings.resolved_database_url()), settings.resolved_ledger_key_file())
        docs = []
        for n in range(3):
            body = f"处理意见书 {n}\n".encode()
            digest = hashlib.sha256(body).hexdigest()
            entry = make_entry(
                document_sha256=digest,
                kind="handling_opinion",
                case_id="XF-1",
                issued_at=datetime(2026, 1, 5, tzinfo=UTC),
            )
            index = ledger.append(entry, f"XF-1:doc:{n}").index
            doc = data / "documents" / f"doc-{n}.txt"
            doc.parent.mkdir(parents=True, exist_ok=True)
            doc.write_bytes(body + footer(verification_code(index, digest), digest))
            docs.append(doc)
        ledger.signed_head()
        ok, message, detail = verify_file(settings, docs[1])
        assert ok, message
        assert detail is not None and detail["index"] == 1
        forged = tmp_path / "forged.txt"
        forged.write_bytes(docs[1].read_bytes().replace("处理意见书".encode(), "处理意见".encode()))
        assert verify_file(settings, forged)[0] is False
        assert ledger_head(settings)["tree_size"] == 3
        assert ledger_consistency(settings, 1, 3)["new_size"] == 3

        # The log's signing key gone: a read does not make a new one (it would sign nothing true).
        key = settings.resolved_ledger_key_file()
        key.rename(key.with_suffix(".moved"))
        with pytest.raises(InputError, match="签名密钥 .* 缺失"):
            ledger_head(settings)
        with pytest.raises(InputError, match="签名密钥 .* 缺失"):
            verify_file(settings, docs[0])
        assert not key.exists()
        assert verify_file(settings, forged)[0] is False  # an unknown document needs no key to be refused
    finally:
        dispose_engines()


# --------------------------------------------------------------------------------------------
# 3. scenario --keep refuses another engine's data folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mark", ["petitions.db", "documents/", "keys/", "ledger_ed25519.pem", "notifications.jsonl"]
)
async def test_scenario_keep_refuses_a_data_folder_before_starting(
    tmp_path: Path, mark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.scenario as scenario_mod

    async def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the test server was started")

    monkeypatch.setattr(scenario_mod, "start_test_server", no_server)
    scenario, intake = scenario_mod.load_scenario(
        Path(__file__).parent / "scenarios" / "high-risk-ladder.json"
    )
    keep = tmp_path / "kept"
    keep.mkdir()
    (keep / mark.rstrip("/")).mkdir() if mark.endswith("/") else (keep / mark).write_bytes(b"x")
    before = _tree(keep)
    with pytest.raises(
        InputError, match=rf"--keep {keep}: already holds a data folder .*nothing was changed"
    ):
        await scenario_mod.run_scenario(scenario, intake, keep=keep)
    assert _tree(keep) == before


async def test_scenario_keep_accepts_a_new_or_unrelated_folder_up_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.scenario as scenario_mod

    class Stop(Exception):
        pass

    async def no_server(*args: Any, **kwargs: Any) -> Any:
        raise Stop

    monkeypatch.setattr(scenario_mod, "start_test_server", no_server)
    scenario, intake = scenario_mod.load_scenario(
        Path(__file__).parent / "scenarios" / "high-risk-ladder.json"
    )
    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "README.txt").write_text("mine")
    for keep in (tmp_path / "new", unrelated):
        with pytest.raises(Stop):
            await scenario_mod.run_scenario(scenario, intake, keep=keep)
    file_keep = tmp_path / "a-file"
    file_keep.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder; nothing was changed"):
        await scenario_mod.run_scenario(scenario, intake, keep=file_keep)


# --------------------------------------------------------------------------------------------
# 4. Failing activities' errors are masked before logs and LastFailure
# --------------------------------------------------------------------------------------------


class _Run(ActivityInboundInterceptor):
    """The end of the chain: call the activity function (as the SDK's own inbound does)."""

    def __init__(self) -> None:  # no next
        pass

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await input.fn(*input.args)


def _integrity_error() -> sa.exc.IntegrityError:
    """A real one: a duplicate petitioner through an engine that shows its parameters."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE petitioners (name TEXT, id_number TEXT UNIQUE, phone TEXT)")
    try:
        with engine.begin() as conn:
            for _ in range(2):
                conn.exec_driver_sql(
                    "INSERT INTO petitioners (name, id_number, phone) VALUES (?, ?, ?)",
                    (NAME, ID_NUMBER, PHONE),
                )
    except sa.exc.IntegrityError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no IntegrityError")


async def _run_like_the_sdk(fn: Any, *args: Any) -> tuple[BaseException, Failure]:
    """Run `fn` through the interceptor, then do what the SDK's activity worker does with a failure:
    log "Completing activity as failed" with the traceback, and convert it for the server."""
    interceptor = MaskingInterceptor().intercept_activity(_Run())
    try:
        await interceptor.execute_activity(
            ExecuteActivityInput(fn=fn, args=list(args), executor=None, headers={})
        )
    except Exception as err:
        temporalio.activity.logger.warning("Completing activity as failed", exc_info=True)
        failure = Failure()
        DefaultFailureConverter().to_failure(err, DefaultPayloadConverter(), failure)
        return err, failure
    raise AssertionError("the activity did not fail")


def _check_failure(failure: Failure) -> None:
    _no_pii(failure.message)
    _no_pii(failure.stack_trace)
    assert not failure.HasField("cause"), "the original error travelled as the failure's cause"


async def test_a_database_error_is_masked_in_the_error_the_log_and_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = _integrity_error()
    assert ID_NUMBER in str(original) and NAME in str(original)  # what would have leaked

    async def register_case() -> None:
        raise original

    with caplog.at_level(logging.DEBUG, logger="temporalio.activity"):
        err, failure = await _run_like_the_sdk(register_case)

    assert isinstance(err, ApplicationError) and isinstance(err, MaskedActivityError)
    assert err.type == "IntegrityError" and not err.non_retryable
    assert "UNIQUE constraint failed: petitioners.id_number" in err.message
    assert "[SQL" not in err.message and "[parameters" not in err.message
    assert err.__cause__ is None and err.__context__ is None and err.__suppress_context__
    _no_pii(err.message)
    _check_failure(failure)
    assert "Completing activity as failed" in caplog.text
    assert "IntegrityError" in caplog.text  # the type and the traceback's frames stay for debugging
    _no_pii(caplog.text)


async def test_a_plain_error_with_personal_data_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    from workflows.models import Intake

    intake = Intake.model_validate(
        {
            "channel": "visit",
            "office_level": "county",
            "locality": "青山区",
            "title": "讨薪",
            "content": "欠薪",
            "petitioners": [{"name": NAME, "id_number": ID_NUMBER, "phone": PHONE}],
        }
    )

    async def register_case(req: Intake) -> None:
        person = req.petitioners[0]
        try:
            int(person.name)
        except ValueError:
            # An error chained to another that carries the values too.
            raise ValueError(
                f"cannot register {person.name} ({person.id_number}, tel {person.phone})"
            ) from KeyError(f"{person.name}/{person.id_number}")

    with caplog.at_level(logging.DEBUG, logger="temporalio.activity"):
        err, failure = await _run_like_the_sdk(register_case, intake)

    assert isinstance(err, ApplicationError) and err.type == "ValueError" and not err.non_retryable
    assert err.message == "cannot register 某某 ([身份证号], tel [电话])"
    _no_pii(err.message)
    _check_failure(failure)
    assert "ValueError" in caplog.text
    _no_pii(caplog.text)


async def test_an_application_error_keeps_its_type_retry_and_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def save_case(p: Petitioner) -> None:
        try:
            raise _integrity_error()
        except sa.exc.IntegrityError as exc:
            raise ApplicationError(
                f"case of {p.name} not saved: {exc}",
                {"case_id": "XF-1"},
                type="NotSaved",
                non_retryable=True,
                next_retry_delay=timedelta(seconds=3),
            ) from exc

    with caplog.at_level(logging.DEBUG, logger="temporalio.activity"):
        err, failure = await _run_like_the_sdk(
            save_case, Petitioner(name=NAME, id_number=ID_NUMBER, phone=PHONE)
        )

    assert isinstance(err, ApplicationError)
    assert err.type == "NotSaved" and err.non_retryable and err.details == ({"case_id": "XF-1"},)
    assert err.next_retry_delay == timedelta(seconds=3)
    assert err.message.startswith("case of 某某 not saved: (sqlite3.IntegrityError) UNIQUE constraint failed")
    _no_pii(err.message)
    _check_failure(failure)
    assert (
        failure.application_failure_info.type == "NotSaved" and failure.application_failure_info.non_retryable
    )
    _no_pii(caplog.text)


async def test_clean_results_and_cancellation_pass_through() -> None:
    interceptor = MaskingInterceptor().intercept_activity(_Run())

    async def fine(x: int) -> int:
        return x + 1

    async def cancelled() -> None:
        raise CancelledError("Cancelled")

    async def complete_async() -> None:
        temporalio.activity.raise_complete_async()

    assert (
        await interceptor.execute_activity(ExecuteActivityInput(fn=fine, args=[1], executor=None, headers={}))
        == 2
    )
    with pytest.raises(CancelledError):
        await interceptor.execute_activity(
            ExecuteActivityInput(fn=cancelled, args=[], executor=None, headers={})
        )
    with pytest.raises(temporalio.activity._CompleteAsyncError):
        await interceptor.execute_activity(
            ExecuteActivityInput(fn=complete_async, args=[], executor=None, headers={})
        )


def test_mask_error_message_cuts_and_strips() -> None:
    long = f"{ID_NUMBER} " + "很长的说明" * 300
    masked = mask_error_message(long)
    assert len(masked) <= 500 and masked.startswith("[身份证号]") and masked.endswith("…")
    pg = (
        'duplicate key value violates unique constraint "petitioners_id_number_key"\n'
        f"DETAIL:  Key (name, id_number)=({NAME}, {ID_NUMBER}) already exists.\n"
        "[SQL: INSERT INTO petitioners (name) VALUES (%(name)s)]\n[parameters: {'name': '" + NAME + "'}]"
    )
    masked = mask_error_message(pg)
    assert masked.endswith("Key (name, id_number)=(…) already exists.")
    _no_pii(masked)
    record = {"petitioners": [{"name": NAME, "phone": PHONE}], "deadline": {"name": "handling"}}
    assert names_in([record, Petitioner(name="李四")]) == {NAME, "李四"}
