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
    index: int | None = None  # the entry naming the document, once found
    verification_code: str | None = None
    # The head the inclusion proof was checked against, and the proof (once it could be checked).
    signed_head: SignedTreeHead | None = None
    proof_hex: list[str] = Field(default_factory=list)

    @property
    def tree_size(self) -> int | None:
        return self.signed_head.tree_size if self.signed_head else None

    @property
    def root_hex(self) -> str | None:
        return self.signed_head.root_hex if self.signed_head else None


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
                f"不真实：日志中从未记录过内容与此相同的文书（其指纹 {sha[:8]}… 不在日志中；"
                "哪怕改动一个字，指纹也会不同）"
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
            message=f"日志本身已被篡改：{why.rstrip('.。')}",
            **fields,
        )

    try:
        entry = ledger.entry(index)
        h = leaf_hash(entry)
        if h != ledger.stored_leaf_hash(index):
            return altered(f"第 {index} 条记录与登记的哈希不再一致")
        if document_of_entry(entry) != sha:
            return altered(f"第 {index} 条记录登记在这份文书名下，却已不再指向它")
        sth = ledger.signed_head()
        root = bytes.fromhex(sth.root_hex)
        proof = ledger.inclusion_proof(index, sth.tree_size)
        fields: dict[str, Any] = {"signed_head": sth, "proof_hex": [p.hex() for p in proof]}
        if not verify_inclusion(h, index, sth.tree_size, proof, root):
            return altered(f"第 {index} 条记录的证明推导不出已签名的根哈希", **fields)
        if not ledger.verify_signed_head(sth):
            return altered("签名树头上没有日志密钥的有效签名", **fields)
        problems = ledger.audit_path(index, sth.tree_size)
        if problems:
            return altered(problems[0], **fields)
    except LedgerTamperedError as exc:
        return altered(str(exc))
    also = (
        f"；相同内容还登记为第 {'、'.join(map(str, indexes[1:]))} 条记录"
        if len(indexes) > 1
        else ""
    )
    return VerificationResult(
        genuine=True,
        document_sha256=sha,
        index=index,
        verification_code=code,
        message=(
            f"真实：文书 {sha[:8]}… 是日志第 {index} 条记录（验证码 {code}；日志大小 {sth.tree_size}，"
            f"根哈希 {sth.root_hex[:8]}…），由 {len(proof)} 个哈希组成的证明已对照 {sth.timestamp} 签署的树头核验{also}"
        ),
        **fields,
    )
