"""Encrypted payloads: what Temporal stores and shows is ciphertext (AES-256-GCM).

Every client and worker of the engine uses `data_converter(settings)`: the pydantic JSON
converter, then this codec. Workflow inputs, activity inputs and results, update and signal
arguments, query results and failure messages (moved into the encoded attributes) are encrypted
before they leave the process, so histories, `temporal workflow show`, the Web UI and the
server's database hold no personal data. Search attributes are not payloads: they stay readable
and carry no personal data (workflows/models.py SEARCH_ATTRIBUTES).

The key ring is a text file, one key per line, `KEY_ID BASE64_32_BYTES`; the **last** line is the
key that encrypts, every line still decrypts (rotation: `starter.py keys rotate` appends a new
key). It lives in the data folder's `keys/` (mode 0600), or where `PETITION_PAYLOAD_KEY_FILE`
says, or comes from `PETITION_PAYLOAD_KEYS` (`id:base64,id:base64`) for deployments that inject
secrets through the environment. Lose the ring and the running cases cannot be read: back it up
with the ledger key, never into the database (docs/privacy.md).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12


class KeyRingError(RuntimeError):
    """The payload key ring is missing, malformed, or lacks the key a payload names."""


@dataclasses.dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]  # (key id, 32-byte key); the last one encrypts

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the payload key ring holds no key")
        for kid, key in self.keys:
            if len(key) != 32:
                raise KeyRingError(f"payload key '{kid}' is {len(key)} bytes; AES-256 needs 32")

    @property
    def active(self) -> tuple[str, bytes]:
        return self.keys[-1]

    def get(self, kid: str) -> bytes:
        for k, key in self.keys:
            if k == kid:
                return key
        raise KeyRingError(f"a payload was encrypted with key '{kid}', which this key ring does not hold")

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        keys = []
        for n, line in enumerate(text.replace(",", "\n").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kid, sep, b64 = line.replace(":", " ", 1).partition(" ")
            try:
                key = base64.b64decode(b64.strip(), validate=True)
            except ValueError as exc:
                raise KeyRingError(f"{source}, entry {n}: not 'KEY_ID BASE64'") from exc
            if not sep:
                raise KeyRingError(f"{source}, entry {n}: not 'KEY_ID BASE64'")
            keys.append((kid.strip(), key))
        return cls(tuple(keys))

    @classmethod
    def load(cls, path: Path, *, create: bool = True) -> KeyRing:
        """The ring in `path`; on first use (create=True) a new ring with one key, mode 0600."""
        if not path.exists():
            if not create:
                raise KeyRingError(f"no payload key ring at {path}")
            create_secret_file(path, new_key_line().encode("ascii"))
        return cls.parse(path.read_text(encoding="ascii"), str(path))


def create_secret_file(path: Path, content: bytes) -> None:
    """Write a secret once, owner-only (0600, its folder 0700), atomically: a private temporary file
    hard-linked into place, so processes racing on first use all end up with the one that won."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def new_key_line(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    return f"k{stamp}-{secrets.token_hex(2)} {base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}\n"


def append_new_key(path: Path) -> str:
    """Add a key that from now on encrypts (rotation); older keys keep decrypting. Returns its id."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = new_key_line()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as fh:
        fh.write(line)
    os.chmod(path, 0o600)
    return line.split(" ", 1)[0]


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM per payload, the key id in the metadata (and bound as associated data)."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        kid, key = self.ring.active
        aead = AESGCM(key)
        out = []
        for p in payloads:
            nonce = os.urandom(_NONCE)
            sealed = aead.encrypt(nonce, p.SerializeToString(), kid.encode())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # plain (histories recorded before encryption, search attributes)
                continue
            kid = p.metadata[KEY_ID].decode()
            plain = AESGCM(self.ring.get(kid)).decrypt(p.data[:_NONCE], p.data[_NONCE:], kid.encode())
            inner = Payload()
            inner.ParseFromString(plain)
            out.append(inner)
        return out


def data_converter_for(ring: KeyRing) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        # Failure messages and stack traces go into the encoded attributes, so an activity's error
        # text is ciphertext in the history and `LastFailure` too.
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
