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


# The enums. A member is its own value (Channel.visit == "visit"); its Chinese name, as staff and
# petitioners read it, is in the tables further down (CHANNEL_CN...). `StrEnum("Risk", "high medium
# low")` is the standard library's short form of a class with `high = "high"` and so on; mypy reads
# the members alike.

Channel = StrEnum("Channel", "visit online letter phone video")  # video: 视频接访 (云窗口)
OfficeLevel = StrEnum("OfficeLevel", "city county township")
Category = StrEnum(
    "Category",
    "land_expropriation labor_social_security law_litigation rural_agriculture urban_construction_transport"
    " education_health environment other",
)
Risk = StrEnum("Risk", "high medium low")

# A case's life (rules/lifecycle.py) and how it ended.
Stage = StrEnum(
    "Stage",
    "registered triaged arbitration accepted not_accepted redirected mediation handling opinion_issued"
    " review re_review closed",
)
Outcome = StrEnum(
    "Outcome", "mediated resolved final_after_review final_after_re_review redirected not_accepted withdrawn"
)
RedirectRoute = StrEnum("RedirectRoute", "litigation arbitration administrative_reconsideration")

# The periods, the events that start their clocks, the units they are counted in.
DeadlineName = StrEnum(
    "DeadlineName",
    "acceptance mediation_window handling"
    " review_request review_decision re_review_request re_review_decision"
    " risk_warning supervision notify_immediate notify_priority arbitration_filing arbitration_decision",
)
DeadlineStart = StrEnum(
    "DeadlineStart",
    "registration triage acceptance"
    " opinion_issued"  # the engine takes issue time as the petitioner's receipt
    " review_requested review_decided re_review_requested letter_issued"
    " arbitration_track_started arbitration_filed",
)

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

DeadlineUnit = StrEnum("DeadlineUnit", "days working_days hours minutes")

# The steps of the arbitration green channel (仲裁绿通 + 司法确认); `failed`: an award refused or no
# settlement reached; `court`: taken to the people's court.
ArbitrationEvent = StrEnum("ArbitrationEvent", "filed settled award confirmed failed court")

# What the score stream scores, the documents the engine issues.
ScoreRule = StrEnum(
    "ScoreRule", "mediation_success mediation_failed_review mediation_window_missed accountability"
)
DocumentKind = StrEnum(
    "DocumentKind",
    "acceptance_notice not_accepted_notice redirect_notice mediation_agreement extension_notice"
    " handling_opinion review_opinion re_review_opinion"
    " risk_warning_letter supervision_letter accountability_letter"
    " petitioner_notice delivery_receipt",
)

# Notices: how urgent, to whom, by which channel.
NotificationTier = StrEnum("NotificationTier", "immediate priority batch overdue")
RecipientRole = StrEnum(
    "RecipientRole", "principal_leader deputy_leader handling_unit unit_leader supervision_office"
)
NotifyChannel = StrEnum("NotifyChannel", "sms push batch email webhook")


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

# The records' fields by their Chinese names: intake (the scenario contract's `petition`), its
# petitioners, the actions' data and a scenario file. Validation errors name a field by it
# (workflows/validation_messages.py), the case desk's action forms label theirs with it.
FIELD_CN = {
    # intake
    "channel": "信访形式",
    "office_level": "受理层级",
    "locality": "属地",
    "petitioners": "信访人",
    "name": "姓名",
    "id_number": "身份证号",
    "phone": "联系电话",
    "title": "标题",
    "content": "主要内容",
    "category": "类别",
    "risk": "风险等级",
    "disputed_amount": "争议金额",
    "facts_clear": "事实是否清楚",
    "responsible_unit": "责任单位",
    "worker_count": "被欠薪人数",
    # actions
    "unit": "承办单位",
    "reason": "理由",
    "route": "法定途径",
    "success": "调解成功",
    "fulfilled": "协议已履行",
    "other_party": "对方当事人",
    "terms": "协议内容",
    "days": "延期天数",
    "approved_by": "批准领导",
    "text": "正文",
    "officials": "拟问责人员",
    "substantive": "有实质性进展",
    "note": "备注",
    "persons": "人数",
    "leader": "包案领导",
    "event": "仲裁环节",
    "deadline": "期限",
    # a scenario file
    "petition": "信访事项记录",
    "steps": "步骤",
    "after": "时间",
    "action": "操作",
    "data": "操作数据",
    "until": "运行至",
    "calendar": "节假日日历",
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
