"""Pydantic's validation errors as Chinese sentences for an operator, one per problem, each naming
the field by its path in the record (`petitioners[0].id_number`, as the JSON spells it, so it can
be found) and, where known, by its Chinese label.

The sentences of our own validators (a `ValueError` in workflows/models.py and the rules) are ours
already and are kept as they are; pydantic's own (wrong type, missing, too long, not one of the
choices…) are put in Chinese here.

Pure and free of I/O: importable inside the workflow sandbox, like workflows/models.py (which
re-exports `describe_validation_error`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rules.vocabulary import ACTION_CN, FIELD_CN

MAX_PROBLEMS = 10

# The records' fields by their Chinese names (rules/vocabulary.py); a field not named there is shown
# by its path only.
FIELD_LABELS: Mapping[str, str] = FIELD_CN

# The records callers name in English identifiers ("intake", "accept data"), in Chinese.
_RECORD_CN = {"intake": "信访事项记录", "scenario": "场景文件", "petition": "信访事项记录"}
_ACTION_DATA = re.compile(r"([a-z_]+) data")


def _printable(text: str, limit: int = 40) -> str:
    """workflows.models.printable (imported when called: models re-exports this module's
    `describe_validation_error`, so this module cannot import models as it loads)."""
    from workflows.models import printable as shown

    return shown(text, limit)


def json_kind(value: Any) -> str:
    """What a JSON value is, in Chinese ("列表", "数字"…), for "should be X, not Y" sentences."""
    kinds = {bool: "true 或 false", list: "列表", dict: "JSON 对象", str: "文字", int: "数字", float: "数字"}
    found = (name for kind, name in kinds.items() if isinstance(value, kind))
    return next(found, "null" if value is None else "其他值")


def record_name(what: str) -> str:
    """The record a sentence is about, in Chinese: "intake", "scenario" and "<action> data" are
    translated; anything else (already Chinese) is shown as given."""
    if what in _RECORD_CN:
        return _RECORD_CN[what]
    action = _ACTION_DATA.fullmatch(what)
    if action is not None:
        name = action.group(1)
        return f"操作“{ACTION_CN.get(name, name)}”（{name}）的数据"
    return what


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as the JSON spells it: `petitioners[0].id_number`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _printable(str(part))
    return out


def field_label(loc: tuple[Any, ...]) -> str | None:
    """The Chinese label of the field at `loc` (its last named part), if there is one."""
    names = [part for part in loc if isinstance(part, str)]
    return FIELD_LABELS.get(names[-1]) if names else None


def _choices(expected: Any) -> str:
    """Pydantic's "'a', 'b' or 'c'" as "'a'、'b' 或 'c'"."""
    text = str(expected)
    head, sep, last = text.rpartition(" or ")
    if not sep:
        return text
    return "、".join(head.split(", ")) + " 或 " + last


def _got(err: ErrorDetails) -> str:
    value = err.get("input")
    shown = _printable(repr(value)) if isinstance(value, str | int | float | bool) or value is None else json_kind(value)
    return f"（收到 {shown}）"


def _number(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return str(value)


def _ctx(err: ErrorDetails, key: str) -> Any:
    return (err.get("ctx") or {}).get(key)


def _own(err: ErrorDetails) -> str:
    """Our validators' own sentence (a ValueError's or an assertion's message), kept as written."""
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg.rstrip(".")


_Sentence = Callable[[ErrorDetails], str]


def _fixed(sentence: str) -> _Sentence:
    """The same sentence whatever was sent."""
    return lambda e: sentence


def _not_a(kind: str) -> _Sentence:
    """“应为<kind>，而不是<the kind of JSON value sent>”."""
    return lambda e: f"应为{kind}，而不是{json_kind(e.get('input'))}"


def _unreadable_as(kind: str) -> _Sentence:
    """“应为<kind>（收到 <the value sent>）”: a value that does not read as one."""
    return lambda e: f"应为{kind}{_got(e)}"


def _limited(template: str, *keys: str) -> _Sentence:
    """`template` with pydantic's limits (the error's context at `keys`), as numbers, at its {}."""
    return lambda e: template.format(*(_number(_ctx(e, key)) for key in keys))


def _not_one_of(err: ErrorDetails) -> str:
    return f"应为 {_choices(_ctx(err, 'expected'))} 之一{_got(err)}"


# pydantic's error types (pydantic_core.ErrorType) -> the sentence after the field's name.
_SENTENCES: dict[str, _Sentence] = {
    "missing": _fixed("缺少此项，必须填写"),
    "extra_forbidden": _fixed("不是此记录的字段（请检查拼写，或删去此项）"),
    "value_error": _own,
    "assertion_error": _own,
    "string_type": _not_a("文字"),
    "string_sub_type": _fixed("应为文字"),
    "string_unicode": _fixed("不是有效的 Unicode 文字"),
    "string_too_short": _limited("至少应有 {} 个字符", "min_length"),
    "string_too_long": _limited("最多 {} 个字符", "max_length"),
    "string_pattern_mismatch": lambda e: f"格式不符（应符合 {_printable(str(_ctx(e, 'pattern')), 80)}）",
    "too_short": _limited("至少应有 {} 项（现有 {} 项）", "min_length", "actual_length"),
    "too_long": _limited("最多 {} 项（现有 {} 项）", "max_length", "actual_length"),
    "int_type": _not_a("整数"),
    "int_parsing": _unreadable_as("整数"),
    "int_parsing_size": _fixed("数字位数过多，无法读取"),
    "int_from_float": _unreadable_as("整数，不能有小数部分"),
    "float_type": _not_a("数字"),
    "float_parsing": _unreadable_as("数字"),
    "finite_number": _fixed("应为有限的数字（不能是无穷大或 NaN）"),
    "decimal_type": _fixed("应为数字"),
    "decimal_parsing": _unreadable_as("数字"),
    "decimal_max_digits": _limited("最多 {} 位数字", "max_digits"),
    "decimal_max_places": _limited("最多 {} 位小数", "decimal_places"),
    "decimal_whole_digits": _limited("整数部分最多 {} 位", "whole_digits"),
    "multiple_of": _limited("应为 {} 的整数倍", "multiple_of"),
    "greater_than": _limited("应大于 {}", "gt"),
    "greater_than_equal": _limited("应大于或等于 {}", "ge"),
    "less_than": _limited("应小于 {}", "lt"),
    "less_than_equal": _limited("应小于或等于 {}", "le"),
    "bool_type": _not_a(" true 或 false"),
    "bool_parsing": _unreadable_as(" true 或 false"),
    "literal_error": _not_one_of,
    "enum": _not_one_of,
    "none_required": _fixed("应为空（null）"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type", "dataclass_type"), _not_a(" JSON 对象（由字段组成）")),
    **dict.fromkeys(("list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"), _not_a("列表")),
    "set_item_not_hashable": _fixed("列表中有不能比较的项"),
    "json_invalid": lambda e: f"不是有效的 JSON（{_printable(str(_ctx(e, 'error') or ''), 80)}）",
    "json_type": _fixed("应为 JSON 文本"),
    "bytes_type": _fixed("应为文字"),
    "bytes_too_short": _limited("至少应有 {} 个字节", "min_length"),
    "bytes_too_long": _limited("最多 {} 个字节", "max_length"),
    **dict.fromkeys(
        ("date_type", "date_parsing", "date_from_datetime_parsing"), _fixed("应为日期，写作 YYYY-MM-DD（如 2026-03-15）")
    ),
    "date_from_datetime_inexact": _fixed("应为日期，不带时刻（写作 YYYY-MM-DD）"),
    "date_past": _fixed("应为过去的日期"),
    "date_future": _fixed("应为将来的日期"),
    **dict.fromkeys(
        ("datetime_type", "datetime_parsing", "datetime_from_date_parsing", "datetime_object_invalid"),
        _fixed("应为日期和时刻，写作 ISO 8601（如 2026-03-15T09:30:00+08:00）"),
    ),
    "datetime_past": _fixed("应为过去的时间"),
    "datetime_future": _fixed("应为将来的时间"),
    "timezone_aware": _fixed("应带时区（如 +08:00）"),
    "timezone_naive": _fixed("不应带时区"),
    "timezone_offset": _fixed("时区不符"),
    **dict.fromkeys(("time_type", "time_parsing"), _fixed("应为时刻，写作 HH:MM 或 HH:MM:SS（如 09:30）")),
    **dict.fromkeys(("time_delta_type", "time_delta_parsing"), _fixed("应为时长，写作 ISO 8601（如 P7D、PT2H）")),
    "uuid_type": _fixed("应为 UUID"),
    "uuid_parsing": _fixed("应为 UUID（如 123e4567-e89b-12d3-a456-426614174000）"),
    "url_type": _fixed("应为网址"),
    "url_parsing": _fixed("应为网址（如 https://xf.example.gov.cn）"),
    "url_scheme": lambda e: f"网址应以 {_choices(_ctx(e, 'expected_schemes'))} 开头",
    "url_too_long": _limited("网址最多 {} 个字符", "max_length"),
    "union_tag_invalid": lambda e: f"“{_printable(str(_ctx(e, 'discriminator')))}”应为 {_choices(_ctx(e, 'expected_tags'))} 之一",
    "union_tag_not_found": lambda e: f"缺少用来区分种类的字段“{_printable(str(_ctx(e, 'discriminator')))}”",
    **dict.fromkeys(("frozen_field", "frozen_instance"), _fixed("不能修改")),
    **dict.fromkeys(("is_instance_of", "callable_type"), _fixed("类型不符")),
    "no_such_attribute": _fixed("不是此记录的字段"),
    "recursion_loop": _fixed("嵌套循环，无法读取"),
}


def problem_sentence(err: ErrorDetails) -> tuple[tuple[Any, ...], str]:
    """One problem: where it is (the location) and what is wrong, in Chinese."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "string_unicode" and isinstance(err.get("input"), str):
        # a key that is not text (a lone surrogate): pydantic reports it at the record
        return (*loc, err["input"]), "不是此记录的字段（字段名中有单独的代理码元，不是文字）"
    say = _SENTENCES.get(kind)
    if say is not None:
        return loc, say(err)
    # An error type not listed above: its type names it; pydantic's English wording follows.
    return loc, f"不符合要求（{kind}：{_printable(str(err.get('msg', '')), 120)}）"


def field_name(loc: tuple[Any, ...]) -> str:
    """A field as a sentence names it: “petitioners[0].id_number”（身份证号）."""
    label = field_label(loc)
    return f"“{field_path(loc)}”{f'（{label}）' if label else ''}"


def field_problem(what: str, loc: tuple[Any, ...], sentence: str) -> str:
    """One problem of one field, as a whole sentence: 信访事项记录字段“title”（标题）：…。"""
    return f"{record_name(what)}字段{field_name(loc)}：{sentence}。"


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """One sentence per problem, each naming the field (its path and Chinese label), for an
    operator: 信访事项记录字段“title”（标题）：…；字段“petitioners[0].phone”（联系电话）：…。

    `what` is the record: "intake", "scenario", "<action> data", or its name in Chinese."""
    record = record_name(what)
    parts: list[str] = []
    errors = exc.errors()
    for err in errors[:MAX_PROBLEMS]:
        loc, sentence = problem_sentence(err)
        if not field_path(loc):
            parts.append(sentence if parts else f"{record}：{sentence}")
            continue
        parts.append(f"{record if not parts else ''}字段{field_name(loc)}：{sentence}")
    if len(errors) > MAX_PROBLEMS:
        parts.append(f"另有 {len(errors) - MAX_PROBLEMS:,} 处问题")
    return "；".join(parts) + "。"
