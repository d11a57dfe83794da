"""RFC 9162 §2.1 Merkle tree hashing (SHA-256): hashes, roots, inclusion and consistency proofs.

Pure functions over bytes (hashlib and hmac only), shared by the persistent log
(:mod:`activities.ledger.store`), :class:`InMemoryTree` (tests, benchmarks, tools) and whoever checks
a proof (:mod:`engine.witness`, the web pages).

* leaf hash ``MTH({d}) = SHA-256(0x00 || d)``; interior node ``SHA-256(0x01 || left || right)``;
  ``MTH({}) = SHA-256("")``; a list of n > 1 items splits at k, the largest power of two < n.
* inclusion proofs: PATH(m, D[n]) (§2.1.3.1), checked by :func:`verify_inclusion` (§2.1.3.2);
  consistency proofs: PROOF(m, D[n]) (§2.1.4.1), checked by :func:`verify_consistency` (§2.1.4.2).

Producing a root or a proof needs only the hashes of *perfect* subtrees (2**level leaves starting at
leaf ``index * 2**level``), asked for through a :data:`Perfect` function: every subtree the RFC
recursion asks for is either such a perfect subtree or a right fold of O(log n) of them. A store
answers :func:`root_of`, :func:`inclusion_of` and :func:`consistency_of` by looking those up;
:func:`needed_keys` says beforehand which ones a computation will read, so they can be fetched at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "InMemoryTree",
    "NodeKey",
    "Perfect",
    "ancestor_keys",
    "consistency_of",
    "frontier_keys",
    "inclusion_of",
    "leaf_hash",
    "needed_keys",
    "node_hash",
    "root_of",
    "split_point",
    "verify_consistency",
    "verify_inclusion",
]

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


def root_of(size: int, perfect: Perfect) -> bytes:
    """MTH(D[0:size]) from the perfect-subtree hashes `perfect` gives."""
    return _range_hash(0, size, perfect)


def inclusion_of(index: int, size: int, perfect: Perfect) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise IndexError(f"leaf {index} is not in a tree of size {size}")
    return _path(index, 0, size, perfect)


def consistency_of(old: int, new: int, perfect: Perfect) -> list[bytes]:
    """PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1); empty when old is 0 or equals new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    return _subproof(old, 0, new, True, perfect)


def frontier_keys(size: int) -> list[NodeKey]:
    """The perfect subtrees whose right fold is MTH(D[0:size]), largest (leftmost) first."""
    keys: list[NodeKey] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


def ancestor_keys(index: int, size: int) -> list[NodeKey]:
    """The leaf and every complete subtree above it in a tree of `size` leaves, bottom up."""
    keys: list[NodeKey] = [(0, index)]
    level = 1
    while ((index >> level) + 1) << level <= size:
        keys.append((level, index >> level))
        level += 1
    return keys


def needed_keys(fn: Callable[[Perfect], object]) -> set[NodeKey]:
    """Which perfect subtrees `fn` reads (its control flow never depends on the hash values)."""
    keys: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        keys.add((level, index))
        return _PLACEHOLDER

    fn(record)
    return keys


def _left_siblings(fn: int, sn: int, count: int) -> list[bool] | None:
    """The walk from node `fn` up to the root of a tree whose last node is `sn`, shared by the RFC's
    proof checks (§2.1.3.2 step 4, §2.1.4.2 step 6): for each of `count` proof hashes in turn, True
    when it is the left sibling (hashed first) and False when the right. None when `count` hashes do
    not end at the root (sn is not 0 then: the proof is too short or too long)."""
    sides: list[bool] = []
    for _ in range(count):
        if sn == 0:
            return None
        left = bool(fn & 1) or fn == sn
        sides.append(left)
        if left and not fn & 1:
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    return sides if sn == 0 else None


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show the leaf with hash `leaf_hash` at `index` under `root`?"""
    if not 0 <= index < tree_size:
        return False
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        return False
    sides = _left_siblings(index, tree_size - 1, len(proof))
    if sides is None:
        return False
    r = bytes(leaf_hash)
    for p, left in zip(proof, sides, strict=True):
        r = node_hash(p, r) if left else node_hash(r, p)
    return hmac.compare_digest(r, root)


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
    sides = _left_siblings(fn, sn, len(path) - 1)  # step 6 (its walk), and step 7's sn == 0
    if sides is None:
        return False
    for c, left in zip(path[1:], sides, strict=True):  # step 6
        if left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    return hmac.compare_digest(fr, old_root) and hmac.compare_digest(sr, new_root)  # step 7


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
        return root_of(self._size(tree_size), self._perfect)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        return inclusion_of(index, self._size(tree_size), self._perfect)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return consistency_of(old, self._size(new), self._perfect)
