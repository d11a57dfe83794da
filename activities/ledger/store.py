"""The persistent log: its tables in the engine's database, appends, signed heads, audits, its key.

Storage (SQLModel tables on their own metadata, :data:`ledger_metadata`, in the engine's database):

* ``ledger_state`` one row: the tree size. Appends lock it (``SELECT ... FOR UPDATE`` on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite), so indexes are dense, ordered and never duplicated, across threads
  and processes.
* ``ledger_entries`` index -> entry bytes, leaf hash, idempotency key (unique), document hash, time.
* ``ledger_nodes`` (level, index) -> hash of every *complete* subtree of 2**level leaves starting at
  leaf ``index * 2**level`` (level >= 1; level 0 is the leaf hash in ``ledger_entries``). Every
  subtree that the RFC recursion asks for is either such a perfect subtree or a right fold of
  O(log n) of them, so a root or a proof at any past size is O(log n) stored hashes, fetched in one
  query (:mod:`activities.ledger.merkle`).
* ``ledger_signed_heads`` every signed tree head handed out (:mod:`activities.ledger.heads`).

The signing key is a PEM file (PKCS#8, mode 0o600) created on first use. The log never signs a head
over a root that disagrees with the latest head it signed before (checked by a consistency proof) or
whose stored nodes do not match their children.
"""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import registry
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from activities.ledger.entries import document_of_entry
from activities.ledger.heads import (
    SignedTreeHead,
    key_id_of,
    raw_public_key,
    sth_signing_input,
    verify_sth_signature,
)
from activities.ledger.merkle import (
    NodeKey,
    Perfect,
    ancestor_keys,
    consistency_of,
    frontier_keys,
    inclusion_of,
    leaf_hash,
    needed_keys,
    node_hash,
    root_of,
    verify_consistency,
)
from engine.codec import create_secret_file

__all__ = [
    "AppendResult",
    "Ledger",
    "LedgerEntry",
    "LedgerError",
    "LedgerNode",
    "LedgerSignedHead",
    "LedgerState",
    "LedgerTamperedError",
    "create_ledger_tables",
    "ledger_metadata",
    "load_or_create_signing_key",
]

T = TypeVar("T")


class LedgerError(Exception):
    """The log cannot do what was asked."""


class LedgerTamperedError(LedgerError):
    """The stored log does not match itself or what it signed before; the message says how."""


class AppendResult(BaseModel):
    """Where an entry landed. `tree_size` is the size just after it was appended (index + 1)."""

    model_config = ConfigDict(frozen=True)

    index: int
    leaf_hash: str
    tree_size: int
    replayed: bool = Field(default=False, description="True when the idempotency key was already recorded.")


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
        return base64.b64encode(raw_public_key(self.public_key)).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

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

        frontier = frontier_keys(size)
        stored = self._fetch(conn, set(frontier))
        stack: list[bytes] = []
        for key in frontier:
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
        keys = needed_keys(fn)
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
            return self._compute(conn, lambda p: root_of(n, p))[0]

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:tree_size]) (RFC 9162 §2.1.3.1)."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, tree_size)
            return self._compute(conn, lambda p: inclusion_of(index, n, p))[0]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1); empty when old is 0 or equals new."""
        with self.engine.connect() as conn:
            n = self._resolve(conn, new)
            return self._compute(conn, lambda p: consistency_of(old, n, p))[0]

    def entry(self, index: int) -> bytes:
        return self._entry_column(_entries.c.entry, index)

    def stored_leaf_hash(self, index: int) -> bytes:
        return self._entry_column(_entries.c.leaf_hash, index)

    def _entry_column(self, column: Any, index: int) -> bytes:
        with self.engine.connect() as conn:
            raw = conn.execute(sa.select(column).where(_entries.c.idx == index)).scalar()
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
            root, used = self._compute(conn, lambda p: root_of(n, p))
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
            proof = self._compute(conn, lambda p: consistency_of(old_size, n, p))[0]
            ok = verify_consistency(old_size, n, old_root, root, proof)
        else:
            if old_size > self._current_size(conn):
                raise LedgerTamperedError(f"{what} covers entries that are no longer in the log")
            proof = self._compute(conn, lambda p: consistency_of(n, old_size, p))[0]
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
            keys = set(ancestor_keys(index, n))
            keys |= needed_keys(lambda p: inclusion_of(index, n, p))
            keys |= needed_keys(lambda p: root_of(n, p))
            return self._check(conn, keys)

    def _root_or_none(self, conn: sa.Connection, size: int) -> bytes | None:
        try:
            return self._compute(conn, lambda p: root_of(size, p))[0]
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
