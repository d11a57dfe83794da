"""Known-answer tests for the log's RFC 9162 tree math (the Certificate Transparency test vectors).

The expected values are not computed by our code. They are the vectors Certificate Transparency
implementations test against, copied verbatim (hex):

* transparency-dev/merkle, ``testonly/constants.go``: ``LeafInputs`` (the 8 leaf inputs),
  ``NodeHashes`` (the hash of every complete subtree of the 8-leaf tree, level by level) and
  ``RootHashes`` (the root at every size 0..8); ``proof/verify_test.go``: ``inclusionProofs`` and
  ``consistencyProofs``;
* the same inputs, roots and proofs in google/certificate-transparency,
  ``cpp/merkletree/merkle_tree_test.cc`` (``kInputs``, ``kSHA256Roots``, ``kSHA256Paths``,
  ``kSHA256Proofs``).

The published proofs cover a few (index, size) and (m, n) pairs. For every other pair, the expected
proof is assembled here from the published hashes: a transcription of RFC 9162 §2.1.3.1 (PATH) and
§2.1.4.1 (SUBPROOF) that yields *which* subtrees (leaf ranges) make up a proof, each then looked up
among the published node hashes. Every perfect subtree of the 8-leaf tree is published; the only other
subtree that appears in these proofs, D[4:7], is SHA-256(0x01 || D[4:6] || D[6:7]) by §2.1.1
(hashlib). That assembly reproduces every published root and proof (checked below) before it is trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import create_engine

from activities.ledger import (
    EMPTY_ROOT,
    InMemoryTree,
    Ledger,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
    verify_sth_signature,
)

h = bytes.fromhex

# --------------------------------------------------------------------------------------------------
# The published vectors (verbatim)
# --------------------------------------------------------------------------------------------------

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# NODE_HASHES[level][index]: MTH of leaves index * 2**level .. (index + 1) * 2**level - 1.
NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# ROOTS[n]: the root of the tree of the first n leaves.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (index, tree size, proof). The sources number leaves from 1; these indexes are 0-based.
PUBLISHED_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, proof)
PUBLISHED_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# A 32-byte value that is no hash of this tree (proof/verify_test.go's sha256SomeHash).
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

N = len(LEAF_INPUTS)

# --------------------------------------------------------------------------------------------------
# Every proof of the 8-leaf tree, assembled from the published hashes (see the module docstring)
# --------------------------------------------------------------------------------------------------


def _k(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def subtree(start: int, end: int) -> bytes:
    """MTH(D[start:end]): a published node hash, or (D[4:7] only) §2.1.1's interior-node rule."""
    n = end - start
    level = {1: 0, 2: 1, 4: 2, 8: 3}.get(n)
    if level is not None and start % n == 0:
        return NODE_HASHES[level][start // n]
    k = _k(n)
    return hashlib.sha256(b"\x01" + subtree(start, start + k) + subtree(start + k, end)).digest()


def path_ranges(m: int, start: int, end: int) -> list[tuple[int, int]]:
    """PATH(m, D[start:end]), RFC 9162 §2.1.3.1, as the leaf ranges of its hashes."""
    n = end - start
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path_ranges(m, start, start + k) + [(start + k, end)]
    return path_ranges(m - k, start + k, end) + [(start, start + k)]


def subproof_ranges(m: int, start: int, end: int, b: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[start:end], b), RFC 9162 §2.1.4.1, as the leaf ranges of its hashes."""
    n = end - start
    if m == n:
        return [] if b else [(start, end)]
    k = _k(n)
    if m <= k:
        return subproof_ranges(m, start, start + k, b) + [(start + k, end)]
    return subproof_ranges(m - k, start + k, end, False) + [(start, start + k)]


def expected_inclusion(index: int, size: int) -> list[bytes]:
    return [subtree(a, b) for a, b in path_ranges(index, 0, size)]


def expected_consistency(old: int, new: int) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) for 0 < m < n; empty for m = 0 and m = n."""
    if old == 0 or old == new:
        return []
    return [subtree(a, b) for a, b in subproof_ranges(old, 0, new, True)]


INCLUSION_PAIRS = [(i, n) for n in range(1, N + 1) for i in range(n)]
INCLUSION_IDS = [f"leaf{i}-of-{n}" for i, n in INCLUSION_PAIRS]
CONSISTENCY_PAIRS = [(m, n) for n in range(0, N + 1) for m in range(0, n + 1)]
CONSISTENCY_IDS = [f"{m}-to-{n}" for m, n in CONSISTENCY_PAIRS]


def test_the_assembly_reproduces_every_published_root_and_proof() -> None:
    assert [subtree(0, n) for n in range(1, N + 1)] == ROOTS[1:]
    for index, size, proof in PUBLISHED_INCLUSION:
        assert expected_inclusion(index, size) == proof, (index, size)
    for old, new, proof in PUBLISHED_CONSISTENCY:
        assert expected_consistency(old, new) == proof, (old, new)
    non_perfect = {
        r
        for i, n in INCLUSION_PAIRS
        for r in path_ranges(i, 0, n)
        if (r[1] - r[0]) not in (1, 2, 4, 8) or r[0] % (r[1] - r[0])
    } | {
        r
        for m, n in CONSISTENCY_PAIRS
        if 0 < m < n
        for r in subproof_ranges(m, 0, n, True)
        if (r[1] - r[0]) not in (1, 2, 4, 8) or r[0] % (r[1] - r[0])
    }
    assert non_perfect == {(4, 7)}


# --------------------------------------------------------------------------------------------------
# Our hashing and both trees (in memory, and the stored log on SQLite) against the vectors
# --------------------------------------------------------------------------------------------------


Tree = InMemoryTree | Ledger


@pytest.fixture(scope="module", params=["in-memory", "stored"])
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    if request.param == "in-memory":
        memory = InMemoryTree()
        for entry in LEAF_INPUTS:
            memory.append(entry)
        yield memory
        return
    folder = tmp_path_factory.mktemp("kat")
    engine = create_engine(f"sqlite:///{folder / 'ledger.db'}")
    ledger = Ledger(engine, folder / "ledger.pem")
    ledger.append_many([(entry, f"kat-{i}") for i, entry in enumerate(LEAF_INPUTS)])
    yield ledger
    engine.dispose()


def test_leaf_and_node_hashes() -> None:
    assert EMPTY_ROOT == ROOTS[0]
    assert [leaf_hash(d) for d in LEAF_INPUTS] == NODE_HASHES[0]
    for level in range(1, len(NODE_HASHES)):
        below = NODE_HASHES[level - 1]
        pairs = [(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)]
        assert [node_hash(left, right) for left, right in pairs] == NODE_HASHES[level]


def test_in_memory_tree_holds_the_published_node_hashes() -> None:
    assert InMemoryTree.from_entries(LEAF_INPUTS).levels == NODE_HASHES
    grown = InMemoryTree()
    for size, entry in enumerate(LEAF_INPUTS, start=1):
        assert grown.append(entry) == size - 1
        assert grown.root() == ROOTS[size]
    assert grown.levels == NODE_HASHES


def test_stored_log_holds_the_published_hashes_on_disk(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger = Ledger(engine, tmp_path / "ledger.pem")
        for i, entry in enumerate(LEAF_INPUTS):  # one at a time, as documents are issued
            ledger.append(entry, f"kat-{i}")
        with engine.connect() as conn:
            leaves = conn.execute(
                sa.text("SELECT idx, entry, leaf_hash FROM ledger_entries ORDER BY idx")
            ).all()
            nodes = conn.execute(
                sa.text("SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx")
            ).all()
        assert [(i, bytes(e), bytes(lh)) for i, e, lh in leaves] == [
            (i, LEAF_INPUTS[i], NODE_HASHES[0][i]) for i in range(N)
        ]
        assert [(lv, i, bytes(x)) for lv, i, x in nodes] == [
            (lv, i, x) for lv in range(1, len(NODE_HASHES)) for i, x in enumerate(NODE_HASHES[lv])
        ]
        assert ledger.audit() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("size", range(0, N + 1))
def test_root_at_every_size(tree: Tree, size: int) -> None:
    assert tree.root(size) == ROOTS[size]


def test_signed_heads_carry_the_published_roots(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        ledger = Ledger(engine, tmp_path / "ledger.pem")
        for size in range(0, N + 1):
            if size:
                ledger.append(LEAF_INPUTS[size - 1], f"kat-{size - 1}")
            sth = ledger.signed_head()
            assert (sth.tree_size, bytes.fromhex(sth.root_hex)) == (size, ROOTS[size])
            assert verify_sth_signature(sth, ledger.public_key)
        assert [bytes.fromhex(s.root_hex) for s in ledger.signed_heads()] == ROOTS
    finally:
        engine.dispose()


@pytest.mark.parametrize(("index", "size", "proof"), PUBLISHED_INCLUSION, ids=lambda v: repr(v)[:12])
def test_published_inclusion_proofs(tree: Tree, index: int, size: int, proof: list[bytes]) -> None:
    assert tree.inclusion_proof(index, size) == proof
    assert verify_inclusion(leaf_hash(LEAF_INPUTS[index]), index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), PUBLISHED_CONSISTENCY, ids=lambda v: repr(v)[:12])
def test_published_consistency_proofs(tree: Tree, old: int, new: int, proof: list[bytes]) -> None:
    assert tree.consistency_proof(old, new) == proof
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize(("index", "size"), INCLUSION_PAIRS, ids=INCLUSION_IDS)
def test_every_inclusion_proof(tree: Tree, index: int, size: int) -> None:
    proof = tree.inclusion_proof(index, size)
    assert proof == expected_inclusion(index, size)
    assert verify_inclusion(NODE_HASHES[0][index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new"), CONSISTENCY_PAIRS, ids=CONSISTENCY_IDS)
def test_every_consistency_proof(tree: Tree, old: int, new: int) -> None:
    proof = tree.consistency_proof(old, new)
    assert proof == expected_consistency(old, new)
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# --------------------------------------------------------------------------------------------------
# Tampering: the probes of proof/verify_test.go (corruptInclusionProof, corruptConsistencyProof),
# on every proof of the tree; every one must be refused
# --------------------------------------------------------------------------------------------------


def _flipped(proof: list[bytes], i: int, byte: int, mask: int) -> list[bytes]:
    changed = bytearray(proof[i])
    changed[byte] ^= mask
    return proof[:i] + [bytes(changed)] + proof[i + 1 :]


@pytest.mark.parametrize(("index", "size"), INCLUSION_PAIRS, ids=INCLUSION_IDS)
def test_tampered_inclusion_proofs_fail(index: int, size: int) -> None:
    proof, root, leaf = expected_inclusion(index, size), ROOTS[size], NODE_HASHES[0][index]
    assert verify_inclusion(leaf, index, size, proof, root)
    probes: dict[str, tuple[bytes, int, int, list[bytes], bytes]] = {
        "index - 1": (leaf, index - 1, size, proof, root),
        "index + 1": (leaf, index + 1, size, proof, root),
        "index ^ 2": (leaf, index ^ 2, size, proof, root),
        "size * 2": (leaf, index, size * 2, proof, root),
        "size // 2": (leaf, index, size // 2, proof, root),
        "another leaf": (leaf_hash(b"WrongLeaf"), index, size, proof, root),
        "the leaf input instead of its hash": (LEAF_INPUTS[index], index, size, proof, root),
        "empty-tree root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, SOME_HASH),
        "trailing garbage": (leaf, index, size, proof + [b""], root),
        "trailing root": (leaf, index, size, proof + [root], root),
        "preceding garbage": (leaf, index, size, [b""] + proof, root),
        "preceding root": (leaf, index, size, [root] + proof, root),
    }
    if proof:
        probes["removed component"] = (leaf, index, size, proof[:-1], root)
        probes["inserted component"] = (leaf, index, size, [proof[0], SOME_HASH] + proof[1:], root)
    for i in range(len(proof)):
        for byte, mask in ((0, 0x08), (31, 0x01)):
            changed = _flipped(proof, i, byte, mask)
            probes[f"proof[{i}] byte {byte} ^ {mask:#x}"] = (leaf, index, size, changed, root)
    accepted = [name for name, (lh, i, n, p, r) in probes.items() if verify_inclusion(lh, i, n, p, r)]
    assert accepted == []


@pytest.mark.parametrize(("old", "new"), CONSISTENCY_PAIRS, ids=CONSISTENCY_IDS)
def test_tampered_consistency_proofs_fail(old: int, new: int) -> None:
    proof, root1, root2 = expected_consistency(old, new), ROOTS[old], ROOTS[new]
    assert verify_consistency(old, new, root1, root2, proof)
    if not proof:  # m = 0 or m = n: the empty proof holds only for those exact roots
        probes: dict[str, tuple[int, int, bytes, bytes, list[bytes]]] = {
            "random old root": (old, new, SOME_HASH, root2, proof),
            "a non-empty proof": (old, new, root1, root2, [EMPTY_ROOT]),
        }
        if old == new:
            probes["random new root"] = (old, new, root1, SOME_HASH, proof)
        if new > old:
            probes["time travel"] = (new, old, root2, root1, proof)
    else:
        probes = {
            "old - 1": (old - 1, new, root1, root2, proof),
            "old + 1": (old + 1, new, root1, root2, proof),
            "old ^ 2": (old ^ 2, new, root1, root2, proof),
            "new * 2": (old, new * 2, root1, root2, proof),
            "new // 2": (old, new // 2, root1, root2, proof),
            "wrong old root": (old, new, SOME_HASH, root2, proof),
            "wrong new root": (old, new, root1, SOME_HASH, proof),
            "short root": (old, new, b"WrongRoot", root2, proof),
            "swapped roots": (old, new, root2, root1, proof),
            "swapped sizes": (new, old, root2, root1, proof),
            "empty proof": (old, new, root1, root2, []),
            "trailing garbage": (old, new, root1, root2, proof + [b""]),
            "trailing old root": (old, new, root1, root2, proof + [root1]),
            "trailing new root": (old, new, root1, root2, proof + [root2]),
            "preceding garbage": (old, new, root1, root2, [b""] + proof),
            "preceding old root": (old, new, root1, root2, [root1] + proof),
            "preceding new root": (old, new, root1, root2, [root2] + proof),
            "preceding proof[0]": (old, new, root1, root2, [proof[0]] + proof),
            "truncated proof": (old, new, root1, root2, proof[:-1]),
        }
        for i in range(len(proof)):
            for byte, mask in ((0, 0x10), (31, 0x01)):
                changed = _flipped(proof, i, byte, mask)
                probes[f"proof[{i}] byte {byte} ^ {mask:#x}"] = (old, new, root1, root2, changed)
    accepted = [name for name, (m, n, r1, r2, p) in probes.items() if verify_consistency(m, n, r1, r2, p)]
    assert accepted == []
