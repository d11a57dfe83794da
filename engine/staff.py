"""Staff accounts, sign-in and the actor every action carries.

Accounts live in the engine's database (`staff`): a username, a display name, a role
(rules/access.py) and, for a unit account, its unit; passwords hashed with Argon2id
(argon2-cffi). A sign-in is a random token whose SHA-256 is stored (`staff_tokens`): a web
session (8 hours) or the CLI's token file, written by `starter.py users add` into the data
folder's `tokens/NAME.token` with owner-only rights. The CLI acts as the account whose token it
reads (`--as NAME`, or PETITION_TOKEN_FILE), never as nobody.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from activities.db import StaffRow, StaffTokenRow, as_utc, get_engine
from engine.config import Settings
from rules.access import PERMISSION_CN, ROLE_CN, may, may_view
from rules.vocabulary import MAX_NAME_CHARS, StaffRole
from workflows.models import Actor

SESSION_TTL = timedelta(hours=8)
FIRST_ADMIN = "admin"
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{2,40}$")
_hasher = PasswordHasher()

# The engine itself, for what no person does: the bundled samples at `make run`.
ENGINE_ACTOR = Actor(name="engine", role=StaffRole.operator)


class AccessError(Exception):
    """Not signed in, or signed in as an account that may not do this. The message says which."""


class AccountError(ValueError):
    """A bad account request (a taken username, a unit account without a unit)."""


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def actor_of(row: StaffRow) -> Actor:
    return Actor(name=row.username, role=StaffRole(row.role), unit=row.unit)


def token_path(settings: Settings, username: str) -> Path:
    return settings.data_dir / "tokens" / f"{username}.token"


def _write_owner_only(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def has_accounts(settings: Settings) -> bool:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return s.exec(select(StaffRow.username).limit(1)).first() is not None


def add_user(
    settings: Settings,
    username: str,
    role: StaffRole,
    *,
    unit: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
    created_by: str | None = None,
    write_token: bool = True,
) -> tuple[str, Path | None]:
    """Create an account; returns its password (generated unless given) and its CLI token file."""
    if not _USERNAME.match(username):
        raise AccountError(f"用户名“{username}”无效：请使用 2 至 40 个英文字母、数字、“.”、“_”或“-”。")
    if role == StaffRole.unit and not (unit and unit.strip()):
        raise AccountError("责任单位账号需要 --unit：写明它所办理案件的单位。")
    if unit and len(unit.strip()) > MAX_NAME_CHARS:
        raise AccountError(f"--unit 有 {len(unit.strip())} 个字符；单位名称最多 {MAX_NAME_CHARS} 个字符。")
    if role != StaffRole.unit and unit:
        raise AccountError(f"只有责任单位账号才设置所属单位；“{ROLE_CN[role]}”账号代表整个机关，不设单位。")
    if password is not None and len(password) < 10:
        raise AccountError("密码至少需要 10 个字符。")
    password = password or secrets.token_urlsafe(12)
    with Session(get_engine(settings.resolved_database_url())) as s:
        if s.get(StaffRow, username) is not None:
            raise AccountError(f"用户名“{username}”已被占用。")
        s.add(
            StaffRow(
                username=username,
                display_name=display_name or username,
                role=role.value,
                unit=unit.strip() if unit else None,
                password_hash=_hasher.hash(password),
                created_by=created_by,
            )
        )
        s.commit()
    path = None
    if write_token:
        path = token_path(settings, username)
        _write_owner_only(path, issue_token(settings, username, "cli") + "\n")
    return password, path


def list_users(settings: Settings) -> list[StaffRow]:
    with Session(get_engine(settings.resolved_database_url())) as s:
        return list(s.exec(select(StaffRow).order_by(col(StaffRow.username))).all())


def disable_user(settings: Settings, username: str) -> None:
    """Disable an account and end every sign-in it has (sessions and CLI tokens)."""
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.get(StaffRow, username)
        if row is None:
            raise AccountError(f"没有账号“{username}”。")
        row.disabled = True
        s.add(row)
        for tok in s.exec(select(StaffTokenRow).where(StaffTokenRow.username == username)).all():
            s.delete(tok)
        s.commit()


def ensure_first_admin(settings: Settings) -> str | None:
    """On an engine with no accounts, create `admin` and return its password (shown once)."""
    if has_accounts(settings):
        return None
    password, _ = add_user(settings, FIRST_ADMIN, StaffRole.admin, display_name="系统管理员", created_by="engine")
    return password


def check_password(settings: Settings, username: str, password: str) -> Actor:
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.get(StaffRow, username)
    try:
        if row is None:
            raise VerificationError("no such account")
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise AccessError("用户名或密码错误。") from exc
    if row.disabled:
        raise AccessError(f"账号“{username}”已停用。")
    return actor_of(row)


def issue_token(settings: Settings, username: str, kind: str) -> str:
    token = secrets.token_urlsafe(32)
    expires = _now() + SESSION_TTL if kind == "session" else None
    with Session(get_engine(settings.resolved_database_url())) as s:
        s.add(StaffTokenRow(token_sha256=_sha(token), username=username, kind=kind, expires_at=expires))
        s.commit()
    return token


def revoke_token(settings: Settings, token: str) -> None:
    with Session(get_engine(settings.resolved_database_url())) as s:
        row = s.get(StaffTokenRow, _sha(token))
        if row is not None:
            s.delete(row)
            s.commit()


def actor_from_token(settings: Settings, token: str) -> Actor:
    """The account a token signs in, or AccessError saying why not."""
    with Session(get_engine(settings.resolved_database_url())) as s:
        tok = s.get(StaffTokenRow, _sha(token.strip()))
        if tok is None:
            raise AccessError("未登录：登录凭据无效或已被吊销。")
        expires = as_utc(tok.expires_at) if tok.expires_at else None
        if expires is not None and expires <= _now():
            raise AccessError("登录已过期，请重新登录。")
        row = s.get(StaffRow, tok.username)
    if row is None or row.disabled:
        raise AccessError(f"账号“{tok.username}”已停用。")
    return actor_of(row)


def cli_actor(settings: Settings, as_user: str | None = None) -> Actor:
    """The account the CLI acts as: `--as NAME` (its token file), else PETITION_TOKEN_FILE."""
    path = token_path(settings, as_user) if as_user else settings.token_file
    if path is None:
        raise AccessError(
            "请先登录：运行 `starter.py --as 账号名 …`（账号由 `starter.py users add 账号名` 创建），"
            "或把 PETITION_TOKEN_FILE 设为该账号的凭据文件。"
        )
    try:
        token = path.read_text(encoding="ascii")
    except OSError as exc:
        raise AccessError(f"无法读取登录凭据文件 {path}：{exc.strerror}。") from exc
    return actor_from_token(settings, token)


def require(actor: Actor, permission: str) -> Actor:
    if not may(actor.role, permission):
        what = PERMISSION_CN.get(permission, permission)
        raise AccessError(f"“{ROLE_CN[actor.role]}”角色无权{what}；当前登录的账号是 {actor.name}。")
    return actor


def require_view(actor: Actor, case_unit: str | None) -> Actor:
    """The actor, if it may read a case handled by `case_unit` (rules/access.py may_view)."""
    if not may_view(actor.role, actor.unit, case_unit):
        owner = f"它属于{case_unit}" if case_unit else "它尚未分办到责任单位"
        raise AccessError(f"{actor.name}（{ROLE_CN[actor.role]}）无权查看这个案件：{owner}。")
    return actor
