"""Staff accounts through the operator's tool (`starter.py users …`, `--as NAME`), Argon2 hashes,
token files, disabling, and payload key rotation. No Temporal server is needed for these."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from engine.codec import KEY_ID, EncryptionCodec, KeyRing, KeyRingError
from engine.config import Settings
from engine.staff import AccessError, check_password, list_users, token_path
from starter import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PETITION_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PETITION_TOKEN_FILE", raising=False)
    return tmp_path


def run(*argv: str) -> int:
    return asyncio.run(main(list(argv)))


def test_first_account_is_an_admin_then_only_admins_make_accounts(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("users", "add", "clerk", "--role", "operator") == EXIT_BAD_INPUT
    assert "第一个账号必须是系统管理员" in capsys.readouterr().err
    assert run("users", "add", "admin", "--role", "admin") == EXIT_OK
    out = capsys.readouterr().out
    assert "已创建账号 admin（系统管理员）。" in out
    password = next(line.split("：", 1)[1] for line in out.splitlines() if line.startswith("密码（只显示这一次）"))
    token = token_path(Settings(data_dir=data), "admin")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    # Hashed with Argon2id, never stored as given; the shown password signs in.
    row = next(r for r in list_users(Settings(data_dir=data)) if r.username == "admin")
    assert row.password_hash.startswith("$argon2id$") and password not in row.password_hash
    assert check_password(Settings(data_dir=data), "admin", password).role == "admin"
    with pytest.raises(AccessError, match="用户名或密码错误"):
        check_password(Settings(data_dir=data), "admin", password + "x")

    # Without signing in, nothing but the first admin can be made.
    assert run("users", "add", "clerk", "--role", "operator") == EXIT_FAILED
    assert "拒绝：请先登录" in capsys.readouterr().err
    assert run("--as", "admin", "users", "add", "clerk", "--role", "operator") == EXIT_OK
    assert run("--as", "admin", "users", "add", "qs", "--role", "unit") == EXIT_BAD_INPUT
    assert "责任单位账号需要 --unit" in capsys.readouterr().err
    assert run("--as", "admin", "users", "add", "qs", "--role", "unit", "--unit", "青山区人社局") == EXIT_OK
    # An operator may not make accounts, nor push the calendar, nor read the HR stream.
    capsys.readouterr()
    assert run("--as", "clerk", "users", "add", "x1", "--role", "admin") == EXIT_FAILED
    assert "“登记窗口”角色无权管理工作人员账号；当前登录的账号是 clerk。" in capsys.readouterr().err
    assert run("--as", "clerk", "calendar", "push") == EXIT_FAILED
    assert run("--as", "clerk", "scores") == EXIT_FAILED
    assert run("--as", "clerk", "list") == EXIT_OK

    # A unit account lists only its own unit's cases; disabling ends its sign-ins.
    assert run("--as", "qs", "list") == EXIT_OK
    assert run("--as", "admin", "users", "disable", "qs") == EXIT_OK
    capsys.readouterr()
    assert run("--as", "qs", "list") == EXIT_FAILED
    assert "登录凭据无效或已被吊销" in capsys.readouterr().err
    assert run("--as", "admin", "users", "list") == EXIT_OK
    listed = capsys.readouterr().out
    assert '"username": "qs"' in listed and '"disabled": true' in listed and "password" not in listed


def test_a_rotated_key_encrypts_and_the_old_one_still_decrypts(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=data)
    old = settings.key_ring()
    sealed = asyncio.run(EncryptionCodec(old).encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')]))
    assert run("users", "add", "admin", "--role", "admin") == EXIT_OK
    assert run("--as", "admin", "keys", "rotate") == EXIT_OK
    ring_file = settings.resolved_payload_key_file()
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    new = settings.key_ring()
    assert len(new.keys) == 2 and new.active[0] != old.active[0]
    assert asyncio.run(EncryptionCodec(new).decode(sealed))[0].data == b'"x"'
    fresh = asyncio.run(EncryptionCodec(new).encode([Payload(data=b"y")]))
    assert fresh[0].metadata[KEY_ID].decode() == new.active[0]
    # A ring without the old key cannot read what it sealed, and says which key is missing.
    with pytest.raises(KeyRingError, match=old.active[0]):
        asyncio.run(EncryptionCodec(KeyRing((new.active,))).decode(sealed))
