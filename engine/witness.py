"""Witnessing the document log from outside, as Certificate Transparency monitors and Sigstore
witnesses do (`starter.py ledger monitor`).

A witness keeps the last signed tree head (STH) it accepted, in a state file of its own, and on
every check fetches the log's current head and insists that the log only ever grew:

* the head carries a valid Ed25519 signature of the *pinned* key (trust on first use: the first
  check pins the key the log shows, or the one given with ``--public-key``; a later change of key
  is an alarm unless the witness is told ``--accept-new-key``);
* a larger tree comes with a consistency proof (RFC 9162 §2.1.4) from the accepted size to the new
  size, checked with :func:`activities.ledger.verify_consistency` against the root the witness
  stored and the root of the new signed head, never against roots the log reports alongside;
* the same size has the same root; a smaller size is a rollback.

Only a verified head replaces the stored one: an alarm leaves the state as it was (the evidence),
and appends the two conflicting heads and the proof to ``<state>.alarms.jsonl``.

The log is read over HTTP from the engine's web app (``GET {base}/ledger/sth`` and
``GET {base}/ledger/consistency?old=N&new=M``, see :class:`HttpLog`) or directly from a data folder
through :mod:`engine.reports` (:class:`FolderLog`), which never creates anything.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from activities.ledger import EMPTY_ROOT, SignedTreeHead, verify_consistency, verify_sth_signature
from engine.config import Settings

__all__ = [
    "ALARM_LABELS",
    "EXIT_ALARM",
    "CheckResult",
    "FolderLog",
    "HttpLog",
    "LogAlteredError",
    "LogSource",
    "Witness",
    "WitnessError",
    "WitnessState",
    "default_state_path",
    "load_state",
    "parse_public_key",
    "save_state",
    "watch",
]

#: The starter's exit status when the log failed a witness check.
EXIT_ALARM = 3

AlarmKind = Literal["rollback", "fork", "bad-signature", "key-changed", "tampered"]

#: What each alarm is called on an ALARM line (English kind, Chinese gloss).
ALARM_LABELS: dict[str, str] = {
    "rollback": "rollback 回滚",
    "fork": "fork 分叉",
    "bad-signature": "bad-signature 签名无效",
    "key-changed": "key-changed 密钥变更",
    "tampered": "tampered 日志自报被篡改",
}

STATE_VERSION = 1
DEFAULT_TIMEOUT = 10.0


class WitnessError(Exception):
    """A check could not be made (the log is unreachable, did not answer as a log, a bad state file
    or key): nothing was accepted and nothing is alarming yet. The message is a sentence."""


class LogAlteredError(Exception):
    """The log itself, read from its data folder, refused to sign a head: it found itself altered."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _short(hex_text: str, n: int = 16) -> str:
    return f"{hex_text[:n]}…"


def parse_public_key(text: str) -> bytes:
    """The raw 32-byte Ed25519 key from its base64 (as ``/ledger/sth`` shows it); WitnessError if not."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise WitnessError(
            "--public-key must be the log's Ed25519 public key in base64 (32 bytes, as the `public_key` "
            "of /ledger/sth shows it)."
        ) from None
    return raw


# --------------------------------------------------------------------------------------------------
# Where the log is read
# --------------------------------------------------------------------------------------------------


class LogSource(Protocol):
    """A log to witness: its signed head now, and consistency proofs between two of its sizes."""

    #: What the state file is named after and records (a URL, or ``data:`` + a folder).
    source_id: str

    def head(self) -> dict[str, Any]:
        """The JSON of the current signed tree head (`SignedTreeHead` fields, maybe `public_key`)."""
        ...

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        """The JSON of ``engine.reports.ledger_consistency(old, new)`` (at least ``proof``: hex list)."""
        ...

    def close(self) -> None: ...


class HttpLog:
    """The log published by the engine's web app at `base_url` (``/ledger/sth``, ``/ledger/consistency``)."""

    def __init__(
        self, base_url: str, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None
    ) -> None:
        base = base_url.strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WitnessError(
                "--url must be the engine's web address, e.g. https://xinfang.example.gov.cn, "
                f"not {base_url!r}."
            )
        if timeout <= 0:
            raise WitnessError("--timeout must be a positive number of seconds.")
        self.base = base
        self.source_id = base
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def _get(self, path: str, params: dict[str, int] | None = None) -> dict[str, Any]:
        url = f"{self.base}{path}"
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise WitnessError(f"{url} did not answer within {self.timeout:g} seconds.") from None
        except httpx.InvalidURL as exc:
            raise WitnessError(f"{url} is not a usable address ({exc}).") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise WitnessError(f"cannot reach {self.base} ({reason}).") from None
        if response.status_code != 200:
            detail = ""
            try:
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("detail"), str):
                    detail = f": {body['detail']}"
            except ValueError:
                pass
            hint = (
                " (is it the engine's web address?)"
                if response.status_code in (301, 302, 303, 307, 308, 404)
                else ""
            )
            raise WitnessError(f"{url} answered HTTP {response.status_code}{detail}{hint}.")
        try:
            body = response.json()
        except ValueError:
            raise WitnessError(
                f"{url} did not answer JSON (is {self.base} the engine's web address?)."
            ) from None
        if not isinstance(body, dict):
            raise WitnessError(f"{url} did not answer a JSON object.")
        return body

    def head(self) -> dict[str, Any]:
        return self._get("/ledger/sth")

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        return self._get("/ledger/consistency", {"old": old, "new": new})

    def close(self) -> None:
        self._client.close()


class FolderLog:
    """The log in an engine data folder, read through :mod:`engine.reports` (which creates nothing)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source_id = f"data:{Path(settings.data_dir).resolve()}"

    def _call(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from activities.ledger import LedgerTamperedError
        from engine.desk import InputError

        try:
            return fn()
        except InputError as exc:
            raise WitnessError(str(exc)) from None
        except LedgerTamperedError as exc:
            raise LogAlteredError(str(exc)) from None

    def head(self) -> dict[str, Any]:
        from engine.reports import ledger_head

        return self._call(lambda: ledger_head(self.settings))

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        from engine.reports import ledger_consistency

        return self._call(lambda: ledger_consistency(self.settings, old, new))

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------------
# The witness's own state
# --------------------------------------------------------------------------------------------------


class WitnessState(BaseModel):
    """The last head the witness accepted, and the key it pinned."""

    version: int = STATE_VERSION
    source: str
    tree_size: int
    root_hex: str
    timestamp: str
    signature_b64: str
    key_id: str
    public_key_b64: str
    pinned_at: str
    accepted_at: str

    def head(self) -> SignedTreeHead:
        return SignedTreeHead.model_validate(self, from_attributes=True)

    @property
    def public_key(self) -> bytes:
        return base64.b64decode(self.public_key_b64)


def default_state_path(source_id: str) -> Path:
    """``~/.petition-witness/state-<first 16 hex of SHA-256 of the source>.json``."""
    digest = hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:16]
    return Path.home() / ".petition-witness" / f"state-{digest}.json"


def load_state(path: Path) -> WitnessState | None:
    """The accepted head in `path` (None when there is none yet); WitnessError when it is not a
    state file, or its head does not verify with its own pinned key (the file was altered)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WitnessError(f"the witness state {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        state = WitnessState.model_validate_json(text)
    except ValidationError:
        raise WitnessError(
            f"{path} is not a witness state file; name another --state, or move it away to start "
            "afresh (which trusts the log anew)."
        ) from None
    try:
        intact = verify_sth_signature(state.head(), state.public_key)
    except (binascii.Error, ValueError):
        intact = False
    if not intact:
        raise WitnessError(
            f"the head stored in {path} does not verify with the key pinned there: the state file was "
            "altered; restore it from a backup (or move it away to start afresh, trusting the log anew)."
        )
    return state


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, owner-only (0600; a new folder 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: WitnessState) -> None:
    _write_private(path, (state.model_dump_json(indent=2) + "\n").encode("utf-8"))


def _evidence_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name.removesuffix(".json") + ".alarms.jsonl")


# --------------------------------------------------------------------------------------------------
# One check
# --------------------------------------------------------------------------------------------------


class CheckResult(BaseModel):
    """One check: ``ok`` (the head was verified and accepted), ``alarm`` (the log failed the check;
    the state is unchanged) or ``error`` (no check could be made)."""

    status: Literal["ok", "alarm", "error"]
    alarm: AlarmKind | None = None
    message: str
    source: str
    checked_at: str
    tree_size: int | None = None
    root_hex: str | None = None
    timestamp: str | None = None
    key_id: str | None = None
    previous_size: int | None = None
    previous_root_hex: str | None = None
    pinned: bool = False
    proof_hex: list[str] | None = None
    head: dict[str, Any] | None = None
    accepted: dict[str, Any] | None = None

    def line(self) -> str:
        """The human line: time, ok / ALARM / ERROR, size, root prefix, what was checked."""
        if self.status == "alarm":
            return f"{self.checked_at} ALARM {ALARM_LABELS.get(self.alarm or '', self.alarm)}: {self.message}"
        if self.status == "error":
            return f"{self.checked_at} ERROR {self.message}"
        grew = ""
        if (
            self.previous_size is not None
            and self.tree_size is not None
            and self.tree_size > self.previous_size
        ):
            grew = f" (+{self.tree_size - self.previous_size})"
        root = _short(self.root_hex or "")
        return f"{self.checked_at} ok    size {self.tree_size}{grew}  root {root}  {self.message}"

    def exit_status(self) -> int:
        return {"ok": 0, "alarm": EXIT_ALARM, "error": 2}[self.status]


class Witness:
    """Checks one log against the head last accepted in `state_path`.

    `public_key` (raw 32 bytes) is the key to trust; without it the state's pinned key, and on a
    first check the key the log shows (trust on first use). `accept_new_key` lets a head signed by
    another key be accepted (and that key pinned) when it verifies and is consistent with history.
    """

    def __init__(
        self,
        source: LogSource,
        state_path: Path,
        *,
        public_key: bytes | None = None,
        accept_new_key: bool = False,
    ) -> None:
        self.source = source
        self.state_path = Path(state_path)
        self.given_key = public_key
        self.accept_new_key = accept_new_key
        self.state = load_state(self.state_path)
        if (
            self.state is not None
            and public_key is not None
            and public_key != self.state.public_key
            and not accept_new_key
        ):
            raise WitnessError(
                f"{self.state_path} pins the key {_short(self.state.key_id)}, but --public-key gives "
                f"{_short(_key_id(public_key))}; pass --accept-new-key to pin the new one."
            )

    # -- results ------------------------------------------------------------------------------------

    def _result(self, status: Literal["ok", "alarm", "error"], message: str, **fields: Any) -> CheckResult:
        old = self.state
        return CheckResult(
            status=status,
            message=message,
            source=self.source.source_id,
            checked_at=_now(),
            previous_size=old.tree_size if old else None,
            previous_root_hex=old.root_hex if old else None,
            **fields,
        )

    def _alarm(
        self, kind: AlarmKind, message: str, sth: SignedTreeHead | None, proof: list[str] | None = None
    ) -> CheckResult:
        result = self._result(
            "alarm",
            message,
            alarm=kind,
            tree_size=sth.tree_size if sth else None,
            root_hex=sth.root_hex if sth else None,
            timestamp=sth.timestamp if sth else None,
            key_id=sth.key_id if sth else None,
            proof_hex=proof,
            head=sth.model_dump(mode="json") if sth else None,
            accepted=self.state.model_dump(mode="json") if self.state else None,
        )
        self._keep_evidence(result)
        return result

    def _keep_evidence(self, result: CheckResult) -> None:
        """Append the alarm (both heads, the proof) to ``<state>.alarms.jsonl``, once per distinct alarm."""
        path = _evidence_path(self.state_path)
        record = result.model_dump(mode="json")
        fingerprint = hashlib.sha256(
            json.dumps(
                [record["alarm"], record["head"], record["accepted"], record["proof_hex"]], sort_keys=True
            ).encode()
        ).hexdigest()
        record["fingerprint"] = fingerprint
        try:
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            if lines and json.loads(lines[-1]).get("fingerprint") == fingerprint:
                return  # the same alarm again (a watch repeats it every interval): recorded once
        except (OSError, ValueError):
            pass
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError:
            pass  # the ALARM line itself was still printed; evidence is a courtesy

    def _accept(
        self, sth: SignedTreeHead, message: str, *, pinned: bool = False, new_key: bool = False
    ) -> CheckResult:
        now = _now()
        previous = self.state
        state = WitnessState(
            source=self.source.source_id,
            **sth.model_dump(),
            pinned_at=previous.pinned_at if previous is not None and not (pinned or new_key) else now,
            accepted_at=now,
        )
        unchanged = previous is not None and previous.model_dump(exclude={"accepted_at"}) == state.model_dump(
            exclude={"accepted_at"}
        )
        if not unchanged:
            try:
                save_state(self.state_path, state)
            except OSError as exc:  # the head checked out, but it cannot be kept: accept nothing
                why = exc.strerror or type(exc).__name__
                raise WitnessError(f"cannot write the witness state {self.state_path} ({why}).") from None
        result = self._result(
            "ok",
            message,
            tree_size=sth.tree_size,
            root_hex=sth.root_hex,
            timestamp=sth.timestamp,
            key_id=sth.key_id,
            pinned=pinned or new_key,
        )
        if not unchanged:
            self.state = state
        return result

    # -- the check ----------------------------------------------------------------------------------

    def check(self) -> CheckResult:
        """Fetch the head, verify it, prove it extends the accepted one, and accept it (or alarm)."""
        try:
            return self._check()
        except WitnessError as exc:
            return self._result("error", str(exc))
        except LogAlteredError as exc:
            return self._alarm("tampered", f"the log refuses to sign a head over its own data: {exc}", None)

    def _check(self) -> CheckResult:
        answer = self.source.head()
        try:
            sth = SignedTreeHead.model_validate(answer)
        except ValidationError:
            raise WitnessError(f"{self.source.source_id} did not answer a signed tree head.") from None
        old = self.state
        try:
            carried = base64.b64decode(sth.public_key_b64, validate=True)
        except (binascii.Error, ValueError):
            carried = b""

        # 1. Which key must have signed it.
        trusted = self.given_key if self.given_key is not None else (old.public_key if old else None)
        new_key = False
        if trusted is None:
            key = carried  # trust on first use
        elif carried != trusted:
            if self.accept_new_key and self.given_key is None:
                key, new_key = carried, True
            else:
                pinned_what = (
                    "the key given with --public-key" if self.given_key is not None else "the pinned key"
                )
                return self._alarm(
                    "key-changed",
                    f"the log now signs with key {_short(_key_id(carried))}, not {pinned_what} "
                    f"{_short(_key_id(trusted))}"
                    + (f" (pinned {old.pinned_at})" if old and self.given_key is None else "")
                    + ". If its operator announced a new key, check it out of band and run again with "
                    "--accept-new-key.",
                    sth,
                )
        else:
            key = trusted
            new_key = old is not None and key != old.public_key  # --public-key with --accept-new-key

        # 2. The signature.
        try:
            good = len(key) == 32 and verify_sth_signature(sth, key)
        except ValueError:
            good = False
        if not good:
            return self._alarm(
                "bad-signature",
                f"the head for {sth.tree_size} entries (signed at {sth.timestamp}) does not carry a valid "
                f"signature of the key {_short(_key_id(key)) if key else '(none)'}: "
                "it was forged or altered.",
                sth,
            )
        keynote = f"; the new key {_short(sth.key_id)} is pinned (--accept-new-key)" if new_key else ""

        # 3. First sight: pin.
        if old is None:
            how = "given with --public-key" if self.given_key is not None else "trust on first use"
            return self._accept(sth, f"first check: pinned key {_short(sth.key_id)} ({how})", pinned=True)

        # 4. History: only growth.
        new_root = bytes.fromhex(sth.root_hex)
        old_root = bytes.fromhex(old.root_hex)
        then = f"the {old.tree_size} entries it signed at {old.timestamp} (root {_short(old.root_hex)})"
        if sth.tree_size < old.tree_size:
            return self._alarm(
                "rollback",
                f"the log's signed head shows {sth.tree_size} entries (signed at {sth.timestamp}), "
                f"fewer than {then}: entries were removed, or an older copy of the log is being served.",
                sth,
            )
        if sth.tree_size == old.tree_size:
            if new_root != old_root:
                return self._alarm(
                    "fork",
                    f"the log signed two different roots for the same {sth.tree_size} entries: "
                    f"{_short(old.root_hex)} at {old.timestamp} and "
                    f"{_short(sth.root_hex)} at {sth.timestamp}; "
                    "its history was rewritten (the two signed heads are the proof).",
                    sth,
                )
            return self._accept(sth, f"unchanged since {old.timestamp}{keynote}", new_key=new_key)

        proof_hex: list[str] = []
        claimed_old: str | None = None
        if old.tree_size == 0:
            ok = verify_consistency(0, sth.tree_size, old_root, new_root, []) and old_root == EMPTY_ROOT
        else:
            reply = self.source.consistency(old.tree_size, sth.tree_size)
            raw = reply.get("proof")
            if not isinstance(raw, list):
                raise WitnessError(
                    f"{self.source.source_id} did not answer a consistency proof from {old.tree_size} "
                    f"to {sth.tree_size}."
                )
            proof_hex = [str(p) for p in raw]
            claimed = reply.get("old_root")
            claimed_old = claimed if isinstance(claimed, str) else None
            try:
                proof = [bytes.fromhex(p) for p in proof_hex]
                ok = verify_consistency(old.tree_size, sth.tree_size, old_root, new_root, proof)
            except ValueError:
                ok = False
        if not ok:
            also = ""
            if claimed_old is not None and claimed_old.lower() != old.root_hex.lower():
                also = f" It now gives root {_short(claimed_old)} for its first {old.tree_size} entries."
            return self._alarm(
                "fork",
                f"the log cannot prove that its {sth.tree_size} entries (root {_short(sth.root_hex)}, "
                f"signed at {sth.timestamp}) extend {then}: the consistency proof of {len(proof_hex)} "
                f"hashes does not verify, so earlier entries were rewritten.{also}",
                sth,
                proof_hex,
            )
        return self._accept(
            sth,
            f"consistent with size {old.tree_size} (proof of {len(proof_hex)} hashes verified){keynote}",
            new_key=new_key,
        )


# --------------------------------------------------------------------------------------------------
# Watching
# --------------------------------------------------------------------------------------------------


async def watch(
    witness: Witness,
    emit: Callable[[CheckResult], None],
    *,
    interval: float | None = None,
    stop: asyncio.Event | None = None,
    max_checks: int | None = None,
) -> int:
    """Check once (`interval` None), or every `interval` seconds until `stop` is set (Ctrl-C) or
    `max_checks` checks were made; every result goes to `emit`, and checking goes on after an alarm.

    Returns the exit status: 3 if any check alarmed, else 2 if any check could not be made, else 0.
    """
    stop = stop or asyncio.Event()
    alarms = errors = checks = 0
    while True:
        result = await asyncio.to_thread(witness.check)
        checks += 1
        alarms += result.status == "alarm"
        errors += result.status == "error"
        emit(result)
        if interval is None or stop.is_set() or (max_checks is not None and checks >= max_checks):
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            break
        except TimeoutError:
            pass
    return EXIT_ALARM if alarms else 2 if errors else 0
