"""Checking a document a petitioner holds against the log (``starter.py verify``, the public pages)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from activities.ledger.entries import document_of_entry, verification_code
from activities.ledger.heads import SignedTreeHead
from activities.ledger.merkle import leaf_hash, verify_inclusion
from activities.ledger.store import Ledger, LedgerTamperedError

__all__ = ["VerificationResult", "verify_document"]


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
