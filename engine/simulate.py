"""A simulated year for the supervision cockpit (`starter.py simulate`).

Synthetic petitions, drawn from the source's yearly figures (../shared/domain.md, "The data
cockpit") times `scale`, are registered **through the real workflows and activities** on the
time-skipping test server, day by day: each simulated day the day's petitions are registered
(`engine.desk.register`: a repeat on an open matter becomes a repeat visit) and the handling units,
the petitioners' desk and the supervision office take the actions their drawn lives schedule for
that day (`engine.desk.act`, each as the role the action belongs to); then the clock skips to the
next day, and the engine's own deadlines fire on the way (overdue alerts, digests, the letters
ladder, review windows closing). Refused actions are counted, never fatal.

The server's clock starts at the year's first instant (Asia/Shanghai) under libfaketime
(`engine.servers.start_test_server_at`), so a year already begun or past can be simulated; without
libfaketime only a year that has not begun can. Every timestamp of the read model that the
cockpit counts (registration, timeline, documents' issue, score events, arbitration) is the
workflow's; a few bookkeeping times are this process's real clock (see `REAL_CLOCK_FIELDS`).

Everything is drawn from one seeded generator before the server starts (the registrations, their
intakes and each case's life), so a run with the same options (and the same rules and triage
model) draws the same year.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Worker

from activities.db import CaseRow, dispose_engines, get_engine
from activities.masking import MaskingInterceptor
from activities.petition import PetitionActivities, pdfs_written
from engine.config import Settings
from engine.desk import InputError, Refused, act, load_calendar, new_case_id, register
from engine.scenario import acting_as, refuse_used_keep_dir
from rules.deadlines import SHANGHAI, HolidayCalendar
from rules.lifecycle import mediation_eligible
from rules.ruleset import RuleSet, load_rules
from rules.vocabulary import Category, Channel, OfficeLevel, Risk, StaffRole
from workflows.models import Actor, CaseState, Intake, Petitioner, gb11643_check_digit

# --------------------------------------------------------------------------------------------
# The distributions (full scale, one year), from the source document
# --------------------------------------------------------------------------------------------

# Registrations by channel, as batches (批次).
YEAR_BATCHES: dict[Channel, int] = {
    Channel.online: 165_432,
    Channel.visit: 48_762,
    Channel.letter: 8_745,
    Channel.phone: 22_366,
    Channel.video: 2_901,
}
YEAR_VISIT_PERSONS = 71_203  # 人次 of the 48,762 visit batches (1.46 persons a batch)

CATEGORY_SHARES: dict[Category, float] = {
    Category.land_expropriation: 0.286,
    Category.labor_social_security: 0.197,
    Category.law_litigation: 0.154,
    Category.rural_agriculture: 0.121,
    Category.urban_construction_transport: 0.098,
    Category.education_health: 0.065,
    Category.environment: 0.053,
    Category.other: 0.026,
}
REPEAT_SHARE = 0.36  # of registrations: a petition on a matter already registered (重复信访)
# A repeat comes back to a matter of some age: exponential with this mean, at most REPEAT_MAX_AGE
# days; the year's first weeks have fewer to come back to (last year's are not in this engine).
REPEAT_AGE_DAYS = 60
REPEAT_MAX_AGE = 120
REPEAT_POPULAR = 0.05  # of repeats: to a matter that came back before (a few come back often)

# The engine's own choices where the source gives no figure (the cockpit's texture).
RISK_SHARES: dict[Risk, float] = {Risk.low: 0.80, Risk.medium: 0.175, Risk.high: 0.025}
# The city's localities (those of the rules' corpus and samples), unevenly busy.
LOCALITIES: dict[str, float] = {
    "青山区": 18, "江北区": 14, "高新区": 12, "西山县": 10, "河西县": 9, "临河镇": 7, "东湖镇": 7,
    "北关街道": 6, "城南街道": 6, "白沙乡": 4, "石桥乡": 3, "红旗街道": 2, "清水县": 2,
}  # fmt: skip
ACCEPTED_LATE = 0.05  # accepted after the 15-day acceptance period ran out
OPINION_LATE = 0.06  # handling opinion after the 60 days
EXTENDED = 0.04  # one extension before the opinion
REVIEW_ASKED = 0.08  # of answered cases: review (复查) requested
RE_REVIEW_ASKED = 0.30  # of reviewed cases: re-review (复核) requested
REVIEW_LATE = 0.10  # review decision after its 30 days
FACTS_CLEAR = 0.45  # of civil cases: facts clear (with the amount, mediation eligibility)
MEDIATION = {"fulfilled": 0.72, "agreed_unfulfilled": 0.06, "failed": 0.10}  # else the window is missed
COLLECTIVE_WAGES = 0.06  # of labour cases: collective wage arrears (5+ workers, arbitration green channel)
WITHDRAWN = 0.01
LEADER = 0.005  # 领导包案 on an ordinary case (and 40 % of high-risk cases, every nail case)
LEADERS = ("市委常委 王某某", "副市长 李某某", "市人大常委会副主任 陈某某", "市政协副主席 刘某某", "市委秘书长 赵某某")

# A simulated day's moments (local time) at which the desk registers and the units act. Each is a
# stop of the clock, which costs about a second of real time whatever the volume: one a day.
SLOTS = (timedelta(hours=9),)
# Relative busyness of a rest day (weekend or statutory holiday) by channel; a working day is 1.
REST_DAY_WEIGHT: dict[Channel, float] = {
    Channel.online: 0.55, Channel.phone: 0.4, Channel.letter: 0.15, Channel.visit: 0.12, Channel.video: 0.1,
}  # fmt: skip

# Read-model times this process stamps from its own (real) clock, not the workflow's.
REAL_CLOCK_FIELDS = (
    "cases.updated_at", "refusals.at", "triage_decisions.decided_at", "triage_corrections.at",
    "notifications.jsonl sent_at", "the ledger's signed tree heads",
)  # fmt: skip

CHANNEL_CN = {"online": "网上信访", "visit": "来访", "letter": "来信", "phone": "来电", "video": "视频接访"}
CATEGORY_CN = {
    "land_expropriation": "征地拆迁", "labor_social_security": "劳动保障", "law_litigation": "涉法涉诉",
    "rural_agriculture": "农村农业", "urban_construction_transport": "城建交通", "education_health": "教育医疗",
    "environment": "环境保护", "other": "其他",
}  # fmt: skip
RISK_CN = {"high": "高", "medium": "中", "low": "低"}
OUTCOME_CN = {
    "mediated": "调解办结", "resolved": "答复办结", "final_after_review": "复查终结", "final_after_re_review": "复核终结",
    "redirected": "导入法定途径", "not_accepted": "不予受理", "withdrawn": "撤回",
}  # fmt: skip

DESK = Actor(name="simulation", role=StaffRole.operator)
MAX_ERRORS = 50  # failures (not rule refusals) before the run stops: something is wrong, not unlucky


class SimulationFailed(Exception):
    """Too many registrations or actions failed for other reasons than the rules."""

ACTOR_NAME = "simulation"

# --------------------------------------------------------------------------------------------
# What petitions say: a few templates per category
# --------------------------------------------------------------------------------------------

_PLACES = ("和平村", "新民村", "杨柳村", "石门村", "前进社区", "幸福里小区", "滨江花园", "锦绣家园", "工业园", "老城片区")
_COMPANIES = ("宏达建筑公司", "鑫源物流公司", "恒通电子厂", "美家装饰公司", "华盛食品厂", "顺安物业公司", "金桥置业公司")
_SCHOOLS = ("第三小学", "实验中学", "阳光幼儿园", "第二初级中学")
_HOSPITALS = ("区人民医院", "中心卫生院", "县中医院")


@dataclass(frozen=True)
class _Template:
    title: str
    content: str
    amount: tuple[int, int] | None = None  # the disputed amount's range in yuan, when money is at stake
    party: str = ""  # the other party of a mediation


TEMPLATES: dict[Category, tuple[_Template, ...]] = {
    Category.land_expropriation: (
        _Template("{place}征地补偿款未足额发放", "{place}的土地去年被征收用于道路建设，征地补偿款至今只发了一部分，还差{amount}元没有到位，多次找镇里都说在走程序。", (20_000, 400_000)),
        _Template("{place}房屋拆迁安置问题", "我家在{place}的房屋被列入拆迁范围，安置房面积和原来相差很多，评估价格也偏低，希望重新评估。", (50_000, 800_000)),
        _Template("{place}宅基地被占用未补偿", "{place}修建厂房占用了我家宅基地的一部分，没有签协议也没有任何补偿。"),
        _Template("{place}拆迁过渡费停发", "我家拆迁后在外租房两年多，过渡费从今年起停发了，安置房还没有交付，请求按协议继续发放。", (10_000, 60_000)),
    ),
    Category.labor_social_security: (
        _Template("{company}拖欠工资", "我在{company}工作了{months}个月，公司拖欠工资{amount}元，有考勤记录和工资条。", (3_000, 80_000), "{company}"),
        _Template("{company}未缴纳社会保险", "我在{company}上班三年，公司一直没有给我缴纳社会保险，现在办退休手续受影响。", None, "{company}"),
        _Template("工伤待遇未落实", "我在{company}干活时受伤，已经认定为工伤，但公司一直不支付停工留薪期工资和医疗费，合计{amount}元。", (8_000, 120_000), "{company}"),
        _Template("{company}违法解除劳动合同", "{company}没有任何理由就把我辞退了，也不给经济补偿金，我要求公司按规定赔偿{amount}元。", (5_000, 60_000), "{company}"),
    ),
    Category.law_litigation: (
        _Template("对民事判决不服", "我和{company}的合同纠纷案法院已经判决，我认为判决认定事实错误，申请再审一直没有结果。"),
        _Template("判决生效后执行不到位", "法院判决对方支付我{amount}元，判决已经生效，申请强制执行后还没有执行到位，请求督促执行。", (20_000, 300_000)),
        _Template("反映案件办理程序问题", "我报案的一起诈骗案立案后半年多没有任何进展，办案民警也联系不上。"),
        _Template("对行政处罚决定不服", "我的店铺被罚款{amount}元，我认为处罚依据不足，要求撤销处罚决定。", (2_000, 50_000)),
    ),
    Category.rural_agriculture: (
        _Template("{place}土地承包经营权纠纷", "我家在{place}承包的三亩地被村里收回另行发包，村委会没有给任何说法。", (5_000, 40_000), "{place}村民委员会"),
        _Template("{place}农业补贴未发放", "今年的耕地地力保护补贴我家一直没有领到，问了村里说名单上没有我家。", (500, 5_000), "{place}村民委员会"),
        _Template("{place}灌溉水渠损坏", "{place}的灌溉水渠去年汛期冲坏了，一直没有修，影响我家春耕浇水。", None, "{place}村民委员会"),
        _Template("购买到假种子造成减产", "我在镇上农资店买的玉米种子出苗率很低，造成减产，店主不肯赔偿，损失约{amount}元。", (3_000, 30_000), "镇农资店"),
    ),
    Category.urban_construction_transport: (
        _Template("{place}小区物业服务问题", "{place}的物业公司收费不服务，电梯经常坏，楼道垃圾没人清理。", None, "{company}"),
        _Template("{place}违章搭建占用绿地", "{place}一楼业主在公共绿地上搭建彩钢房，占用了小区绿地，希望城管部门依法处理。", None, "违建业主"),
        _Template("{place}新房逾期交付", "我在{place}买的房子合同约定去年底交房，到现在还没有交付，开发商不支付违约金{amount}元。", (10_000, 50_000), "{company}"),
        _Template("公交线路调整出行不便", "{place}附近的公交线路调整后，最近的站点要走两公里，上下班很不方便，希望恢复原站点。"),
    ),
    Category.education_health: (
        _Template("孩子入学问题", "我家孩子今年该上小学，户籍和房产都在学区内，但{school}说学位已满不予接收。", None, "{school}"),
        _Template("{school}乱收费", "{school}以资料费名义每学期向每个学生收取费用，没有任何票据。", (500, 5_000), "{school}"),
        _Template("对{hospital}医疗费用有异议", "我父亲在{hospital}住院十几天，费用清单里有不少项目没有做过，多收了{amount}元。", (2_000, 40_000), "{hospital}"),
        _Template("{hospital}服务态度问题", "在{hospital}看门诊时挂号排队很久，医生态度也很差，要求医院给个说法。", None, "{hospital}"),
    ),
    Category.environment: (
        _Template("{place}附近工厂噪音扰民", "{place}旁边的工厂晚上一直开工，噪音很大，居民晚上没法休息。", None, "{company}"),
        _Template("{place}洗车店污水乱排", "{place}路口的洗车店把污水排到路边，路面常年湿滑，希望环保部门查处。", None, "洗车店经营者"),
        _Template("{place}餐馆油烟扰民", "{place}楼下的餐馆油烟直接排到居民楼，家里窗户都不敢开。", None, "餐馆经营者"),
        _Template("{place}建筑垃圾乱倒", "有人在{place}的空地上倾倒建筑垃圾，已经堆了很高，扬尘严重。"),
    ),
    Category.other: (
        _Template("网购商品质量纠纷", "我在网上买的家电用了一周就坏了，商家拒绝退换，涉及金额{amount}元。", (500, 20_000), "网店商家"),
        _Template("反映{place}路灯不亮", "{place}门口的路灯坏了两个多月，晚上出行不方便，希望尽快维修。"),
        _Template("邻里纠纷请求调处", "我和{place}的邻居因为排水问题发生纠纷，多次协商不成，希望有关部门帮助调解。", None, "邻居"),
        _Template("预付卡商家跑路", "{place}的一家健身房突然关门，我办的会员卡还有{amount}元没有消费。", (1_000, 10_000), "健身房经营者"),
    ),
}

# What makes a matter medium or high risk by the rubric (../shared/domain.md), in words the
# engine's triage recognises (`_new_matter` checks each drawn text against it).
_MEDIUM_WORDS = ("涉及十几户人家，大家意见很大。", "家里有年迈的老人需要照顾，生活十分困难。", "我患有重病需要长期治疗，现在没有收入，生活难以为继。")
_HIGH_WORDS = (
    "村民们说再不解决就一起去堵镇政府大门。",
    "有几十户群众商量要集体到市政府门口静坐。",
    "信访人扬言如果再不解决就到市政府楼顶跳下去。",
)
_OPINIONS: dict[Category, str] = {
    Category.land_expropriation: "经核查，已责成征收实施单位按补偿方案核算，差额补偿款于三十日内足额发放。",
    Category.labor_social_security: "经调查，已责令用人单位限期支付拖欠款项并依法补缴社会保险，逾期将依法处理。",
    Category.law_litigation: "经审查，该事项已告知信访人依法通过诉讼程序主张权利，并督促有关机关依法办理。",
    Category.rural_agriculture: "经核实，已由乡镇人民政府督促村民委员会依法纠正，并落实相关补贴。",
    Category.urban_construction_transport: "经现场核查，已责令有关单位限期整改，并由住建部门跟踪督办。",
    Category.education_health: "经调查核实，已责成有关学校（医院）依规纠正，并向信访人作出说明。",
    Category.environment: "经现场监测，已对涉事企业立案查处并责令限期整改，整改期间加密巡查。",
    Category.other: "经调查，已协调有关部门依法处理，并向信访人作出答复。",
}

# Identity numbers: the city's own prefixes, and other provinces' (34.4 % come from elsewhere).
_LOCAL_PREFIXES = ("330102", "330105", "330106", "330108", "330110", "330122", "330182")
_OTHER_PREFIXES = ("340102", "360102", "410102", "420102", "430102", "510104", "520102", "320102", "370102")
CROSS_PROVINCE = 0.344
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红梅海燕金凤文斌春林德福永红卫东"

# --------------------------------------------------------------------------------------------
# The draw: registrations, matters, lives
# --------------------------------------------------------------------------------------------


@dataclass
class Matter:
    """One petitioner's matter: what the desk's matter key is made of (first petitioner, locality, title)."""

    index: int
    day: int
    category: Category
    risk: Risk
    locality: str
    title: str
    content: str
    petitioner: Petitioner
    facts_clear: bool | None
    amount: float | None
    worker_count: int | None
    party: str
    repeats: int = 0


@dataclass
class Step:
    day: int  # days after registration
    slot: int
    action: str
    data: dict[str, Any]


@dataclass
class Draft:
    """One registration: when, how it came, how many came, about which matter; and the life its
    case will have if it starts one."""

    index: int
    day: int
    slot: int
    channel: Channel
    persons: int
    office_level: OfficeLevel
    matter: Matter
    repeat: bool
    steps: list[Step] = field(default_factory=list)
    # A plan from another source than the draw (engine/preview.py: a recorded period replayed):
    # the intake as given, the case's id, and the rules the case starts under (else the run's).
    given: Intake | None = None
    case_id: str | None = None
    rules: RuleSet | None = None

    def intake(self, rng: random.Random, used: set[str]) -> Intake:
        if self.given is not None:
            return self.given
        m = self.matter
        others = [_person(rng, used) for _ in range(self.persons - 1)]
        content = m.content  # a repeat says it again (a "still unanswered" would read as medium risk)
        return Intake(
            channel=self.channel,
            office_level=self.office_level,
            locality=m.locality,
            petitioners=[m.petitioner, *others],
            title=m.title,
            content=content,
            category=m.category,
            risk=m.risk,
            disputed_amount=m.amount,
            facts_clear=m.facts_clear,
            worker_count=m.worker_count,
        )


@dataclass
class YearDraw:
    year: int
    first_day: date
    days: int  # simulated days, from first_day (1 January for a drawn year)
    drafts: list[Draft]
    matters: list[Matter]
    # The day's stops (local times); a registration or step is due at (day, slot).
    slots: tuple[timedelta, ...] = SLOTS
    # A repeat visit that makes a nail case has a leader assigned the next day (a drawn year);
    # a replayed plan carries its recorded assign_leader steps instead.
    nail_leaders: bool = True


def _weighted(rng: random.Random, table: dict[Any, float]) -> Any:
    keys = list(table)
    return rng.choices(keys, weights=[table[k] for k in keys])[0]


def _id_number(rng: random.Random, used: set[str]) -> str:
    while True:
        prefix = rng.choice(_OTHER_PREFIXES if rng.random() < CROSS_PROVINCE else _LOCAL_PREFIXES)
        # Ages: mean about 43.7, 58.3 % over 45 (the source's petitioners).
        age = rng.randint(45, 61) if rng.random() < 0.583 else rng.randint(18, 44)
        born = date(2026 - age, rng.randint(1, 12), rng.randint(1, 28))
        first17 = f"{prefix}{born:%Y%m%d}{rng.randint(0, 999):03d}"
        number = first17 + gb11643_check_digit(first17)
        if number not in used:
            used.add(number)
            return number


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('35789')}{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}"


_NOBODY = Petitioner(name="待定")  # a wording's petitioner until the matter has its own


def _person(rng: random.Random, used: set[str]) -> Petitioner:
    return Petitioner(name=_name(rng), id_number=_id_number(rng, used), phone=_phone(rng))


def _visit_persons(rng: random.Random) -> int:
    """Persons in one visit batch: mostly one, some 2-5, a few collective visits (6-11)."""
    r = rng.random()
    for persons, upto in ((1, 0.78), (2, 0.90), (3, 0.95), (4, 0.97), (5, 0.982)):
        if r < upto:
            return persons
    return rng.randint(6, 11)


def _fit_persons(rng: random.Random, persons: list[int], target: int) -> None:
    """Move the visit batches' persons (in place) so that they add up to `target` (the source's
    person-times): one more or one fewer in batches of 1-5, at random."""
    total = sum(persons)
    guard = 0
    while total != target and persons and guard < 10 * len(persons) + 1000:
        guard += 1
        i = rng.randrange(len(persons))
        if total < target and persons[i] < 5:
            persons[i] += 1
            total += 1
        elif total > target and 1 < persons[i] <= 5:
            persons[i] -= 1
            total -= 1


def _office_level(rng: random.Random, locality: str, channel: Channel) -> OfficeLevel:
    if channel in (Channel.online, Channel.phone):
        return OfficeLevel.city if rng.random() < 0.5 else OfficeLevel.county
    if locality.endswith(("镇", "乡", "街道")):
        return rng.choices([OfficeLevel.township, OfficeLevel.county, OfficeLevel.city], [0.6, 0.3, 0.1])[0]
    return rng.choices([OfficeLevel.county, OfficeLevel.city], [0.75, 0.25])[0]


WORDING_TRIES = 8  # draws of a matter's wording until the engine's triage reads it as drawn


def _new_matter(rng: random.Random, index: int, day: int, used: set[str]) -> Matter:
    """A new matter: category, risk and locality by the shares above; then its wording, drawn
    again (up to WORDING_TRIES times) until the engine's own triage reads the drawn category and
    risk in it, so that the operator's explicit category and risk are rarely a correction."""
    from rules.triage import TriageInput, load_triage

    category: Category = _weighted(rng, CATEGORY_SHARES)
    risk: Risk = _weighted(rng, RISK_SHARES)
    locality: str = _weighted(rng, LOCALITIES)
    collective = category == Category.labor_social_security and rng.random() < COLLECTIVE_WAGES
    if collective and risk == Risk.low:
        risk = Risk.medium  # wage arrears of a group: medium at least (the rubric)
    triage = load_triage()
    for _ in range(WORDING_TRIES):
        m = _wording(rng, index, day, category, risk, locality, collective)
        read = triage.classify(TriageInput(title=m.title, content=m.content, locality=locality,
                                           disputed_amount=m.amount, worker_count=m.worker_count))  # fmt: skip
        if read.category == category and read.risk == risk:
            break
    m.petitioner = _person(rng, used)
    return m


def _wording(
    rng: random.Random, index: int, day: int, category: Category, risk: Risk, locality: str, collective: bool
) -> Matter:
    company, place = rng.choice(_COMPANIES), rng.choice(_PLACES)
    school, hospital = rng.choice(_SCHOOLS), rng.choice(_HOSPITALS)
    worker_count: int | None = None
    if collective:
        worker_count = rng.randint(5, 60)
        owed = worker_count * rng.randint(8, 40) * 1000
        amount: float | None = float(owed)
        title = f"{company}拖欠农民工工资"
        content = f"{company}拖欠我们{worker_count}名工人的工资共计{owed / 10_000:g}万元，多次讨要无果。"
        party = company
    else:
        t = rng.choice(TEMPLATES[category])
        amount = float(rng.randint(*t.amount) // 100 * 100) if t.amount and rng.random() < 0.8 else None
        fill = {"place": place, "company": company, "school": school, "hospital": hospital,
                "amount": f"{amount:,.0f}" if amount else "若干", "months": rng.randint(2, 10)}  # fmt: skip
        title, content, party = (s.format(**fill) for s in (t.title, t.content, t.party))
    if risk == Risk.medium:
        content += rng.choice(_MEDIUM_WORDS)
    elif risk == Risk.high:
        content += rng.choice(_HIGH_WORDS)
    facts_clear = rng.random() < FACTS_CLEAR if category not in (Category.land_expropriation, Category.law_litigation) else None
    return Matter(
        index=index, day=day, category=category, risk=risk, locality=locality, title=title, content=content,
        petitioner=_NOBODY, facts_clear=facts_clear, amount=amount, worker_count=worker_count,
        party=party or "对方当事人",
    )  # fmt: skip


def day_weights(calendar: HolidayCalendar, first: date, days: int, channel: Channel) -> list[float]:
    """How busy each day is for a channel: working days 1, rest days less (weekday-heavy)."""
    rest = REST_DAY_WEIGHT[channel]
    return [rest if calendar.is_rest_day(first + timedelta(days=i)) else 1.0 for i in range(days)]


def year_counts(scale: float, cases: int | None) -> dict[Channel, int]:
    """Registrations by channel: the source's figures times `scale`, or `cases` in the same shares
    (largest remainders, so that they add up)."""
    total = sum(YEAR_BATCHES.values())
    want = cases if cases is not None else round(total * scale)
    exact = {c: want * n / total for c, n in YEAR_BATCHES.items()}
    counts = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True)[: want - sum(counts.values())]:
        counts[c] += 1
    return counts


def draw_year(
    year: int, scale: float, seed: int, calendar: HolidayCalendar, rules: RuleSet,
    until: date | None = None, cases: int | None = None,
) -> YearDraw:  # fmt: skip
    """The year's registrations, in order, with their matters and the lives of their cases.

    With `scale`, the source's yearly volumes are spread over the year and those after `until` are
    left out; with `cases`, that many registrations are spread over 1 January .. `until`.
    """
    rng = random.Random(seed)
    first = date(year, 1, 1)
    last = until or date(year, 12, 31)
    days = (last - first).days + 1
    spread = days if cases is not None else (date(year, 12, 31) - first).days + 1
    counts = year_counts(scale, cases)
    when: list[tuple[int, int, Channel]] = []  # day, slot, channel of each registration
    for channel, n in counts.items():
        weights = day_weights(calendar, first, spread, channel)
        when += [(d, rng.randrange(len(SLOTS)), channel) for d in rng.choices(range(spread), weights=weights, k=n) if d < days]
    rng.shuffle(when)
    when.sort(key=lambda w: (w[0], w[1]))
    persons = [_visit_persons(rng) if w[2] == Channel.visit else 1 for w in when]
    visits = [i for i, w in enumerate(when) if w[2] == Channel.visit]
    visit_persons = [persons[i] for i in visits]
    _fit_persons(rng, visit_persons, round(len(visits) * YEAR_VISIT_PERSONS / YEAR_BATCHES[Channel.visit]))
    for i, n in zip(visits, visit_persons, strict=True):
        persons[i] = n
    # A repeat on day d comes back to a matter of age <= d: less often in the first weeks, and the
    # later days make up for it, so that the year's share is REPEAT_SHARE.
    reach = [_age_cdf(w[0]) for w in when]
    p_repeat = REPEAT_SHARE * len(when) / sum(reach) if sum(reach) else 0.0
    matters: list[Matter] = []
    matter_days: list[int] = []
    targets: list[Matter] = []  # each earlier repeat's matter once per repeat: some matters come back often
    used: set[str] = set()
    drafts: list[Draft] = []
    for i, (day, slot, channel) in enumerate(when):
        repeat = bool(matters) and matter_days[0] < day and rng.random() < min(1.0, p_repeat * reach[i])
        if repeat:
            if targets and rng.random() < REPEAT_POPULAR * reach[i]:
                m = rng.choice(targets)
            else:
                m = matters[_matter_of_age(rng, matter_days, day)]
            m.repeats += 1
            targets.append(m)
        else:
            m = _new_matter(rng, len(matters), day, used)
            matters.append(m)
            matter_days.append(day)
        level = _office_level(rng, m.locality, channel)
        life = draw_life(random.Random(f"{seed}:{i}"), m, rules)
        drafts.append(Draft(i, day, slot, channel, persons[i], level, m, repeat, life))
    return YearDraw(year=year, first_day=first, days=days, drafts=drafts, matters=matters)


def _age_cdf(days: float) -> float:
    """P(a repeat's matter is at most `days` old)."""
    return (1 - math.exp(-min(days, REPEAT_MAX_AGE) / REPEAT_AGE_DAYS)) / (1 - math.exp(-REPEAT_MAX_AGE / REPEAT_AGE_DAYS))


def _matter_of_age(rng: random.Random, matter_days: list[int], day: int) -> int:
    """The index of a matter registered before `day`, its age drawn (at most `day`): one of that
    day's matters, or of the nearest earlier day that has some."""
    u = rng.random() * _age_cdf(day)
    age = -REPEAT_AGE_DAYS * math.log(1 - u * (1 - math.exp(-REPEAT_MAX_AGE / REPEAT_AGE_DAYS)))
    then = max(0, day - max(1, math.ceil(age)))
    hi = bisect.bisect_right(matter_days, then)
    if hi == 0:
        hi = bisect.bisect_right(matter_days, matter_days[0])  # the first day's matters
    lo = bisect.bisect_left(matter_days, matter_days[hi - 1])
    return rng.randrange(lo, hi)


def draw_life(rng: random.Random, m: Matter, rules: RuleSet) -> list[Step]:
    """What the unit, the petitioner and the supervision office will do on a case of this matter,
    in days after its registration (the engine's own deadlines do the rest)."""
    steps: list[Step] = []

    def add(day: int, action: str, **data: Any) -> None:
        steps.append(Step(day, rng.randrange(len(SLOTS)), action, data))

    _ladder_steps(rng, m, add)
    r = rng.random()
    if m.category == Category.law_litigation and r < 0.55:
        route = "litigation" if rng.random() < 0.7 else "administrative_reconsideration"
        add(rng.randint(2, 10), "redirect", route=route, reason="该事项依法应通过法定途径解决，已告知信访人。")
        return _sorted(steps)
    if r < 0.03 and m.worker_count is None:
        add(rng.randint(3, 12), "not_accept", reason="该事项已经或者依法应当通过其他法定途径处理，依规不予受理。")
        return _sorted(steps)
    if r < 0.05 and m.worker_count is None:
        route = "arbitration" if m.category == Category.labor_social_security else "administrative_reconsideration"
        add(rng.randint(2, 10), "redirect", route=route, reason="该事项属于法定途径受理范围，已告知信访人。")
        return _sorted(steps)
    late = rng.random() < ACCEPTED_LATE
    accepted = rng.randint(24, 35) if late else rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 7, 9, 12))
    add(accepted, "accept")
    if m.worker_count is not None:
        _arbitration_steps(rng, add)
        return _sorted(steps)
    if mediation_eligible(rules, m.category, m.facts_clear, m.amount):
        outcome = _weighted(rng, {**MEDIATION, "missed": 1 - sum(MEDIATION.values())})
        when = accepted + rng.randint(1, 6)
        if outcome == "fulfilled":
            add(when, "mediation_result", success=True, fulfilled=True, other_party=m.party, terms="双方自愿达成调解协议，当场履行完毕。")
            return _sorted(steps)
        if outcome == "agreed_unfulfilled":
            add(when, "mediation_result", success=True, fulfilled=False, other_party=m.party, terms="对方承诺于三十日内履行。")
        elif outcome == "failed":
            add(when, "mediation_result", success=False)
    if rng.random() < WITHDRAWN:
        add(accepted + rng.randint(5, 30), "withdraw", reason="问题已与对方协商解决，申请撤回。")
        return _sorted(steps)
    if rng.random() < EXTENDED:
        days = rng.randint(15, 30)
        add(accepted + rng.randint(40, 55), "extend", days=days, approved_by="责任单位主要负责人", reason="案情复杂，需要进一步调查核实。")
        answered = accepted + 60 + rng.randint(1, days - 2)
    elif rng.random() < OPINION_LATE:
        answered = accepted + rng.randint(72, 90)
    else:
        answered = accepted + int(rng.triangular(8, 58, 30))
    add(answered, "issue_opinion", text=_OPINIONS[m.category])
    if rng.random() < REVIEW_ASKED:
        asked = answered + rng.randint(3, 27)
        add(asked, "request_review")
        decided = asked + (rng.randint(40, 50) if rng.random() < REVIEW_LATE else rng.randint(10, 28))
        add(decided, "review_decision", text="经复查，原办理意见认定事实清楚，处理恰当，予以维持。")
        if rng.random() < RE_REVIEW_ASKED:
            again = decided + rng.randint(3, 27)
            add(again, "request_re_review")
            add(again + rng.randint(10, 28), "re_review_decision", text="经复核，维持复查意见。本复核意见为终结意见。")
    return _sorted(steps)


def _ladder_steps(rng: random.Random, m: Matter, add: Callable[..., None]) -> None:
    """The supervision office's part: leaders' packages and the major-risk ladder's ends."""
    if m.risk == Risk.high:
        # The ladder starts at registration (the warning letter, 15 days; then supervision, 10).
        if rng.random() < 0.4:
            add(rng.randint(1, 3), "assign_leader", leader=rng.choice(LEADERS))
        r = rng.random()
        if r < 0.65:
            add(rng.randint(3, 13), "risk_resolved", note="矛盾已初步化解，风险解除。")
        elif r < 0.85:
            add(rng.randint(19, 23), "report_progress", substantive=True, note="已约谈责任人并制定化解方案。")
            add(rng.randint(30, 34), "risk_resolved", note="化解方案落实到位，风险解除。")
        # else: nothing, and the ladder ends in an accountability recommendation
        return
    if m.risk == Risk.medium and rng.random() < 0.01:
        flagged = rng.randint(5, 20)
        add(flagged, "flag_major_risk", reason="信访人多次表示要组织集体上访，经研判列为重大风险。")
        if rng.random() < 0.8:
            add(flagged + rng.randint(4, 12), "risk_resolved", note="经做工作，信访人情绪稳定，风险解除。")
    if rng.random() < LEADER:
        add(rng.randint(2, 30), "assign_leader", leader=rng.choice(LEADERS))


def _arbitration_steps(rng: random.Random, add: Callable[..., None]) -> None:
    """The green channel: filed within the 5 working days, settled or awarded, confirmed; a few
    fail and go to court (the source: 18.8 % return to court)."""
    filed = rng.randint(1, 4)
    add(filed, "arbitration", event="filed")
    r = rng.random()
    decided = filed + rng.randint(10, 40)
    if r < 0.15:
        add(decided, "arbitration", event="failed")
        add(decided + rng.randint(2, 5), "arbitration", event="court")
        return
    add(decided, "arbitration", event="settled" if r < 0.6 else "award")
    if rng.random() < 0.05:
        add(decided + rng.randint(3, 10), "arbitration", event="failed")
        add(decided + rng.randint(11, 15), "arbitration", event="court")
    else:
        add(decided + rng.randint(3, 10), "arbitration", event="confirmed")


def _sorted(steps: list[Step]) -> list[Step]:
    return sorted(steps, key=lambda s: (s.day, s.slot))


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    year: int
    data_dir: Path
    scale: float = 0.1
    cases: int | None = None
    until: date | None = None
    seed: int = 2026
    concurrency: int = 16
    pdf: bool = False
    rules_file: Path | None = None  # the rules new cases start under (default: the engine's)


@dataclass
class _Case:
    case_id: str
    reg_day: int
    steps: list[Step]
    next: int = 0
    unit: str | None = None
    arbitration: bool = False  # on the arbitration green channel (a child workflow)


@dataclass
class _Tally:
    # A registration makes a new case, joins an open one, or is refused (a matter finalised).
    new_cases: int = 0
    repeat_visits: int = 0
    refused_registrations: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refusal_examples: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    dropped: int = 0  # steps that would fall after the simulated period
    unlocks: int = 0  # time-skipping locks the test server kept and the clock gave back (SimClock)
    relocks: int = 0

    @property
    def registered(self) -> int:
        return self.new_cases + self.repeat_visits + self.refused_registrations


class WorkerProbe(Interceptor):
    """Counts what the worker is doing (activities, workflow activations), so that the clock can
    tell a stalled skip (nothing to do, yet the server does not move) from a busy one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._idle_since = time.monotonic()

    def enter(self) -> None:
        with self._lock:
            self._busy += 1

    def leave(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._busy == 0:
                self._idle_since = time.monotonic()

    def idle_for(self) -> float:
        """Seconds the worker has had nothing in hand (0 while it has)."""
        with self._lock:
            return 0.0 if self._busy else time.monotonic() - self._idle_since

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        probe = self

        class _Counted(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                probe.enter()
                try:
                    return await self.next.execute_activity(input)
                finally:
                    probe.leave()

        return _Counted(next)

    def executor(self) -> ThreadPoolExecutor:
        """The workflow-task thread pool, counting the activations it runs."""
        probe = self

        class _CountedPool(ThreadPoolExecutor):
            def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
                probe.enter()

                def counted() -> Any:
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        probe.leave()

                return super().submit(counted)

        return _CountedPool(max_workers=100, thread_name_prefix="temporal_workflow_")


class SimClock:
    """The test server's clock, moved forward stop by stop (`engine.scenario._advance_to`), with a
    workaround for a time-skipping test server bug.

    When a case on the arbitration green channel closes, its child workflow (started with
    ParentClosePolicy.ABANDON) completes just after it, and the test server then sometimes keeps
    one time-skipping lock for good: every later skip hangs (temporalio/sdk-typescript#1101; the
    real server is not affected). Whether it does is a race, so the lock cannot be given back
    blindly (one unlock too many and the server's clock runs on by itself). The clock gives one
    back only when a skip is pending, the worker has had nothing in hand for `IDLE_S` and such a
    close has happened since (`might_leak`); and if the clock is ever found ahead of the stops
    (an unlock too many), it locks again.
    """

    IDLE_S = 2.0
    PENDING_S = 3.0

    def __init__(self, env: Any, probe: WorkerProbe) -> None:
        self.env, self.probe = env, probe
        self.suspects = 0  # closes of arbitration-track cases not yet accounted for
        self.unlocks = 0
        self.relocks = 0
        self.expected: datetime | None = None  # where the clock stood after the last stop
        self.left_at = 0.0

    def might_leak(self) -> None:
        self.suspects += 1

    async def advance_to(self, target: datetime) -> None:
        from temporalio.api.testservice.v1 import LockTimeSkippingRequest, UnlockTimeSkippingRequest

        now = await self.env.get_current_time()
        if self.expected is not None and now - self.expected > timedelta(seconds=time.monotonic() - self.left_at + 120):
            # The clock ran ahead between stops: one unlock too many. Lock it again.
            await self.env.client.test_service.lock_time_skipping(LockTimeSkippingRequest())
            self.relocks += 1
        while target > now:
            skip = asyncio.ensure_future(self.env.sleep(target - now))
            began = time.monotonic()
            while not skip.done():
                await asyncio.wait({skip}, timeout=0.5)
                if skip.done() or not self.suspects:
                    continue
                if time.monotonic() - began > self.PENDING_S and self.probe.idle_for() > self.IDLE_S:
                    await self.env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
                    self.suspects -= 1
                    self.unlocks += 1
                    began = time.monotonic()
            try:
                skip.result()
                break
            except RPCError as err:
                # The call has a deadline; a long skip (many cases due at one instant) outlasts it.
                if err.status != RPCStatusCode.DEADLINE_EXCEEDED and "timeout expired" not in str(err).lower():
                    raise
            later = await self.env.get_current_time()
            if later - now <= timedelta(seconds=time.monotonic() - began + 1) and self.probe.idle_for() > self.IDLE_S:
                raise SimulationFailed(
                    f"the test server's clock stopped at {later.isoformat()} on its way to {target.isoformat()}, "
                    "with nothing left to do: a time-skipping lock it never gave back. The read model holds the "
                    "simulation up to then."
                )
            now = later
        self.expected = max(target, now)
        self.left_at = time.monotonic()


class _NoPdfActivities(PetitionActivities):
    """The real activities but for the PDF copies (half a second of CPU each, and a year issues
    tens of thousands of documents): the text document, its log entry and its row are all issued."""

    async def _issue_pdf(self, req: Any, issued: Any) -> None:
        return None


def build_simulation_worker(
    client: Client, settings: Settings, task_queue: str, probe: WorkerProbe, *, pdf: bool
) -> Worker:
    """`worker.build_worker`, with the PDFs left out unless `pdf`, and counted by `probe`."""
    from worker import SANDBOX, WORKFLOWS

    acts = (PetitionActivities if pdf else _NoPdfActivities)(settings, client)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=acts.all(),
        workflow_runner=SANDBOX,
        interceptors=[MaskingInterceptor(), probe],
        workflow_task_executor=probe.executor(),
        max_cached_workflows=2000,
        graceful_shutdown_timeout=timedelta(seconds=30),
    )


def this_year() -> int:
    return datetime.now(UTC).astimezone(SHANGHAI).year


def year_start(year: int) -> datetime:
    """1 January 00:00 in Asia/Shanghai, as UTC."""
    return datetime(year, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)


def check_options(opts: Options, now: datetime | None = None) -> None:
    """InputError with a sentence for options that cannot be simulated; nothing is started."""
    now = now or datetime.now(UTC)
    current = now.astimezone(SHANGHAI).year
    if not current - 1 <= opts.year <= current + 2:
        # engine.desk.register sends each case the holiday calendar of last year to 2 years ahead.
        raise InputError(
            f"--year {opts.year}: the engine can simulate last year to two years ahead "
            f"({current - 1}-{current + 2}); cases carry the holiday calendar of those years only."
        )
    if opts.cases is None and not 0 < opts.scale <= 1:
        raise InputError(f"--scale {opts.scale:g}: give a fraction of the source's year, above 0 and at most 1.")
    if opts.cases is not None and not 1 <= opts.cases <= 300_000:
        raise InputError(f"--cases {opts.cases}: give a number of registrations from 1 to 300,000.")
    if opts.until is not None and (opts.until.year != opts.year):
        raise InputError(f"--until {opts.until}: must be a day of {opts.year}.")
    if not 1 <= opts.concurrency <= 200:
        raise InputError(f"--concurrency {opts.concurrency}: give 1 to 200 requests in flight.")
    from engine.servers import faketime_library

    if faketime_library() is None and year_start(opts.year) < now:
        raise InputError(
            f"--year {opts.year}: the year has already begun, and the test server's clock starts at the real "
            "time and only moves forward; a begun or past year needs libfaketime (`apt-get install faketime`, "
            "which `make run` does). Nothing was changed."
        )


async def run_simulation(
    opts: Options, say: Callable[[str], None] | None = None, plan: YearDraw | None = None
) -> dict[str, Any]:
    """Simulate the year into `opts.data_dir` and return the summary (`summarise`). With `plan`,
    its registrations and steps are run instead of a drawn year's (engine/preview.py)."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    check_options(opts)
    refuse_used_keep_dir(opts.data_dir, "--data")  # before anything starts or is written
    opts.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The simulation's own data folder, whatever PETITION_* says: its SQLite file, its keys and
    # ledger, and the recording notifier (no SMS, e-mail or webhook leaves this machine).
    settings = Settings(
        data_dir=opts.data_dir, database_url=None, notify_adapter="recording", ledger_key_file=None,
        payload_key_file=None, payload_keys=None,
    )  # fmt: skip
    if opts.rules_file is not None:
        settings.rules_file = opts.rules_file
    rules = load_rules(settings.rules_file)
    calendar = load_calendar(settings)
    draw = plan or draw_year(opts.year, opts.scale, opts.seed, calendar, rules, opts.until, opts.cases)
    say(
        f"模拟 {opts.year} 年：{len(draw.drafts):,} 件登记（{len(draw.matters):,} 个信访事项），"
        f"{draw.first_day} 至 {draw.first_day + timedelta(days=draw.days - 1)}，数据目录 {opts.data_dir}"
    )
    start = datetime(draw.first_day.year, draw.first_day.month, draw.first_day.day, tzinfo=SHANGHAI).astimezone(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="petition-simulate-"))
    started = time.monotonic()
    tally = _Tally()
    with _warnings_only():
        await _simulate(settings, rules, draw, opts, start, workdir, tally, say, started)
    wall = time.monotonic() - started
    try:
        summary = summarise(settings, opts.year)
    finally:
        dispose_engines()
    summary["run"] = {
        "seed": opts.seed,
        "scale": opts.scale if opts.cases is None else None,
        "registrations_drawn": len(draw.drafts),
        "registered": tally.registered,
        "new_cases": tally.new_cases,
        "repeat_visits": tally.repeat_visits,
        "refused_registrations": tally.refused_registrations,
        "actions": dict(tally.actions.most_common()),
        "actions_total": sum(tally.actions.values()),
        "refused": dict(tally.refused.most_common()),
        "refused_total": sum(tally.refused.values()),
        "refusal_examples": tally.refusal_examples,
        "errors": tally.errors[:20],
        "errors_total": len(tally.errors),
        "steps_after_period": tally.dropped,
        "time_skipping_unlocks": tally.unlocks,
        "time_skipping_relocks": tally.relocks,
        "wall_s": round(wall, 1),
        "data_dir": str(opts.data_dir),
        "real_clock_fields": list(REAL_CLOCK_FIELDS),
    }
    return summary


async def _simulate(
    settings: Settings, rules: RuleSet, draw: YearDraw, opts: Options, start: datetime, workdir: Path,
    tally: _Tally, say: Callable[[str], None], started: float,
) -> None:  # fmt: skip
    from engine.servers import faketime_library, start_test_server, start_test_server_at

    try:
        if faketime_library() is not None:
            env = await start_test_server_at(settings, start, workdir)
        else:
            env = await start_test_server(settings)  # check_options: the year lies ahead
        try:
            task_queue = f"simulate-{uuid.uuid4().hex[:8]}"
            probe = WorkerProbe()
            async with build_simulation_worker(env.client, settings, task_queue, probe, pdf=opts.pdf):
                clock = SimClock(env, probe)
                await _Runner(env, clock, settings, rules, draw, opts, task_queue, tally, say, started).run()
                tally.unlocks, tally.relocks = clock.unlocks, clock.relocks
                if opts.pdf:
                    await pdfs_written()
        finally:
            await env.shutdown()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _warnings_only() -> Iterator[None]:
    """The engine's info lines (a case registered, a document issued…) would be a year's worth:
    warnings and errors only while the simulation runs."""
    import structlog

    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(wrapper_class=previous)


class _Runner:
    """Drives the year day by day: each slot's due actions, then its registrations; then skip."""

    def __init__(
        self, env: Any, clock: SimClock, settings: Settings, rules: RuleSet, draw: YearDraw, opts: Options,
        task_queue: str, tally: _Tally, say: Callable[[str], None], started: float,
    ) -> None:  # fmt: skip
        self.env, self.clock, self.settings, self.rules, self.draw, self.opts = env, clock, settings, rules, draw, opts
        self.task_queue, self.tally, self.say, self.started = task_queue, tally, say, started
        self.client: Client = env.client
        self.db = get_engine(settings.resolved_database_url())
        self.limit = asyncio.Semaphore(opts.concurrency)
        self.due: dict[tuple[int, int], list[_Case]] = {}
        self.regs: dict[tuple[int, int], list[Draft]] = {}
        for d in draw.drafts:
            self.regs.setdefault((d.day, d.slot), []).append(d)
        self.rng = random.Random(f"{opts.seed}:people")
        self.used_ids = {m.petitioner.id_number for m in draw.matters if m.petitioner.id_number}
        self.nail = rules.repeat_visits.nail_case_threshold
        self.first_local = datetime(draw.first_day.year, draw.first_day.month, draw.first_day.day, tzinfo=SHANGHAI)
        self.slots = draw.slots

    def at(self, day: int, slot: int) -> datetime:
        return (self.first_local + timedelta(days=day) + self.slots[slot]).astimezone(UTC)

    async def run(self) -> None:
        last_report = time.monotonic()
        for day in range(self.draw.days):
            for slot in range(len(self.slots)):
                due, regs = self.due.pop((day, slot), []), self.regs.pop((day, slot), [])
                if not (due or regs):
                    continue  # nothing to do then: the clock runs on to the next stop
                await self.clock.advance_to(self.at(day, slot))
                await self._gather([*(self._step(c, day, slot) for c in due), *self._registrations(regs, day, slot)])
            today = self.draw.first_day + timedelta(days=day)
            if today.weekday() == 6 or day == self.draw.days - 1 or time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                self.say(self.progress(today))
        end = (self.first_local + timedelta(days=self.draw.days)).astimezone(UTC) - timedelta(seconds=1)
        await self.clock.advance_to(end)
        self.tally.dropped = sum(len(c.steps) - c.next for cases in self.due.values() for c in cases)
        await asyncio.sleep(1)  # the last saves of the last deadlines

    def progress(self, today: date) -> str:
        t = self.tally
        return (
            f"[{today}] 登记 {t.registered:,}（新案 {t.new_cases:,}，重复访 {t.repeat_visits:,}）"
            f" 操作 {sum(t.actions.values()):,} 规则拒绝 {sum(t.refused.values()):,}"
            + (f" 错误 {len(t.errors)}" if t.errors else "")
            + f"  用时 {time.monotonic() - self.started:,.0f} s"
        )

    async def _gather(self, jobs: list[Any]) -> None:
        async def limited(job: Any) -> None:
            async with self.limit:
                await job

        await asyncio.gather(*(limited(j) for j in jobs))

    # -- registrations --------------------------------------------------------------------------
    def _registrations(self, drafts: list[Draft], day: int, slot: int) -> list[Any]:
        """The slot's registrations as jobs; the same matter twice in one slot: one after the other
        (the second is then a repeat visit)."""
        by_matter: dict[int, list[Draft]] = {}
        for d in drafts:
            by_matter.setdefault(d.matter.index, []).append(d)

        async def matter_in_turn(group: list[Draft]) -> None:
            for d in group:
                await self._register(d, day, slot)

        return [matter_in_turn(g) for g in by_matter.values()]

    async def _register(self, d: Draft, day: int, slot: int) -> None:
        intake = d.intake(self.rng, self.used_ids)
        try:
            reg = await register(
                self.client, self.settings, intake, task_queue=self.task_queue, rules=d.rules or self.rules,
                case_id=d.case_id or new_case_id(self.at(day, slot)), actor=DESK,
            )  # fmt: skip
        except Exception as exc:  # one registration's failure is reported, not the year's end
            self._error(f"registration {d.index} ({d.matter.title})", exc)
            return
        if reg.repeat_visit:
            self.tally.repeat_visits += 1
            if reg.visits == self.nail and self.draw.nail_leaders:  # a nail case (钉子案): a leader takes it (领导包案)
                case = _Case(reg.case_id, day, [Step(1, 0, "assign_leader", {"leader": self.rng.choice(LEADERS)})])
                self._schedule(case, day, slot)
            return
        if d.matter.repeats:
            await self._wait_for_row(reg.case_id)  # the matter's next petition must find this case
        if reg.prior_final_case:
            self.tally.refused_registrations += 1  # finalised by re-review: the case records the refusal
            return
        self.tally.new_cases += 1
        case = _Case(reg.case_id, day, d.steps, arbitration=d.matter.worker_count is not None)
        if case.steps:
            self._schedule(case, day, slot)

    async def _wait_for_row(self, case_id: str) -> None:
        for _ in range(400):
            with Session(self.db) as s:
                if s.get(CaseRow, case_id) is not None:
                    return
            await asyncio.sleep(0.05)

    # -- actions --------------------------------------------------------------------------------
    def _schedule(self, case: _Case, day: int, slot: int) -> None:
        """Put the case's next step where it is due, but after (day, slot)."""
        if case.next >= len(case.steps):
            return
        step = case.steps[case.next]
        when = (case.reg_day + step.day, step.slot)
        if when <= (day, slot):
            when = (day, slot + 1) if slot + 1 < len(self.slots) else (day + 1, 0)
        if when[0] >= self.draw.days:
            self.due.setdefault((self.draw.days, 0), []).append(case)  # after the period: counted, not taken
            return
        self.due.setdefault(when, []).append(case)

    async def _step(self, case: _Case, day: int, slot: int) -> None:
        step = case.steps[case.next]
        case.next += 1
        data = dict(step.data)
        try:
            actor = await self._actor(case, step.action)
            if step.action == "accept":
                data["unit"] = actor.unit
            result = await act(self.client, self.settings, case.case_id, step.action, data, actor=actor)
            self.tally.actions[step.action] += 1
            if case.arbitration and result.outcome is not None:
                self.clock.might_leak()  # closed with its arbitration track running (SimClock)
        except Refused as ref:
            self.tally.refused[step.action] += 1
            self.tally.refusal_examples.setdefault(step.action, ref.error)
            if self._closed(case.case_id):
                case.next = len(case.steps)  # nothing more happens on a closed case
        except Exception as exc:  # reported with the summary; the case's other steps go on
            self._error(f"{case.case_id} {step.action}", exc)
        self._schedule(case, day, slot)

    def _error(self, what: str, exc: Exception) -> None:
        self.tally.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        if len(self.tally.errors) > MAX_ERRORS:
            raise SimulationFailed(
                f"more than {MAX_ERRORS} registrations or actions failed (not refused by the rules); the first: "
                f"{self.tally.errors[0]}"
            ) from exc

    def _closed(self, case_id: str) -> bool:
        with Session(self.db) as s:
            row = s.get(CaseRow, case_id)
            return row is not None and row.status == "closed"

    async def _actor(self, case: _Case, action: str) -> Actor:
        """The staff member the action belongs to (`engine.scenario.acting_as`), of the case's unit."""
        actor = acting_as(action, name=ACTOR_NAME)
        if actor.role != StaffRole.unit or actor.unit is not None:
            return actor
        if case.unit is None:
            with Session(self.db) as s:
                row = s.get(CaseRow, case.case_id)
                case.unit = row.unit if row is not None else None
        if case.unit is None:  # not triaged yet: ask the case
            state = await self.client.get_workflow_handle(case.case_id).query("state", result_type=CaseState)
            case.unit = state.unit
        return acting_as(action, case.unit, name=ACTOR_NAME)


# --------------------------------------------------------------------------------------------
# The summary, from the read model (what the cockpit reads)
# --------------------------------------------------------------------------------------------


def summarise(settings: Settings, year: int) -> dict[str, Any]:
    """The simulated year as the read model holds it: registrations by channel (batches and
    persons), cases by category, risk, locality and outcome, repeats, overdue, mediation, review,
    the letters ladder, documents, score events and the arbitration track."""
    engine = get_engine(settings.resolved_database_url())
    # SQLite keeps the times as UTC text, "YYYY-MM-DD HH:MM:SS.ffffff".
    span = {"lo": f"{year_start(year):%Y-%m-%d %H:%M:%S}", "hi": f"{year_start(year + 1):%Y-%m-%d %H:%M:%S}"}
    with engine.connect() as c:

        def rows(sql: str) -> list[Any]:
            return list(c.execute(text(sql), span))

        def one(sql: str) -> Any:
            return c.execute(text(sql), span).scalar()

        intakes = rows(
            "SELECT channel, COUNT(*), SUM(persons), SUM(CASE WHEN repeat THEN 1 ELSE 0 END) FROM intakes "
            "WHERE at >= :lo AND at < :hi GROUP BY channel"
        )
        n_intakes = sum(r[1] for r in intakes)
        n_repeat = sum(r[3] for r in intakes)
        where = "WHERE registered_at >= :lo AND registered_at < :hi"
        n_cases = one(f"SELECT COUNT(*) FROM cases {where}") or 0
        by = {
            col: {r[0]: r[1] for r in rows(f"SELECT {col}, COUNT(*) FROM cases {where} GROUP BY {col} ORDER BY 2 DESC")}
            for col in ("category", "risk", "locality", "outcome", "status")
        }
        flags = rows(
            "SELECT SUM(CASE WHEN repeat THEN 1 ELSE 0 END), SUM(CASE WHEN acceptance_late THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN handling_late THEN 1 ELSE 0 END), SUM(CASE WHEN review_late THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN overdue THEN 1 ELSE 0 END), SUM(CASE WHEN mediation_eligible THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN mediation_succeeded THEN 1 ELSE 0 END), SUM(CASE WHEN reviewed THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN re_reviewed THEN 1 ELSE 0 END), SUM(CASE WHEN nail_case THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN leader IS NOT NULL THEN 1 ELSE 0 END), SUM(CASE WHEN ladder_end = 'accountability' "
            f"THEN 1 ELSE 0 END), SUM(CASE WHEN accepted_at IS NOT NULL THEN 1 ELSE 0 END) FROM cases {where}"
        )[0]
        names = ("repeat", "acceptance_late", "handling_late", "review_late", "overdue_now", "mediation_eligible",
                 "mediated", "reviewed", "re_reviewed", "nail_cases", "leader_packages", "accountability", "accepted")  # fmt: skip
        cycle = one(
            "SELECT AVG(julianday(closed_at) - julianday(registered_at)) FROM cases "
            f"{where} AND closed_at IS NOT NULL"
        )
        documents = {r[0]: r[1] for r in rows(
            "SELECT kind, COUNT(*) FROM documents WHERE issued_at >= :lo AND issued_at < :hi GROUP BY kind ORDER BY 2 DESC"
        )}  # fmt: skip
        scores = rows(
            "SELECT rule, COUNT(*), SUM(points) FROM score_events WHERE occurred_at >= :lo AND occurred_at < :hi "
            "GROUP BY rule ORDER BY 2 DESC"
        )
        arbitration = {r[0]: r[1] for r in rows("SELECT COALESCE(outcome, status), COUNT(*) FROM arbitration_tracks GROUP BY 1")}
    channels = {
        r[0]: {"batches": r[1], "persons": r[2], "share": round(r[1] / n_intakes, 4) if n_intakes else 0.0}
        for r in sorted(intakes, key=lambda r: -r[1])
    }
    return {
        "year": year,
        "registrations": n_intakes,
        "persons": sum(r[2] for r in intakes),
        "repeat_share": round(n_repeat / n_intakes, 4) if n_intakes else 0.0,
        "channels": channels,
        "cases": n_cases,
        "categories": {k: {"cases": v, "share": round(v / n_cases, 4)} for k, v in by["category"].items()} if n_cases else {},
        "risks": by["risk"],
        "localities": by["locality"],
        "outcomes": by["outcome"],
        "status": by["status"],
        "flags": {k: int(v or 0) for k, v in zip(names, flags, strict=True)},
        "mean_days_to_close": round(cycle, 1) if cycle is not None else None,
        "documents": documents,
        "score_events": {r[0]: {"events": r[1], "points": r[2]} for r in scores},
        "arbitration": arbitration,
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a reader sees it (Chinese labels)."""
    out: list[str] = []
    run = s.get("run", {})
    out.append(f"== {s['year']} 年模拟结果（读模型统计） ==")
    out.append(f"登记 {s['registrations']:,} 批次 / {s['persons']:,} 人次；重复信访占比 {s['repeat_share']:.1%}")
    for ch, v in s["channels"].items():
        out.append(f"  {CHANNEL_CN.get(ch, ch):<6} {v['batches']:>8,} 批次 {v['persons']:>8,} 人次  {v['share']:6.1%}")
    out.append(f"案件 {s['cases']:,} 件")
    for cat, v in s["categories"].items():
        out.append(f"  {CATEGORY_CN.get(cat, cat):<6} {v['cases']:>8,} 件  {v['share']:6.1%}")
    out.append("风险  " + "，".join(f"{RISK_CN.get(k, k)} {v:,}" for k, v in s["risks"].items()))
    out.append("属地  " + "，".join(f"{k} {v:,}" for k, v in s["localities"].items()))
    out.append("办结  " + "，".join(f"{OUTCOME_CN.get(k, k or '在办')} {v:,}" for k, v in s["outcomes"].items() if k))
    f = s["flags"]
    out.append(
        f"受理 {f['accepted']:,}，受理逾期 {f['acceptance_late']:,}，办理逾期 {f['handling_late']:,}，复查决定逾期 "
        f"{f['review_late']:,}；可调解 {f['mediation_eligible']:,}，调解办结 {f['mediated']:,}；复查 {f['reviewed']:,}，"
        f"复核 {f['re_reviewed']:,}；钉子案 {f['nail_cases']:,}，领导包案 {f['leader_packages']:,}，问责 {f['accountability']:,}"
    )
    if s.get("mean_days_to_close") is not None:
        out.append(f"已办结案件平均周期 {s['mean_days_to_close']} 天；在办 {s['status'].get('open', 0):,} 件")
    out.append(f"文书 {sum(s['documents'].values()):,} 份；考核事件 {sum(v['events'] for v in s['score_events'].values()):,} 条；"
               f"仲裁绿通 {sum(s['arbitration'].values()):,} 件 {s['arbitration']}")  # fmt: skip
    if run:
        out.append(
            f"操作 {run['actions_total']:,} 次，规则拒绝 {run['refused_total']:,} 次 {run['refused'] or ''}；"
            f"错误 {run['errors_total']}；模拟期后未执行的步骤 {run['steps_after_period']:,}；用时 {run['wall_s']:,} s"
            + (f"；测试服务器时钟锁补偿 {run['time_skipping_unlocks']}/{run['time_skipping_relocks']}"
               if run["time_skipping_unlocks"] or run["time_skipping_relocks"] else "")
        )
        for action, example in run["refusal_examples"].items():
            out.append(f"  拒绝示例 {action}: {example}")
        for e in run["errors"]:
            out.append(f"  错误: {e}")
    return "\n".join(out)
