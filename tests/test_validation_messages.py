"""Issue 12, messages in Chinese: pydantic's own sentences ("Input should be a valid integer"…) are
put in Chinese by workflows/validation_messages.py, each naming the field by its path in the record
and its Chinese label; our validators' own sentences are kept as they are."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.desk import InputError, parse_action, parse_intake
from tests.scenario_helpers import WAGES
from workflows import models
from workflows.validation_messages import describe_validation_error, field_path, record_name

# What pydantic says in English (its messages start with these): none may reach an operator.
ENGLISH = re.compile(r"Input should|Field required|Extra inputs|String should|List should|Value error|"
                     r"valid integer|valid number|unable to parse|Invalid JSON|should have at")  # fmt: skip


def intake(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p.update(changes)
    return p


def refusal(fn: Any, *args: Any) -> str:
    with pytest.raises(InputError) as info:
        fn(*args)
    said = str(info.value)
    assert not ENGLISH.search(said), said
    assert said.endswith("。"), said
    return said


def test_the_function_moved_and_models_still_offers_it() -> None:
    assert models.describe_validation_error is describe_validation_error


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (intake(channel="fax"), "信访事项记录字段“channel”（信访形式）：应为 'visit'、'online'、'letter'、'phone' 或 'video' 之一（收到 'fax'）"),
        (intake(channel=None), "信访事项记录字段“channel”（信访形式）：应为"),
        (intake(title=5), "信访事项记录字段“title”（标题）：应为文字，而不是数字"),
        (intake(worker_count="很多"), "字段“worker_count”（被欠薪人数）：应为整数（收到 '很多'）"),
        (intake(disputed_amount="一万"), "字段“disputed_amount”（争议金额）：应为数字（收到 '一万'）"),
        (intake(disputed_amount=-5), "字段“disputed_amount”（争议金额）：应大于或等于 0"),
        (intake(facts_clear="maybe"), "字段“facts_clear”（事实是否清楚）：应为 true 或 false（收到 'maybe'）"),
        (intake(petitioners=[]), "字段“petitioners”（信访人）：至少应有 1 项（现有 0 项）"),
        (intake(petitioners={"name": "赵某"}), "字段“petitioners”（信访人）：应为列表，而不是JSON 对象"),
        (intake(petitioners=["赵某"]), "字段“petitioners[0]”（信访人）：应为 JSON 对象（由字段组成），而不是文字"),
        (intake(colour="red"), "字段“colour”：不是此记录的字段"),
    ],
)
def test_intake_problems_are_chinese_sentences_naming_the_field(record: dict[str, Any], words: str) -> None:
    assert words in refusal(parse_intake, record)


def test_a_missing_field_and_a_nested_path() -> None:
    record = intake()
    del record["title"]
    record["petitioners"][0]["phone"] = 13800000000
    said = refusal(parse_intake, record)
    assert "字段“title”（标题）：缺少此项，必须填写" in said
    assert "字段“petitioners[0].phone”（联系电话）：应为文字，而不是数字" in said
    assert said.count("信访事项记录") == 1  # the record is named once, each field after it


def test_our_own_sentences_are_kept_as_written() -> None:
    said = refusal(parse_intake, intake(petitioners=[{"name": "赵某", "id_number": "110101199001011238"}]))
    # the validator's own words (the check digit's) follow the Chinese frame as they were written
    assert "信访事项记录字段“petitioners[0].id_number”（身份证号）：" in said and "GB 11643" in said


@pytest.mark.parametrize(
    ("action", "data", "words"),
    [
        ("extend", {"days": "many", "approved_by": "局长", "reason": "复杂"},
         "操作“延期”（extend）的数据字段“days”（延期天数）：应为整数（收到 'many'）"),
        ("extend", {"days": 0, "approved_by": "局长", "reason": "复杂"}, "字段“days”（延期天数）：应大于 0"),
        ("accept", {}, "操作“受理”（accept）的数据字段“unit”（承办单位）：缺少此项，必须填写"),
        ("redirect", {"route": "petition"}, "字段“route”（法定途径）：应为 'litigation'、'arbitration' 或 "
                                            "'administrative_reconsideration' 之一（收到 'petition'）"),
        ("mediation_result", {"success": "yes please"}, "字段“success”（调解成功）：应为 true 或 false（收到 'yes please'）"),
        ("flag_major_risk", {"reason": "扬言上访", "officials": "某某"}, "字段“officials”（拟问责人员）：应为列表，而不是文字"),
        ("flag_major_risk", {"reason": "扬言上访", "officials": ["某"] * 21}, "字段“officials”（拟问责人员）：最多 20 项（现有 21 项）"),
        ("repeat_visit", {"persons": 0}, "字段“persons”（人数）：应大于或等于 1"),
        ("repeat_visit", {"persons": 10**7}, "字段“persons”（人数）：应小于或等于 100,000"),
        ("pause_clock", {"deadline": "forever"}, "字段“deadline”（期限）：应为"),
        ("arbitration", {}, "字段“event”（仲裁环节）：缺少此项，必须填写"),
        ("report_progress", {"substantive": True, "by": "我"}, "字段“by”：应为 JSON 对象（由字段组成），而不是文字"),
    ],
)
def test_action_data_problems_are_chinese_sentences_naming_the_field(action: str, data: dict[str, Any], words: str) -> None:
    assert words in refusal(parse_action, action, data)


class _Kinds(BaseModel):
    """Every kind of field a record of ours might grow: their errors have Chinese sentences too."""

    model_config = ConfigDict(extra="forbid")
    day: date | None = None
    at: datetime | None = None
    wait: timedelta | None = None
    ratio: float | None = Field(default=None, lt=1)
    code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", min_length=2)
    kind: Literal["a", "b"] | None = None
    tags: list[str] | None = Field(default=None, max_length=1)
    count: int | None = Field(default=None, le=3, multiple_of=2)
    flag: bool | None = None

    @field_validator("flag")
    @classmethod
    def _mine(cls, v: bool | None) -> bool | None:
        if v is False:
            raise ValueError("我们自己的句子：不能为 false")
        return v


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"day": "15/03/2026"}, "应为日期，写作 YYYY-MM-DD"),
        ({"at": "昨天"}, "应为日期和时刻，写作 ISO 8601"),
        ({"wait": "一周"}, "应为时长"),
        ({"ratio": 2}, "应小于 1"),
        ({"ratio": "inf"}, "应小于 1"),
        ({"code": "abc"}, "格式不符"),
        ({"code": "A"}, "至少应有 2 个字符"),
        ({"kind": "c"}, "应为 'a' 或 'b' 之一（收到 'c'）"),
        ({"tags": ["x", "y"]}, "最多 1 项（现有 2 项）"),
        ({"count": 4}, "应小于或等于 3"),
        ({"count": 3}, "应为 2 的整数倍"),
        ({"count": 2.5}, "应为整数，不能有小数部分"),
        ({"flag": "perhaps"}, "应为 true 或 false"),
        ({"flag": False}, "我们自己的句子：不能为 false"),
    ],
)
def test_other_kinds_of_field(data: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Kinds.model_validate(data)
    said = describe_validation_error(info.value, "场景文件")
    assert words in said, said
    assert not ENGLISH.search(said), said
    assert said.startswith("场景文件字段“")


def test_invalid_json_and_the_problems_past_ten() -> None:
    with pytest.raises(ValidationError) as info:
        _Kinds.model_validate_json('{"day": ')
    said = describe_validation_error(info.value, "scenario")
    assert said.startswith("场景文件：不是有效的 JSON（") and not ENGLISH.search(said), said
    with pytest.raises(ValidationError) as info:
        _Kinds.model_validate({f"x{n}": n for n in range(13)})
    said = describe_validation_error(info.value, "intake")
    assert said.count("不是此记录的字段") == 10 and said.endswith("另有 3 处问题。")


def test_paths_and_record_names() -> None:
    assert field_path(("petitioners", 0, "id_number")) == "petitioners[0].id_number"
    assert field_path(("备注\x00",)) == "备注\\x00"  # never a control character in a message
    assert record_name("intake") == "信访事项记录"
    assert record_name("accept data") == "操作“受理”（accept）的数据"
    assert record_name("场景文件") == "场景文件"
