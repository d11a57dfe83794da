"""The tamper-evident document log: an append-only Merkle tree in the style of RFC 9162 (CT v2).

Every issued document (agreement, answer, letter, notice, delivery receipt) is recorded as one *entry*:
canonical JSON naming the SHA-256 of the document's exact bytes, its kind, the case and the issue time,
never any personal data of the petitioner. Anyone holding a copy can then be shown that it is entry
N of the log, with an inclusion proof up to a root hash signed by the log's Ed25519 key; two signed
heads can be shown to be one an extension of the other with a consistency proof.

Tree math, exactly as RFC 9162 §2.1 (SHA-256):

* leaf hash ``MTH({d}) = SHA-256(0x00 || d)``; interior node ``SHA-256(0x01 || left || right)``;
  ``MTH({}) = SHA-256("")``; a list of n > 1 items splits at k, the largest power of two < n.
* inclusion proofs: PATH(m, D[n]) (§2.1.3.1), checked by :func:`verify_inclusion` (§2.1.3.2);
  consistency proofs: PROOF(m, D[n]) (§2.1.4.1), checked by :func:`verify_consistency` (§2.1.4.2).

Storage (SQLModel tables on their own metadata, :data:`ledger_metadata`, in the engine's database):

* ``ledger_state`` one row: the tree size. Appends lock it (``SELECT ... FOR UPDATE`` on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite), so indexes are dense, ordered and never duplicated, across threads
  and processes.
* ``ledger_entries`` index -> entry bytes, leaf hash, idempotency key (unique), document hash, time.
* ``ledger_nodes`` (level, index) -> hash of every *complete* subtree of 2**level leaves starting at
  leaf ``index * 2**level`` (level >= 1; level 0 is the leaf hash in ``ledger_entries``). Every
  subtree that the RFC recursion asks for is either such a perfect subtree or a right fold of
  O(log n) of them, so a root or a proof at any past size is O(log n) stored hashes, fetched in one
  query.
* ``ledger_signed_heads`` every signed tree head handed out.

Signed tree head: the Ed25519 signature covers the byte string ::

    b"petition-ledger-sth-v1" || 0x00 || uint64_be(tree_size) || root (32 bytes)
        || uint16_be(len(timestamp)) || timestamp (ASCII, ISO 8601 UTC, e.g. 2025-03-01T08:00:00.000Z)

(:func:`sth_signing_input`). The key id is the hex SHA-256 of the raw 32-byte public key. The log
never signs a head over a root that disagrees with the latest head it signed before (checked by a
consistency proof) or whose stored nodes do not match their children.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from engine.codec import create_secret_file

__all__ = [
    "EMPTY_ROOT",
    "STH_CONTEXT",
    "AppendResult",
    "InMemoryTree",
    "Ledger",
    "LedgerError",
    "LedgerTamperedError",
    "SignedTreeHead",
    "VerificationResult",
    "create_ledger_tables",
    "document_of_entry",
    "leaf_hash",
    "ledger_metadata",
    "load_or_create_signing_key",
    "make_entry",
    "node_hash",
    "split_point",
    "sth_signing_input",
    "verification_code",
    "verify_consistency",
    "verify_document",
    "verify_inclusion",
    "verify_sth_signature",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------
# RFC 9162 §2.1 hashing
# --------------------------------------------------------------------------------------------------

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_PLACEHOLDER = bytes(HASH_SIZE)

#: A function giving the hash of the perfect subtree of 2**level leaves starting at leaf index * 2**level.
Perfect = Callable[[int, int], bytes]
NodeKey = tuple[int, int]


def leaf_hash(entry: bytes) -> bytes:
    """MTH of a one-item list: SHA-256(0x00 || entry)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n >= 2)."""
    if n < 2:
        raise ValueError("split_point needs n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


def _range_hash(start: int, end: int, perfect: Perfect) -> bytes:
    """MTH(D[start:end]), for the ranges the RFC recursion produces from D[0:n]."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return perfect(n.bit_length() - 1, start // n)
    k = split_point(n)
    return node_hash(_range_hash(start, start + k, perfect), _range_hash(start + k, end, perfect))


def _path(m: int, start: int, end: int, perfect: Perfect) -> list[bytes]:
    """PATH(m, D[start:end]) of RFC 9162 §2.1.3.1, m counted from start."""
    n = end - start
    if n <= 1:
        return []
    k = split_point(n)
    if m < k:
        return _path(m, start, start + k, perfect) + [_range_hash(start + k, end, perfect)]
    return _path(m - k, start + k, end, perfect) + [_range_hash(start, start + k, perfect)]


def _subproof(m: int, start: int, end: int, complete: bool, perfect: Perfect) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1."""
    n = end - start
    if m == n:
        return [] if complete else [_range_hash(start, end, perfect)]
    k = split_point(n)
    if m <= k:
        return _subproof(m, start, start + k, complete, perfect) + [_range_hash(start + k, end, perfect)]
    return _subproof(m - k, start + k, end, False, perfect) + [_range_hash(start, start + k, perfect)]


def _root_of(size: int, perfect: Perfect) -> bytes:
    return _range_hash(0, size, perfect)


def _inclusion_of(index: int, size: int, perfect: Perfect) -> list[bytes]:
    if not 0 <= index < size:
        raise IndexError(f"leaf {index} is not in a tree of size {size}")
    return _path(index, 0, size, perfect)


def _consistency_of(old: int, new: int, perfect: Perfect) -> list[bytes]:
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    return _subproof(old, 0, new, True, perfect)


def _frontier_keys(size: int) -> list[NodeKey]:
    """The perfect subtrees whose right fold is MTH(D[0:size]), largest (leftmost) first."""
    keys: list[NodeKey] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def _ancestor_keys(index: int, size: int) -> list[NodeKey]:
    """The leaf and every complete subtree above it in a tree of `size` leaves, bottom up."""
    keys: list[NodeKey] = [(0, index)]
    level = 1
    while ((index >> level) + 1) << level <= size:
        keys.append((level, index >> level))
        level += 1
    return keys


def _needed(fn: Callable[[Perfect], object]) -> set[NodeKey]:
    """Which perfect subtrees `fn` reads (its control flow never depends on the hash values)."""
    keys: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        keys.add((level, index))
        return _PLACEHOLDER

    fn(record)
    return keys


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show the leaf with hash `leaf_hash` at `index` under `root`?"""
    if not 0 <= index < tree_size:
        return False
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(r, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (new_size, new_root) an append-only extension of (old_size, old_root)?

    The RFC defines proofs for 0 < old_size < new_size; the two trivial cases are accepted with an
    empty proof: equal sizes with equal roots, and the empty tree (root SHA-256("")) before anything.
    """
    if old_size < 0 or new_size < old_size:
        return False
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and hmac.compare_digest(old_root, new_root)
    if old_size == 0:
        return not proof and hmac.compare_digest(old_root, EMPTY_ROOT)
    if not proof:  # step 1
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)  # step 7


class InMemoryTree:
    """The same tree held in lists (level -> hashes of its complete subtrees): tests, benchmarks, tools."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> InMemoryTree:
        tree = cls()
        level = list(hashes)
        tree.levels = [level]
        while len(level) >= 2:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            tree.levels.append(level)
        return tree

    @classmethod
    def from_entries(cls, entries: Iterable[bytes]) -> InMemoryTree:
        return cls.from_leaf_hashes(leaf_hash(e) for e in entries)

    def append(self, entry: bytes) -> int:
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, h: bytes) -> int:
        index = len(self.levels[0])
        self.levels[0].append(h)
        level, pos = 0, index
        while pos & 1:
            parent = node_hash(self.levels[level][pos - 1], self.levels[level][pos])
            level += 1
            pos >>= 1
            if len(self.levels) == level:
                self.levels.append([])
            self.levels[level].append(parent)
        return index

    def size(self) -> int:
        return len(self.levels[0])

    def _perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def _size(self, tree_size: int | None) -> int:
        if tree_size is None:
            return self.size()
        if not 0 <= tree_size <= self.size():
            raise ValueError(f"tree size {tree_size} is beyond the tree's {self.size()} leaves")
        return tree_size

    def root(self, tree_size: int | None = None) -> bytes:
        return _root_of(self._size(tree_size), self._perfect)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        return _inclusion_of(index, self._size(tree_size), self._perfect)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return _consistency_of(old, self._size(new), self._perfect)


# --------------------------------------------------------------------------------------------------
# Entries, verification codes, signed-head bytes
# --------------------------------------------------------------------------------------------------

ENTRY_VERSION = 1
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EXTRA_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_RESERVED_KEYS = frozenset({"v", "document_sha256", "kind", "case_id", "issued_at"})


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_entry(
    document_sha256: str,
    kind: str,
    case_id: str,
    issued_at: datetime,
    extra: dict[str, str] | None = None,
) -> bytes:
    """The entry recorded for an issued document: canonical JSON (sorted keys, no spaces, UTF-8).

    ``{"v":1,"document_sha256":…,"kind":…,"case_id":…,"issued_at":ISO-8601 UTC,"template_version":…}``
    plus the string pairs of `extra` (``template_version`` is taken from `extra`, null when absent).
    Never put a petitioner's personal data in here: the log is append-only and shown to anyone.
    """
    sha = document_sha256.lower()
    if not _SHA256_HEX.fullmatch(sha):
        raise ValueError("document_sha256 must be 64 hex digits")
    if not kind or not isinstance(kind, str):
        raise ValueError("kind must be a non-empty string")
    if not isinstance(case_id, str) or not case_id:
        raise ValueError("case_id must be a non-empty string")
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        raise ValueError(
            "issued_at must be timezone-aware (a permanent record cannot hold an ambiguous time)"
        )
    record: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "document_sha256": sha,
        "kind": kind,
        "case_id": case_id,
        "issued_at": issued_at.astimezone(UTC).isoformat(),
        "template_version": None,
    }
    for key, value in (extra or {}).items():
        if key in _RESERVED_KEYS or not _EXTRA_KEY.fullmatch(key):
            raise ValueError(f"extra key {key!r} is reserved or not a lower-case identifier")
        if not isinstance(value, str):
            raise ValueError(f"extra value for {key!r} must be a string")
        record[key] = value
    return _canonical_json(record)


def document_of_entry(entry: bytes) -> str | None:
    """The document SHA-256 an entry names, or None when it is not a document entry."""
    try:
        record = json.loads(entry.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    sha = record.get("document_sha256")
    if isinstance(sha, str) and _SHA256_HEX.fullmatch(sha):
        return sha
    return None


def verification_code(index: int, document_sha256: str) -> str:
    """The short code printed on a document, e.g. ``L17-3f2a9c1b``: entry index + first 8 hex digits."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return f"L{index}-{document_sha256[:8].lower()}"


STH_CONTEXT = b"petition-ledger-sth-v1"


def sth_signing_input(tree_size: int, root: bytes, timestamp: str) -> bytes:
    """The exact bytes a signed tree head signs (see the module docstring)."""
    if len(root) != HASH_SIZE:
        raise ValueError("root must be 32 bytes")
    ts = timestamp.encode("ascii")
    return STH_CONTEXT + b"\x00" + tree_size.to_bytes(8, "big") + root + len(ts).to_bytes(2, "big") + ts


def _key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class AppendResult(BaseModel):
    """Where an entry landed. `tree_size` is the size just after it was appended (index + 1)."""

    model_config = ConfigDict(frozen=True)

    index: int
    leaf_hash: str
    tree_size: int
    replayed: bool = Field(default=False, description="True when the idempotency key was already recorded.")


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


class VerificationResult(BaseModel):
    genuine: bool
    message: str
    document_sha256: str
    index: int | None = None
    verification_code: str | None = None
    tree_size: int | None = None
    root_hex: str | None = None
    proof_hex: list[str] = Field(default_factory=list)
    signed_head: SignedTreeHead | None = None


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
    if carried != _raw_public(key) or sth.key_id != _key_id(key):
        return False
    try:
        key.verify(signature, sth_signing_input(sth.tree_size, root, sth.timestamp))
    except (InvalidSignature, UnicodeEncodeError, OverflowError):
        return False
    return True


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the log's Ed25519 key (PEM, PKCS#8), creating it with mode 0o600 on first use.

    Creation is atomic (write a private temporary file, hard-link it into place), so processes that
    race on first use all end up with the one key that won.
    """
    path = Path(path)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        create_secret_file(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} does not hold an Ed25519 private key")
    return key


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


class _LedgerModel(SQLModel, registry=registry()):
    """Base of the ledger tables: their own metadata, apart from the case tables."""


class LedgerState(_LedgerModel, table=True):
    __tablename__ = "ledger_state"

    id: int = SQLField(default=1, primary_key=True)
    tree_size: int = SQLField(default=0, sa_type=sa.BigInteger, nullable=False)


class LedgerEntry(_LedgerModel, table=True):
    __tablename__ = "ledger_entries"

    idx: int = SQLField(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    leaf_hash: bytes = SQLField(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    entry: bytes = SQLField(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    document_sha256: str | None = SQLField(default=None, max_length=64, index=True)
    idempotency_key: str = SQLField(sa_column=sa.Column(sa.String(255), nullable=False, unique=True))
    created_at: datetime = SQLField(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class LedgerNode(_LedgerModel, table=True):
    __tablename__ = "ledger_nodes"

    level: int = SQLField(sa_column=sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False))
    idx: int = SQLField(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = SQLField(sa_column=sa.Column(sa.LargeBinary, nullable=False))


class LedgerSignedHead(_LedgerModel, table=True):
    __tablename__ = "ledger_signed_heads"

    id: int | None = SQLField(default=None, primary_key=True)
    tree_size: int = SQLField(sa_type=sa.BigInteger, nullable=False, index=True)
    root: bytes = SQLField(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    timestamp: str = SQLField(max_length=64)
    signature: bytes = SQLField(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    key_id: str = SQLField(max_length=64)


ledger_metadata = _LedgerModel.metadata
_state = cast(sa.Table, LedgerState.__table__)  # type: ignore[attr-defined]
_entries = cast(sa.Table, LedgerEntry.__table__)  # type: ignore[attr-defined]
_nodes = cast(sa.Table, LedgerNode.__table__)  # type: ignore[attr-defined]
_heads = cast(sa.Table, LedgerSignedHead.__table__)  # type: ignore[attr-defined]


def create_ledger_tables(engine: sa.Engine) -> None:
    """Create the ledger tables (only those) and their one state row; safe to call again or concurrently."""
    for attempt in range(5):
        try:
            ledger_metadata.create_all(engine)
            break
        except sa.exc.DBAPIError:  # another process created them between check and create
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if conn.execute(sa.select(_state.c.id).where(_state.c.id == 1)).first() is None:
                    conn.execute(sa.insert(_state).values(id=1, tree_size=0))
            return
        except sa.exc.DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


# --------------------------------------------------------------------------------------------------
# The log
# --------------------------------------------------------------------------------------------------


class LedgerError(Exception):
    """The log cannot do what was asked."""


class LedgerTamperedError(LedgerError):
    """The stored log does not match itself or what it signed before; the message says how."""


def _describe(key: NodeKey) -> str:
    level, index = key
    if level == 0:
        return f"the hash of entry {index}"
    first = index << level
    return f"the stored hash over entries {first}-{first + (1 << level) - 1}"


_CHUNK = 400
_RETRY_SECONDS = 120.0


class Ledger:
    """The append-only document log in the engine's database, with its Ed25519 signing key.

    Thread-safe; any number of processes may share one database.
    """

    def __init__(self, engine: sa.Engine, key_path: Path, *, create_tables: bool = True) -> None:
        self.engine = engine
        self.key_path = Path(key_path)
        self._dialect = engine.dialect.name
        self._key: Ed25519PrivateKey | None = None
        self._key_lock = threading.Lock()
        if create_tables:
            create_ledger_tables(engine)

    # -- keys ---------------------------------------------------------------------------------------

    def _signing_key(self) -> Ed25519PrivateKey:
        with self._key_lock:
            if self._key is None:
                self._key = load_or_create_signing_key(self.key_path)
            return self._key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._signing_key().public_key()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(_raw_public(self.public_key)).decode("ascii")

    @property
    def key_id(self) -> str:
        return _key_id(self.public_key)

    # -- transactions -------------------------------------------------------------------------------

    def _transient(self, exc: sa.exc.DBAPIError) -> bool:
        if self._dialect == "sqlite":
            text = str(exc.orig).lower()
            return "locked" in text or "busy" in text
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return code in {"40001", "40P01", "55P03"}

    def _retrying(self, work: Callable[[], T]) -> T:
        deadline = time.monotonic() + _RETRY_SECONDS
        delay = 0.002
        while True:
            try:
                return work()
            except sa.exc.DBAPIError as exc:
                if not self._transient(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.2)

    def _serialised(self, work: Callable[[sa.Connection, int], T]) -> T:
        """Run `work(conn, tree_size)` holding the log's write lock, and commit."""

        def attempt() -> T:
            with self.engine.connect() as conn:
                if self._dialect == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif self._dialect == "postgresql":
                    conn.execution_options(isolation_level="READ COMMITTED")
                row = conn.execute(
                    sa.select(_state.c.tree_size).where(_state.c.id == 1).with_for_update()
                ).first()
                if row is None:
                    raise LedgerError(
                        "the ledger tables are not initialised: call create_ledger_tables(engine)"
                    )
                size = int(row[0])
                top = conn.execute(sa.select(sa.func.max(_entries.c.idx))).scalar()
                if (top if top is not None else -1) != size - 1:
                    raise LedgerTamperedError(
                        f"the log records {size} entries but its last entry is number {top}; refusing to append"
                    )
                result = work(conn, size)
                conn.commit()
                return result

        return self._retrying(attempt)

    # -- appends ------------------------------------------------------------------------------------

    def append(self, entry: bytes, idempotency_key: str) -> AppendResult:
        """Append one entry exactly once per idempotency key (a repeat returns the first result)."""
        return self.append_many([(entry, idempotency_key)])[0]

    def append_many(self, items: list[tuple[bytes, str]]) -> list[AppendResult]:
        """Append several entries in one transaction, in order; results line up with `items`."""
        for entry, key in items:
            if not isinstance(entry, bytes | bytearray):
                raise TypeError("an entry must be bytes")
            if not isinstance(key, str) or not key or len(key) > 255:
                raise ValueError("an idempotency key must be a non-empty string of at most 255 characters")
        if not items:
            return []
        return self._serialised(lambda conn, size: self._append_locked(conn, size, items))

    def _append_locked(
        self, conn: sa.Connection, size: int, items: list[tuple[bytes, str]]
    ) -> list[AppendResult]:
        known: dict[str, AppendResult] = {}
        keys = list(dict.fromkeys(key for _, key in items))
        for i in range(0, len(keys), _CHUNK):
            rows = conn.execute(
                sa.select(_entries.c.idx, _entries.c.idempotency_key, _entries.c.leaf_hash).where(
                    _entries.c.idempotency_key.in_(keys[i : i + _CHUNK])
                )
            )
            for idx, key, lh in rows:
                known[key] = AppendResult(
                    index=idx, leaf_hash=bytes(lh).hex(), tree_size=idx + 1, replayed=True
                )

        frontier_keys = _frontier_keys(size)
        stored = self._fetch(conn, set(frontier_keys))
        stack: list[bytes] = []
        for key in frontier_keys:
            if key not in stored:
                raise LedgerTamperedError(f"{_describe(key)} is missing; refusing to append")
            stack.append(stored[key])

        now = datetime.now(UTC)
        entry_rows: list[dict[str, Any]] = []
        node_rows: list[dict[str, Any]] = []
        results: list[AppendResult] = []
        n = size
        for raw, key in items:
            if key in known:
                results.append(known[key])
                continue
            entry = bytes(raw)
            h = leaf_hash(entry)
            index = n
            n += 1
            entry_rows.append(
                {
                    "idx": index,
                    "leaf_hash": h,
                    "entry": entry,
                    "document_sha256": document_of_entry(entry),
                    "idempotency_key": key,
                    "created_at": now,
                }
            )
            stack.append(h)
            level, pos = 0, index
            while pos & 1:
                right = stack.pop()
                left = stack.pop()
                parent = node_hash(left, right)
                level += 1
                pos >>= 1
                node_rows.append({"level": level, "idx": pos, "hash": parent})
                stack.append(parent)
            result = AppendResult(index=index, leaf_hash=h.hex(), tree_size=index + 1)
            results.append(result)
            known[key] = result.model_copy(update={"replayed": True})

        if entry_rows:
            conn.execute(sa.insert(_entries), entry_rows)
            if node_rows:
                conn.execute(sa.insert(_nodes), node_rows)
            conn.execute(sa.update(_state).where(_state.c.id == 1).values(tree_size=n))
        return results

    # -- reads --------------------------------------------------------------------------------------

    def _fetch(self, conn: sa.Connection, keys: set[NodeKey]) -> dict[NodeKey, bytes]:
        """Stored hashes of perfect subtrees: level 0 from the entries, higher levels from the nodes."""
        found: dict[NodeKey, bytes] = {}
        leaves = sorted(i for level, i in keys if level == 0)
        inner = sorted(k for k in keys if k[0] > 0)
        for i in range(0, len(leaves), _CHUNK):
            rows = conn.execute(
                sa.select(_entries.c.idx, _entries.c.leaf_hash).where(
                    _entries.c.idx.in_(leaves[i : i + _CHUNK])
                )
            )
            for idx, h in rows:
                found[(0, idx)] = bytes(h)
        for i in range(0, len(inner), _CHUNK):
            by_level: dict[int, list[int]] = {}
            for level, idx in inner[i : i + _CHUNK]:
                by_level.setdefault(level, []).append(idx)
            # one (level = ? AND idx IN (...)) term per level: both SQLite and PostgreSQL use the primary key
            where = sa.or_(
                *(sa.and_(_nodes.c.level == lv, _nodes.c.idx.in_(ids)) for lv, ids in by_level.items())
            )
            node_rows = conn.execute(sa.select(_nodes.c.level, _nodes.c.idx, _nodes.c.hash).where(where))
            for level, idx, h in node_rows:
                found[(level, idx)] = bytes(h)
        return found

    def _compute(self, conn: sa.Connection, fn: Callable[[Perfect], T]) -> tuple[T, set[NodeKey]]:
        """Run a tree computation on stored hashes, fetched in one pass; also say which were used."""
        keys = _needed(fn)
        stored = self._fetch(conn, keys)

        def lookup(level: int, index: int) -> bytes:
            try:
                return stored[(level, index)]
            except KeyError:
                raise LedgerTamperedError(f"{_describe((level, index))} is missing from the log") from None

        return fn(lookup), keys

    def _current_size(self, conn: sa.Connection) -> int:
        size = conn.execute(sa.select(_state.c.tree_size).where(_state.c.id == 1)).scalar()
        if size is None:
            raise LedgerError("the ledger tables are not initialised: call create_ledger_tables(engine)")
        return int(size)

    def _resolve(self, conn: sa.Connection, tree_size: int | None) -> int:
        current = self._current_size(conn)
        if tree_size is None:
            return current
        if not 0 <= tree_size <= current:
            raise ValueError(f"tree size {tree_size} is beyond the log's {current} entries")
        return tree_size

    def size(self) -> int:
        with self.engine.connect() as conn:
            return self._current_size(conn)

    def root(self, tree_size: int | None = None) -> bytes:
        """MTH of the first `tree_size` entries (default: all)."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, tree_size)
            return self._compute(conn, lambda p: _root_of(n, p))[0]

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:tree_size]) (RFC 9162 §2.1.3.1)."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, tree_size)
            return self._compute(conn, lambda p: _inclusion_of(index, n, p))[0]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1); empty when old is 0 or equals new."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, new)
            return self._compute(conn, lambda p: _consistency_of(old, n, p))[0]

    def entry(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(_entries.c.entry).where(_entries.c.idx == index)).scalar()
        if raw is None:
            raise IndexError(f"the log has no entry {index}")
        return bytes(raw)

    def stored_leaf_hash(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(_entries.c.leaf_hash).where(_entries.c.idx == index)).scalar()
        if raw is None:
            raise IndexError(f"the log has no entry {index}")
        return bytes(raw)

    def find_by_document(self, sha256_hex: str) -> list[int]:
        """Indexes of the entries naming this document hash, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_entries.c.idx)
                .where(_entries.c.document_sha256 == sha256_hex.lower())
                .order_by(_entries.c.idx)
            )
            return [int(r[0]) for r in rows]

    # -- signed tree heads --------------------------------------------------------------------------

    def signed_head(self, tree_size: int | None = None) -> SignedTreeHead:
        """Sign and store the head at `tree_size` (default: now).

        Refuses (:class:`LedgerTamperedError`) when a stored hash used for the root does not match its
        children, or the root is not consistent with the latest head signed before.
        """
        key = self._signing_key()
        with self.engine.connect() as conn:
            n = self._resolve(conn, tree_size)
            root, used = self._compute(conn, lambda p: _root_of(n, p))
            problems = self._check(conn, used)
            if problems:
                raise LedgerTamperedError(problems[0])
            last = conn.execute(sa.select(_heads).order_by(_heads.c.id.desc()).limit(1)).mappings().first()
            if last is not None:
                self._check_against(conn, last, n, root)
                # The tree has not grown since the last head and its root still checks out: that
                # head is still true, so reading (e.g. every `verify`) does not write a new one.
                if int(last["tree_size"]) == n and bytes(last["root"]) == root and self.verify_signed_head(self._head_model(last)):
                    return self._head_model(last)
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        signature = key.sign(sth_signing_input(n, root, timestamp))
        sth = SignedTreeHead(
            tree_size=n,
            root_hex=root.hex(),
            timestamp=timestamp,
            signature_b64=base64.b64encode(signature).decode("ascii"),
            public_key_b64=self.public_key_b64,
            key_id=self.key_id,
        )

        def store() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(_heads).values(
                        tree_size=n, root=root, timestamp=timestamp, signature=signature, key_id=sth.key_id
                    )
                )

        self._retrying(store)
        return sth

    def _head_model(self, row: Any) -> SignedTreeHead:
        return SignedTreeHead(
            tree_size=int(row["tree_size"]),
            root_hex=bytes(row["root"]).hex(),
            timestamp=row["timestamp"],
            signature_b64=base64.b64encode(bytes(row["signature"])).decode("ascii"),
            public_key_b64=self.public_key_b64,
            key_id=row["key_id"],
        )

    def _check_against(self, conn: sa.Connection, head: Any, n: int, root: bytes) -> None:
        """Raise unless (n, root) and the stored head are consistent and the head's signature holds."""
        old = self._head_model(head)
        what = f"the head signed at {old.timestamp} (tree size {old.tree_size})"
        if not self.verify_signed_head(old):
            raise LedgerTamperedError(f"{what} no longer carries a valid signature")
        old_size, old_root = old.tree_size, bytes(head["root"])
        if old_size <= n:
            proof = self._compute(conn, lambda p: _consistency_of(old_size, n, p))[0]
            ok = verify_consistency(old_size, n, old_root, root, proof)
        else:
            if old_size > self._current_size(conn):
                raise LedgerTamperedError(f"{what} covers entries that are no longer in the log")
            proof = self._compute(conn, lambda p: _consistency_of(n, old_size, p))[0]
            ok = verify_consistency(n, old_size, root, old_root, proof)
        if not ok:
            raise LedgerTamperedError(f"the log's current hashes are not consistent with {what}")

    def verify_signed_head(
        self, sth: SignedTreeHead, public_key: Ed25519PublicKey | bytes | None = None
    ) -> bool:
        """Signature check against `public_key`, by default this log's own key."""
        return verify_sth_signature(sth, public_key if public_key is not None else self.public_key)

    def signed_heads(self) -> list[SignedTreeHead]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_heads).order_by(_heads.c.id)).mappings().all()
        return [self._head_model(r) for r in rows]

    # -- audits -------------------------------------------------------------------------------------

    def _check(self, conn: sa.Connection, keys: Iterable[NodeKey]) -> list[str]:
        """One-level audit of some stored hashes: each against its children; leaves against their entries."""
        keys = set(keys)
        inner = {k for k in keys if k[0] > 0}
        children = {(lv - 1, 2 * i + d) for lv, i in inner for d in (0, 1)}
        stored = self._fetch(conn, keys | children)
        leaves = sorted(i for lv, i in keys | children if lv == 0)
        problems: list[str] = []
        for i in range(0, len(leaves), _CHUNK):
            rows = conn.execute(
                sa.select(_entries.c.idx, _entries.c.entry, _entries.c.leaf_hash).where(
                    _entries.c.idx.in_(leaves[i : i + _CHUNK])
                )
            )
            for idx, entry, lh in rows:
                if leaf_hash(bytes(entry)) != bytes(lh):
                    problems.append(
                        f"Entry {idx} no longer matches its recorded hash: the entry or its hash was altered."
                    )
        for key in sorted(keys | children):
            if key not in stored:
                problems.append(f"{_describe(key).capitalize()} is missing from the log.")
        for lv, i in sorted(inner):
            node, left, right = (
                stored.get((lv, i)),
                stored.get((lv - 1, 2 * i)),
                stored.get((lv - 1, 2 * i + 1)),
            )
            if node is not None and left is not None and right is not None and node_hash(left, right) != node:
                problems.append(
                    f"{_describe((lv, i)).capitalize()} does not match the hashes below it: it or they were altered."
                )
        return problems

    def audit_path(self, index: int, tree_size: int | None = None) -> list[str]:
        """Cheap audit of what a proof for `index` relies on: the leaf, its stored ancestors, the proof
        hashes and the root's hashes, each checked against the level below. Empty list = intact."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, tree_size)
            keys = set(_ancestor_keys(index, n))
            keys |= _needed(lambda p: _inclusion_of(index, n, p))
            keys |= _needed(lambda p: _root_of(n, p))
            return self._check(conn, keys)

    def _root_or_none(self, conn: sa.Connection, size: int) -> bytes | None:
        try:
            return self._compute(conn, lambda p: _root_of(size, p))[0]
        except LedgerTamperedError:
            return None

    def audit(self) -> list[str]:
        """Recompute every leaf hash from its entry and every stored node from its children, and check
        every signed head against the log. Returns one sentence per discrepancy (empty list = intact)."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            n = self._current_size(conn)
            count = conn.execute(sa.select(sa.func.count()).select_from(_entries)).scalar() or 0
            if count != n:
                problems.append(f"The log records {n} entries but holds {count}.")
            level: list[bytes | None] = [None] * n
            expected = 0
            rows = conn.execution_options(yield_per=5000).execute(
                sa.select(
                    _entries.c.idx, _entries.c.entry, _entries.c.leaf_hash, _entries.c.document_sha256
                ).order_by(_entries.c.idx)
            )
            for idx, entry, lh, doc in rows:
                if idx != expected:
                    if idx > expected:
                        gap = f"{expected}" if idx == expected + 1 else f"{expected}-{idx - 1}"
                        problems.append(
                            f"Entries {gap} are missing: the numbering jumps from {expected - 1} to {idx}."
                        )
                    else:
                        problems.append(f"Entry {idx} appears more than once.")
                expected = idx + 1
                entry = bytes(entry)
                if idx >= n:
                    problems.append(f"Entry {idx} lies beyond the log's recorded size {n}.")
                    continue
                level[idx] = bytes(lh)
                if leaf_hash(entry) != bytes(lh):
                    problems.append(
                        f"Entry {idx} no longer matches its recorded hash: the entry or its hash was altered."
                    )
                named = document_of_entry(entry)
                if named != doc:
                    problems.append(
                        f"Entry {idx} names document {named or 'none'} but the search index lists it under "
                        f"{doc or 'none'}: the index was altered."
                    )
            depth = n.bit_length() - 1 if n else 0
            for lv in range(1, depth + 1):
                width = n >> lv
                stored: dict[int, bytes] = {}
                for idx, h in conn.execute(
                    sa.select(_nodes.c.idx, _nodes.c.hash).where(_nodes.c.level == lv).order_by(_nodes.c.idx)
                ):
                    if idx >= width:
                        problems.append(
                            f"{_describe((lv, idx)).capitalize()} should not exist yet: it was inserted."
                        )
                    else:
                        stored[idx] = bytes(h)
                above: list[bytes | None] = [None] * width
                for j in range(width):
                    node = stored.get(j)
                    left, right = level[2 * j], level[2 * j + 1]
                    if node is None:
                        problems.append(f"{_describe((lv, j)).capitalize()} is missing from the log.")
                        continue
                    above[j] = node
                    if left is not None and right is not None and node_hash(left, right) != node:
                        problems.append(
                            f"{_describe((lv, j)).capitalize()} does not match the hashes below it: it or they were altered."
                        )
                level = above
            stray = conn.execute(
                sa.select(sa.func.count())
                .select_from(_nodes)
                .where((_nodes.c.level < 1) | (_nodes.c.level > depth))
            ).scalar()
            if stray:
                problems.append(
                    f"{stray} stored hashes sit at levels the log cannot have: they were inserted."
                )
            heads = conn.execute(sa.select(_heads).order_by(_heads.c.id)).mappings().all()
            roots: dict[int, bytes | None] = {}
            for row in heads:
                sth = self._head_model(row)
                what = f"The head signed at {sth.timestamp} (tree size {sth.tree_size})"
                if not self.verify_signed_head(sth):
                    problems.append(f"{what} does not carry a valid signature of this log's key.")
                if sth.tree_size > n:
                    problems.append(f"{what} covers entries that are no longer in the log.")
                    continue
                if sth.tree_size not in roots:
                    roots[sth.tree_size] = self._root_or_none(conn, sth.tree_size)
                if roots[sth.tree_size] != bytes(row["root"]):
                    problems.append(f"{what} no longer matches the log: the entries it signed were changed.")
        return problems


# --------------------------------------------------------------------------------------------------
# Checking a document a petitioner holds
# --------------------------------------------------------------------------------------------------


def verify_document(path_or_bytes: Path | str | bytes, ledger: Ledger) -> VerificationResult:
    """Is this file (or these bytes) a document the log recorded, and is the log itself intact?

    Hashes the exact bytes, finds the entry naming that hash, checks the entry against its recorded
    hash, has the log sign a fresh head (which it refuses over an inconsistent log), checks the
    inclusion proof with :func:`verify_inclusion` and the head's signature, and audits the stored
    hashes the proof relies on.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
    else:
        data = Path(path_or_bytes).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    indexes = ledger.find_by_document(sha)
    if not indexes:
        return VerificationResult(
            genuine=False,
            document_sha256=sha,
            message=(
                f"not genuine: no document with this content was ever recorded in the log "
                f"(its fingerprint {sha[:8]}… is unknown; changing even one character changes the fingerprint)"
            ),
        )
    index = indexes[0]
    code = verification_code(index, sha)

    def altered(why: str, **fields: Any) -> VerificationResult:
        return VerificationResult(
            genuine=False,
            document_sha256=sha,
            index=index,
            verification_code=code,
            message=f"the log itself was altered: {why[0].lower()}{why[1:].rstrip('.')}",
            **fields,
        )

    try:
        entry = ledger.entry(index)
        h = leaf_hash(entry)
        if h != ledger.stored_leaf_hash(index):
            return altered(f"entry {index} no longer matches its recorded hash")
        if document_of_entry(entry) != sha:
            return altered(f"entry {index} is listed under this document but no longer names it")
        sth = ledger.signed_head()
        root = bytes.fromhex(sth.root_hex)
        proof = ledger.inclusion_proof(index, sth.tree_size)
        fields: dict[str, Any] = {
            "tree_size": sth.tree_size,
            "root_hex": sth.root_hex,
            "proof_hex": [p.hex() for p in proof],
            "signed_head": sth,
        }
        if not verify_inclusion(h, index, sth.tree_size, proof, root):
            return altered(f"the proof for entry {index} does not lead to the signed root", **fields)
        if not ledger.verify_signed_head(sth):
            return altered("the signed head does not carry a valid signature of the log's key", **fields)
        problems = ledger.audit_path(index, sth.tree_size)
        if problems:
            return altered(problems[0], **fields)
    except LedgerTamperedError as exc:
        return altered(str(exc))
    also = (
        f"; the same content was also recorded as entries {', '.join(map(str, indexes[1:]))}"
        if len(indexes) > 1
        else ""
    )
    return VerificationResult(
        genuine=True,
        document_sha256=sha,
        index=index,
        verification_code=code,
        message=(
            f"genuine: document {sha[:8]}… is entry {index} of the log (code {code}; tree size {sth.tree_size}, "
            f"root {sth.root_hex[:8]}…), proof of {len(proof)} hashes checked against the signed head "
            f"signed at {sth.timestamp}{also}"
        ),
        **fields,
    )
