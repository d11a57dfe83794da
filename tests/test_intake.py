"""Bad intake is refused with a sentence naming the field, and nothing is started."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.desk import InputError, parse_action, parse_intake
from tests.scenario_helpers import WAGES
from workflows.models import gb11643_check_digit, mask_id, mask_name, mask_phone

ROOT = Path(__file__).resolve().parent.parent


def _with(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p.update(changes)
    return p


def _person(**changes: Any) -> dict[str, Any]:
    p = copy.deepcopy(WAGES)
    p["petitioners"][0].update(changes)
    return p


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        (_with(channel="fax"), "channel", "收到 'fax'"),
        (_with(content="   "), "content", "must not be empty"),
        (_with(title=""), "title", "must not be empty"),
        (_person(id_number="110101199001011238"), "petitioners[0].id_number", "check digit"),
        (_person(id_number="11010119900101123"), "petitioners[0].id_number", "17 digits"),
        (_person(phone="1380000"), "petitioners[0].phone", "phone number"),
        (_person(phone="12800000000"), "petitioners[0].phone", "phone number"),
        (_with(disputed_amount=-1), "disputed_amount", "应大于或等于 0"),
        (_with(petitioners=[]), "petitioners", "至少应有 1 项"),
        (_with(office_level="province"), "office_level", "收到 'province'"),
        (_with(risk="extreme"), "risk", "收到 'extreme'"),
        (_with(colour="red"), "colour", "不是此记录的字段"),
    ],
)
def test_bad_intake_names_the_field(record: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        parse_intake(record)
    message = str(err.value)
    assert f"信访事项记录字段“{field}”" in message
    assert words in message
    assert message.endswith("。")


def test_good_intake_passes_and_x_check_digit_is_accepted() -> None:
    first17 = "11010519491231002"
    assert gb11643_check_digit(first17) == "X"
    intake = parse_intake(_person(id_number=first17 + "x", phone="010-12345678"))
    assert intake.petitioners[0].id_number == first17 + "X"


def test_masks_hide_personal_data() -> None:
    assert mask_name("张三丰") == "张**"
    assert mask_id("110101199001011237") == "110**************7"
    assert mask_phone("13800000000") == "138****0000"


def test_bad_action_data_names_the_field() -> None:
    with pytest.raises(InputError, match=r"操作“延期”（extend）的数据字段“days”（延期天数）：应为整数（收到 'many'）"):
        parse_action("extend", {"days": "many", "approved_by": "局长", "reason": "复杂"})
    with pytest.raises(InputError, match=r"未知的操作“approve”"):
        parse_action("approve", {})
    with pytest.raises(InputError, match=r"（redirect）的数据字段“route”（法定途径）：应为 .* 之一（收到 'petition'）"):
        parse_action("redirect", {"route": "petition"})


def _starter(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_starter_register_refuses_bad_intake_with_exit_2(tmp_path: Path) -> None:
    bad = _person(id_number="110101199001011238")
    proc = _starter("register", "-", stdin=json.dumps(bad, ensure_ascii=False))
    assert proc.returncode == 2
    assert "petitioners[0].id_number" in proc.stderr
    assert "110101199001011238" not in proc.stderr  # the number itself is never echoed


def test_starter_scenario_refuses_an_invalid_file_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"petition": WAGES, "steps": [{"after": "two days", "action": "accept"}]}))
    proc = _starter("scenario", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("错误：")]
    assert len(lines) == 1 and "after" in lines[0]

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"petition": WAGES, "steps": [{"after": "P1D", "action": "approve"}]}))
    proc = _starter("scenario", str(unknown))
    assert proc.returncode == 2 and "未知的操作“approve”" in proc.stderr

    proc = _starter("scenario", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "missing.json：文件不存在。" in proc.stderr


def test_starter_triage_reads_and_writes_json_lines_in_order() -> None:
    lines = [
        {"title": "拖欠工资", "content": "公司拖欠我三个月工资，老板跑路了。", "locality": "青山区"},
        {"title": "拆迁补偿", "content": "村里征地拆迁，补偿款一直没有发到位。", "locality": "青山区"},
        {"title": "判决不执行", "content": "法院判决已经生效两年，对方一直不履行，申请强制执行也没结果。", "locality": "青山区", "risk": "low"},
    ]
    proc = _starter("triage", stdin="\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["category"] for o in out] == ["labor_social_security", "land_expropriation", "law_litigation"]
    assert out[2]["risk"] == "low" and out[2]["statutory_channel"] is True
    assert all(o["unit"] and o["reasons"] for o in out)
