"""The one settings object: every knob of the engine, read from `PETITION_*` environment variables."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.converter import DataConverter

from engine.codec import KeyRing, create_secret_file, data_converter_for

PROJECT_DIR = Path(__file__).resolve().parent.parent
RULES_DIR = PROJECT_DIR / "rules"


class Settings(BaseSettings):
    """Engine configuration; see README "Configuration" for each variable."""

    model_config = SettingsConfigDict(env_prefix="PETITION_", extra="ignore")

    data_dir: Path = Field(default=PROJECT_DIR / "data", description="Database file, documents, keys, server state.")
    database_url: str | None = Field(default=None, description="SQLModel URL; default: SQLite file in data_dir.")
    # TEMPORAL_ADDRESS is the name operators already know from the temporal CLI, so it has no prefix.
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    namespace: str = "default"
    task_queue: str = "petitions"
    server_port: int = 7233
    ui_port: int = 8233
    rules_file: Path = RULES_DIR / "default.toml"
    calendar_file: Path = RULES_DIR / "calendar" / "cn_holidays.toml"
    ledger_key_file: Path | None = None
    notify_adapter: str = Field(default="recording", description="recording | webhook | smtp")
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "petition-engine@localhost"
    # Which recipients the adapters reach; a role -> address map lives in rules/routing.toml.
    log_json: bool | None = None
    # Privacy and access (docs/privacy.md).
    payload_key_file: Path | None = Field(default=None, description="AES-256 key ring for Temporal payloads.")
    payload_keys: str | None = Field(default=None, description="The key ring itself: 'id:base64,id:base64'.")
    web_port: int = 8080
    web_host: str = "127.0.0.1"
    # The address petitioners reach the public pages at (QR codes on documents point there).
    public_url: str | None = Field(default=None, description="e.g. https://xf.example.gov.cn; default: the web app.")
    token_file: Path | None = Field(default=None, description="The CLI's sign-in token (from `users add`).")
    webhook_secret: str | None = Field(default=None, description="HMAC key for webhook signatures.")
    # A production Temporal cluster: TLS / mTLS and API keys.
    temporal_tls: bool = False
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: str | None = None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'petitions.db'}"

    @cached_property
    def documents_dir(self) -> Path:
        return self.data_dir / "documents"

    def resolved_ledger_key_file(self) -> Path:
        return self.ledger_key_file or self.data_dir / "keys" / "ledger_ed25519.pem"

    def resolved_payload_key_file(self) -> Path:
        return self.payload_key_file or self.data_dir / "keys" / "payload.keys"

    def key_ring(self) -> KeyRing:
        """The payload key ring: PETITION_PAYLOAD_KEYS if set, else the key file (created on first use)."""
        if self.payload_keys:
            return KeyRing.parse(self.payload_keys, "PETITION_PAYLOAD_KEYS")
        return KeyRing.load(self.resolved_payload_key_file())

    def data_converter(self) -> DataConverter:
        return data_converter_for(self.key_ring())

    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    def query_code(self, case_id: str) -> str:
        """The case's query code (查询码), printed on its acceptance notice: with the case number it
        opens the case's progress at /q without an account. A keyed hash, so nothing is stored."""
        path = self.data_dir / "keys" / "query_hmac.key"
        create_secret_file(path, secrets.token_bytes(32))
        digest = hmac.new(path.read_bytes(), case_id.encode(), hashlib.sha256).digest()
        text = base64.b32encode(digest[:5]).decode()  # 8 characters of A-Z, 2-7
        return f"{text[:4]}-{text[4:]}"

    def matter_key_secret(self) -> bytes:
        """Secret for hashing a petitioner + matter into a key that carries no readable PII.

        Created on first use with owner-only permissions; never logged, never defaulted.
        """
        path = self.data_dir / "keys" / "matter_hmac.key"
        create_secret_file(path, secrets.token_bytes(32))
        return path.read_bytes()


def load_settings(**overrides: object) -> Settings:
    settings = Settings(**overrides)  # type: ignore[arg-type]
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.data_dir.stat().st_mode & 0o077 and settings.data_dir.owner() == Path.home().owner():
        settings.data_dir.chmod(0o700)  # database, documents, keys: the engine's owner only
    return settings
