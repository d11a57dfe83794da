"""Signed tree heads: the bytes the log's Ed25519 key signs, and how anyone checks a head.

The signature covers the byte string ::

    b"petition-ledger-sth-v1" || 0x00 || uint64_be(tree_size) || root (32 bytes)
        || uint16_be(len(timestamp)) || timestamp (ASCII, ISO 8601 UTC, e.g. 2025-03-01T08:00:00.000Z)

(:func:`sth_signing_input`; ``engine/static/verify.js`` builds the same bytes in the browser). The key
id is the hex SHA-256 of the raw 32-byte public key (:func:`key_id_of`). Checking a head needs no
database: :func:`verify_sth_signature` against a key the verifier trusts.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from activities.ledger.merkle import HASH_SIZE

__all__ = [
    "STH_CONTEXT",
    "SignedTreeHead",
    "key_id_of",
    "raw_public_key",
    "sth_signing_input",
    "verify_sth_signature",
]

STH_CONTEXT = b"petition-ledger-sth-v1"


def sth_signing_input(tree_size: int, root: bytes, timestamp: str) -> bytes:
    """The exact bytes a signed tree head signs (see the module docstring)."""
    if len(root) != HASH_SIZE:
        raise ValueError("root must be 32 bytes")
    ts = timestamp.encode("ascii")
    return STH_CONTEXT + b"\x00" + tree_size.to_bytes(8, "big") + root + len(ts).to_bytes(2, "big") + ts


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SignedTreeHead(BaseModel):
    model_config = ConfigDict(frozen=True)

    tree_size: int
    root_hex: str
    timestamp: str
    signature_b64: str
    public_key_b64: str
    key_id: str

    def signing_input(self) -> bytes:
        return sth_signing_input(self.tree_size, bytes.fromhex(self.root_hex), self.timestamp)


def verify_sth_signature(sth: SignedTreeHead, public_key: Ed25519PublicKey | bytes) -> bool:
    """Check a signed tree head against a key the verifier trusts (never the key the head carries)."""
    key = Ed25519PublicKey.from_public_bytes(public_key) if isinstance(public_key, bytes) else public_key
    try:
        root = bytes.fromhex(sth.root_hex)
        signature = base64.b64decode(sth.signature_b64, validate=True)
        carried = base64.b64decode(sth.public_key_b64, validate=True)
    except ValueError:
        return False
    if len(root) != HASH_SIZE or sth.tree_size < 0:
        return False
    if carried != raw_public_key(key) or sth.key_id != key_id_of(key):
        return False
    try:
        key.verify(signature, sth_signing_input(sth.tree_size, root, sth.timestamp))
    except (InvalidSignature, UnicodeEncodeError, OverflowError):
        return False
    return True
