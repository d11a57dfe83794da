"""The engine's web app, first slice: staff sign-in, the Temporal Web UI behind it, and the remote
codec endpoint that shows a signed-in supervisor decoded payloads (docs/privacy.md).

Everything is served from this process (no CDN); the pages are Chinese. The worker runs `serve`
as an asyncio task in its own process, at `web_url(settings)`.

Sign-in
    `POST /login` checks the password (Argon2id, engine/staff.py) and sets the `petition_session`
    cookie (HttpOnly, SameSite=Lax, Path=/, Secure on https) holding a session token whose SHA-256
    is stored; `POST /logout` revokes it. Failed sign-ins are limited per username and client
    address (5 in 5 minutes, in memory). Every form carries a CSRF token: the sign-in form a
    double-submit nonce (cookie + hidden field), forms of a signed-in page an HMAC of the session
    token under a per-process key; a POST whose `Origin` names another host is refused as well.

The remote codec (`/codec/decode`, `/codec/encode`)
    The protocol of the Temporal Web UI: a JSON body `{"payloads": [...]}`, the protobuf JSON form
    of `temporal.api.common.v1.Payloads`. Decoding needs a signed-in account whose role has
    "decode_payloads" (supervision, admin) — by the session cookie, or `Authorization: Bearer
    TOKEN` with a CLI token for `temporal workflow show --codec-endpoint … --codec-auth …`.
    Encoding is always refused. CORS preflight is answered for the UI's own origins only.

The Temporal Web UI under /temporal, and what was found making it work
    The embedded dev server runs the UI on 127.0.0.1:{ui_port} with `--ui-public-path /temporal`
    and `--ui-codec-endpoint http://{web_host}:{web_port}/codec` (engine/servers.py). Observed on
    temporal CLI 1.9.1 (UI 2.54.1):

    * Under a public path the UI is self-consistent: its HTML, module imports and API calls all
      use absolute paths that start with `/temporal/` (`__sveltekit_….base = "/temporal"`), and its
      API is `/temporal/api/v1/…`. Proxying `/temporal/…` unchanged to the same path upstream
      needs no rewriting of bodies. `/temporal` and `/temporal/` both serve the app; only the
      upstream root `/` redirects (308) to `/temporal/`, and a `Location` naming the upstream
      origin is rewritten to a local path here anyway.
    * The UI sets its own CSRF cookie `_csrf` (Path=/, SameSite=Strict; twice, in two identical
      Set-Cookie headers) and every write (POST) must echo it in `X-CSRF-TOKEN`, else 400 "missing
      csrf token in request header". The proxy passes cookies and headers through, so this works
      behind the proxy; multiple Set-Cookie headers are kept. Our own cookies (`petition_*`) are
      taken out of what is forwarded: the UI server has no use for the session token.
    * `/temporal/api/v1/settings` says `Codec.IncludeCredentials: false`: the UI calls the codec
      with fetch's default credentials mode, "same-origin". Behind this proxy the page's origin is
      `http://{web_host}:{web_port}`, the codec endpoint's too, so the browser sends the session
      cookie and a signed-in supervisor sees decoded payloads. On the raw UI port the codec is
      cross-origin, no cookie goes with it, the codec answers 401 and the UI shows ciphertext.
      Browse the UI at exactly `web_url(settings)/temporal/` (127.0.0.1, not localhost: another
      host name is another origin and another cookie jar).
    * The UI sends its own `X-Frame-Options: SAMEORIGIN`; the proxy leaves it (our pages say DENY).
    * At the root path the UI's page carries a script CSP in a <meta> tag (`'strict-dynamic'` and
      the hash of its inline bootstrap script); under a public path that script names the base
      path, the hash would not match, and the UI server drops the policy and warns "CSP IS
      DISABLED WHEN USING PUBLIC PATH!". The proxy computes the same policy for the page it
      passes (`ui_page_csp`) and sends it as a header.
    * Right after the dev server starts, the UI's API answers 503 ("connection refused" dialing
      the frontend) for about a second: the UI server connects to the frontend lazily. The proxy
      passes the 503 through; the UI retries.
    * The proxied UI can write (terminate, signal, reset…) as the raw UI can: the embedded dev
      server's UI has no switch for read-only; the UI's own settings decide.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import uvicorn
from cryptography.exceptions import InvalidTag
from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from activities.db import StaffRow, get_engine
from engine.codec import EncryptionCodec, KeyRingError
from engine.config import Settings
from engine.logs import get_logger
from engine.public import public_router
from engine.staff import SESSION_TTL, AccessError, actor_from_token, check_password, issue_token, revoke_token
from rules.access import PERMISSION_CN, PERMISSIONS, ROLE_CN, may
from workflows.models import Actor

SESSION_COOKIE = "petition_session"
LOGIN_CSRF_COOKIE = "petition_login_csrf"
UI_PREFIX = "/temporal"
CODEC_MAX_BYTES = 16 * 1024 * 1024  # a batch of payloads; Temporal's own limit is 2 MiB per blob
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 300.0

_HERE = Path(__file__).resolve().parent
_CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_CORS_ALLOW_HEADERS = "content-type, x-namespace, authorization"
_PROXIED = "x-petition-proxied"  # internal marker: a response passed from the Temporal UI



class WebAppError(RuntimeError):
    """The web app could not start (for instance: its port is taken)."""


class SignInRequired(Exception):
    """No valid sign-in: pages redirect to /login, API calls get 401."""

    def __init__(self, stale_cookie: bool = False) -> None:
        super().__init__("未登录或登录已过期，请先登录。")
        self.stale_cookie = stale_cookie


class Forbidden(Exception):
    """Signed in, but the account's role may not do this; the message is a Chinese sentence."""


def web_url(settings: Settings) -> str:
    return f"http://{settings.web_host}:{settings.web_port}"


def ui_origins(settings: Settings) -> frozenset[str]:
    """The raw Temporal Web UI's origins: the only ones CORS answers for."""
    return frozenset({f"http://127.0.0.1:{settings.ui_port}", f"http://localhost:{settings.ui_port}"})


# ------------------------------------------------------------------------------------------------
# Helpers: settings, paths, sign-in, CSRF, rate limit
# ------------------------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Engine:
    """The app's database (the cockpit's and the case desk's pages read it)."""
    return get_engine(_settings(request).resolved_database_url())


def _is_api(request: Request) -> bool:
    """A call from code (401/403 JSON), not a page a person navigates to (redirect, HTML)."""
    path = request.url.path
    return (
        path.startswith("/codec")
        or path.startswith(f"{UI_PREFIX}/api/")
        or path.startswith(f"{UI_PREFIX}/_app/")
        or request.method not in ("GET", "HEAD")
    )


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in; anything else (another site, a scheme) becomes "/"."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def current_actor(request: Request) -> Actor:
    """The signed-in account (FastAPI dependency): the session cookie, or for API calls a bearer
    token. Raises SignInRequired (pages: redirect to /login?next=…; API: 401)."""
    cached = getattr(request.state, "actor", None)
    if isinstance(cached, Actor):
        return cached
    cookie = request.cookies.get(SESSION_COOKIE)
    token = cookie or (_bearer(request) if _is_api(request) else None)
    if not token:
        raise SignInRequired()
    try:
        actor = actor_from_token(_settings(request), token)
    except AccessError:
        raise SignInRequired(stale_cookie=bool(cookie)) from None
    request.state.actor = actor
    return actor


def refusal(actor: Actor, permission: str) -> str:
    """Why `actor` may not do `permission`, in Chinese, naming its role and the roles that may."""
    allowed = "、".join(ROLE_CN[r] for r, perms in PERMISSIONS.items() if permission in perms) or "任何角色"
    what = PERMISSION_CN.get(permission, permission)
    return f"您当前的角色是“{ROLE_CN[actor.role]}”，无权{what}；只有{allowed}可以。"


def requires(permission: str) -> Callable[..., Actor]:
    """A dependency: the signed-in account, if its role has `permission` (else 403)."""

    def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if not may(actor.role, permission):
            raise Forbidden(refusal(actor, permission))
        return actor

    return dependency


def _session_csrf(request: Request, session_token: str) -> str:
    key: bytes = request.app.state.csrf_key
    digest = hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def form_csrf_token(request: Request) -> str:
    """The CSRF token forms of a signed-in page carry (an HMAC of the session token)."""
    return _session_csrf(request, request.cookies.get(SESSION_COOKIE, ""))


def _foreign_origin(request: Request) -> bool:
    """A POST whose Origin header names another host than this one (cross-site form posting)."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class LoginLimiter:
    """Failed sign-ins per (username, client address): `max_failures` in `window_s` locks that pair
    until the oldest failure leaves the window. In memory: a restart forgets."""

    def __init__(
        self,
        max_failures: int = LOGIN_MAX_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self.clock()
        q = self._failures.get(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: tuple[str, str]) -> float:
        """Seconds until this pair may try again; 0 when it may now."""
        q = self._recent(key)
        if len(q) < self.max_failures:
            return 0.0
        return max(0.0, q[0] + self.window_s - self.clock())

    def failed(self, key: tuple[str, str]) -> None:
        if len(self._failures) > 10_000:  # keep memory bounded under a spray of usernames
            for k in list(self._failures):
                if not self._recent(k):
                    del self._failures[k]
        q = self._recent(key)
        q.append(self.clock())
        self._failures[key] = q

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


# ------------------------------------------------------------------------------------------------
# Responses
# ------------------------------------------------------------------------------------------------


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def content_disposition(filename: str, fallback: str, *, inline: bool = False) -> str:
    """A download named `filename`: RFC 6266 with the UTF-8 name encoded as RFC 5987 says
    (`filename*`), and `fallback` (ASCII) for clients that know only `filename`."""
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _error(request: Request, status_code: int, title: str, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status_code, headers=_cors_headers(request))
    return _page(request, "error.html", status_code, title=title, message=message)


def _cors_headers(request: Request) -> dict[str, str]:
    """CORS headers for a codec response to the raw UI's origin (never `*`); none otherwise."""
    origin = request.headers.get("origin")
    if not request.url.path.startswith("/codec") or origin not in ui_origins(_settings(request)):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _login_form(
    request: Request,
    status_code: int = 200,
    *,
    error: str | None = None,
    next_path: str = "/",
    username: str = "",
) -> Response:
    nonce = secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        status_code,
        error=error,
        next_path=next_path,
        username=username,
        csrf_token=nonce,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        nonce,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


class SecurityHeaders:
    """Headers on every response: nosniff and same-origin referrers everywhere; our own pages also
    get a CSP, X-Frame-Options DENY and no-store. What the proxy passes from the Temporal UI (marked
    with `_PROXIED`, removed here) keeps the UI's own framing rule and caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                proxied = _PROXIED in headers
                del headers[_PROXIED]
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                if not proxied:
                    headers["X-Frame-Options"] = "DENY"
                    headers["Content-Security-Policy"] = _CSP
                    if not path.startswith("/static/") and "cache-control" not in headers:
                        headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ------------------------------------------------------------------------------------------------
# The proxy to the Temporal Web UI
# ------------------------------------------------------------------------------------------------


def _ui_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = getattr(request.app.state, "ui_client", None)
    if client is None:
        # trust_env=False: HTTP(S)_PROXY must not send a local call elsewhere. The transport can be
        # replaced (app.state.ui_transport) by tests.
        client = httpx.AsyncClient(
            transport=getattr(request.app.state, "ui_transport", None),
            timeout=httpx.Timeout(60.0, connect=5.0),
            follow_redirects=False,
            trust_env=False,
        )
        request.app.state.ui_client = client
    return client


def _forward_request_headers(request: Request) -> list[tuple[str, str]]:
    named = {h.strip().lower() for h in request.headers.get("connection", "").split(",") if h.strip()}
    out: list[tuple[str, str]] = []
    for key, value in request.headers.items():
        k = key.lower()
        if k in _HOP_BY_HOP or k in named or k in ("host", "content-length", "authorization"):
            continue  # authorization: a bearer token for this app, which the UI server has no use for
        if k == "cookie":
            # The UI's own cookies (its `_csrf`) pass; ours (the session token) stay here.
            kept = [c for c in value.split(";") if c.strip() and not c.strip().startswith("petition_")]
            if not kept:
                continue
            value = ";".join(kept).strip()
        out.append((key, value))
    if "content-length" in request.headers:
        out.append(("content-length", request.headers["content-length"]))
    return out


def _response_headers(upstream: httpx.Response, settings: Settings) -> list[tuple[bytes, bytes]]:
    named = {h.strip().lower() for h in upstream.headers.get("connection", "").split(",") if h.strip()}
    out: list[tuple[bytes, bytes]] = []
    for key, value in upstream.headers.multi_items():
        k = key.lower()
        if k in _HOP_BY_HOP or k in named or k == _PROXIED:
            continue
        if k == "location":
            for origin in ui_origins(settings):
                if value.startswith(origin + "/") or value == origin:
                    value = value[len(origin) :] or "/"
        out.append((k.encode("latin-1"), value.encode("latin-1")))
    return out


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def ui_page_csp(html: bytes) -> str | None:
    """The Temporal UI's own script policy for one of its pages: `'strict-dynamic'` plus the hash of
    each inline script (SvelteKit's bootstrap). At the root path the UI puts exactly this in a
    <meta> tag; under `--ui-public-path` the bootstrap names the base path, the build's hash no
    longer matches and the UI server drops the policy ("CSP IS DISABLED WHEN USING PUBLIC PATH")."""
    hashes = [
        base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() for m in _INLINE_SCRIPT.finditer(html)
    ]
    if not hashes:
        return None
    sources = " ".join(f"'sha256-{h}'" for h in hashes)
    return f"script-src 'strict-dynamic' {sources}; object-src 'none'; base-uri 'self'"


# Through the engine, the Temporal UI only reads: a case changes only by the engine's actions (with
# their actor, role and rules). Workflow queries are POSTs that read; everything else is refused.
_UI_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def _ui_write_refused(method: str, path: bytes) -> bool:
    return method not in _UI_READ_METHODS and not (method == "POST" and path.rstrip(b"/").endswith(b"/query"))


async def _proxy(request: Request) -> Response:
    settings = _settings(request)
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = raw_path.split(b"?", 1)[0]
    if _ui_write_refused(request.method, path):
        return _error(
            request,
            403,
            "Temporal 界面只读",
            "经由本引擎打开的 Temporal 界面只能查看：终止、重置、信号和更新会绕过受理规则与经办人记录，"
            "请使用 starter.py 或本系统的操作页面。",
        )
    if path == UI_PREFIX.encode():
        path += b"/"
    if any(seg in (b"..", b".") for seg in path.split(b"/")) or b"%2e%2e" in path.lower():
        return _error(request, 400, "请求无效", "路径中不能含有“..”。")
    query = request.scope.get("query_string", b"")
    url = httpx.URL(
        scheme="http",
        host="127.0.0.1",
        port=settings.ui_port,
        raw_path=path + (b"?" + query if query else b""),
    )
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    client = _ui_client(request)
    upstream_request = client.build_request(
        request.method,
        url,
        headers=_forward_request_headers(request),
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.HTTPError:
        return _error(
            request,
            502,
            "Temporal 界面暂时无法访问",
            f"无法连接 Temporal 界面（127.0.0.1:{settings.ui_port}）：引擎的内置开发服务器可能尚未启动。",
        )
    headers = _response_headers(upstream, settings)
    if request.method == "GET" and upstream.headers.get("content-type", "").startswith("text/html"):
        # The app's one HTML page (every route of the SPA): small, read whole to give it back the
        # script CSP the UI ships with at the root path and drops under a public path.
        try:
            body = await upstream.aread()
        finally:
            await upstream.aclose()
        headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((_PROXIED.encode(), b"1"))
        csp = ui_page_csp(body)
        if csp:
            headers.append((b"content-security-policy", csp.encode()))
        page = Response(content=body, status_code=upstream.status_code)
        page.raw_headers = headers
        return page
    response = StreamingResponse(
        upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
    )
    response.raw_headers = [*headers, (_PROXIED.encode(), b"1")]
    return response


# ------------------------------------------------------------------------------------------------
# The app
# ------------------------------------------------------------------------------------------------


def _account_row(settings: Settings, username: str) -> StaffRow | None:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return s.get(StaffRow, username)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """The web app for `settings`: sign-in, home page, the cockpit and the case desk, the codec
    endpoint, the Temporal UI proxy. `client` (the worker's) sends the case pages' actions as the
    same Temporal updates the CLI sends; without one, those forms say the engine is not connected.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        client: httpx.AsyncClient | None = getattr(app.state, "ui_client", None)
        if client is not None:
            app.state.ui_client = None
            await client.aclose()

    # No OpenAPI pages: they load scripts from a CDN, and nothing here is a public API.
    app = FastAPI(
        title="信访事项办理引擎", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(_HERE / "templates"))
    # base.html's navigation shows a signed-in page's `actor` the pages its role may open.
    app.state.templates.env.globals["may"] = may
    app.state.csrf_key = secrets.token_bytes(32)  # per process: a restart asks open pages to reload
    app.state.login_limiter = LoginLimiter()
    app.state.ui_client = None
    app.state.temporal = client
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    # The public pages (no sign-in): document verification, case progress, the log's head.
    app.include_router(public_router(settings, app.state.templates))
    # The supervision cockpit (engine/web_cockpit.py) and the case desk (engine/web_cases.py).
    from engine.web_cases import cases_router
    from engine.web_cockpit import cockpit_router

    app.include_router(cockpit_router)
    app.include_router(cases_router)
    log = get_logger(component="web")

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, exc: SignInRequired) -> Response:
        if _is_api(request):
            headers = {"WWW-Authenticate": 'Bearer realm="petition-engine"', **_cors_headers(request)}
            response: Response = JSONResponse({"detail": str(exc)}, status_code=401, headers=headers)
        else:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = "/login" if target == "/" else "/login?" + urlencode({"next": target})
            response = RedirectResponse(login, status_code=303)
        if exc.stale_cookie:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "无权访问", str(exc))

    # -------------------------------------------------------------- sign-in

    @app.get("/login")
    async def login_page(request: Request, next: str = "/") -> Response:
        return _login_form(request, next_path=safe_next(next))

    @app.post("/login")
    async def login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        next_path = safe_next(next)
        username = username.strip()
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if _foreign_origin(request) or not (
            cookie and csrf_token and hmac.compare_digest(cookie, csrf_token)
        ):
            return _login_form(
                request,
                403,
                error="登录表单已过期或来源不明，请重新输入后登录。",
                next_path=next_path,
                username=username,
            )
        limiter: LoginLimiter = request.app.state.login_limiter
        key = (username.casefold(), _client_ip(request))
        wait = limiter.retry_after(key)
        if wait > 0:
            minutes = max(1, int(wait + 59) // 60)
            log.warning("web_login_locked", username=username, client=key[1])
            response = _login_form(
                request,
                429,
                error=f"登录失败次数过多，该账号在本机的登录已暂时锁定，请约 {minutes} 分钟后再试。",
                next_path=next_path,
                username=username,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        try:
            actor = await run_in_threadpool(check_password, settings, username, password)
        except AccessError:
            limiter.failed(key)
            log.info("web_login_failed", username=username, client=key[1])
            return _login_form(
                request, 401, error="用户名或密码错误。", next_path=next_path, username=username
            )
        limiter.succeeded(key)
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            await run_in_threadpool(revoke_token, settings, old)
        token = await run_in_threadpool(issue_token, settings, actor.name, "session")
        log.info("web_login", username=actor.name, role=actor.role.value)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_TTL.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return RedirectResponse("/login", status_code=303)
        if _foreign_origin(request) or not hmac.compare_digest(_session_csrf(request, token), csrf_token):
            return _error(request, 403, "请求被拒绝", "表单缺少有效的校验码（CSRF），请刷新页面后重试。")
        await run_in_threadpool(revoke_token, settings, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home(request: Request, actor: Annotated[Actor, Depends(current_actor)]) -> Response:
        row = _account_row(settings, actor.name)
        order = list(PERMISSION_CN)
        perms = sorted(
            PERMISSIONS[actor.role], key=lambda p: (order.index(p) if p in order else len(order), p)
        )
        return _page(
            request,
            "home.html",
            actor=actor,
            display_name=row.display_name if row else actor.name,
            role_cn=ROLE_CN[actor.role],
            abilities=[PERMISSION_CN.get(p, p) for p in perms],
            temporal_ui=may(actor.role, "decode_payloads"),
            ui_path=UI_PREFIX + "/",
            csrf_token=form_csrf_token(request),
        )

    # -------------------------------------------------------------- remote codec

    @app.options("/codec/{operation}")
    async def codec_preflight(request: Request, operation: str) -> Response:
        origin = request.headers.get("origin")
        if operation not in ("decode", "encode"):
            return JSONResponse({"detail": "没有这个编解码接口。"}, status_code=404)
        if origin not in ui_origins(settings):
            return JSONResponse({"detail": "这个来源不能调用编解码接口。"}, status_code=403)
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": _CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )

    @app.post("/codec/decode")
    async def codec_decode(
        request: Request, actor: Annotated[Actor, Depends(requires("decode_payloads"))]
    ) -> Response:
        origin = request.headers.get("origin")
        if _foreign_origin(request) and origin not in ui_origins(settings):
            return _error(request, 403, "请求被拒绝", "这个来源不能调用编解码接口。")
        body = await _read_limited(request, CODEC_MAX_BYTES)
        if body is None:
            return _error(
                request, 413, "请求过大", f"一次最多解码 {CODEC_MAX_BYTES // (1024 * 1024)} MiB 的载荷。"
            )
        message = Payloads()
        try:
            json_format.Parse(body.decode("utf-8"), message)
        except (json_format.ParseError, UnicodeDecodeError):
            return _error(
                request, 400, "请求无效", '请求体应是 JSON：{"payloads": [{"metadata": …, "data": …}]}。'
            )
        try:
            codec = EncryptionCodec(await run_in_threadpool(settings.key_ring))
        except KeyRingError:
            log.exception("web_codec_key_ring")
            return _error(request, 500, "密钥不可用", "载荷密钥环无法读取，请联系系统管理员。")
        decoded: list[Payload] = []
        undecodable = 0
        for payload in message.payloads:
            try:
                decoded.extend(await codec.decode([payload]))
            except (KeyRingError, InvalidTag, KeyError, ValueError, DecodeError):
                # A key the ring lacks, or a damaged payload: it stays as it was (the UI shows it
                # encoded) rather than failing the whole batch.
                decoded.append(payload)
                undecodable += 1
        # Who decoded how much: the audit trail of reading personal data (never the data itself).
        log.info(
            "web_codec_decode",
            username=actor.name,
            role=actor.role.value,
            namespace=request.headers.get("x-namespace"),
            payloads=len(message.payloads),
            undecodable=undecodable,
        )
        return JSONResponse(
            json_format.MessageToDict(Payloads(payloads=decoded)),
            headers={"Cache-Control": "no-store", **_cors_headers(request)},
        )

    @app.post("/codec/encode")
    async def codec_encode(request: Request) -> Response:
        # Always refused, whoever asks. The UI encodes what a person types to start a workflow or
        # send a signal or update; the engine's cases take actions only from the intake desk and
        # starter.py, each naming its signed-in actor and checked by the case's update validator.
        # An encoding service here would let the UI forge engine payloads under our key.
        return _error(
            request,
            403,
            "不允许编码",
            "本引擎不通过 Temporal 界面发送信号、更新或启动工作流：请使用登记窗口或 starter.py 操作案件。",
        )

    # -------------------------------------------------------------- the Temporal Web UI

    ui_methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.api_route(UI_PREFIX, methods=ui_methods, include_in_schema=False)
    @app.api_route(UI_PREFIX + "/{path:path}", methods=ui_methods, include_in_schema=False)
    async def temporal_ui(
        request: Request, actor: Annotated[Actor, Depends(requires("decode_payloads"))]
    ) -> Response:
        return await _proxy(request)

    return app


class _TaskServer(uvicorn.Server):
    """uvicorn as a task of a process that owns its signals (the worker): no handlers of its own."""

    def capture_signals(self) -> Any:
        return nullcontext()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for tests and the screenshot script)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(settings: Settings, client: Client | None = None) -> AsyncIterator[str]:
    """The web app served in the background while the block runs; yields its base URL once it
    accepts connections, and stops it after."""
    server = asyncio.create_task(serve(settings, client))
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection(settings.web_host, settings.web_port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        yield web_url(settings)
    finally:
        server.cancel()
        try:
            await server
        except asyncio.CancelledError:
            pass


async def serve(settings: Settings, client: Client | None = None) -> None:
    """Serve the web app at `web_url(settings)` until cancelled (then close gracefully)."""
    config = uvicorn.Config(
        create_app(settings, client),
        host=settings.web_host,
        port=settings.web_port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = _TaskServer(config)
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot listen; a task must not take the worker with it.
        raise WebAppError(
            f"the web app cannot listen on {web_url(settings)} (is the port taken? set PETITION_WEB_PORT)"
        ) from None
    except asyncio.CancelledError:
        server.should_exit = True
        if server.started:
            await server.shutdown()
        raise


__all__ = [
    "Forbidden",
    "LoginLimiter",
    "SignInRequired",
    "WebAppError",
    "create_app",
    "form_csrf_token",
    "current_actor",
    "refusal",
    "requires",
    "safe_next",
    "serve",
    "serving",
    "free_port",
    "ui_page_csp",
    "ui_origins",
    "web_url",
]
