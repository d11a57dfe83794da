"""The tamper-evident document log: RFC 9162 tree math against an independent transcription of the RFC,
tamper detection byte by byte, exactly-once appends under threads and processes, signed heads."""

from __future__ import annotations

import base64
import hashlib
import math
import multiprocessing
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import create_engine

from activities.ledger import (
    EMPTY_ROOT,
    InMemoryTree,
    Ledger,
    SignedTreeHead,
    leaf_hash,
    make_entry,
    node_hash,
    split_point,
    verification_code,
    verify_consistency,
    verify_document,
    verify_inclusion,
    verify_sth_signature,
)

PG_URL = os.environ.get("PETITION_TEST_POSTGRES_URL")

# --------------------------------------------------------------------------------------------------
# An independent transcription of RFC 9162 §2.1, straight from the text, on the raw inputs.
# --------------------------------------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:n]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:n])]
    return ref_path(m - k, d[k:n]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:n])]
    return ref_subproof(m - k, d[k:n], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


DATA = [f"entry-{i}".encode() for i in range(70)]


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(tmp_path: Path, sqlite_url: str) -> Iterator[Ledger]:
    engine = create_engine(sqlite_url)
    yield Ledger(engine, tmp_path / "keys" / "ledger.pem")
    engine.dispose()


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A private schema on the test PostgreSQL, dropped afterwards: (url, schema)."""
    if not PG_URL:
        pytest.skip("PETITION_TEST_POSTGRES_URL not set")
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield PG_URL, schema
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _engine(url: str, schema: str | None = None) -> sa.Engine:
    if schema:
        return create_engine(url, connect_args={"options": f"-csearch_path={schema}"}, pool_size=8)
    return create_engine(url)


def _doc_entry(doc: bytes, i: int) -> bytes:
    issued = datetime(2025, 3, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=i)
    return make_entry(
        hashlib.sha256(doc).hexdigest(), "notice", f"C-2025-{i:04d}", issued, {"template_version": "2"}
    )


def _all_entries(ledger: Ledger) -> list[bytes]:
    return [ledger.entry(i) for i in range(ledger.size())]


def _with_byte_flipped(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


# --------------------------------------------------------------------------------------------------
# RFC 9162 tree math
# --------------------------------------------------------------------------------------------------


def test_hashing_primitives_are_rfc_9162() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert [split_point(n) for n in range(2, 10)] == [1, 2, 2, 4, 4, 4, 4, 8]
    assert InMemoryTree().root() == EMPTY_ROOT


def test_in_memory_tree_matches_the_rfc_for_every_size_and_index() -> None:
    incremental = InMemoryTree()
    for n in range(1, 71):
        incremental.append(DATA[n - 1])
        bulk = InMemoryTree.from_entries(DATA[:n])
        expected_root = ref_mth(DATA[:n])
        assert bulk.root() == expected_root
        assert incremental.root() == expected_root
        assert incremental.levels == bulk.levels
        bound = math.ceil(math.log2(n)) if n > 1 else 0
        for m in range(n):
            proof = bulk.inclusion_proof(m)
            expected = ref_path(m, DATA[:n])
            assert proof == expected, (n, m)
            assert len(proof) <= bound
            if n & (n - 1) == 0:
                assert len(proof) == bound
            assert incremental.inclusion_proof(m) == expected
            assert verify_inclusion(leaf_hash(DATA[m]), m, n, proof, expected_root)


def test_verify_inclusion_rejects_everything_else() -> None:
    n = 21
    tree = InMemoryTree.from_entries(DATA[:n])
    root = tree.root()
    for m in range(n):
        proof = tree.inclusion_proof(m)
        h = leaf_hash(DATA[m])
        assert not verify_inclusion(leaf_hash(DATA[m] + b"x"), m, n, proof, root)
        assert not verify_inclusion(h, (m + 1) % n, n, proof, root)
        assert not verify_inclusion(h, m, n + 50, proof, root)  # a proof of the wrong depth
        assert not verify_inclusion(h, m, n, proof[:-1], root)
        assert not verify_inclusion(h, m, n, proof + [root], root)
        assert not verify_inclusion(h, m, n, proof, _with_byte_flipped(root, 5))
        assert not verify_inclusion(h, n, n, proof, root)
        for j in range(len(proof)):
            bad = list(proof)
            bad[j] = _with_byte_flipped(bad[j], j)
            assert not verify_inclusion(h, m, n, bad, root)


def test_consistency_proofs_match_the_rfc_for_every_pair() -> None:
    for new in range(1, 41):
        tree = InMemoryTree.from_entries(DATA[:new])
        new_root = ref_mth(DATA[:new])
        for old in range(1, new + 1):
            old_root = ref_mth(DATA[:old])
            proof = tree.consistency_proof(old, new)
            expected = [] if old == new else ref_proof(old, DATA[:new])
            assert proof == expected, (old, new)
            assert verify_consistency(old, new, old_root, new_root, proof)
            if old < new:
                assert not verify_consistency(old, new, new_root, old_root, proof)
                assert not verify_consistency(old, new, old_root, _with_byte_flipped(new_root, 1), proof)
                assert not verify_consistency(old, new, _with_byte_flipped(old_root, 1), new_root, proof)
                assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
                assert not verify_consistency(old, new, old_root, new_root, [])
                for j in range(len(proof)):
                    bad = list(proof)
                    bad[j] = _with_byte_flipped(bad[j], 0)
                    assert not verify_consistency(old, new, old_root, new_root, bad)
        assert verify_consistency(0, new, EMPTY_ROOT, new_root, [])
        assert not verify_consistency(new, new, new_root, new_root, [new_root])
        assert not verify_consistency(new, new - 1, new_root, new_root, [])


def test_stored_log_matches_the_rfc_at_every_past_size(ledger: Ledger) -> None:
    ledger.append_many([(DATA[i], f"k{i}") for i in range(5)])
    for i in range(5, 40):
        ledger.append(DATA[i], f"k{i}")
    ledger.append_many([(DATA[i], f"k{i}") for i in range(40, 70)])
    assert ledger.size() == 70
    assert ledger.root(0) == EMPTY_ROOT
    for n in range(1, 71):
        assert ledger.root(n) == ref_mth(DATA[:n]), n
        for m in range(n):
            assert ledger.inclusion_proof(m, n) == ref_path(m, DATA[:n]), (n, m)
    for new in range(1, 41):
        for old in range(0, new + 1):
            expected = [] if old in (0, new) else ref_proof(old, DATA[:new])
            assert ledger.consistency_proof(old, new) == expected, (old, new)
    with pytest.raises(ValueError):
        ledger.root(71)
    with pytest.raises(IndexError):
        ledger.inclusion_proof(70)
    with pytest.raises(IndexError):
        ledger.entry(70)
    assert ledger.audit() == []


# --------------------------------------------------------------------------------------------------
# Entries and codes
# --------------------------------------------------------------------------------------------------


def test_make_entry_is_canonical_json_without_personal_data() -> None:
    sha = "AB" * 32
    issued = datetime(2025, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    entry = make_entry(sha, "mediation_agreement", "C-1", issued, {"template_version": "调解-3"})
    assert (
        entry
        == (
            '{"case_id":"C-1","document_sha256":"' + "ab" * 32 + '","issued_at":"2025-03-01T08:30:00+00:00",'
            '"kind":"mediation_agreement","template_version":"调解-3","v":1}'
        ).encode()
    )
    assert b'"template_version":null' in make_entry(sha, "notice", "C-1", issued)
    with pytest.raises(ValueError):
        make_entry(sha, "notice", "C-1", datetime(2025, 3, 1))
    with pytest.raises(ValueError):
        make_entry("not-a-hash", "notice", "C-1", issued)
    with pytest.raises(ValueError):
        make_entry(sha, "notice", "C-1", issued, {"document_sha256": "x"})


def test_verification_code() -> None:
    assert verification_code(17, "3F2A9C1B" + "0" * 56) == "L17-3f2a9c1b"


# --------------------------------------------------------------------------------------------------
# Documents and tampering
# --------------------------------------------------------------------------------------------------


def _issue(ledger: Ledger, tmp_path: Path, count: int = 13) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"doc-{i}.txt"
        path.write_bytes(
            f"信访事项答复意见书 第{i}号\nCase C-2025-{i:04d}: the matter is answered.\n".encode()
        )
        ledger.append(_doc_entry(path.read_bytes(), i), f"doc-{i}")
        paths.append(path)
    return paths


def test_genuine_document_verifies_with_a_readable_sentence(ledger: Ledger, tmp_path: Path) -> None:
    paths = _issue(ledger, tmp_path)
    result = verify_document(paths[5], ledger)
    sha = hashlib.sha256(paths[5].read_bytes()).hexdigest()
    assert result.genuine, result.message
    assert result.index == 5 and result.tree_size == 13
    assert result.verification_code == verification_code(5, sha)
    assert result.message.startswith(f"真实：文书 {sha[:8]}… 是日志第 5 条记录")
    assert f"由 {len(result.proof_hex)} 个哈希组成的证明已对照" in result.message
    assert result.signed_head is not None and ledger.verify_signed_head(result.signed_head)
    proof = [bytes.fromhex(p) for p in result.proof_hex]
    assert verify_inclusion(leaf_hash(ledger.entry(5)), 5, 13, proof, bytes.fromhex(result.root_hex or ""))
    assert verify_document(paths[5].read_bytes(), ledger).genuine
    assert verify_document(str(paths[0]), ledger).genuine
    assert ledger.find_by_document(sha) == [5]
    # after more documents, the same copy is checked against a newer head, consistent with the older ones
    ledger.append(_doc_entry(b"a later letter", 13), "doc-13")
    later = verify_document(paths[5], ledger)
    assert later.genuine and later.tree_size == 14 and later.root_hex != result.root_hex
    # the same content recorded twice (a reissue) is found at its first entry, the message says so
    ledger.append(_doc_entry(paths[5].read_bytes(), 99), "reissue-5")
    twice = verify_document(paths[5], ledger)
    assert twice.genuine and twice.index == 5 and "相同内容还登记为第 14 条记录" in twice.message
    assert ledger.audit() == []


def test_every_single_byte_change_of_a_document_is_caught(ledger: Ledger, tmp_path: Path) -> None:
    paths = _issue(ledger, tmp_path)
    original = paths[7].read_bytes()
    for pos in range(len(original)):
        for mask in (0x01, 0x80):
            result = verify_document(_with_byte_flipped(original, pos, mask), ledger)
            assert not result.genuine
            assert result.message.startswith("不真实：日志中从未记录过内容与此相同的文书")
    assert not verify_document(original + b"\n", ledger).genuine
    assert verify_document(original, ledger).genuine


def _set_entry(engine: sa.Engine, index: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE ledger_entries SET {', '.join(f'{k} = :{k}' for k in values)} WHERE idx = :i"),
            {"i": index, **values},
        )


def _set_node(engine: sa.Engine, level: int, index: int, value: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE ledger_nodes SET hash = :h WHERE level = :l AND idx = :i"),
            {"h": value, "l": level, "i": index},
        )


def _node(engine: sa.Engine, level: int, index: int) -> bytes:
    with engine.connect() as conn:
        return bytes(
            conn.execute(
                sa.text("SELECT hash FROM ledger_nodes WHERE level = :l AND idx = :i"),
                {"l": level, "i": index},
            ).scalar_one()
        )


def test_every_single_byte_change_of_a_stored_entry_is_caught(ledger: Ledger, tmp_path: Path) -> None:
    paths = _issue(ledger, tmp_path)
    ledger.signed_head()
    index = 6
    original = ledger.entry(index)
    for pos in range(len(original)):
        _set_entry(ledger.engine, index, entry=_with_byte_flipped(original, pos))
        result = verify_document(paths[index], ledger)
        assert not result.genuine, pos
        assert result.message.startswith("日志本身已被篡改："), result.message
        assert ledger.audit(), pos
    _set_entry(ledger.engine, index, entry=original)
    assert ledger.audit() == []
    assert verify_document(paths[index], ledger).genuine


def test_every_single_byte_change_of_a_stored_hash_is_caught(ledger: Ledger, tmp_path: Path) -> None:
    paths = _issue(
        ledger, tmp_path
    )  # 13 leaves: complete subtrees of 2, 4 and 8 leaves, frontier (3,0),(2,2),(0,12)
    ledger.signed_head()
    engine = ledger.engine
    # (level, index) -> documents whose check must fail: one under the node, one beside it
    targets = {(1, 0): [0, 2], (1, 5): [10, 8], (2, 1): [4, 0], (3, 0): [0, 12], (2, 2): [8, 12]}
    for (level, index), docs in targets.items():
        original = _node(engine, level, index)
        for pos in range(len(original)):
            _set_node(engine, level, index, _with_byte_flipped(original, pos))
            for doc in docs:
                result = verify_document(paths[doc], ledger)
                assert not result.genuine, (level, index, pos, doc)
                assert result.message.startswith("日志本身已被篡改："), result.message
            assert ledger.audit(), (level, index, pos)
        _set_node(engine, level, index, original)
        assert ledger.audit() == []
    # the leaf hashes kept beside the entries are stored hashes too
    original = ledger.stored_leaf_hash(9)
    for pos in range(len(original)):
        _set_entry(engine, 9, leaf_hash=_with_byte_flipped(original, pos))
        assert not verify_document(paths[9], ledger).genuine
        assert not verify_document(paths[8], ledger).genuine
        assert ledger.audit()
    _set_entry(engine, 9, leaf_hash=original)
    assert ledger.audit() == []
    assert all(verify_document(p, ledger).genuine for p in paths)


def test_a_consistent_rewrite_is_caught_by_the_signed_heads(ledger: Ledger, tmp_path: Path) -> None:
    paths = _issue(ledger, tmp_path, 8)
    ledger.signed_head()
    forged = b"A forged agreement that nobody signed.\n"
    entry = _doc_entry(forged, 1)
    # rewrite entry 1 and every stored hash above it, so the tree is self-consistent again
    hashes = [leaf_hash(ledger.entry(i)) for i in range(8)]
    hashes[1] = leaf_hash(entry)
    tree = InMemoryTree.from_leaf_hashes(hashes)
    _set_entry(
        ledger.engine, 1, entry=entry, leaf_hash=hashes[1], document_sha256=hashlib.sha256(forged).hexdigest()
    )
    for level in (1, 2, 3):
        _set_node(ledger.engine, level, 0, tree.levels[level][0])
    result = verify_document(forged, ledger)
    assert not result.genuine
    assert result.message.startswith("日志本身已被篡改："), result.message
    assert "not consistent" in result.message
    problems = ledger.audit()
    assert any("no longer matches the log" in p for p in problems), problems
    assert not verify_document(paths[1], ledger).genuine


def test_audit_reports_missing_and_extra_rows(ledger: Ledger, tmp_path: Path) -> None:
    _issue(ledger, tmp_path, 9)
    assert ledger.audit() == []
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM ledger_nodes WHERE level = 2 AND idx = 1"))
        conn.execute(
            sa.text("INSERT INTO ledger_nodes (level, idx, hash) VALUES (1, 9, :h)"), {"h": b"\x00" * 32}
        )
    problems = ledger.audit()
    assert any("entries 4-7 is missing" in p for p in problems), problems
    assert any("should not exist" in p for p in problems), problems


# --------------------------------------------------------------------------------------------------
# Exactly once, under threads and processes
# --------------------------------------------------------------------------------------------------


def test_append_is_idempotent(ledger: Ledger) -> None:
    first = ledger.append(b"one", "key-1")
    again = ledger.append(b"one", "key-1")
    assert ledger.size() == 1
    assert (again.index, again.leaf_hash, again.tree_size) == (first.index, first.leaf_hash, first.tree_size)
    assert not first.replayed and again.replayed
    results = ledger.append_many(
        [(b"two", "key-2"), (b"one", "key-1"), (b"two", "key-2"), (b"three", "key-3")]
    )
    assert [r.index for r in results] == [1, 0, 1, 2]
    assert [r.replayed for r in results] == [False, True, True, False]
    assert [r.tree_size for r in results] == [2, 1, 2, 3]
    assert ledger.size() == 3
    assert ledger.append_many([]) == []
    assert ledger.root() == ref_mth([b"one", b"two", b"three"])


def _check_dense_log(ledger: Ledger, expected_entries: set[bytes]) -> None:
    with ledger.engine.connect() as conn:
        indexes = [r[0] for r in conn.execute(sa.text("SELECT idx FROM ledger_entries ORDER BY idx"))]
    assert indexes == list(range(len(expected_entries)))
    entries = _all_entries(ledger)
    assert set(entries) == expected_entries and len(entries) == len(expected_entries)
    assert ledger.root() == ref_mth(entries)
    assert ledger.audit() == []


def _thread_appends(ledger: Ledger, workers: int = 4, per_worker: int = 50, shared: int = 5) -> set[bytes]:
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    results: dict[str, list[int]] = {}
    lock = threading.Lock()

    def work(w: int) -> None:
        try:
            barrier.wait()
            for i in range(per_worker):
                key = f"shared-{i}" if i < shared else f"w{w}-{i}"
                r = ledger.append(key.encode(), key)
                with lock:
                    results.setdefault(key, []).append(r.index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for key, indexes in results.items():
        assert len(set(indexes)) == 1, (key, indexes)  # every caller saw the one index of its key
    return {k.encode() for k in results}


def test_concurrent_threads_on_sqlite(ledger: Ledger) -> None:
    expected = _thread_appends(ledger)
    assert len(expected) == 4 * 45 + 5
    _check_dense_log(ledger, expected)


def test_concurrent_threads_on_postgresql(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg_schema
    engine = _engine(url, schema)
    ledger = Ledger(engine, tmp_path / "keys" / "ledger.pem")
    expected = _thread_appends(ledger)
    _check_dense_log(ledger, expected)
    engine.dispose()


def _process_worker(
    url: str, schema: str | None, key_path: str, worker: int, count: int, start: threading.Barrier
) -> None:
    engine = _engine(url, schema)
    ledger = Ledger(engine, Path(key_path))
    start.wait()  # both processes begin appending together
    for i in range(count):
        key = f"shared-{i}" if i < 10 else f"p{worker}-{i}"
        if i % 10 == 9:
            ledger.append_many([(key.encode(), key), (f"{key}-b".encode(), f"{key}-b")])
        else:
            ledger.append(key.encode(), key)
    engine.dispose()


def _process_appends(url: str, schema: str | None, tmp_path: Path, count: int = 50) -> set[bytes]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    key_path = str(tmp_path / "keys" / "ledger.pem")
    procs = [
        ctx.Process(target=_process_worker, args=(url, schema, key_path, w, count, start)) for w in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    expected: set[bytes] = set()
    for w in range(2):
        for i in range(count):
            key = f"shared-{i}" if i < 10 else f"p{w}-{i}"
            expected.add(key.encode())
            if i % 10 == 9:
                expected.add(f"{key}-b".encode())
    return expected


def test_concurrent_processes_on_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    engine = _engine(sqlite_url)
    ledger = Ledger(engine, tmp_path / "keys" / "ledger.pem")
    expected = _process_appends(sqlite_url, None, tmp_path)
    _check_dense_log(ledger, expected)
    engine.dispose()


def test_concurrent_processes_on_postgresql(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg_schema
    engine = _engine(url, schema)
    ledger = Ledger(engine, tmp_path / "keys" / "ledger.pem")
    expected = _process_appends(url, schema, tmp_path)
    _check_dense_log(ledger, expected)
    engine.dispose()


def test_documents_on_postgresql(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    url, schema = pg_schema
    engine = _engine(url, schema)
    ledger = Ledger(engine, tmp_path / "keys" / "ledger.pem")
    paths = _issue(ledger, tmp_path, 5)
    assert all(verify_document(p, ledger).genuine for p in paths)
    original = ledger.entry(2)
    _set_entry(engine, 2, entry=_with_byte_flipped(original, 10))
    assert not verify_document(paths[2], ledger).genuine
    assert ledger.audit()
    _set_entry(engine, 2, entry=original)
    assert ledger.audit() == []
    engine.dispose()


# --------------------------------------------------------------------------------------------------
# Signed tree heads and the key
# --------------------------------------------------------------------------------------------------


def test_signed_heads(ledger: Ledger, tmp_path: Path) -> None:
    for i in range(10):
        ledger.append(DATA[i], f"k{i}")
    key_file = tmp_path / "keys" / "ledger.pem"
    old = ledger.signed_head(6)
    head = ledger.signed_head()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert head.tree_size == 10 and head.root_hex == ref_mth(DATA[:10]).hex()
    assert ledger.verify_signed_head(head) and ledger.verify_signed_head(old)
    assert verify_sth_signature(head, base64.b64decode(head.public_key_b64))

    root = bytes.fromhex(head.root_hex)
    for pos in range(len(root)):
        forged = head.model_copy(update={"root_hex": _with_byte_flipped(root, pos).hex()})
        assert not ledger.verify_signed_head(forged)
    assert not ledger.verify_signed_head(head.model_copy(update={"tree_size": 11}))
    assert not ledger.verify_signed_head(
        head.model_copy(update={"timestamp": head.timestamp.replace("Z", "+00:00")})
    )
    signature = base64.b64decode(head.signature_b64)
    assert not ledger.verify_signed_head(
        head.model_copy(update={"signature_b64": base64.b64encode(_with_byte_flipped(signature, 3)).decode()})
    )
    assert not ledger.verify_signed_head(head.model_copy(update={"signature_b64": "not base64!"}))

    # the two heads are consistent, by a proof anyone can check
    proof = ledger.consistency_proof(old.tree_size, head.tree_size)
    assert verify_consistency(old.tree_size, head.tree_size, bytes.fromhex(old.root_hex), root, proof)

    # a second process loads the same key; another key does not verify this log's heads
    again = Ledger(ledger.engine, key_file)
    assert again.key_id == ledger.key_id and again.verify_signed_head(head)
    stranger = Ledger(ledger.engine, tmp_path / "other" / "key.pem")
    assert not stranger.verify_signed_head(head)
    assert not ledger.verify_signed_head(head, stranger.public_key)
    assert stat.S_IMODE((tmp_path / "other" / "key.pem").stat().st_mode) == 0o600
    assert [h.tree_size for h in ledger.signed_heads()] == [6, 10]
    assert ledger.audit() == []
    SignedTreeHead.model_validate_json(head.model_dump_json())
