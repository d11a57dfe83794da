"""The words the rules may use: categories, risk tiers, channels, stages, outcomes, deadlines.

Every TOML file in rules/ is validated against these enums, so a typo in a file is an error
that names the file, the rule and the field instead of a rule that silently never fires.
"""

from __future__ import annotations

from enum import StrEnum

# The longest petition content intake accepts, in characters. A real letter never comes near it
# (the longest in the triage corpus is about 1,200); longer material goes in as documents.
# Triage reads at most this much of any text that reaches it another way.
MAX_CONTENT_CHARS = 20_000

# What intake and the actions accept (workflows/models.py checks them, so every entry point does).
# Unit and locality names become Temporal search attributes (PetitionUnit), which the server caps at
# 2,048 bytes once JSON-escaped; 100 characters stay far below that even at 12 bytes a character.
MAX_NAME_CHARS = 100  # a person's, a unit's, a locality's or an approver's name
MAX_TITLE_CHARS = 200  # a petition's title
MAX_NOTE_CHARS = 2_000  # a reason or a note given with an action
MAX_OFFICIALS = 20  # officials named in one major-risk flag
MAX_WORKER_COUNT = 100_000  # workers owed wages in one petition
MAX_DISPUTED_AMOUNT = 1_000_000_000_000  # yuan (one trillion): beyond any one petition's dispute
# The largest intake file (or stdin) starter.py reads, in bytes; a petition is a few kilobytes.
MAX_INPUT_BYTES = 1_000_000


class Channel(StrEnum):
    visit = "visit"  # 来访
    online = "online"  # 网上信访
    letter = "letter"  # 来信
    phone = "phone"  # 来电
    video = "video"  # 视频接访 (云窗口)


class OfficeLevel(StrEnum):
    city = "city"
    county = "county"
    township = "township"


class Category(StrEnum):
    land_expropriation = "land_expropriation"  # 征地拆迁
    labor_social_security = "labor_social_security"  # 劳动保障
    law_litigation = "law_litigation"  # 涉法涉诉
    rural_agriculture = "rural_agriculture"  # 农村农业
    urban_construction_transport = "urban_construction_transport"  # 城建交通
    education_health = "education_health"  # 教育医疗
    environment = "environment"  # 环境保护
    other = "other"  # 其他


class Risk(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class Stage(StrEnum):
    registered = "registered"
    triaged = "triaged"
    arbitration = "arbitration"
    accepted = "accepted"
    not_accepted = "not_accepted"
    redirected = "redirected"
    mediation = "mediation"
    handling = "handling"
    opinion_issued = "opinion_issued"
    review = "review"
    re_review = "re_review"
    closed = "closed"


class Outcome(StrEnum):
    mediated = "mediated"
    resolved = "resolved"
    final_after_review = "final_after_review"
    final_after_re_review = "final_after_re_review"
    redirected = "redirected"
    not_accepted = "not_accepted"
    withdrawn = "withdrawn"


class RedirectRoute(StrEnum):
    litigation = "litigation"
    arbitration = "arbitration"
    administrative_reconsideration = "administrative_reconsideration"


class DeadlineName(StrEnum):
    acceptance = "acceptance"
    mediation_window = "mediation_window"
    handling = "handling"
    review_request = "review_request"
    review_decision = "review_decision"
    re_review_request = "re_review_request"
    re_review_decision = "re_review_decision"
    risk_warning = "risk_warning"
    supervision = "supervision"
    notify_immediate = "notify_immediate"
    notify_priority = "notify_priority"
    arbitration_filing = "arbitration_filing"
    arbitration_decision = "arbitration_decision"


class DeadlineStart(StrEnum):
    """The event that starts a deadline's clock."""

    registration = "registration"
    triage = "triage"
    acceptance = "acceptance"
    opinion_issued = "opinion_issued"  # the engine takes issue time as the petitioner's receipt
    review_requested = "review_requested"
    review_decided = "review_decided"
    re_review_requested = "re_review_requested"
    letter_issued = "letter_issued"
    arbitration_track_started = "arbitration_track_started"
    arbitration_filed = "arbitration_filed"


# The event at which the engine starts each period's clock (workflows/petition.py arms them there).
# A rules file states it for its reader (`starts`); rules/ruleset.py refuses a file that says otherwise.
DEADLINE_STARTS: dict[DeadlineName, DeadlineStart] = {
    DeadlineName.acceptance: DeadlineStart.registration,
    DeadlineName.mediation_window: DeadlineStart.acceptance,
    DeadlineName.handling: DeadlineStart.acceptance,
    DeadlineName.review_request: DeadlineStart.opinion_issued,
    DeadlineName.review_decision: DeadlineStart.review_requested,
    DeadlineName.re_review_request: DeadlineStart.review_decided,
    DeadlineName.re_review_decision: DeadlineStart.re_review_requested,
    DeadlineName.risk_warning: DeadlineStart.letter_issued,
    DeadlineName.supervision: DeadlineStart.letter_issued,
    DeadlineName.notify_immediate: DeadlineStart.triage,
    DeadlineName.notify_priority: DeadlineStart.triage,
    DeadlineName.arbitration_filing: DeadlineStart.arbitration_track_started,
    DeadlineName.arbitration_decision: DeadlineStart.arbitration_filed,
}


class DeadlineUnit(StrEnum):
    days = "days"
    working_days = "working_days"
    hours = "hours"
    minutes = "minutes"


class ArbitrationEvent(StrEnum):
    """Steps of the arbitration green channel (仲裁绿通 + 司法确认)."""

    filed = "filed"  # 仲裁立案
    settled = "settled"  # 仲裁调解达成
    award = "award"  # 仲裁裁决
    confirmed = "confirmed"  # 司法确认 / 履行完毕
    failed = "failed"  # 仲裁未能解决 (不服裁决、调解不成)
    court = "court"  # 起诉至人民法院


class ScoreRule(StrEnum):
    mediation_success = "mediation_success"
    mediation_failed_review = "mediation_failed_review"
    mediation_window_missed = "mediation_window_missed"
    accountability = "accountability"


class DocumentKind(StrEnum):
    acceptance_notice = "acceptance_notice"  # 受理告知书
    not_accepted_notice = "not_accepted_notice"  # 不予受理告知书
    redirect_notice = "redirect_notice"  # 导入法定途径告知书
    mediation_agreement = "mediation_agreement"  # 调解协议
    extension_notice = "extension_notice"  # 延期告知书
    handling_opinion = "handling_opinion"  # 办理意见书
    review_opinion = "review_opinion"  # 复查意见书
    re_review_opinion = "re_review_opinion"  # 复核意见书
    risk_warning_letter = "risk_warning_letter"  # 风险提示函
    supervision_letter = "supervision_letter"  # 督办函
    accountability_letter = "accountability_letter"  # 问责建议函
    petitioner_notice = "petitioner_notice"  # 群众告知书
    delivery_receipt = "delivery_receipt"  # 送达回证


class NotificationTier(StrEnum):
    immediate = "immediate"
    priority = "priority"
    batch = "batch"
    overdue = "overdue"


class RecipientRole(StrEnum):
    principal_leader = "principal_leader"  # 主要领导
    deputy_leader = "deputy_leader"  # 分管负责人
    handling_unit = "handling_unit"  # 责任单位
    unit_leader = "unit_leader"  # 责任单位负责人
    supervision_office = "supervision_office"  # 督查室


class NotifyChannel(StrEnum):
    sms = "sms"
    push = "push"
    batch = "batch"
    email = "email"
    webhook = "webhook"


class StaffRole(StrEnum):
    """Who signs in (rules/access.py says what each may do)."""

    operator = "operator"  # 登记窗口: intake, registration, repeat visits, the petitioner's requests
    unit = "unit"  # 责任单位: its own unit's cases (acceptance, mediation, extension, opinion, progress)
    supervision = "supervision"  # 市信联办督查室: views every case, flags and resolves major risks
    hr = "hr"  # 组织人事: scores and the annual assessment
    admin = "admin"  # 系统管理员: accounts, the holiday calendar push, rules


# --------------------------------------------------------------------------------------------
# Chinese names, as staff and petitioners read them (web pages, exports, the monthly brief)
# --------------------------------------------------------------------------------------------

CHANNEL_CN = {
    Channel.visit: "来访",
    Channel.online: "网上信访",
    Channel.letter: "来信",
    Channel.phone: "来电",
    Channel.video: "视频接访",
}

CATEGORY_CN = {
    Category.land_expropriation: "征地拆迁",
    Category.labor_social_security: "劳动保障",
    Category.law_litigation: "涉法涉诉",
    Category.rural_agriculture: "农村农业",
    Category.urban_construction_transport: "城建交通",
    Category.education_health: "教育医疗",
    Category.environment: "环境保护",
    Category.other: "其他",
}

RISK_CN = {Risk.high: "高", Risk.medium: "中", Risk.low: "低"}

TIER_CN = {
    NotificationTier.immediate: "即时",
    NotificationTier.priority: "优先",
    NotificationTier.batch: "每日汇总",  # one digest a day (rules/default.toml batch_time)
    NotificationTier.overdue: "超期",
}

STAGE_CN = {
    Stage.registered: "已登记，正在分办",
    Stage.triaged: "已分办，等待受理",
    Stage.arbitration: "已转入仲裁绿色通道",
    Stage.accepted: "已受理",
    Stage.not_accepted: "不予受理",
    Stage.redirected: "已导入法定途径",
    Stage.mediation: "调解中",
    Stage.handling: "办理中",
    Stage.opinion_issued: "已出具办理意见",
    Stage.review: "复查中",
    Stage.re_review: "复核中",
    Stage.closed: "已办结",
}

OUTCOME_CN = {
    Outcome.mediated: "调解结案",
    Outcome.resolved: "办结",
    Outcome.final_after_review: "复查终结",
    Outcome.final_after_re_review: "复核终结",
    Outcome.redirected: "导入法定途径",
    Outcome.not_accepted: "不予受理",
    Outcome.withdrawn: "撤回",
}

DEADLINE_CN = {
    DeadlineName.acceptance: "受理期限",
    DeadlineName.mediation_window: "调解期限",
    DeadlineName.handling: "办理期限",
    DeadlineName.review_request: "申请复查的期限",
    DeadlineName.review_decision: "复查期限",
    DeadlineName.re_review_request: "申请复核的期限",
    DeadlineName.re_review_decision: "复核期限",
    DeadlineName.risk_warning: "风险提示整改期限",
    DeadlineName.supervision: "督办整改期限",
    DeadlineName.notify_immediate: "即时通知期限",
    DeadlineName.notify_priority: "优先通知期限",
    DeadlineName.arbitration_filing: "仲裁立案期限",
    DeadlineName.arbitration_decision: "仲裁裁决期限",
}

# The three-letters ladder (三函): where a case stands on it.
LADDER_CN = {
    "flagged": "已标记重大风险",
    "warning": "风险提示函",
    "supervision": "督办函",
    "accountability": "问责建议函",
}

OFFICE_LEVEL_CN = {OfficeLevel.city: "市级", OfficeLevel.county: "县区级", OfficeLevel.township: "乡镇街道"}

# The actions on a case, as the case desk's forms and timeline name them (engine/web_cases.py).
ACTION_CN = {
    "accept": "受理",
    "not_accept": "不予受理",
    "redirect": "导入法定途径",
    "mediation_result": "调解结果",
    "extend": "延期",
    "issue_opinion": "出具办理意见",
    "request_review": "申请复查",
    "review_decision": "复查决定",
    "request_re_review": "申请复核",
    "re_review_decision": "复核决定",
    "flag_major_risk": "标记重大风险",
    "report_progress": "报告整改进展",
    "risk_resolved": "风险化解",
    "repeat_visit": "重复来访",
    "withdraw": "撤回",
    "arbitration": "仲裁绿色通道",
    "pause_clock": "暂停计时",
    "resume_clock": "恢复计时",
    "assign_leader": "领导包案",
}

REDIRECT_ROUTE_CN = {
    RedirectRoute.litigation: "诉讼",
    RedirectRoute.arbitration: "仲裁",
    RedirectRoute.administrative_reconsideration: "行政复议",
}

ARBITRATION_EVENT_CN = {
    ArbitrationEvent.filed: "仲裁立案",
    ArbitrationEvent.settled: "仲裁调解达成",
    ArbitrationEvent.award: "仲裁裁决",
    ArbitrationEvent.confirmed: "司法确认（履行完毕）",
    ArbitrationEvent.failed: "仲裁未能解决",
    ArbitrationEvent.court: "起诉至人民法院",
}

# Who a notice goes to, how, and what the score stream's rules are called (the CLI's tables, the
# case desk's timeline).
RECIPIENT_ROLE_CN = {
    RecipientRole.principal_leader: "主要领导",
    RecipientRole.deputy_leader: "分管负责人",
    RecipientRole.handling_unit: "责任单位",
    RecipientRole.unit_leader: "责任单位负责人",
    RecipientRole.supervision_office: "督查室",
}

NOTIFY_CHANNEL_CN = {
    NotifyChannel.sms: "短信",
    NotifyChannel.push: "推送",
    NotifyChannel.batch: "汇总",
    NotifyChannel.email: "电子邮件",
    NotifyChannel.webhook: "接口推送",
    "duty_log": "值班记录",  # the supervision office's duty log (the fallback's recording adapter)
}

SCORE_RULE_CN = {
    ScoreRule.mediation_success: "调解成功",
    ScoreRule.mediation_failed_review: "调解未成、进入复查",
    ScoreRule.mediation_window_missed: "错过调解期限",
    ScoreRule.accountability: "问责",
    "accountability_official": "问责到人",
}

# A period's state (workflows.models.DeadlineView.status).
DEADLINE_STATUS_CN = {"running": "计时中", "paused": "已暂停", "met": "已完成", "overdue": "已逾期", "stopped": "已停止"}

# How a three-letters ladder ended.
LADDER_END_CN = {"resolved": "风险已化解", "case_closed": "案件已办结", "accountability": "已发出问责建议函"}

# The documents' titles, as printed on them (activities/documents.py) and named everywhere else.
DOCUMENT_CN = {
    DocumentKind.acceptance_notice: "信访事项受理告知书",
    DocumentKind.not_accepted_notice: "信访事项不予受理告知书",
    DocumentKind.redirect_notice: "导入法定途径告知书",
    DocumentKind.mediation_agreement: "人民调解协议书",
    DocumentKind.extension_notice: "信访事项延期办理告知书",
    DocumentKind.handling_opinion: "信访事项办理意见书",
    DocumentKind.review_opinion: "信访事项复查意见书",
    DocumentKind.re_review_opinion: "信访事项复核意见书",
    DocumentKind.risk_warning_letter: "风险提示函",
    DocumentKind.supervision_letter: "督办函",
    DocumentKind.accountability_letter: "问责建议函",
    DocumentKind.petitioner_notice: "群众告知书",
    DocumentKind.delivery_receipt: "送达回证",
}
