"""The public pages: what a petitioner (or anyone holding a document) can check without an account.

    GET  /v/CODE                 the document behind a verification code (the QR code on every PDF):
                                 kind, issuer, date, masked case number, SHA-256, its index in the
                                 log, the latest signed tree head and an inclusion proof, which the
                                 page's own script re-checks (static/verify.js)
    POST /v/CODE                 an uploaded file or pasted text: genuine or not
    GET  /q, POST /q             a case's progress by case number + query code (查询码, printed on
                                 the acceptance notice): stage, next deadline, documents issued
    GET  /ledger/sth             the log's signed tree head, at a fixed address (for witnesses)
    GET  /ledger/consistency     a consistency proof between two sizes (for witnesses)

Nothing here shows personal data: the log's entries hold none, a document page shows no addressee
or content, and the progress page shows no names. Every route is rate-limited per client address.
A copy is compared after normalising only what cannot change its meaning: the encoding (UTF-8 with
or without BOM, GBK/GB18030), line endings, trailing whitespace and the verification footer.
Any other change of a character makes it "not genuine".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlmodel import Session, col, select

from activities.db import CaseRow, DocumentRow, as_utc, get_engine
from activities.documents import FOOTER_MARK, chinese_date, read_copy
from activities.ledger import Ledger, LedgerError, verification_code
from engine.config import Settings
from engine.desk import InputError
from engine.wording import document_title
from rules.vocabulary import DEADLINE_CN, STAGE_CN, DeadlineName, Stage

MAX_UPLOAD = 2_000_000  # bytes; a document is a few KB
_CODE = re.compile(r"^L(\d{1,12})-([0-9a-f]{8})$")
_CASE = re.compile(r"^XF-\d{8}-[0-9A-F]{8}$")

class RateLimit:
    """At most `limit` requests per `window_s` per client address (in memory, per process)."""

    def __init__(self, limit: int = 30, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self._seen.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        if len(self._seen) > 10_000:  # forget idle addresses
            for k in [k for k, v in self._seen.items() if not v]:
                del self._seen[k]
        return True


def masked_case(case_id: str) -> str:
    """XF-20261201-3F2A9C1B -> XF-20261201-****9C1B: enough to recognise, not to look up."""
    return case_id[:-8] + "****" + case_id[-4:] if len(case_id) > 8 else "****"


def normalise_copy(data: bytes) -> bytes:
    """A copy of a document as the log hashed it (activities.documents.read_copy)."""
    try:
        return read_copy(data)[0]
    except ValueError as exc:
        raise InputError("这个文件既不是 UTF-8 也不是 GBK/GB18030 编码的文本，无法核验。") from exc


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _ledger(settings: Settings) -> Ledger:
    return Ledger(get_engine(settings.resolved_database_url()), settings.resolved_ledger_key_file())


def _issuer_and_date(path: Path) -> tuple[str, str]:
    """The issuer and date lines printed on the document (its signature block), or blanks."""
    try:
        lines = path.read_text(encoding="utf-8").split(f"\n{FOOTER_MARK}\n", 1)[0].rstrip("\n").split("\n")
    except OSError:
        return "", ""
    block = [line for line in lines[-4:] if not line.startswith(("经办人", "（文书模板"))]
    return (block[-2], block[-1]) if len(block) >= 2 else ("", "")


def document_view(settings: Settings, code: str) -> dict[str, Any] | None:
    """What the verification page shows for a code, or None when no document has it."""
    m = _CODE.match(code.strip())
    if not m:
        return None
    index = int(m.group(1))
    ledger = _ledger(settings)
    try:
        if index >= ledger.size():
            return None
        entry = ledger.entry(index)
    except LedgerError:
        return None
    record = json.loads(entry.decode("utf-8"))
    sha = str(record.get("document_sha256", ""))
    if verification_code(index, sha) != code.strip():
        return None
    sth = ledger.signed_head()
    proof = ledger.inclusion_proof(index, sth.tree_size)
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.exec(select(DocumentRow).where(DocumentRow.ledger_index == index)).first()
    issuer, date = _issuer_and_date(Path(row.path)) if row else ("", "")
    kind = record.get("kind", "")
    issued_at = datetime.fromisoformat(record["issued_at"])
    return {
        "code": code.strip(),
        "kind": kind,
        "title": document_title(kind),
        "issuer": issuer,
        "date": date or chinese_date(issued_at),
        "case": masked_case(str(record.get("case_id", ""))),
        "sha256": sha,
        "index": index,
        "sth": sth.model_dump(mode="json"),
        # For the page's script: the entry itself (no personal data: the log is public by design),
        # the proof, and the head it leads to.
        "proof_data": {
            "entry_b64": base64.b64encode(entry).decode(),
            "index": index,
            "tree_size": sth.tree_size,
            "proof_hex": [h.hex() for h in proof],
            "root_hex": sth.root_hex,
            "document_sha256": sha,
            "sth": sth.model_dump(mode="json"),
        },
    }


def case_progress(settings: Settings, case_id: str, code: str) -> dict[str, Any] | None:
    """A case's progress for its petitioner, or None when the number and code do not match."""
    case_id = case_id.strip().upper()
    given = re.sub(r"[\s\-]", "", code).upper()
    expected = settings.query_code(case_id).replace("-", "")
    if not _CASE.match(case_id) or not hmac.compare_digest(given.encode(), expected.encode()):
        return None
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.get(CaseRow, case_id)
        if row is None:
            return None
        docs = s.exec(select(DocumentRow).where(DocumentRow.case_id == case_id).order_by(col(DocumentRow.id))).all()
    nxt = None
    if row.status == "open" and row.next_deadline and row.next_due:
        last_day = as_utc(row.next_due) - timedelta(seconds=1)  # a period ends at 24:00 of its last day
        nxt = {
            "name": DEADLINE_CN.get(DeadlineName(row.next_deadline), row.next_deadline),
            "date": chinese_date(last_day),
            "provisional": row.next_due_provisional,
        }
    return {
        "case": case_id,
        "stage": "已办结" if row.status == "closed" else STAGE_CN.get(Stage(row.stage), row.stage),
        "next": nxt,
        "documents": [
            {"title": document_title(d.kind), "date": chinese_date(as_utc(d.issued_at)),
             "code": d.verification_code}
            for d in docs
        ],  # fmt: skip
    }


def public_router(settings: Settings, templates: Jinja2Templates) -> APIRouter:
    router = APIRouter()
    limiter = RateLimit()

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def too_many(request: Request) -> Response | None:
        if limiter.allow(_client(request)):
            return None
        return page(request, "error.html", 429, title="请求过于频繁", message="请稍等一分钟后再试。")

    @router.get("/v/{code}")
    async def verify_page(request: Request, code: str) -> Response:
        if (refused := too_many(request)) is not None:
            return refused
        view = document_view(settings, code)
        if view is None:
            return page(request, "verify.html", 404, view=None, code=code[:40])
        return page(request, "verify.html", view=view, proof_json=json.dumps(view["proof_data"]))

    @router.post("/v/{code}")
    async def verify_copy(
        request: Request,
        code: str,
        file: UploadFile | None = None,
        text: Annotated[str, Form()] = "",
    ) -> Response:
        if (refused := too_many(request)) is not None:
            return refused
        view = document_view(settings, code)
        if view is None:
            return page(request, "verify.html", 404, view=None, code=code[:40])
        data = await file.read(MAX_UPLOAD + 1) if file is not None and file.filename else text.encode("utf-8")
        result: dict[str, Any]
        if not data.strip():
            result = {"ok": None, "message": "请上传文书文件，或把文书全文粘贴到文本框中。"}
        elif len(data) > MAX_UPLOAD:
            result = {"ok": False, "message": "文件过大：一份文书只有几千字节。"}
        else:
            try:
                sha = hashlib.sha256(normalise_copy(data)).hexdigest()
            except InputError as exc:
                result = {"ok": False, "message": str(exc)}
            else:
                ok = hmac.compare_digest(sha, view["sha256"])
                result = {
                    "ok": ok,
                    "sha256": sha,
                    "message": "真实：与存证记录完全一致。"
                    if ok
                    else "不是真实文书：内容与存证记录不一致（哪怕只改动一个字也会不一致）。",
                }
        return page(request, "verify.html", view=view, proof_json=json.dumps(view["proof_data"]), result=result)

    @router.get("/q")
    async def progress_form(request: Request) -> Response:
        return page(request, "progress.html", progress=None)

    @router.post("/q")
    async def progress(
        request: Request, case: Annotated[str, Form()] = "", code: Annotated[str, Form()] = ""
    ) -> Response:
        if (refused := too_many(request)) is not None:
            return refused
        found = case_progress(settings, case[:40], code[:40])
        if found is None:
            return page(request, "progress.html", 404, progress=None, error="案件编号或查询码不正确。", case=case[:40])
        return page(request, "progress.html", progress=found)

    @router.get("/ledger/sth")
    async def sth(request: Request) -> Response:
        if (refused := too_many(request)) is not None:
            return refused
        ledger = _ledger(settings)
        head = ledger.signed_head().model_dump(mode="json")
        return JSONResponse({**head, "public_key": ledger.public_key_b64})

    @router.get("/ledger/consistency")
    async def consistency(request: Request, old: int, new: int) -> Response:
        from engine.reports import ledger_consistency

        if (refused := too_many(request)) is not None:
            return refused
        try:
            return JSONResponse(ledger_consistency(settings, old, new))
        except InputError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)

    return router
