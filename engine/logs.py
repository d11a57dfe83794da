"""structlog, configured once per process: JSON when not on a terminal, console lines otherwise."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_configured = False

# Identity numbers (18 chars) and mainland mobile numbers must never reach a log line.
_ID_RE = re.compile(r"\b\d{17}[\dXx]\b")
_PHONE_RE = re.compile(r"\b1[3-9]\d{9}\b")


def mask_text(text: str) -> str:
    text = _ID_RE.sub(lambda m: m.group(0)[:3] + "*" * 14 + m.group(0)[-1], text)
    return _PHONE_RE.sub(lambda m: m.group(0)[:3] + "****" + m.group(0)[-4:], text)


def _mask_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = mask_text(value)
    return event_dict


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written (not when logging was configured): a
    replaced stream (a test's capture, a redirect) must not leave loggers writing to a closed one."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(json: bool | None = None, level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # The SDK's own (stdlib) loggers, including workflow.logger, go to stderr at WARNING+.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(**bind: Any) -> Any:
    # Lazy: a module-level logger made before configure_logging() still follows that configuration.
    return structlog.get_logger(**bind)
