"""structlog, configured once per process: JSON when not on a terminal, console lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

_configured = False

def mask_text(text: str) -> str:
    """A log line's text with identity, card and phone numbers and e-mail addresses masked
    (workflows.models.mask_personal_data: digit boundaries, so "身份证110101…" is caught too)."""
    from workflows.models import mask_personal_data

    return mask_personal_data(text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(v) for v in value)
    return value


def _mask_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _masked(value)
    return event_dict


def _masking_record_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """The same masking for the standard library's records (the Temporal SDK, SQLAlchemy…), at
    creation, so that every handler (ours, pytest's, an operator's) gets the masked text."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return record
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return record

    make.masking = True  # type: ignore[attr-defined]
    return make


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
    if not getattr(logging.getLogRecordFactory(), "masking", False):
        logging.setLogRecordFactory(_masking_record_factory(logging.getLogRecordFactory()))


def get_logger(**bind: Any) -> Any:
    # Lazy: a module-level logger made before configure_logging() still follows that configuration.
    return structlog.get_logger(**bind)
