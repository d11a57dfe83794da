"""The public pages, through the web app (no sign-in): a document's verification page and its
proof, copies that are and are not genuine, case progress by query code, the published signed
tree head, and the rate limit. The documents are issued by the real activity into a real log."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from activities.ledger import leaf_hash, verify_inclusion
from activities.petition import PetitionActivities
from engine.config import Settings
from engine.public import RateLimit, normalise_copy
from engine.web import create_app
from rules.vocabulary import Channel, DocumentKind, OfficeLevel
from workflows.models import DocumentRequest, Intake, Petitioner, RegisterCaseInput

CASE = "XF-20261201-3F2A9C1B"
NAME, ID_NUMBER, PHONE = "欧阳青禾", "110101199001011237", "13912345678"


@pytest.fixture
def issued(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path, public_url="https://xf.example.gov.cn")
    acts = PetitionActivities(settings)
    intake = Intake(
        channel=Channel.visit, office_level=OfficeLevel.county, locality="青山区",
        petitioners=[Petitioner(name=NAME, id_number=ID_NUMBER, phone=PHONE)],
        title="装修公司拖欠工资", content="公司拖欠工资2.6万元。",
    )  # fmt: skip
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    async def issue() -> Any:
        await acts.register_case(
            RegisterCaseInput(case_id=CASE, matter_key="k" * 32, intake=intake, rules_version="t", registered_at=at)
        )
        docs = []
        for n, kind in enumerate([DocumentKind.acceptance_notice, DocumentKind.handling_opinion], start=1):
            docs.append(
                await acts.issue_document(
                    DocumentRequest(
                        idempotency_key=f"{CASE}:doc:{kind.value}:{n}", case_id=CASE, kind=kind, issued_at=at,
                        fields={"title": "装修公司拖欠工资", "unit": "青山区人社局", "text": "已督促公司支付。"},
                    )
                )
            )  # fmt: skip
        return docs

    docs = asyncio.run(issue())
    return {"settings": settings, "docs": docs, "client": TestClient(create_app(settings))}


def test_the_verification_page_shows_the_document_and_a_proof_that_checks(issued: dict[str, Any]) -> None:
    c: TestClient = issued["client"]
    doc = issued["docs"][1]
    page = c.get(f"/v/{doc.verification_code}")
    assert page.status_code == 200
    text = page.text
    assert "信访事项办理意见书" in text and "青山区人社局" in text and "2026年12月1日" in text
    assert "XF-20261201-****9C1B" in text and doc.sha256 in text
    # never personal data
    assert not [v for v in (NAME, ID_NUMBER, PHONE) if v in text]
    # the proof the page's script re-checks is a real RFC 9162 inclusion proof
    import base64
    import json
    import re

    data = json.loads(re.search(r'id="proof-data">(.*?)</script>', text, re.S).group(1))  # type: ignore[union-attr]
    entry = base64.b64decode(data["entry_b64"])
    assert verify_inclusion(
        leaf_hash(entry), data["index"], data["tree_size"], [bytes.fromhex(h) for h in data["proof_hex"]],
        bytes.fromhex(data["root_hex"]),
    )  # fmt: skip
    assert c.get("/v/L99-deadbeef").status_code == 404
    wrong_hash = doc.verification_code[:-1] + ("0" if doc.verification_code[-1] != "0" else "1")
    assert c.get(f"/v/{wrong_hash}").status_code == 404


def test_copies_that_are_genuine_and_one_that_is_not(issued: dict[str, Any]) -> None:
    c: TestClient = issued["client"]
    doc = issued["docs"][0]
    original = Path(doc.path).read_bytes()

    def check(data: bytes, name: str = "copy.txt") -> str:
        r = c.post(f"/v/{doc.verification_code}", files={"file": (name, data, "text/plain")})
        assert r.status_code == 200
        return r.text

    text = original.decode("utf-8")
    genuine = [
        original,
        text.replace("\n", "\r\n").encode("utf-8"),  # re-saved on Windows
        b"\xef\xbb\xbf" + original,  # with a BOM
        text.encode("gb18030"),  # in GBK/GB18030
        text.replace("\n", "  \n").encode("utf-8"),  # trailing spaces
        text.split("—— 存证核验 ——")[0].encode("utf-8"),  # without the footer
    ]
    for copy in genuine:
        assert "真实：与存证记录完全一致" in check(copy)
    changed = text.replace("受理", "受里", 1).encode("utf-8")
    assert "不是真实文书" in check(changed)
    pasted = c.post(f"/v/{doc.verification_code}", data={"text": text})
    assert "真实：与存证记录完全一致" in pasted.text
    assert hashlib.sha256(normalise_copy(original)).hexdigest() == doc.sha256


def test_progress_by_query_code_shows_no_personal_data(issued: dict[str, Any]) -> None:
    c: TestClient = issued["client"]
    settings: Settings = issued["settings"]
    code = settings.query_code(CASE)
    r = c.post("/q", data={"case": CASE, "code": code.lower().replace("-", " ")})
    assert r.status_code == 200
    assert "已登记" in r.text and "信访事项受理告知书" in r.text and issued["docs"][0].verification_code in r.text
    assert not [v for v in (NAME, ID_NUMBER, PHONE) if v in r.text]
    bad = c.post("/q", data={"case": CASE, "code": "AAAA-AAAA"})
    assert bad.status_code == 404 and "案件编号或查询码不正确" in bad.text
    unknown = c.post("/q", data={"case": "XF-20261201-00000000", "code": settings.query_code("XF-20261201-00000000")})
    assert unknown.status_code == 404 and "案件编号或查询码不正确" in unknown.text


def test_the_signed_head_is_published_for_witnesses(issued: dict[str, Any]) -> None:
    c: TestClient = issued["client"]
    sth = c.get("/ledger/sth").json()
    assert sth["tree_size"] == 2 and sth["public_key"] and sth["signature_b64"]
    proof = c.get("/ledger/consistency", params={"old": 1, "new": 2}).json()
    assert proof["old_size"] == 1 and proof["new_size"] == 2
    assert c.get("/ledger/consistency", params={"old": 3, "new": 2}).status_code == 400


def test_rate_limit() -> None:
    limit = RateLimit(limit=3, window_s=60)
    assert [limit.allow("ip", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limit.allow("ip", now=61) and limit.allow("other", now=3)


def test_the_cli_verifies_a_crlf_or_gbk_copy_and_answers_a_code(
    issued: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from starter import EXIT_FAILED, EXIT_OK, main

    settings: Settings = issued["settings"]
    doc = issued["docs"][1]
    monkeypatch.setenv("PETITION_DATA_DIR", str(settings.data_dir))
    text = Path(doc.path).read_text(encoding="utf-8")
    for name, data in [("crlf.txt", text.replace("\n", "\r\n").encode()), ("gbk.txt", text.encode("gb18030"))]:
        (tmp_path / name).write_bytes(data)
        assert asyncio.run(main(["verify", str(tmp_path / name)])) == EXIT_OK, capsys.readouterr()
        said = json.loads(capsys.readouterr().out)  # piped (not a terminal): JSON
        assert said["genuine"] is True and said["message"].startswith("真实：文书") and said["index"] == doc.ledger_index
    (tmp_path / "changed.txt").write_text(text.replace("已督促", "未督促"), encoding="utf-8")
    assert asyncio.run(main(["verify", str(tmp_path / "changed.txt")])) == EXIT_FAILED
    said = json.loads(capsys.readouterr().out)
    assert said["genuine"] is False and said["message"].startswith("不真实：")
    # the same, as a table for a person
    assert asyncio.run(main(["verify", str(tmp_path / "crlf.txt"), "--table"])) == EXIT_OK
    table = capsys.readouterr().out
    assert table.startswith("真实：文书") and "核验依据" in table and "日志序号" in table
    # The code printed on the document (what a petitioner types) names its entry.
    assert asyncio.run(main(["verify", doc.verification_code])) == EXIT_OK
    out = capsys.readouterr().out
    assert "信访事项办理意见书" in out and f"/v/{doc.verification_code}" in out
    assert asyncio.run(main(["verify", "L99-deadbeef"])) == EXIT_FAILED
