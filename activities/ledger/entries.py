"""What the log records for an issued document, and the short code printed on the document.

An entry is canonical JSON (sorted keys, no spaces, UTF-8) naming the SHA-256 of the
document's exact bytes, its kind, the case and the issue time (:func:`make_entry`), never any
personal data of the petitioner: the log is append-only and shown to anyone. Its leaf hash is
:func:`activities.ledger.merkle.leaf_hash` of these exact bytes, so the encoding must never change.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["ENTRY_VERSION", "document_of_entry", "make_entry", "verification_code"]

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
