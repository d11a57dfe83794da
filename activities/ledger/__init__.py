"""The tamper-evident document log: an append-only Merkle tree in the style of RFC 9162 (CT v2).

Every issued document (agreement, answer, letter, notice, delivery receipt) is recorded as one *entry*:
canonical JSON naming the SHA-256 of the document's exact bytes, its kind, the case and the issue time,
never any personal data of the petitioner. Anyone holding a copy can then be shown that it is entry
N of the log, with an inclusion proof up to a root hash signed by the log's Ed25519 key; two signed
heads can be shown to be one an extension of the other with a consistency proof.

* :mod:`~activities.ledger.merkle`: RFC 9162 §2.1 tree math: leaf and node hashes, roots, inclusion
  and consistency proofs and their verification, :class:`InMemoryTree` (pure, hashlib only);
* :mod:`~activities.ledger.entries`: what an entry is, its canonical bytes, verification codes;
* :mod:`~activities.ledger.heads`: signed tree heads: the bytes signed, checking a signature;
* :mod:`~activities.ledger.store`: the persistent log (:class:`Ledger`): its tables, appends,
  signed heads, audits, its signing key;
* :mod:`~activities.ledger.verify`: checking a document someone holds against the log.

The names below are the package's public surface; import them from ``activities.ledger``.
Activities only: no workflow imports this package (it touches the database and the key file).
"""

from activities.ledger import entries, store, verify
from activities.ledger.entries import *  # noqa: F403
from activities.ledger.heads import STH_CONTEXT, SignedTreeHead, sth_signing_input, verify_sth_signature
from activities.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    InMemoryTree,
    leaf_hash,
    node_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from activities.ledger.store import *  # noqa: F403
from activities.ledger.verify import *  # noqa: F403

# All that entries, store and verify export; of heads and merkle, what a caller needs (the rest is
# their own plumbing, imported from the submodule by whoever needs it).
__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "STH_CONTEXT",
    "InMemoryTree",
    "SignedTreeHead",
    "leaf_hash",
    "node_hash",
    "split_point",
    "sth_signing_input",
    "verify_consistency",
    "verify_inclusion",
    "verify_sth_signature",
]
__all__ += entries.__all__
__all__ += store.__all__
__all__ += verify.__all__
