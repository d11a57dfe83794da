"""Notification adapters: how a notice leaves the engine (recorded, webhook, e-mail, or a fault drill).

No Temporal imports here: the activity wrapper builds a notifier with `build_notifier` and awaits
`send`. Every adapter is idempotent per `Notice.idempotency_key`:

* every notice that leaves (and every failed attempt of a real adapter) is one JSON line in
  `data_dir/notifications.jsonl`, written under an exclusive `fcntl.flock`, so operators and the
  cockpit see them all (`read_notifications`);
* an adapter that finds a delivered line for the same key *and itself* in that log does not send
  again and answers `duplicate=True` -- across instances and processes sharing the data dir;
* the webhook carries the key in an `Idempotency-Key` header and e-mail in a Message-ID derived
  from it, so the receiver can drop the one repeat that a crash between "sent" and "logged" can cause;
* the webhook is signed (`X-Petition-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
  `f"{t}."` + the body's exact bytes), and `verify_webhook_signature` is the receivers' reference check.

`NotifyError.retryable` tells the wrapper whether a retry can help (network error, 5xx, 429, SMTP 4xx)
or not (the receiver rejected the request, an address that is not one).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import smtplib
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, field_validator

from engine.codec import create_secret_file
from engine.config import Settings
from engine.logs import mask_text
from rules.vocabulary import NotificationTier, NotifyChannel, RecipientRole

LOG_FILE_NAME = "notifications.jsonl"
ADAPTERS = ("recording", "webhook", "smtp", "failing")
_RETRYABLE_HTTP = frozenset({408, 425, 429})
SIGNATURE_HEADER = "X-Petition-Signature"
WEBHOOK_KEY_FILE = Path("keys") / "webhook_hmac.key"  # under the data dir
SIGNATURE_TOLERANCE_S = 300


class Notice(BaseModel):
    """What is sent. Never carries a petitioner's identity or phone number: case id, title, masked name at most.

    As a second line of defence, identity and mainland mobile numbers in `subject` and `body` are masked.
    """

    idempotency_key: str
    case_id: str
    tier: NotificationTier
    recipient_role: RecipientRole
    recipient: str  # "青山区主要领导", an e-mail address, ...
    channel: NotifyChannel
    subject: str
    body: str
    deadline: str | None = None  # ISO instant by which it must leave

    @field_validator("idempotency_key", "case_id", "recipient")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("subject", "body")
    @classmethod
    def _mask(cls, value: str) -> str:
        return mask_text(value)

    @field_validator("deadline")
    @classmethod
    def _iso_instant(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"deadline {value!r} is not an ISO 8601 instant") from exc
        return value

    def deadline_at(self) -> datetime | None:
        """The deadline as an aware datetime (a naive one is taken as UTC)."""
        if self.deadline is None:
            return None
        at = datetime.fromisoformat(self.deadline)
        return at if at.tzinfo else at.replace(tzinfo=UTC)


class Delivery(BaseModel):
    idempotency_key: str
    channel: NotifyChannel
    delivered: bool
    adapter: str
    sent_at: datetime
    detail: str = ""
    duplicate: bool = False


class NotifyError(Exception):
    """A notice could not be delivered; the message is a sentence an operator can act on."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Notifier(Protocol):
    name: str

    async def send(self, notice: Notice) -> Delivery: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _lateness(notice: Notice, sent_at: datetime) -> str:
    deadline = notice.deadline_at()
    if deadline is None or sent_at <= deadline:
        return ""
    return f" Left {int((sent_at - deadline).total_seconds())} s after its deadline {notice.deadline}."


class NotificationLog:
    """`data_dir/notifications.jsonl`: one line per notice, appended under an exclusive flock.

    Each instance remembers the delivered (adapter, key) pairs it has read and the byte offset it
    read up to, so a check reads only what other writers appended since.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOG_FILE_NAME
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}
        self._offset = 0
        self._mutex = threading.Lock()  # guards _seen/_offset between threads of this process

    def _catch_up(self, fh: Any) -> None:
        fh.seek(self._offset)
        data = fh.read()
        end = data.rfind(b"\n") + 1  # a torn last line (crash mid-write) is left for later
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("delivered"):
                key = (str(record.get("adapter")), str(record.get("idempotency_key")))
                self._seen.setdefault(key, record)
        self._offset += end

    def _open_locked(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        fh = os.fdopen(fd, "r+b")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        return fh

    def find(self, adapter: str, key: str) -> dict[str, Any] | None:
        """The delivered record of `key` by `adapter`, if any process has logged one."""
        with self._mutex, self._open_locked() as fh:
            self._catch_up(fh)
            return self._seen.get((adapter, key))

    def append_once(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Append `record` unless a delivered line for its (adapter, key) exists; then return that line.

        Failed attempts (`delivered` false) are always appended and never count as a delivery.
        """
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        key = (str(record["adapter"]), str(record["idempotency_key"]))
        with self._mutex, self._open_locked() as fh:
            self._catch_up(fh)
            if record.get("delivered") and key in self._seen:
                return self._seen[key]
            size = os.fstat(fh.fileno()).st_size
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line  # terminate a torn line so this one stays parseable
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            return None


def _record(notice: Notice, delivery: Delivery) -> dict[str, Any]:
    return {
        **notice.model_dump(mode="json"),
        "adapter": delivery.adapter,
        "delivered": delivery.delivered,
        "sent_at": delivery.sent_at.isoformat(),
        "detail": delivery.detail,
    }


def _duplicate(notice: Notice, adapter: str, previous: dict[str, Any]) -> Delivery:
    sent_at = previous.get("sent_at")
    return Delivery(
        idempotency_key=notice.idempotency_key,
        channel=notice.channel,
        delivered=True,
        adapter=adapter,
        sent_at=datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else _now(),
        detail=f"Already delivered by {adapter} at {sent_at}; not sent again.",
        duplicate=True,
    )


class RecordingNotifier:
    """The default adapter: the notice is delivered by being logged (and kept in `.sent` for tests)."""

    name = "recording"

    def __init__(self, data_dir: Path) -> None:
        self.log = NotificationLog(data_dir)
        self.sent: list[Notice] = []

    async def send(self, notice: Notice) -> Delivery:
        delivery = Delivery(
            idempotency_key=notice.idempotency_key,
            channel=notice.channel,
            delivered=True,
            adapter=self.name,
            sent_at=_now(),
        )
        delivery.detail = f"Recorded to {self.log.path.name}.{_lateness(notice, delivery.sent_at)}"
        previous = await asyncio.to_thread(self.log.append_once, _record(notice, delivery))
        if previous is not None:
            return _duplicate(notice, self.name, previous)
        self.sent.append(notice)
        return delivery


class _LoggedSender:
    """Shared flow of the real adapters: skip if logged as delivered, send, log the outcome."""

    name = "base"

    def __init__(self, data_dir: Path) -> None:
        self.log = NotificationLog(data_dir)

    async def _transmit(self, notice: Notice, sent_at: datetime) -> str:
        raise NotImplementedError

    async def send(self, notice: Notice) -> Delivery:
        previous = await asyncio.to_thread(self.log.find, self.name, notice.idempotency_key)
        if previous is not None:
            return _duplicate(notice, self.name, previous)
        sent_at = _now()
        delivery = Delivery(
            idempotency_key=notice.idempotency_key,
            channel=notice.channel,
            delivered=False,
            adapter=self.name,
            sent_at=sent_at,
        )
        try:
            detail = await self._transmit(notice, sent_at)
        except NotifyError as exc:
            delivery.detail = str(exc)
            await asyncio.to_thread(self.log.append_once, _record(notice, delivery))
            raise
        delivery.delivered = True
        delivery.detail = detail + _lateness(notice, sent_at)
        previous = await asyncio.to_thread(self.log.append_once, _record(notice, delivery))
        if previous is not None:  # another process sent it concurrently; the receiver saw the same key
            delivery.duplicate = True
            delivery.detail += " Another sender had already logged this key."
        return delivery


def _redact_url(url: str) -> str:
    """scheme://host[:port]/path -- query strings and user info often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# --- webhook signatures ---------------------------------------------------------------------------


def webhook_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / WEBHOOK_KEY_FILE


def load_or_create_webhook_secret(data_dir: Path) -> bytes:
    """The webhook HMAC key of this data dir: `keys/webhook_hmac.key`, created on first use.

    The file holds 32 random bytes as 64 hex characters (mode 0600, its folder 0700); the HMAC key is
    that hex text itself (ASCII), so a receiver configures the same string it would put in
    PETITION_WEBHOOK_SECRET. Creation is atomic (a private temporary file hard-linked into place), so
    processes racing on first use all end up with the one key that won.
    """
    path = webhook_key_path(data_dir)
    create_secret_file(path, secrets.token_hex(32).encode("ascii") + b"\n")
    secret = path.read_bytes().strip()
    if not secret:
        raise ValueError(
            f"{path} is empty; delete it to have a new webhook key made, or set PETITION_WEBHOOK_SECRET."
        )
    return secret


def webhook_secret(settings: Settings) -> bytes:
    """The HMAC key webhooks are signed with: PETITION_WEBHOOK_SECRET (UTF-8) if set, else the key file."""
    if settings.webhook_secret:
        return settings.webhook_secret.encode("utf-8")
    return load_or_create_webhook_secret(settings.data_dir)


def _signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Petition-Signature` value for `body`: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_signature(secret, t, body)}"


def verify_webhook_signature(
    secret: bytes,
    body: bytes,
    header: str,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Does `header` (an `X-Petition-Signature` value) sign exactly `body` with `secret`, recently?

    The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`: any one matching `v1` is enough (a
    sender rotating keys may send one per key), compared in constant time. A timestamp more than
    `tolerance_s` seconds from `now` (default: the clock) either way is refused, so a captured
    request cannot be replayed later. Malformed headers are refused, never raised on.
    """
    if not isinstance(header, str) or not isinstance(body, bytes | bytearray) or not secret:
        return False
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            candidates.append(value.strip().lower())
    if len(timestamps) != 1 or not candidates or not timestamps[0].isascii() or not timestamps[0].isdigit():
        return False
    t = int(timestamps[0])
    current = time.time() if now is None else now
    if abs(current - t) > tolerance_s:
        return False
    expected = _signature(bytes(secret), t, bytes(body))
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii", "replace"))
    return matched


class WebhookNotifier(_LoggedSender):
    """POST the notice JSON (plus `delivered_at`) with `Idempotency-Key` and `X-Petition-Signature` headers.

    `secret` is the HMAC key (PETITION_WEBHOOK_SECRET); without one, the data dir's key file is used
    (created on first send).
    """

    name = "webhook"

    def __init__(
        self, url: str, data_dir: Path, timeout_s: float = 5.0, secret: bytes | str | None = None
    ) -> None:
        super().__init__(data_dir)
        self.url = url
        self.timeout_s = timeout_s
        self.data_dir = Path(data_dir)
        self._secret: bytes | None = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._where = _redact_url(url)

    def secret(self) -> bytes:
        if not self._secret:
            self._secret = load_or_create_webhook_secret(self.data_dir)
        return self._secret

    async def _transmit(self, notice: Notice, sent_at: datetime) -> str:
        payload = {**notice.model_dump(mode="json"), "delivered_at": sent_at.isoformat()}
        body = json.dumps(payload, ensure_ascii=False).encode()
        try:
            secret = await asyncio.to_thread(self.secret)
        except (OSError, ValueError) as exc:
            raise NotifyError(
                f"Webhook signing key {webhook_key_path(self.data_dir)} cannot be read or created "
                f"({type(exc).__name__}: {exc}); set PETITION_WEBHOOK_SECRET or fix the keys folder.",
                retryable=False,
            ) from exc
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": notice.idempotency_key,
            "User-Agent": "petition-engine-notify/0.1",
            # Signed at sending time (a retry is signed afresh), over the exact bytes sent below.
            SIGNATURE_HEADER: sign_webhook(secret, body),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise NotifyError(
                f"Webhook {self._where} did not answer within {self.timeout_s:g} s ({type(exc).__name__})."
            ) from exc
        except httpx.HTTPError as exc:
            raise NotifyError(f"Webhook {self._where} is unreachable: {type(exc).__name__}: {exc}.") from exc
        status = response.status_code
        if not 200 <= status < 300:
            snippet = mask_text(response.text[:200]).strip()
            retryable = status >= 500 or status in _RETRYABLE_HTTP
            raise NotifyError(
                f"Webhook {self._where} answered HTTP {status}"
                + (f" ({snippet})" if snippet else "")
                + (
                    "; will retry."
                    if retryable
                    else "; the receiver rejected the notice, retrying will not help."
                ),
                retryable=retryable,
            )
        return f"Webhook {self._where} answered HTTP {status}."


def message_id(idempotency_key: str, sender: str) -> str:
    """A stable Message-ID for a key, so a resent e-mail is recognisably the same message."""
    domain = sender.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<{digest}.notice@{domain}>"


class SmtpNotifier(_LoggedSender):
    """E-mail through an SMTP relay (plain SMTP, no auth), sent in a worker thread."""

    name = "smtp"

    def __init__(self, host: str, port: int, sender: str, data_dir: Path, timeout_s: float = 10.0) -> None:
        super().__init__(data_dir)
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s

    def build_message(self, notice: Notice, sent_at: datetime) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = notice.recipient
        msg["Subject"] = notice.subject
        msg["Date"] = format_datetime(sent_at)
        msg["Message-ID"] = message_id(notice.idempotency_key, self.sender)
        msg["X-Idempotency-Key"] = notice.idempotency_key
        msg["X-Petition-Case"] = notice.case_id
        msg["X-Petition-Tier"] = notice.tier.value
        msg.set_content(notice.body)
        return msg

    def _send_sync(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(msg)

    async def _transmit(self, notice: Notice, sent_at: datetime) -> str:
        if "@" not in parseaddr(notice.recipient)[1]:
            raise NotifyError(
                f"Recipient {notice.recipient!r} of {notice.idempotency_key} is not an e-mail address; "
                "map the role to an address before sending by e-mail.",
                retryable=False,
            )
        where = f"SMTP server {self.host}:{self.port}"
        try:
            await asyncio.to_thread(self._send_sync, self.build_message(notice, sent_at))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise NotifyError(
                f"{where} refused recipient {notice.recipient} ({', '.join(map(str, codes))}).",
                retryable=any(400 <= c < 500 for c in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            detail = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise NotifyError(
                f"{where} refused the message: {exc.smtp_code} {mask_text(detail)}.",
                retryable=not 500 <= exc.smtp_code < 600,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"{where} is unreachable: {type(exc).__name__}: {exc}.") from exc
        return f"Accepted by {where}."


class FailingNotifier:
    """For tests and fault drills: every send fails as if the channel were down."""

    name = "failing"

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def send(self, notice: Notice) -> Delivery:
        self.attempts.append(notice.idempotency_key)
        raise NotifyError(
            f"Notification channel {notice.channel.value} is unreachable "
            f"(failing adapter: fault drill for {notice.idempotency_key})."
        )


def build_notifier(settings: Settings, channel: NotifyChannel | None = None) -> Notifier:
    """The notifier `settings.notify_adapter` names.

    With adapter "webhook" and `PETITION_SMTP_HOST` set, the e-mail channel goes by SMTP and every
    other channel by the webhook; "recording" and "failing" apply to every channel (so a dev or test
    setup never reaches a real mailbox).
    """
    adapter = settings.notify_adapter.strip().lower()
    if adapter not in ADAPTERS:
        raise ValueError(
            f"PETITION_NOTIFY_ADAPTER={settings.notify_adapter!r} is not one of {', '.join(ADAPTERS)}."
        )
    if adapter == "recording":
        return RecordingNotifier(settings.data_dir)
    if adapter == "failing":
        return FailingNotifier()
    if settings.webhook_timeout_s <= 0:
        raise ValueError(
            f"PETITION_WEBHOOK_TIMEOUT_S must be positive (got {settings.webhook_timeout_s}); "
            "it is also the SMTP network timeout."
        )
    if adapter == "smtp" or (channel == NotifyChannel.email and settings.smtp_host):
        if not settings.smtp_host:
            raise ValueError("PETITION_NOTIFY_ADAPTER=smtp needs PETITION_SMTP_HOST (the relay's host name).")
        if not 0 < settings.smtp_port < 65536:
            raise ValueError(f"PETITION_SMTP_PORT={settings.smtp_port} is not a TCP port.")
        return SmtpNotifier(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.data_dir,
            timeout_s=settings.webhook_timeout_s,
        )
    url = settings.webhook_url
    if not url:
        raise ValueError("PETITION_NOTIFY_ADAPTER=webhook needs PETITION_WEBHOOK_URL (an http(s) URL).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"PETITION_WEBHOOK_URL={_redact_url(url)!r} is not an http(s) URL with a host.")
    return WebhookNotifier(
        url, settings.data_dir, timeout_s=settings.webhook_timeout_s, secret=settings.webhook_secret or None
    )


def read_notifications(data_dir: Path) -> list[dict[str, Any]]:
    """Every logged notice and failed attempt, oldest first (for the starter and the cockpit)."""
    path = Path(data_dir) / LOG_FILE_NAME
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        data = fh.read()
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
