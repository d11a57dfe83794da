"""Notification adapters against real loopback receivers (HTTP and SMTP); no PII in any notice here."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from activities.notify import (
    LOG_FILE_NAME,
    Delivery,
    FailingNotifier,
    Notice,
    Notifier,
    NotifyError,
    RecordingNotifier,
    SmtpNotifier,
    WebhookNotifier,
    build_notifier,
    message_id,
    read_notifications,
)
from engine.config import Settings
from rules.vocabulary import NotificationTier, NotifyChannel, RecipientRole

PROJECT_DIR = Path(__file__).resolve().parent.parent


def make_notice(key: str = "XF-2026-000123:immediate:principal_leader", **over: Any) -> Notice:
    fields: dict[str, Any] = {
        "idempotency_key": key,
        "case_id": "XF-2026-000123",
        "tier": NotificationTier.immediate,
        "recipient_role": RecipientRole.principal_leader,
        "recipient": "青山区主要领导",
        "channel": NotifyChannel.sms,
        "subject": "高风险信访件 XF-2026-000123",
        "body": "案件 XF-2026-000123《关于小区供暖不达标的反映》，信访人张**，请于30分钟内阅处。",
        "deadline": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    }
    fields.update(over)
    return Notice(**fields)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- HTTP receiver ------------------------------------------------------------------------------


@dataclass
class HttpReceiver:
    url: str
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
            payload = b'{"ok": true}' if receiver.status < 300 else b"receiver is down"
            self.send_response(receiver.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/petition?token=secret-token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


async def test_webhook_posts_notice_json_with_idempotency_key(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    notifier = WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2)
    notice = make_notice()
    delivery = await notifier.send(notice)

    assert delivery.delivered and not delivery.duplicate
    assert delivery.adapter == "webhook" and delivery.channel == NotifyChannel.sms
    assert len(http_receiver.requests) == 1
    request = http_receiver.requests[0]
    assert request["path"] == "/hooks/petition?token=secret-token"
    assert request["headers"]["Idempotency-Key"] == notice.idempotency_key
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = json.loads(request["body"].decode("utf-8"))
    assert body["idempotency_key"] == notice.idempotency_key
    assert body["case_id"] == "XF-2026-000123"
    assert body["tier"] == "immediate" and body["recipient_role"] == "principal_leader"
    assert body["recipient"] == "青山区主要领导" and body["channel"] == "sms"
    assert body["subject"] == notice.subject and body["body"] == notice.body
    assert body["deadline"] == notice.deadline
    assert datetime.fromisoformat(body["delivered_at"]) == delivery.sent_at

    # Operators see it in the same log as the recording adapter; the URL's token never reaches it.
    logged = read_notifications(tmp_path)
    assert [(r["adapter"], r["delivered"], r["idempotency_key"]) for r in logged] == [
        ("webhook", True, notice.idempotency_key)
    ]
    assert "secret-token" not in (tmp_path / LOG_FILE_NAME).read_text(encoding="utf-8")


async def test_webhook_does_not_post_a_delivered_key_again(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    notice = make_notice()
    first = await WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2).send(notice)
    again = await WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2).send(notice)
    assert again.duplicate and again.delivered and again.sent_at == first.sent_at
    assert len(http_receiver.requests) == 1
    other = await WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2).send(
        make_notice("XF-2026-000123:overdue:x")
    )
    assert not other.duplicate and len(http_receiver.requests) == 2


async def test_webhook_500_raises_retryable_and_a_retry_delivers(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    http_receiver.status = 500
    notifier = WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2)
    notice = make_notice()
    with pytest.raises(NotifyError, match="HTTP 500") as info:
        await notifier.send(notice)
    assert info.value.retryable
    assert "secret-token" not in str(info.value)
    assert [r["delivered"] for r in read_notifications(tmp_path)] == [False]

    http_receiver.status = 200  # the failed attempt does not count as a delivery
    delivery = await notifier.send(notice)
    assert delivery.delivered and not delivery.duplicate
    assert len(http_receiver.requests) == 2
    assert {r["headers"]["Idempotency-Key"] for r in http_receiver.requests} == {notice.idempotency_key}
    assert [r["delivered"] for r in read_notifications(tmp_path)] == [False, True]


async def test_webhook_4xx_is_not_retryable(http_receiver: HttpReceiver, tmp_path: Path) -> None:
    http_receiver.status = 422
    with pytest.raises(NotifyError, match="HTTP 422") as info:
        await WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2).send(make_notice())
    assert not info.value.retryable
    http_receiver.status = 429
    with pytest.raises(NotifyError, match="HTTP 429") as info:
        await WebhookNotifier(http_receiver.url, tmp_path, timeout_s=2).send(make_notice())
    assert info.value.retryable


async def test_webhook_unreachable_port_fails_fast(tmp_path: Path) -> None:
    notifier = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", tmp_path, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(NotifyError, match="unreachable|did not answer") as info:
        await notifier.send(make_notice())
    assert time.monotonic() - started < 2
    assert info.value.retryable
    assert read_notifications(tmp_path)[0]["delivered"] is False


async def test_webhook_silent_receiver_times_out(tmp_path: Path) -> None:
    # A socket that listens but never answers: the connection opens, the response never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        notifier = WebhookNotifier(f"http://127.0.0.1:{port}/hook", tmp_path, timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(NotifyError, match="did not answer within 0.3 s"):
            await notifier.send(make_notice())
        assert time.monotonic() - started < 2


# --- Recording adapter --------------------------------------------------------------------------


async def test_recording_is_exactly_once_per_key(tmp_path: Path) -> None:
    notifier = RecordingNotifier(tmp_path)
    notice = make_notice()
    first = await notifier.send(notice)
    second = await notifier.send(notice)
    assert first.delivered and not first.duplicate
    assert second.delivered and second.duplicate and second.sent_at == first.sent_at
    assert notifier.sent == [notice]
    assert len(read_notifications(tmp_path)) == 1
    line = (tmp_path / LOG_FILE_NAME).read_text(encoding="utf-8").splitlines()[0]
    assert "青山区主要领导" in line  # readable UTF-8 for operators, not \u escapes


async def test_recording_is_exactly_once_across_instances(tmp_path: Path) -> None:
    a, b = RecordingNotifier(tmp_path), RecordingNotifier(tmp_path)
    notice = make_notice()
    await a.send(notice)
    assert (await b.send(notice)).duplicate
    assert b.sent == []
    # Concurrent sends of fresh keys through both instances: each key is logged exactly once.
    keys = [f"XF-2026-000123:batch:{i}" for i in range(10)]
    results = await asyncio.gather(*(n.send(make_notice(k)) for k in keys for n in (a, b)))
    assert sum(not r.duplicate for r in results) == len(keys)
    logged = [r["idempotency_key"] for r in read_notifications(tmp_path)]
    assert sorted(logged) == sorted([notice.idempotency_key, *keys])


def test_recording_is_exactly_once_across_processes(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from activities.notify import Notice, RecordingNotifier\n"
        "n = Notice(idempotency_key='XF-2026-000777:immediate:principal_leader', case_id='XF-2026-000777',"
        " tier='immediate', recipient_role='principal_leader', recipient='青山区主要领导', channel='sms',"
        " subject='s', body='b')\n"
        "d = asyncio.run(RecordingNotifier(Path(sys.argv[1])).send(n))\n"
        "print('dup' if d.duplicate else 'sent')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outputs == ["dup", "dup", "dup", "sent"]
    assert len(read_notifications(tmp_path)) == 1


async def test_recording_survives_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE_NAME).write_bytes(b'{"idempotency_key": "torn", "adapt')
    delivery = await RecordingNotifier(tmp_path).send(make_notice())
    assert not delivery.duplicate
    assert [r["idempotency_key"] for r in read_notifications(tmp_path)] == [make_notice().idempotency_key]


async def test_late_notice_says_so(tmp_path: Path) -> None:
    late = make_notice(deadline=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    delivery = await RecordingNotifier(tmp_path).send(late)
    assert "after its deadline" in delivery.detail
    on_time = await RecordingNotifier(tmp_path).send(make_notice("other-key"))
    assert "deadline" not in on_time.detail


def test_notice_masks_identity_and_phone_numbers_and_checks_deadline() -> None:
    # Synthetic digit strings built at run time, shaped like an identity and a mobile number.
    id_like, phone_like = "0" * 17 + "X", "1" + "9" * 10
    notice = make_notice(body=f"证件 {id_like} 电话 {phone_like}", subject=f"回电 {phone_like}")
    assert id_like not in notice.body and phone_like not in notice.body and phone_like not in notice.subject
    with pytest.raises(ValueError, match="ISO 8601"):
        make_notice(deadline="within 30 minutes")
    with pytest.raises(ValueError):
        make_notice(idempotency_key="  ")


def test_read_notifications_without_a_log(tmp_path: Path) -> None:
    assert read_notifications(tmp_path / "nowhere") == []


async def test_failing_notifier_always_raises() -> None:
    notifier = FailingNotifier()
    with pytest.raises(NotifyError, match="unreachable"):
        await notifier.send(make_notice())
    assert notifier.attempts == [make_notice().idempotency_key]


# --- SMTP receiver ------------------------------------------------------------------------------


@dataclass
class SmtpReceiver:
    host: str
    port: int
    rcpt_reply: bytes = b"250 OK"
    messages: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver("127.0.0.1", 0)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: bytes) -> None:
            self.wfile.write(line + b"\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            self.reply(b"220 test-relay ESMTP")
            sender, rcpts = "", []
            while line := self.rfile.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    self.reply(b"250-test-relay")
                    self.reply(b"250 8BITMIME")
                elif verb == b"HELO":
                    self.reply(b"250 test-relay")
                elif verb == b"MAIL":
                    sender = line.decode().split(":", 1)[1].strip()
                    self.reply(b"250 OK")
                elif verb == b"RCPT":
                    rcpts.append(line.decode().split(":", 1)[1].strip())
                    self.reply(receiver.rcpt_reply)
                elif verb == b"DATA":
                    self.reply(b"354 End data with <CR><LF>.<CR><LF>")
                    data = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    receiver.messages.append({"from": sender, "rcpt": rcpts, "data": data})
                    self.reply(b"250 queued")
                elif verb == b"QUIT":
                    self.reply(b"221 bye")
                    return
                else:  # RSET, NOOP
                    self.reply(b"250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


def smtp_notifier(receiver: SmtpReceiver, data_dir: Path) -> SmtpNotifier:
    return SmtpNotifier(receiver.host, receiver.port, "petition-engine@example.org", data_dir, timeout_s=2)


async def test_smtp_sends_mail_with_message_id_from_key(smtp_receiver: SmtpReceiver, tmp_path: Path) -> None:
    notice = make_notice(channel=NotifyChannel.email, recipient="leader-office@example.org")
    delivery = await smtp_notifier(smtp_receiver, tmp_path).send(notice)
    assert delivery.delivered and delivery.adapter == "smtp"

    assert len(smtp_receiver.messages) == 1
    received = smtp_receiver.messages[0]
    assert received["from"] == "<petition-engine@example.org>"
    assert received["rcpt"] == ["<leader-office@example.org>"]
    msg = email.message_from_bytes(received["data"], policy=email.policy.default)
    assert msg["Message-ID"] == message_id(notice.idempotency_key, "petition-engine@example.org")
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["X-Idempotency-Key"] == notice.idempotency_key
    assert msg["Subject"] == notice.subject
    assert msg.get_content().strip() == notice.body

    again = await smtp_notifier(smtp_receiver, tmp_path).send(notice)
    assert again.duplicate and len(smtp_receiver.messages) == 1
    assert [r["adapter"] for r in read_notifications(tmp_path)] == ["smtp"]


async def test_smtp_refusal_raises(smtp_receiver: SmtpReceiver, tmp_path: Path) -> None:
    smtp_receiver.rcpt_reply = b"550 mailbox unavailable"
    notice = make_notice(channel=NotifyChannel.email, recipient="nobody@example.org")
    with pytest.raises(NotifyError, match="refused recipient") as info:
        await smtp_notifier(smtp_receiver, tmp_path).send(notice)
    assert not info.value.retryable
    smtp_receiver.rcpt_reply = b"451 try again later"
    with pytest.raises(NotifyError) as info:
        await smtp_notifier(smtp_receiver, tmp_path).send(notice)
    assert info.value.retryable
    assert smtp_receiver.messages == []


async def test_smtp_needs_an_address_and_a_reachable_server(
    smtp_receiver: SmtpReceiver, tmp_path: Path
) -> None:
    with pytest.raises(NotifyError, match="not an e-mail address") as info:
        await smtp_notifier(smtp_receiver, tmp_path).send(make_notice(channel=NotifyChannel.email))
    assert not info.value.retryable
    down = SmtpNotifier("127.0.0.1", free_port(), "petition-engine@example.org", tmp_path, timeout_s=0.5)
    with pytest.raises(NotifyError, match="unreachable") as info:
        await down.send(make_notice(channel=NotifyChannel.email, recipient="ops@example.org"))
    assert info.value.retryable


# --- build_notifier -----------------------------------------------------------------------------


def settings(tmp_path: Path, **over: Any) -> Settings:
    return Settings(data_dir=tmp_path, **over)


def test_build_notifier_chooses_by_setting(tmp_path: Path) -> None:
    recording = build_notifier(settings(tmp_path))
    assert isinstance(recording, RecordingNotifier) and isinstance(recording, Notifier)
    assert isinstance(build_notifier(settings(tmp_path, notify_adapter="failing")), FailingNotifier)
    hook = build_notifier(
        settings(tmp_path, notify_adapter="Webhook", webhook_url="https://hooks.example.org/x")
    )
    assert isinstance(hook, WebhookNotifier) and hook.timeout_s == 5.0
    mail = build_notifier(
        settings(tmp_path, notify_adapter="smtp", smtp_host="relay.example.org", smtp_port=2525)
    )
    assert isinstance(mail, SmtpNotifier) and (mail.host, mail.port) == ("relay.example.org", 2525)
    # Webhook deployments with a relay send the e-mail channel by SMTP, every other channel by webhook.
    both = settings(
        tmp_path,
        notify_adapter="webhook",
        webhook_url="https://hooks.example.org/x",
        smtp_host="relay.example.org",
    )
    assert isinstance(build_notifier(both, NotifyChannel.email), SmtpNotifier)
    assert isinstance(build_notifier(both, NotifyChannel.sms), WebhookNotifier)
    # Recording never reaches a real mailbox, whatever the channel.
    assert isinstance(
        build_notifier(settings(tmp_path, smtp_host="relay.example.org"), NotifyChannel.email),
        RecordingNotifier,
    )


@pytest.mark.parametrize(
    ("over", "names"),
    [
        ({"notify_adapter": "carrier-pigeon"}, "PETITION_NOTIFY_ADAPTER"),
        ({"notify_adapter": "webhook"}, "PETITION_WEBHOOK_URL"),
        ({"notify_adapter": "webhook", "webhook_url": "ftp://hooks.example.org/x"}, "PETITION_WEBHOOK_URL"),
        ({"notify_adapter": "webhook", "webhook_url": "not a url"}, "PETITION_WEBHOOK_URL"),
        (
            {"notify_adapter": "webhook", "webhook_url": "https://h.example.org", "webhook_timeout_s": 0},
            "PETITION_WEBHOOK_TIMEOUT_S",
        ),
        ({"notify_adapter": "smtp"}, "PETITION_SMTP_HOST"),
    ],
)
def test_build_notifier_misconfiguration_names_the_variable(
    tmp_path: Path, over: dict[str, Any], names: str
) -> None:
    with pytest.raises(ValueError, match=names):
        build_notifier(settings(tmp_path, **over))


def test_delivery_model_roundtrips() -> None:
    d = Delivery(
        idempotency_key="k",
        channel=NotifyChannel.push,
        delivered=True,
        adapter="recording",
        sent_at=datetime.now(UTC),
    )
    assert Delivery.model_validate_json(d.model_dump_json()) == d


async def test_a_follow_up_digest_batch_of_the_same_size_is_sent(tmp_path: Path) -> None:
    from activities.petition import PetitionActivities
    from workflows.models import DigestItem, DigestRequest

    acts = PetitionActivities(Settings(data_dir=tmp_path, notify_adapter="recording"))
    at = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    first = DigestRequest(digest_id="digest-x", unit="青山区人社局", batch_at=at,
                          items=[DigestItem(case_id="XF-20261201-AAAAAAAA", title="甲")])
    follow = first.model_copy(update={"items": [DigestItem(case_id="XF-20261201-BBBBBBBB", title="乙")]})
    a = await acts.send_digest(first)
    b = await acts.send_digest(follow)
    again = await acts.send_digest(first)  # a retried activity: the same batch, the same key
    assert a.delivered and b.delivered and again.delivered
    logged = read_notifications(tmp_path)
    assert len(logged) == 2 and len({r["idempotency_key"] for r in logged}) == 2
    assert ["XF-20261201-AAAAAAAA" in logged[0]["body"], "XF-20261201-BBBBBBBB" in logged[1]["body"]] == [True, True]
