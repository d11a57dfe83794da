"""Documents a petitioner keeps can be verified against the tamper-evident log, through the
operator's commands: a kept scenario's document verifies; the same file with one byte changed
does not; the signed head and consistency proofs check out independently."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from activities.documents import split_document
from activities.ledger import sth_signing_input, verify_consistency

ROOT = Path(__file__).resolve().parent.parent


def _starter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], capture_output=True, text=True, timeout=180)


def test_kept_scenario_documents_verify_and_a_changed_byte_is_refused(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    proc = _starter("scenario", str(ROOT / "tests" / "scenarios" / "high-risk-ladder.json"), "--keep", str(keep))
    assert proc.returncode == 0, proc.stderr
    timeline = json.loads(proc.stdout)
    docs = [e for e in timeline["events"] if e["kind"] == "document"]
    assert {d["document"] for d in docs} >= {"risk_warning_letter", "supervision_letter", "accountability_letter"}
    files = sorted((keep / "documents").rglob("*.txt"))
    assert len(files) == len(docs)

    letter = next(f for f in files if f.name.startswith("accountability_letter"))
    body, code = split_document(letter.read_bytes())
    recorded = next(d for d in docs if d["document"] == "accountability_letter")
    assert hashlib.sha256(body).hexdigest() == recorded["sha256"]
    assert code == recorded["verification_code"]
    assert "问责建议函" in body.decode()

    ok = _starter("verify", str(letter), "--data", str(keep))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    said = json.loads(ok.stdout)
    assert said["genuine"] is True and said["message"].startswith("真实：") and said["verification_code"] == code

    data = bytearray(letter.read_bytes())
    pos = data.index("问责".encode())
    data[pos + 1] ^= 0x01
    forged = tmp_path / "forged.txt"
    forged.write_bytes(bytes(data))
    bad = _starter("verify", str(forged), "--data", str(keep))
    assert bad.returncode == 1
    said = json.loads(bad.stdout)
    assert said["genuine"] is False and said["message"].startswith("不真实：")

    # a different verification code printed on a genuine body is refused too
    relabelled = tmp_path / "relabelled.txt"
    relabelled.write_bytes(letter.read_bytes().replace(code.encode(), b"L0-00000000"))
    assert _starter("verify", str(relabelled), "--data", str(keep)).returncode == 1

    head = _starter("ledger", "head", "--data", str(keep))
    assert head.returncode == 0, head.stderr
    sth = json.loads(head.stdout)
    assert sth["tree_size"] == len(docs)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(sth["public_key_b64"]))
    key.verify(
        base64.b64decode(sth["signature_b64"]),
        sth_signing_input(sth["tree_size"], bytes.fromhex(sth["root_hex"]), sth["timestamp"]),
    )

    cons = _starter("ledger", "consistency", "2", str(len(docs)), "--data", str(keep))
    assert cons.returncode == 0, cons.stderr
    proof = json.loads(cons.stdout)
    assert verify_consistency(
        2, len(docs), bytes.fromhex(proof["old_root"]), bytes.fromhex(proof["new_root"]), [bytes.fromhex(h) for h in proof["proof"]]
    )
    assert proof["new_root"] == sth["root_hex"]


def test_documents_speak_chinese_and_the_agreement_names_both_parties_and_the_terms() -> None:
    import re
    from datetime import UTC, datetime

    from activities.documents import render_body
    from rules.vocabulary import DocumentKind

    at = datetime(2026, 12, 1, 2, tzinfo=UTC)
    fields = {
        "title": "装修公司拖欠工资", "unit": "青山区人社局", "locality": "青山区",
        "deadline": "2026-12-16T16:00:00+00:00", "officials": ["青山区区长"], "ladder_step": "warning",
        "delivered_document": "handling_opinion（存证核验码 L2-71f18649）", "text": "经查属实。", "days": 20,
        "approved_by": "局长", "route": "arbitration", "new_due": "2027-02-22T16:00:00+00:00",
        "other_party": "某装修公司", "terms": "某装修公司于12月10日前一次性支付工资2.6万元。", "fulfilled": False,
    }  # fmt: skip
    letters = (DocumentKind.risk_warning_letter, DocumentKind.supervision_letter)
    for kind in DocumentKind:
        # The engine's own reason for a letter is a code; a person's reason is their words.
        reason = "triage: high risk" if kind in letters else "不属于信访事项受理范围"
        text = render_body(kind, "XF-20261201-5D6E7F80", at, {**fields, "reason": reason}, "赵某").decode("utf-8")
        words = re.findall(r"[A-Za-z_]{3,}", text.replace("XF-20261201-5D6E7F80", ""))
        assert words == [], (kind, words)
    agreement = render_body(DocumentKind.mediation_agreement, "XF-20261201-5D6E7F80", at, fields, "赵某").decode()
    assert "申请人：赵某" in agreement and "被申请人：某装修公司" in agreement and "调解组织：青山区人社局" in agreement
    assert "协议内容：某装修公司于12月10日前一次性支付工资2.6万元。" in agreement
    receipt = render_body(DocumentKind.delivery_receipt, "XF-20261201-5D6E7F80", at, fields, "赵某").decode()
    assert "送达文书：信访事项办理意见书（存证核验码 L2-71f18649）" in receipt
