"""Triage (智能分拣) through `Triage.classify`: operator overrides, explanations, the rubric's
cue families (with negation and hypotheticals), categories and risk tiers on clear examples, the
collective wage-arrears flag, extraction of worker counts and amounts, routing, rule-file errors,
and the bound on what is read of a very long text.

Accuracy on writers the model never saw is tests/test_triage_model.py's business."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from rules.ruleset import RuleFileError
from rules.triage import (
    DEFAULT_ROUTING,
    MAX_ANALYSED,
    Triage,
    TriageInput,
    TriageResult,
    load_triage,
    parse_number,
)
from rules.triage_model import DEFAULT_CUES, DEFAULT_MODEL, CueBook
from rules.vocabulary import Category, Risk


@pytest.fixture(scope="module")
def triage() -> Triage:
    return load_triage()


def classify(t: Triage, content: str, title: str = "", locality: str = "青山区", **given: Any) -> TriageResult:
    return t.classify(TriageInput(title=title, content=content, locality=locality, **given))


# --- operator overrides -----------------------------------------------------------------------


def test_operator_category_risk_and_unit_win(triage: Triage) -> None:
    r = triage.classify(
        TriageInput(
            title="拖欠工资",
            content="某建筑公司拖欠我们12名工人工资共计18万元。",
            locality="青山区",
            category=Category.environment,
            risk=Risk.low,
            responsible_unit="青山区信访局",
        )
    )
    assert (r.category, r.risk, r.unit) == (Category.environment, Risk.low, "青山区信访局")
    assert (r.category_source, r.risk_source) == ("operator", "operator")
    assert "分类 环境保护：受理人员指定" in r.reasons
    assert "风险 低：受理人员指定" in r.reasons
    assert "责任单位 青山区信访局：受理人员指定" in r.reasons
    # The classifier's own view is kept when it disagrees: shown, and recorded as a correction.
    assert any(x.startswith("模型分类建议 劳动保障") for x in r.reasons)
    assert any(x.startswith("模型建议风险 中") for x in r.reasons)
    # The unit triage would give follows the category in force (the operator's).
    assert (r.suggested_category, r.suggested_unit) == (Category.labor_social_security, "青山区生态环境分局")
    assert r.suggested_risk != Risk.low
    assert r.collective_wage_arrears is False  # the operator made it an environment case


def test_operator_category_drives_the_unit(triage: Triage) -> None:
    r = triage.classify(TriageInput(title="反映问题", content="请领导关注。", locality="青山区", category=Category.land_expropriation))
    assert r.unit == "青山区自然资源局" and r.category_source == "operator" and r.risk_source == "classifier"


def test_scenario_high_risk_ladder_intake(triage: Triage) -> None:
    r = triage.classify(
        TriageInput(
            title="养殖场污水",
            content="镇上养猪场的污水直接排进灌溉渠,几个村的庄稼都受了影响,村民说再不管就一起去堵镇政府大门。",
            locality="东湖镇",
            risk=Risk.high,
        )
    )
    assert (r.category, r.risk, r.unit) == (Category.environment, Risk.high, "东湖镇政府")
    assert r.risk_source == "operator"


def test_scenario_mediation_success_intake(triage: Triage) -> None:
    r = triage.classify(
        TriageInput(
            title="装修公司拖欠工资",
            content="我在某装修公司做油漆工四个月,公司拖欠工资2.6万元,有考勤表和老板写的欠条。",
            locality="青山区",
            disputed_amount=26000,
        )
    )
    assert (r.category, r.unit) == (Category.labor_social_security, "青山区人社局")
    assert r.risk != Risk.high and not [c for c in r.cues if "（" not in c and c.startswith(("自伤", "聚集", "纵火"))]
    assert r.amount == 26000 and r.collective_wage_arrears is False and not r.statutory_channel


# --- explanations -----------------------------------------------------------------------------


def test_reasons_name_the_model_evidence_and_the_cues(triage: Triage) -> None:
    r = classify(triage, "包工头拖欠我们工钱,已经三个月了。", title="讨薪")
    cat = r.reasons[0]
    assert cat.startswith("分类建议 劳动保障（劳动保障 ") and "依据 " in cat
    risk = next(x for x in r.reasons if x.startswith("风险 "))
    assert "拖欠工资「" in risk and "P(高)=" in risk and "阈值" in risk

    r = classify(triage, "他说再不给钱就从楼顶跳下去。", title="征地补偿")
    risk = next(x for x in r.reasons if x.startswith("风险 "))
    assert risk.startswith("风险 高；高风险线索 自伤自杀「") and "（线索即定为高）" in risk
    assert any(c.startswith("自伤自杀「") for c in r.cues)


def test_a_negated_cue_is_shown_and_not_counted(triage: Triage) -> None:
    r = classify(triage, "邻居两家为停车位吵了几句,没有动手打人,也没有人受伤,希望物业划好车位。")
    assert not any(c.startswith("暴力致伤") for c in r.cues)
    assert r.risk != Risk.high


def test_a_hypothetical_hazard_is_not_an_injury(triage: Triage) -> None:
    r = classify(triage, "小区外墙瓷砖松动脱落,要是砸到人怎么办?请尽快维修。")
    # No high-tier cue: whatever the model then says (it may be over-cautious), not an injury.
    assert not [c for c in r.cues if c.startswith(("险情未除", "暴力致伤")) and "假设" not in c]
    assert r.risk != Risk.low, r.reasons


# --- the rubric's cue families (rules/triage_cues.toml), each seen to fire and not to fire ---------

CUE_FIRES = [
    ("self_harm", "再拖下去我真的不想活了,遗书都写好了。"),
    ("self_harm", "他说这次要是还不给说法,就从区政府楼上跳下去。"),
    ("violence_injury", "拆迁队的人把我父亲打成骨折,现在还在医院。"),
    ("emergency_refused", "孩子高烧抽搐送到急诊,医院说先交押金不交钱不给看。"),
    ("hazard_exposed", "楼顶的混凝土块一直往下掉,楼下每天学生进进出出。"),
    ("toxic_harm", "化工厂泄漏后,村里已经有好几个人呕吐住院了。"),
    ("collective_action", "工友们说明天一早去把工地大门堵上。"),
    ("collective_action", "家属把遗体停在医院门口不走。"),
    ("collective_trip", "几十户村民商量好了,下周一起去省里。"),
    ("collective_trip", "会员群里约好了周六一起去公司总部要钱。"),
    ("extreme_threat", "他扬言要浇汽油把老板的厂子烧了。"),
]
CUE_SILENT = [
    ("self_harm", "商场门口喇叭天天喊跳楼价大甩卖,吵得人睡不着。"),
    ("violence_injury", "两家人吵了一架,没有动手,也没有人受伤。"),
    ("hazard_exposed", "外墙瓷砖有点松动,万一砸到人怎么办。"),
    ("collective_action", "早上排队办证的人堵在门口,希望多开几个窗口。"),
    ("collective_trip", "我儿子下个月去北京读大学,学费贷款办不下来。"),
    ("extreme_threat", "楼下炸鸡店油烟太大,我担心被打击报复不敢去说。"),
]


@pytest.mark.parametrize(("cue", "text"), CUE_FIRES, ids=[f"{c}{i}" for i, (c, _) in enumerate(CUE_FIRES)])
def test_cue_family_fires(cue: str, text: str) -> None:
    hits, _ = CueBook().find(text)
    assert any(h.cue == cue and h.tier == Risk.high for h in hits), hits


@pytest.mark.parametrize(("cue", "text"), CUE_SILENT, ids=[f"{c}{i}" for i, (c, _) in enumerate(CUE_SILENT)])
def test_cue_family_does_not_fire(cue: str, text: str) -> None:
    hits, _ = CueBook().find(text)
    assert not any(h.cue == cue and h.tier == Risk.high for h in hits), hits


def test_hundreds_of_workers_or_millions_of_yuan_is_high(triage: Triage) -> None:
    assert classify(triage, "建筑公司拖欠我们300多名农民工工资。").risk == Risk.high
    assert classify(triage, "项目部拖欠工资共计420万元,大家都没拿到钱。").risk == Risk.high


# --- categories and risk tiers ----------------------------------------------------------------

CLEAR = [
    ("区里征收我家房子,拆迁补偿标准太低,过渡费也没发。", Category.land_expropriation),
    ("公司拖欠我三个月工资,也不给交社保。", Category.labor_social_security),
    ("法院判决生效一年了,申请强制执行至今没有结果。", Category.law_litigation),
    ("村干部不公开村务账目,种粮补贴也没发到户。", Category.rural_agriculture),
    ("小区物业不作为,电梯坏了两个月,开发商也不管。", Category.urban_construction_transport),
    ("孩子在小学被老师体罚,学校不处理。", Category.education_health),
    ("化工厂晚上偷排废水,河水发黑发臭。", Category.environment),
    ("身份证丢了补办两个月还没拿到,户口本也要重新办。", Category.other),
]


@pytest.mark.parametrize(("content", "expected"), CLEAR, ids=[c.value + str(i) for i, (_, c) in enumerate(CLEAR)])
def test_each_category_on_a_clear_example(triage: Triage, content: str, expected: Category) -> None:
    r = classify(triage, content)
    assert r.category == expected, r.reasons
    assert r.category_source == "classifier"
    assert r.statutory_channel is (expected == Category.law_litigation)


RISKS = [
    ("拆迁办说不签字就强拆,真要强拆我就喝农药。", Risk.high),
    ("四十多户拆迁户约好下周一集体上访。", Risk.high),
    ("村民们说这个月再不给钱就一起去把施工路口堵住。", Risk.high),
    ("老楼鉴定为D级危房,外墙一直往下掉水泥块,里面还住着十几户老人。", Risk.high),  # people still exposed
    ("我母亲今年82岁,拆迁后过渡费一直没发。", Risk.medium),
    ("楼体开裂被鉴定为危房,已经搬空了,周边没有围挡。", Risk.medium),
    ("公司拖欠我们12名工人工资共计18万元。", Risk.medium),
    ("请问征地补偿款什么时候发?", Risk.low),
    ("小区门口的路灯坏了,晚上出门不方便。", Risk.low),
]


@pytest.mark.parametrize(("content", "expected"), RISKS, ids=[f"{r.value}{i}" for i, (_, r) in enumerate(RISKS)])
def test_each_risk_tier(triage: Triage, content: str, expected: Risk) -> None:
    # Cost-sensitive: a high is always high; a medium may be called high but never low; a low
    # is never high.
    r = classify(triage, content)
    if expected == Risk.high:
        assert r.risk == Risk.high, r.reasons
    elif expected == Risk.medium:
        assert r.risk != Risk.low, r.reasons
    else:
        assert r.risk != Risk.high, r.reasons


def test_blasting_is_not_a_threat(triage: Triage) -> None:
    r = classify(triage, "采石场天天放炮炸山,粉尘很大。")
    assert r.risk != Risk.high and not any(c.startswith("纵火爆炸") for c in r.cues)


def test_no_cue_scores_the_petitioner() -> None:
    text = DEFAULT_CUES.read_text(encoding="utf-8")
    for word in ("缠访", "闹访", "老上访户", "信用", "越级", "多次上访", "黑名单"):
        assert f"'{word}'" not in text, word


# --- collective wage arrears ------------------------------------------------------------------


def test_collective_flag_at_five_workers_not_four(triage: Triage) -> None:
    five = classify(triage, "老板拖欠我们5个人的工资,每人一万多。")
    four = classify(triage, "老板拖欠我们4个人的工资,每人一万多。")
    assert five.category == four.category == Category.labor_social_security
    assert (five.worker_count, five.collective_wage_arrears) == (5, True)
    assert (four.worker_count, four.collective_wage_arrears) == (4, False)
    assert any("仲裁绿色通道" in x for x in five.reasons)


def test_collective_flag_uses_the_given_worker_count_and_threshold() -> None:
    t = Triage(collective_min_workers=10)
    text = "工地拖欠工资,大家都没拿到钱。"
    assert classify(t, text, worker_count=9).collective_wage_arrears is False
    r = classify(t, text, worker_count=10)
    assert r.collective_wage_arrears is True and r.worker_count == 10
    assert "工人数 10：受理时填写" in r.reasons


def test_collective_flag_needs_wage_arrears_and_the_labour_category(triage: Triage) -> None:
    # Workers but no unpaid wages.
    assert classify(triage, "厂里12名工人的劳动合同到期,公司不续签。").collective_wage_arrears is False
    # Unpaid wages of 6 workers, but the matter is already a court judgment: law & litigation.
    r = classify(triage, "我们6个工人告老板拖欠工资,法院判我们胜诉,执行不到。")
    assert r.category == Category.law_litigation and r.collective_wage_arrears is False
    assert r.statutory_channel is True


# --- extraction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "workers"),
    [
        ("某建筑公司拖欠我们12名工人工资共计18万元", 12),
        ("二十多个农民工被拖欠工资", 20),
        ("我们5个人的工资都没发", 5),
        ("我们一共九个人,站点老板欠我们派送费", 9),
        ("上百名矿工被欠工资", 100),
        ("十几个工人的工资被拖欠", 11),
        ("几个工人的工资被拖欠", None),  # 几个 is no number
        ("老板欠我工资", None),
    ],
)
def test_worker_count_extraction(triage: Triage, content: str, workers: int | None) -> None:
    assert classify(triage, content).worker_count == workers


@pytest.mark.parametrize(
    ("content", "amount"),
    [
        ("拖欠工资共计18万元", 180000),
        ("公司拖欠工资2.6万元", 26000),
        ("还欠5000元没给", 5000),
        ("一共欠我十三万四千元", 134000),
        ("欠了四十多万的工钱", 400000),
        ("老板欠我一万二的工钱", 12000),
        ("每亩只有4.2万元,一共补了8万元", 80000),  # a unit price is not the sum in dispute
        ("征收了30万平方米", None),  # 万 of square metres is no money
    ],
)
def test_amount_extraction(triage: Triage, content: str, amount: float | None) -> None:
    assert classify(triage, content).amount == amount


def test_given_amount_wins(triage: Triage) -> None:
    r = classify(triage, "拖欠工资共计18万元", disputed_amount=175000)
    assert r.amount == 175000


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), ("2.6", 2.6), ("二十", 20), ("十二", 12), ("十三万四千", 134000), ("一万二", 12000),
     ("三千五", 3500), ("一百零五", 105), ("七八千", 7000), ("几十", 20), ("十几", 11), ("上百", 100),
     ("两千", 2000), ("几", None), ("１２", 12)],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


# --- routing and leaders ----------------------------------------------------------------------


def test_routing(triage: Triage) -> None:
    wage = "公司拖欠我三个月工资。"
    assert classify(triage, wage, locality="青山区").unit == "青山区人社局"
    assert classify(triage, wage, locality="东湖镇").unit == "东湖镇政府"
    assert classify(triage, wage, locality="白沙乡").unit == "白沙乡政府"
    assert classify(triage, wage, locality="城南街道").unit == "城南街道办事处"
    assert classify(triage, "医院误诊,医生不负责。").unit == "青山区卫健委"
    assert classify(triage, "学校乱收费,老师强制买教辅。").unit == "青山区教育局"
    assert classify(triage, "法院判决执行不到位。").unit == "青山区政法委"
    assert classify(triage, "化工厂偷排废水。").unit == "青山区生态环境分局"
    assert classify(triage, "村干部不公开村务,种粮补贴没发。", locality="高新区").unit == "高新区社会事务局"


def test_leaders(triage: Triage) -> None:
    assert triage.principal_leader("青山区") == "青山区委书记"
    assert triage.principal_leader("江北区") == "江北区主要领导"
    assert triage.deputy_leader("青山区", Category.labor_social_security) == "青山区分管人社工作副区长"
    assert triage.deputy_leader("东湖镇", Category.education_health) == "东湖镇分管教育医疗工作负责人"
    assert triage.deputy_leader("江北区", Category.environment) == "江北区分管环境保护工作负责人"
    assert triage.unit_leader("青山区人社局") == "青山区人社局局长"
    assert triage.unit_leader("江北区住建局") == "江北区住建局主要负责人"


def test_load_triage_is_cached_and_versioned() -> None:
    assert load_triage() is load_triage()
    model, cues, routing = load_triage().model_version.split(" / ")
    assert model.startswith("triage-model ") and cues.startswith("triage-cues ") and routing.startswith("routing ")


def test_only_the_first_max_analysed_characters_are_read(triage: Triage) -> None:
    # A 1 MB text: read up to the bound, never a stall; a threat past the bound is not seen.
    filler = "我反映一下小区路灯的问题。" * (1_000_000 // 13)
    r = classify(triage, filler + "他说明天就从楼顶跳下去。")
    assert r.truncated and r.reasons[0].startswith("内容共 ") and f"只分析前 {MAX_ANALYSED:,} 字" in r.reasons[0]
    assert not any(c.startswith("自伤自杀") for c in r.cues)
    r = classify(triage, "他说明天就从楼顶跳下去。" + filler)
    assert r.truncated and r.risk == Risk.high


def test_jieba_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    Triage()
    out, err = capfd.readouterr()
    assert "prefix dict" not in out + err and "Loading model" not in out + err


# --- rule-file errors -------------------------------------------------------------------------


def _broken(tmp_path: Path, name: str, source: Path, old: str, new: str) -> Path:
    path = tmp_path / name
    shutil.copy(source, path)
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ('label = "自伤自杀"\ntier = "high"', 'label = "自伤自杀"\ntier = "urgent"', ["cues.0.tier"]),
        ("window = 30", 'window = "thirty"', ["cues.1.window"]),
        ("'跳楼', '跳河'", "'跳(楼', '跳河'", ["cues.0.patterns", "regular expression"]),
        ("group_at_least = 5", "group_at_least = 1", ["numeric.group_at_least"]),
        ('id = "hazard"\n', 'id = "self_harm"\n', ["cue ids must be unique", "self_harm"]),
        ("[wage_arrears]", "[wage_arrears\n", ["not valid TOML"]),
    ],
)
def test_broken_cue_file_names_file_and_field(tmp_path: Path, old: str, new: str, names: list[str]) -> None:
    path = _broken(tmp_path, "cues.toml", DEFAULT_CUES, old, new)
    with pytest.raises(ValueError) as info:
        Triage(cues_path=path)
    assert isinstance(info.value, RuleFileError)
    message = str(info.value)
    assert str(path) in message
    for name in names:
        assert name in message, message


def test_a_cue_file_the_model_was_not_trained_with_is_refused(tmp_path: Path) -> None:
    path = _broken(tmp_path, "cues.toml", DEFAULT_CUES, 'version = "', 'version = "edited ')
    with pytest.raises(RuleFileError) as info:
        Triage(cues_path=path)
    assert "starter.py triage train" in str(info.value)


def test_a_missing_model_file_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError) as info:
        Triage(model_path=tmp_path / "nope.json")
    assert "nope.json" in str(info.value) and "starter.py triage train" in str(info.value)
    assert DEFAULT_MODEL.exists()


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("[categories.other]", "[categories.misc]", ["categories.misc"]),
        ('category = "education_health"', 'category = "health"', ["variants.0.category"]),
        ("\n[default_leaders]\n", "\n[leaders_default]\n", ["default_leaders", "leaders_default"]),
        ("other = \"青山区分管信访工作副区长\"", "others = \"x\"", ["leaders.青山区.deputy_leader.others"]),
    ],
)
def test_broken_routing_file_names_file_and_field(tmp_path: Path, old: str, new: str, names: list[str]) -> None:
    path = _broken(tmp_path, "routing.toml", DEFAULT_ROUTING, old, new)
    with pytest.raises(RuleFileError) as info:
        Triage(routing_path=path)
    message = str(info.value)
    assert str(path) in message
    for name in names:
        assert name in message, message
