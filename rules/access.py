"""Who may do what: the roles of signed-in staff, as data a person can read.

Every action on a case names its actor (`workflows.models.Actor`); the case's update validator
asks `action_refusal` before the rules of the lifecycle are asked, so an action by the wrong
role, or by another unit's staff, is refused with a sentence and leaves nothing but the refusal
(docs/privacy.md). Registration is not an update; the intake desk asks `may(role, "register")`.
"""

from __future__ import annotations

from rules.vocabulary import ACTION_CN, StaffRole

# The actions on a case each role may take (the scenario contract's actions and ours).
CASE_ACTIONS: dict[StaffRole, frozenset[str]] = {
    # The intake desk records what the petitioner does: another visit, a request, a withdrawal.
    StaffRole.operator: frozenset({"repeat_visit", "withdraw", "request_review", "request_re_review"}),
    # The handling unit, on its own cases; the review decisions belong to the reviewing body.
    StaffRole.unit: frozenset(
        {
            "accept",
            "not_accept",
            "redirect",
            "mediation_result",
            "extend",
            "issue_opinion",
            "report_progress",
            "pause_clock",
            "resume_clock",
            "arbitration",
            "review_decision",
            "re_review_decision",
        }
    ),
    # The supervision office flags major risks and records the leader who takes a case (领导包案).
    StaffRole.supervision: frozenset({"flag_major_risk", "risk_resolved", "assign_leader"}),
    StaffRole.hr: frozenset(),
    # An administrator handles no case; recording the package leader is clerical, not handling.
    StaffRole.admin: frozenset({"assign_leader"}),
}

# Review (复查) and re-review (复核) are decided one level up: never by the unit that handled the
# case. Every other unit action is for the case's own unit only.
REVIEWING_BODY_ACTIONS = frozenset({"review_decision", "re_review_decision"})

# What each role may do outside a case's actions.
PERMISSIONS: dict[StaffRole, frozenset[str]] = {
    StaffRole.operator: frozenset({"register", "view_cases", "view_cockpit"}),
    StaffRole.unit: frozenset({"view_own_unit"}),
    StaffRole.supervision: frozenset({"view_cases", "decode_payloads", "scores", "view_cockpit"}),
    StaffRole.hr: frozenset({"scores", "assessment", "view_cockpit"}),
    StaffRole.admin: frozenset({"view_cases", "decode_payloads", "accounts", "calendar_push", "rules", "view_cockpit"}),
}
# "view_cockpit": the city-wide aggregates, red alerts and leaders' packages (titles, no personal
# data). A unit account is refused them: its view is its own unit's cases.

PERMISSION_TEXT = {
    "register": "register petitions",
    "view_cases": "read cases",
    "view_own_unit": "read its own unit's cases",
    "view_cockpit": "read the supervision cockpit (city-wide figures, red alerts, leaders' packages)",
    "decode_payloads": "read decoded Temporal payloads",
    "scores": "read the score stream",
    "assessment": "read the annual assessment",
    "accounts": "manage staff accounts and keys",
    "calendar_push": "push the holiday calendar to running cases",
    "rules": "change the rules",
}

# The same in Chinese, for the web app's pages.
PERMISSION_CN = {
    "register": "登记信访事项",
    "view_cases": "查看全部案件",
    "view_own_unit": "办理本单位的案件",
    "view_cockpit": "查看数据驾驶舱、红色预警和领导包案",
    "decode_payloads": "在 Temporal 界面中查看解密后的案件数据",
    "scores": "查看考核积分事件",
    "assessment": "查看年度考核与调解率",
    "accounts": "管理工作人员账号",
    "calendar_push": "推送节假日日历",
    "rules": "管理规则",
}

ROLE_CN = {
    StaffRole.operator: "登记窗口",
    StaffRole.unit: "责任单位",
    StaffRole.supervision: "督查室",
    StaffRole.hr: "组织人事",
    StaffRole.admin: "系统管理员",
}


def may(role: StaffRole, permission: str) -> bool:
    return permission in PERMISSIONS[role] or permission in CASE_ACTIONS[role]


def roles_for(action: str) -> list[StaffRole]:
    return [r for r, actions in CASE_ACTIONS.items() if action in actions]


def action_refusal(action: str, role: StaffRole | None, actor_unit: str | None, case_unit: str | None) -> str | None:
    """Why this actor may not take `action` on a case handled by `case_unit` (a Chinese sentence), or None."""
    if role is None:
        return "每项操作都必须写明办理的工作人员（已登录的账号）；这项操作没有写明是谁办理的。"
    if action not in CASE_ACTIONS[role]:
        allowed = "、".join(f"“{ROLE_CN[r]}”" for r in roles_for(action))
        who = f"这项操作只能由{allowed}角色进行" if allowed else "没有任何角色可以进行这项操作"
        return f"“{ROLE_CN[role]}”角色不能进行“{ACTION_CN.get(action, action)}”操作；{who}。"
    if role != StaffRole.unit:
        return None
    if not actor_unit:
        return "责任单位账号须先设置所属单位，才能办理案件。"
    if action in REVIEWING_BODY_ACTIONS:
        if case_unit and actor_unit == case_unit:
            return f"本案由{actor_unit}办理；复查、复核由上一级机关决定，不能由原办理单位作出。"
        return None
    if case_unit != actor_unit:
        owner = f"本案属于{case_unit}" if case_unit else "本案尚未分办到责任单位"
        return f"{owner}；{actor_unit}的工作人员只能办理本单位的案件。"
    return None


def may_view(role: StaffRole, actor_unit: str | None, case_unit: str | None) -> bool:
    """Whether an account may read a case: the whole office's roles every case, a unit its own."""
    if may(role, "view_cases"):
        return True
    return may(role, "view_own_unit") and actor_unit is not None and actor_unit == case_unit
