"""Who may do what: the roles of signed-in staff, as data a person can read.

Every action on a case names its actor (`workflows.models.Actor`); the case's update validator
asks `action_refusal` before the rules of the lifecycle are asked, so an action by the wrong
role, or by another unit's staff, is refused with a sentence and leaves nothing but the refusal
(docs/privacy.md). Registration is not an update; the intake desk asks `may(role, "register")`.
"""

from __future__ import annotations

from rules.vocabulary import StaffRole

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
    StaffRole.operator: frozenset({"register", "view_cases"}),
    StaffRole.unit: frozenset({"view_own_unit"}),
    StaffRole.supervision: frozenset({"view_cases", "decode_payloads", "scores"}),
    StaffRole.hr: frozenset({"scores", "assessment"}),
    StaffRole.admin: frozenset({"view_cases", "decode_payloads", "accounts", "calendar_push", "rules"}),
}

PERMISSION_TEXT = {
    "register": "register petitions",
    "view_cases": "read cases",
    "view_own_unit": "read its own unit's cases",
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
    """Why this actor may not take `action` on a case handled by `case_unit`, or None."""
    if role is None:
        return "Every action must name the signed-in staff member who takes it; this one names nobody."
    if action not in CASE_ACTIONS[role]:
        allowed = ", ".join(r.value for r in roles_for(action)) or "no role"
        return f"The role '{role.value}' may not take the action '{action}'; it belongs to: {allowed}."
    if role != StaffRole.unit:
        return None
    if not actor_unit:
        return "A unit account must name its unit before it can act on cases."
    if action in REVIEWING_BODY_ACTIONS:
        if case_unit and actor_unit == case_unit:
            return f"{actor_unit} handled this case; its review is decided by the body one level up, not by the same unit."
        return None
    if case_unit != actor_unit:
        return f"This case belongs to {case_unit or 'no unit yet'}; staff of {actor_unit} may act only on their own unit's cases."
    return None


def may_view(role: StaffRole, actor_unit: str | None, case_unit: str | None) -> bool:
    """Whether an account may read a case: the whole office's roles every case, a unit its own."""
    if may(role, "view_cases"):
        return True
    return may(role, "view_own_unit") and actor_unit is not None and actor_unit == case_unit
