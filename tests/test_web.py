"""The web app (engine/web.py): staff sign-in, the codec endpoint for the Temporal Web UI, and the
UI behind sign-in — in process with TestClient, and once end to end on a real dev server with the
app served by uvicorn."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from engine.codec import EncryptionCodec
from engine.config import Settings
from engine.staff import AccessError, actor_from_token, add_user, issue_token
from engine.web import SESSION_COOKIE, LoginLimiter, WebAppError, create_app, safe_next, serve, web_url
from rules.vocabulary import StaffRole

PASSWORD = "correct-horse-battery"
SECRET = {"petitioner": "张三", "phone": "13800138000", "matter": "拖欠工资八万元"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, ui_port=18233)
    add_user(
        settings, "sup", StaffRole.supervision, display_name="督查员甲", password=PASSWORD, write_token=False
    )
    add_user(settings, "root", StaffRole.admin, password=PASSWORD, write_token=False)
    add_user(settings, "desk", StaffRole.operator, password=PASSWORD, write_token=False)
    add_user(settings, "hr1", StaffRole.hr, password=PASSWORD, write_token=False)
    add_user(settings, "unit1", StaffRole.unit, unit="青山区人社局", password=PASSWORD, write_token=False)
    return settings


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings), follow_redirects=False) as c:
        yield c


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name}"
    return m.group(1)


def login(
    client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/"
) -> httpx.Response:
    page = client.get("/login")
    data = {
        "username": username,
        "password": password,
        "csrf_token": hidden(page.text, "csrf_token"),
        "next": next_path,
    }
    return client.post("/login", data=data)


def encrypted_payloads(settings: Settings, value: Any = SECRET) -> dict[str, Any]:
    plain = pydantic_data_converter.payload_converter.to_payloads([value])
    sealed = asyncio.run(EncryptionCodec(settings.key_ring()).encode(plain))
    return json_format.MessageToDict(Payloads(payloads=sealed))


def plaintext_of(body: dict[str, Any]) -> list[Any]:
    return [json.loads(base64.b64decode(p["data"])) for p in body["payloads"]]


# ------------------------------------------------------------------------------------------------
# Sign-in
# ------------------------------------------------------------------------------------------------


def test_login_page_is_a_chinese_form_with_security_headers(client: TestClient) -> None:
    r = client.get("/login")
    assert r.status_code == 200
    assert "用户名" in r.text and "密码" in r.text and 'lang="zh-CN"' in r.text
    assert "csrf_token" in r.text
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.split("<body>")[0].replace('href="/static', "")  # no CDN: local assets only
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["x-content-type-options"] == "nosniff"


def test_sign_in_sets_a_session_cookie_and_shows_the_account(
    client: TestClient, web_settings: Settings
) -> None:
    r = login(client, "sup")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    token = client.cookies[SESSION_COOKIE]
    assert actor_from_token(web_settings, token).name == "sup"

    home = client.get("/")
    assert home.status_code == 200
    assert "督查员甲" in home.text and "督查室" in home.text and 'href="/temporal/"' in home.text
    assert home.headers["cache-control"] == "no-store"


def test_a_unit_account_sees_its_unit_and_no_temporal_link(client: TestClient) -> None:
    login(client, "unit1")
    home = client.get("/")
    assert "责任单位" in home.text and "青山区人社局" in home.text
    assert "/temporal/" not in home.text


def test_wrong_password_is_401_with_the_form_again(client: TestClient) -> None:
    r = login(client, "sup", "not-the-password")
    assert r.status_code == 401
    assert "用户名或密码错误" in r.text and "<form" in r.text
    assert SESSION_COOKIE not in client.cookies
    assert login(client, "nobody", "whatever-pass").status_code == 401


def test_home_redirects_to_login_when_signed_out(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, "forged-token")
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in r.headers["set-cookie"]  # the stale cookie is cleared


def test_logout_revokes_the_session(client: TestClient, web_settings: Settings) -> None:
    login(client, "sup")
    token = client.cookies[SESSION_COOKIE]
    home = client.get("/")
    r = client.post("/logout", data={"csrf_token": hidden(home.text, "csrf_token")})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    with pytest.raises(AccessError):
        actor_from_token(web_settings, token)
    client.cookies.set(SESSION_COOKIE, token)  # replaying the old cookie does not sign in
    assert client.get("/").status_code == 303


def test_missing_or_wrong_csrf_token_is_403(client: TestClient, web_settings: Settings) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "sup", "password": PASSWORD})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies
    r = client.post("/login", data={"username": "sup", "password": PASSWORD, "csrf_token": "guessed"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies

    login(client, "sup")
    token = client.cookies[SESSION_COOKIE]
    assert client.post("/logout").status_code == 403
    assert client.post("/logout", data={"csrf_token": "guessed"}).status_code == 403
    assert actor_from_token(web_settings, token).name == "sup"  # still signed in


def test_a_post_from_another_site_is_refused_even_with_the_token(client: TestClient) -> None:
    page = client.get("/login")
    data = {"username": "sup", "password": PASSWORD, "csrf_token": hidden(page.text, "csrf_token")}
    r = client.post("/login", data=data, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies
    data["csrf_token"] = hidden(r.text, "csrf_token")  # the refusal is a fresh form
    r = client.post("/login", data=data, headers={"Origin": "http://testserver"})
    assert r.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/\t/evil.example",
        "",
    ],
)
def test_next_cannot_leave_the_site(client: TestClient, target: str) -> None:
    assert safe_next(target) == "/"
    r = login(client, "sup", next_path=target)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_next_goes_back_to_a_local_page(client: TestClient) -> None:
    r = client.get("/temporal/namespaces/default/workflows?query=x")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Ftemporal%2Fnamespaces%2Fdefault%2Fworkflows%3Fquery%3Dx"
    page = client.get(r.headers["location"])
    assert hidden(page.text, "next") == "/temporal/namespaces/default/workflows?query=x"
    r = login(client, "sup", next_path="/temporal/namespaces/default/workflows?query=x")
    assert r.headers["location"] == "/temporal/namespaces/default/workflows?query=x"


def test_failed_logins_are_rate_limited_per_username_and_address(client: TestClient) -> None:
    for _ in range(5):
        assert login(client, "sup", "wrong-password").status_code == 401
    r = login(client, "sup")  # even the right password, while locked
    assert r.status_code == 429
    assert "登录失败次数过多" in r.text and int(r.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in client.cookies
    assert login(client, "root").status_code == 303  # another username is not locked


def test_login_limiter_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(max_failures=2, window_s=60, clock=lambda: now[0])
    key = ("sup", "10.0.0.1")
    limiter.failed(key)
    limiter.failed(key)
    assert limiter.retry_after(key) == pytest.approx(60)
    assert limiter.retry_after(("sup", "10.0.0.2")) == 0
    now[0] = 61
    assert limiter.retry_after(key) == 0
    limiter.failed(key)
    limiter.succeeded(key)
    limiter.failed(key)
    assert limiter.retry_after(key) == 0


# ------------------------------------------------------------------------------------------------
# The codec endpoint
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["sup", "root"])
def test_codec_decodes_for_supervision_and_admin(
    client: TestClient, web_settings: Settings, username: str
) -> None:
    body = encrypted_payloads(web_settings)
    assert "张三" not in json.dumps(body)
    assert base64.b64decode(body["payloads"][0]["metadata"]["encoding"]) == b"binary/encrypted"
    login(client, username)
    r = client.post("/codec/decode", json=body, headers={"X-Namespace": "default"})
    assert r.status_code == 200, r.text
    decoded = r.json()
    assert base64.b64decode(decoded["payloads"][0]["metadata"]["encoding"]) == b"json/plain"
    assert plaintext_of(decoded) == [SECRET]
    assert r.headers["cache-control"] == "no-store"


def test_codec_leaves_plain_and_undecodable_payloads_as_they_are(
    client: TestClient, web_settings: Settings
) -> None:
    other = Settings(data_dir=web_settings.data_dir / "other")  # another key ring
    plain = json_format.MessageToDict(
        Payloads(payloads=pydantic_data_converter.payload_converter.to_payloads([1]))
    )
    foreign = encrypted_payloads(other)
    mine = encrypted_payloads(web_settings)
    login(client, "sup")
    r = client.post(
        "/codec/decode", json={"payloads": plain["payloads"] + foreign["payloads"] + mine["payloads"]}
    )
    assert r.status_code == 200
    out = r.json()["payloads"]
    assert out[0] == plain["payloads"][0] and out[1] == foreign["payloads"][0]
    assert plaintext_of({"payloads": out[2:]}) == [SECRET]


def test_codec_refuses_without_a_session(client: TestClient, web_settings: Settings) -> None:
    body = encrypted_payloads(web_settings)
    r = client.post("/codec/decode", json=body)
    assert r.status_code == 401 and "张三" not in r.text and "payloads" not in r.text
    r = client.post("/codec/decode", json=body, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("username", "role_cn"), [("desk", "登记窗口"), ("unit1", "责任单位"), ("hr1", "组织人事")]
)
def test_codec_refuses_roles_without_decode_payloads(
    client: TestClient, web_settings: Settings, username: str, role_cn: str
) -> None:
    login(client, username)
    r = client.post("/codec/decode", json=encrypted_payloads(web_settings))
    assert r.status_code == 403
    assert role_cn in r.json()["detail"] and "张三" not in r.text


def test_codec_takes_a_bearer_cli_token(client: TestClient, web_settings: Settings) -> None:
    body = encrypted_payloads(web_settings)
    token = issue_token(web_settings, "sup", "cli")
    r = client.post("/codec/decode", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and plaintext_of(r.json()) == [SECRET]
    hr_token = issue_token(web_settings, "hr1", "cli")
    assert (
        client.post("/codec/decode", json=body, headers={"Authorization": f"Bearer {hr_token}"}).status_code
        == 403
    )


def test_codec_rejects_a_malformed_body(client: TestClient) -> None:
    login(client, "sup")
    assert client.post("/codec/decode", content=b"not json").status_code == 400
    assert client.post("/codec/decode", json={"payloads": [{"data": 5}]}).status_code == 400
    assert client.post("/codec/decode", json={"payloads": "all"}).status_code == 400


def test_codec_encode_is_always_403(client: TestClient) -> None:
    assert client.post("/codec/encode", json={"payloads": []}).status_code == 403
    login(client, "sup")
    r = client.post("/codec/encode", json={"payloads": [{"metadata": {}, "data": "e30="}]})
    assert r.status_code == 403 and "starter.py" in r.json()["detail"]


def test_cors_preflight_allows_only_the_ui_origins(client: TestClient, web_settings: Settings) -> None:
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    for origin in (f"http://127.0.0.1:{web_settings.ui_port}", f"http://localhost:{web_settings.ui_port}"):
        r = client.options("/codec/decode", headers={"Origin": origin, **ask})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-credentials"] == "true"
        allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-namespace", "authorization"} <= allowed
        assert "*" not in r.headers["access-control-allow-headers"]
    for origin in (
        "http://evil.example",
        "http://127.0.0.1:9",
        f"https://127.0.0.1:{web_settings.ui_port}",
        "null",
    ):
        r = client.options("/codec/decode", headers={"Origin": origin, **ask})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_codec_answers_the_ui_origin_with_cors_headers_and_refuses_others(
    client: TestClient, web_settings: Settings
) -> None:
    body = encrypted_payloads(web_settings)
    ui = f"http://127.0.0.1:{web_settings.ui_port}"
    r = client.post("/codec/decode", json=body, headers={"Origin": ui})  # the raw UI: no cookie goes
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == ui
    login(client, "sup")
    r = client.post("/codec/decode", json=body, headers={"Origin": ui})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ui
    r = client.post("/codec/decode", json=body, headers={"Origin": "http://127.0.0.1:9999"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------------------------------------
# The Temporal Web UI behind sign-in (a stand-in upstream)
# ------------------------------------------------------------------------------------------------


def test_the_proxy_refuses_when_not_signed_in_or_not_allowed(client: TestClient) -> None:
    r = client.get("/temporal/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Ftemporal%2F"
    assert client.get("/temporal").status_code == 303
    assert client.get("/temporal/api/v1/namespaces?").status_code == 401
    assert (
        client.post("/temporal/api/v1/namespaces/default/workflows/x/terminate", json={}).status_code == 401
    )
    login(client, "desk")
    r = client.get("/temporal/")
    assert r.status_code == 403 and "登记窗口" in r.text
    assert r.headers["x-frame-options"] == "DENY" and "content-security-policy" in r.headers  # our page
    assert client.get("/temporal/api/v1/namespaces?").status_code == 403


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_the_proxy_forwards_requests_and_responses(web_settings: Settings) -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.url.path == "/temporal/old":
            location = f"http://127.0.0.1:{web_settings.ui_port}/temporal/"
            return httpx.Response(308, headers={"Location": location}, content=_chunks(b""))
        return httpx.Response(
            201,
            headers=[
                ("Content-Type", "application/json"),
                ("Set-Cookie", "_csrf=abc; Path=/; SameSite=Strict"),
                ("Set-Cookie", "_csrf=abc; Path=/; SameSite=Strict"),
                ("X-Frame-Options", "SAMEORIGIN"),
                ("Connection", "close"),
            ],
            content=_chunks(b'{"ok": ', b"true}"),  # a streamed body, as from the network
        )

    app = create_app(web_settings)
    app.state.ui_transport = httpx.MockTransport(upstream)
    with TestClient(app, follow_redirects=False) as c:
        login(c, "sup")
        c.cookies.set("_csrf", "abc")
        r = c.post(
            "/temporal/api/v1/namespaces/default/workflows/XF-1%2F2/query?x=1&y=%E4%B8%AD",
            content=b'{"a": 1}',
            headers={"X-CSRF-TOKEN": "abc", "Content-Type": "application/json"},
        )
        assert r.status_code == 201 and r.json() == {"ok": True}
        assert r.headers.get_list("set-cookie") == ["_csrf=abc; Path=/; SameSite=Strict"] * 2
        assert r.headers["x-frame-options"] == "SAMEORIGIN"  # the UI's own, not DENY
        assert "content-security-policy" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
        assert "x-petition-proxied" not in r.headers
        sent = seen[-1]
        assert sent.method == "POST" and sent.content == b'{"a": 1}'
        assert sent.url.host == "127.0.0.1" and sent.url.port == web_settings.ui_port
        assert (
            sent.url.raw_path
            == b"/temporal/api/v1/namespaces/default/workflows/XF-1%2F2/query?x=1&y=%E4%B8%AD"
        )
        assert sent.headers["x-csrf-token"] == "abc"
        assert sent.headers["host"] == f"127.0.0.1:{web_settings.ui_port}"
        assert sent.headers["cookie"] == "_csrf=abc"  # the session token stays with us
        c.get("/temporal/x", headers={"Authorization": "Bearer secret-cli-token"})
        assert "authorization" not in seen[-1].headers

        r = c.get("/temporal/old")
        assert r.status_code == 308 and r.headers["location"] == "/temporal/"
        assert c.get("/temporal/%2e%2e/x").status_code == 400


def test_the_proxy_says_so_when_the_ui_is_down(web_settings: Settings) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = create_app(web_settings)
    app.state.ui_transport = httpx.MockTransport(down)
    with TestClient(app, follow_redirects=False) as c:
        login(c, "root")
        r = c.get("/temporal/")
        assert r.status_code == 502 and "Temporal 界面" in r.text


# ------------------------------------------------------------------------------------------------
# End to end: the real dev server, its UI under /temporal, the app served by uvicorn
# ------------------------------------------------------------------------------------------------


async def _wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listens on {port}")


async def test_the_real_ui_through_the_proxy_decodes_for_a_supervisor(tmp_path: Path) -> None:
    from engine.servers import find_binary, start_dev_server

    settings = Settings(data_dir=tmp_path, server_port=free_port(), ui_port=free_port(), web_port=free_port())
    add_user(settings, "sup", StaffRole.supervision, password=PASSWORD, write_token=False)
    started = time.monotonic()
    env = await start_dev_server(settings)
    web = asyncio.create_task(serve(settings))
    try:
        await _wait_listening(settings.web_port)
        workflow_id = f"web-test-{uuid.uuid4().hex[:8]}"
        # No worker polls this queue: the started event alone carries the (encrypted) input.
        await env.client.start_workflow("NoSuchWorkflow", SECRET, id=workflow_id, task_queue="nobody")
        async with httpx.AsyncClient(base_url=web_url(settings), trust_env=False) as c:
            page = await c.get("/login")
            r = await c.post(
                "/login",
                data={"username": "sup", "password": PASSWORD, "csrf_token": hidden(page.text, "csrf_token")},
            )
            assert r.status_code == 303

            ui = await c.get("/temporal/")
            assert ui.status_code == 200 and '"/temporal/_app/immutable/' in ui.text
            asset = re.search(r'import\("(/temporal/_app/immutable/entry/[^"]+\.js)"\)', ui.text)
            assert asset and (await c.get(asset.group(1))).status_code == 200
            assert "_csrf" in c.cookies  # the UI's own CSRF cookie came through

            inline = re.search(r"<script>(.*?)</script>", ui.text, re.DOTALL)
            assert inline and ui.headers["x-frame-options"] == "SAMEORIGIN"
            digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
            assert f"'sha256-{digest}'" in ui.headers["content-security-policy"]

            # The UI server dials the frontend lazily: its API answers 503 for a moment at first.
            for _ in range(100):
                namespaces = await c.get("/temporal/api/v1/namespaces?")
                if namespaces.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert namespaces.status_code == 200
            assert settings.namespace in [n["namespaceInfo"]["name"] for n in namespaces.json()["namespaces"]]
            ui_settings = (await c.get("/temporal/api/v1/settings?")).json()
            assert ui_settings["Codec"]["Endpoint"] == f"{web_url(settings)}/codec"

            # What the UI does: fetch the history, then post its payloads to the codec endpoint.
            path = f"/temporal/api/v1/namespaces/{settings.namespace}/workflows/{workflow_id}/history?"
            history = await c.get(path)
            assert history.status_code == 200 and "张三" not in history.text
            started_event = history.json()["history"]["events"][0]
            payloads = started_event["workflowExecutionStartedEventAttributes"]["input"]
            decoded = await c.post(
                "/codec/decode", json=payloads, headers={"X-Namespace": settings.namespace}
            )
            assert decoded.status_code == 200 and plaintext_of(decoded.json()) == [SECRET]

            # Through the engine the UI only reads: even with the UI's own CSRF header, a terminate
            # is refused and the case keeps running.
            terminate = await c.post(
                f"/temporal/api/v1/namespaces/{settings.namespace}/workflows/{workflow_id}/terminate",
                json={"reason": "web test"},
                headers={"X-CSRF-TOKEN": c.cookies["_csrf"]},
            )
            assert terminate.status_code == 403 and "只能查看" in terminate.text, terminate.text

        # `temporal workflow show` through the codec endpoint, signed in with a CLI token.
        cli_token = issue_token(settings, "sup", "cli")
        show = await asyncio.create_subprocess_exec(
            find_binary("temporal"), "workflow", "show", "-w", workflow_id, "--output", "json",
            "--address", f"127.0.0.1:{settings.server_port}", "--namespace", settings.namespace,
            "--codec-endpoint", f"{web_url(settings)}/codec", "--codec-auth", f"Bearer {cli_token}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(show.communicate(), 15)
        assert show.returncode == 0, err.decode()
        cli_started = json.loads(out)["events"][0]["workflowExecutionStartedEventAttributes"]
        assert plaintext_of(cli_started["input"]) == [SECRET]

        async with httpx.AsyncClient(trust_env=False) as anonymous:
            raw = await anonymous.get(f"http://127.0.0.1:{settings.ui_port}{path}")
            assert raw.status_code == 200 and "张三" not in raw.text  # the raw UI port: ciphertext
            refused = await anonymous.post(f"{web_url(settings)}/codec/decode", json=payloads)
            assert refused.status_code == 401
            assert (
                await anonymous.get(f"{web_url(settings)}/temporal/api/v1/namespaces?")
            ).status_code == 401
    finally:
        web.cancel()
        with pytest.raises(asyncio.CancelledError):
            await web
        await env.shutdown()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", settings.web_port)) != 0  # the app let go of its port
    assert time.monotonic() - started < 20


async def test_serve_reports_a_taken_port_instead_of_exiting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(data_dir=tmp_path, web_port=taken.getsockname()[1])
        with pytest.raises(WebAppError, match="cannot listen"):
            await asyncio.wait_for(serve(settings), 10)
