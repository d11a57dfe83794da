"""Personal data out of failing activities' errors, before the SDK logs them or Temporal keeps them.

A failing activity's exception reaches two places that outlive it: the worker's log (the SDK logs
"Completing activity as failed" with the traceback, chained exceptions included) and the workflow
history (the failure's message, stack and *cause chain* become the activity's LastFailure, shown in
the Web UI and `temporal workflow show`). A database error carries the statement's values
(`[parameters: ('张三', '110101199001011237', ...)]`), a validation error the value it refused.

`MaskingInterceptor` is a worker interceptor: every exception an activity raises leaves as an
`ApplicationError` whose message is masked and which chains nothing:

* the message is `workflows.models.mask_personal_data` of the original's (identity, card and phone
  numbers, e-mail addresses, and the petitioners' names found in the activity's input), without
  SQLAlchemy's `[SQL: ...]` / `[parameters: ...]` parts and PostgreSQL's `Key (...)=(...)` values,
  cut at 500 characters;
* its type is the original's class name (or the original ApplicationError's type), so retry policies
  and workflow code that look at the type still work; `non_retryable`, `details`,
  `next_retry_delay` and `category` of an ApplicationError are kept;
* it is raised with no `__cause__` and no `__context__` (outside the `except` block, and
  `__suppress_context__` set): neither the log nor the failure converter can reach the original.
  The original's traceback (code lines, never values) is kept for debugging.

Cancellation (asyncio's and Temporal's), `activity.raise_complete_async()` and a broken executor pass
through untouched: the SDK acts on their type.

Wire it with `Worker(client, ..., interceptors=[MaskingInterceptor()])`.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from workflows.models import Petitioner, mask_personal_data

MAX_MESSAGE = 500

# SQLAlchemy appends "\n[SQL: <statement>]\n[parameters: <values>]\n(Background on this error at: <url>)"
# to the driver's message; the statement can span lines and hold brackets, so everything from the
# first of these markers on goes.
_SQLALCHEMY_TAIL = re.compile(r"\s*\[(?:SQL|parameters|SQL parameters hidden)\b.*\Z", re.S)
_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")
# PostgreSQL's DETAIL of a constraint violation: Key (id_number)=(110101199001011237) already exists.
_PG_KEY_VALUES = re.compile(r"(Key \([^)]*\))=\((?:[^()]|\([^()]*\))*\)")
# Names are looked for under these keys of dict-shaped input (a dumped Petitioner, a record of them).
_NAME_KEYS = frozenset({"petitioner", "petitioners", "petitioner_name", "petitioner_names"})


class MaskedActivityError(ApplicationError):
    """An ApplicationError this module made (or checked): its message carries no personal data."""


def strip_sql(text: str) -> str:
    """The message without SQLAlchemy's statement and parameters, and with constraint values elided."""
    text = _SQLALCHEMY_TAIL.sub("", text)
    text = _BACKGROUND.sub("", text)
    return _PG_KEY_VALUES.sub(r"\1=(…)", text)


def mask_error_message(text: str, names: Iterable[str] = (), limit: int = MAX_MESSAGE) -> str:
    """What may be logged and kept of an error message: SQL parts out, personal data masked, cut."""
    masked = mask_personal_data(strip_sql(text), tuple(names)).strip()
    if len(masked) > limit:
        masked = masked[: limit - 1].rstrip() + "…"
    return masked


def names_in(value: Any, _depth: int = 0) -> set[str]:
    """Petitioners' names anywhere in an activity's arguments (models, dicts, lists), to be masked."""
    found: set[str] = set()
    if _depth > 8 or value is None or isinstance(value, str | bytes | int | float | bool):
        return found
    if isinstance(value, Petitioner):
        found.add(value.name)
        return found
    if isinstance(value, BaseModel):
        for field in type(value).model_fields:
            found |= names_in(getattr(value, field, None), _depth + 1)
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _NAME_KEYS:
                found |= _names_of_record(item)
            else:
                found |= names_in(item, _depth + 1)
        return found
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            found |= names_in(item, _depth + 1)
    return found


def _names_of_record(item: Any) -> set[str]:
    if isinstance(item, str):
        return {item}
    if isinstance(item, Petitioner):
        return {item.name}
    if isinstance(item, dict):
        name = item.get("name")
        return {name} if isinstance(name, str) else set()
    if isinstance(item, list | tuple):
        out: set[str] = set()
        for sub in item:
            out |= _names_of_record(sub)
        return out
    return set()


def _passes_through(exc: BaseException) -> bool:
    """Exceptions the SDK acts on by type, which carry no data of ours."""
    from temporalio.activity import _CompleteAsyncError  # raise_complete_async()'s marker

    return isinstance(
        exc, CancelledError | _CompleteAsyncError | MaskedActivityError | concurrent.futures.BrokenExecutor
    )


def masked_error(exc: Exception, names: Iterable[str] = ()) -> MaskedActivityError:
    """The ApplicationError to raise instead of `exc` (not yet raised; see `MaskingInterceptor`)."""
    names = tuple(n for n in names if n and n.strip())
    if isinstance(exc, ApplicationError):
        masked = MaskedActivityError(
            mask_error_message(exc.message, names),
            *exc.details,
            type=exc.type,
            non_retryable=exc.non_retryable,
            next_retry_delay=exc.next_retry_delay,
            category=exc.category,
        )
    else:
        try:
            text = str(exc)
        except Exception:  # a broken __str__ must not replace the failure with another one
            text = ""
        masked = MaskedActivityError(
            mask_error_message(text, names) or type(exc).__name__,
            type=type(exc).__name__,
            non_retryable=False,
        )
    masked.__cause__ = None
    masked.__context__ = None
    masked.__suppress_context__ = True
    return masked.with_traceback(exc.__traceback__)


class _MaskingActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except Exception as exc:
            if _passes_through(exc):
                raise
            try:
                names = names_in(list(input.args))
            except Exception:  # finding names must never hide the failure itself
                names = set()
            replacement = masked_error(exc, names)
        # Raised here, outside the except block, so Python does not chain the original as __context__
        # (which the SDK's log line and failure converter would otherwise print and send).
        raise replacement


class MaskingInterceptor(Interceptor):
    """Worker interceptor: failing activities' errors carry no personal data. See the module docstring."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MaskingActivityInbound(next)


__all__ = [
    "MAX_MESSAGE",
    "MaskedActivityError",
    "MaskingInterceptor",
    "mask_error_message",
    "masked_error",
    "names_in",
    "strip_sql",
]
