"""What the petition workflow says: the wording of notices (SMS, push, overdue alerts, the duty
desk's escalation) and of the reasons it writes into documents, as pure functions.

Changing a sentence here changes what new notices say; it never changes a workflow's commands
(the text travels inside an activity's input, which replay does not compare).
"""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

from rules.vocabulary import (
    CATEGORY_CN,
    DEADLINE_CN,
    RISK_CN,
    TIER_CN,
    Category,
    DeadlineName,
    NotificationTier,
    Risk,
)
from workflows.models import DocumentIssued

# What the escalation really is: a line in the supervision office's duty log (`notifications.jsonl`,
# written by the recording adapter in `send_fallback_notification`), whatever channel the rules name.
DUTY_LOG = "duty_log"

DEFAULT_REQUEST = "请及时处理"


def subject(tier: NotificationTier, case_id: str, title: str) -> str:
    return f"【{TIER_CN[tier]}】信访事项 {case_id}：{title}"


def body(case_id: str, locality: str, category: Category | None, risk: Risk | None, what: str = DEFAULT_REQUEST) -> str:
    cat = CATEGORY_CN[category] if category else "待分拣"
    level = RISK_CN[risk] if risk else "未定"
    return f"案件 {case_id}（{locality}，{cat}，风险{level}）{what}。"


def overdue_request(name: DeadlineName) -> str:
    """What an overdue alert asks of the unit's leader."""
    return f"{DEADLINE_CN[name]}已逾期，请立即处理"


def unit_leader(unit: str) -> str:
    return f"{unit}负责人"


def duty_desk(locality: str) -> str:
    """The supervision office's duty desk of the case's locality (the escalation's recipient)."""
    return f"{locality}信访督查室"


def undelivered_subject(original_subject: str) -> str:
    return f"[未送达] {original_subject}"


def undelivered_body(original_body: str, recipient: str) -> str:
    return f"{original_body}（原通知未能在时限内送达 {recipient}，请值班人员立即转告。）"


def finalised_reason(prior_case: str) -> str:
    """Why a matter finalised by re-review is not accepted again (the not-accepted notice)."""
    return f"该事项已于案件 {prior_case} 经复核终结，同一事实和理由不再受理（《信访工作条例》）。"


# The redirect notice when the arbitration green channel failed and the dispute goes to court.
ARBITRATION_FAILED_REASON = "劳动争议经仲裁未能解决"
# The track named in the timeline when a collective wage case enters the green channel.
ARBITRATION_TRACK = "仲裁绿通+司法确认"


def delivered_document(doc: DocumentIssued) -> str:
    """How a delivery receipt (送达回证) names the document it acknowledges."""
    return f"{doc.kind.value}（存证核验码 {doc.verification_code}）"


def notice_failure(err: ActivityError) -> dict[str, Any]:
    """What a failed notice's activity tells the timeline: the adapter that tried, how many attempts,
    why it stopped (its deadline passed, or the receiver refused it for good) and the last error.

    `send_notification` puts {"adapter", "attempt"} in its error's details; when the deadline passes
    the server reports a timeout whose cause is the last attempt's error.
    """
    cause = err.cause
    if isinstance(cause, ActivityTimeout):
        cause = cause.cause or cause
    if err.retry_state == RetryState.NON_RETRYABLE_FAILURE:
        gave_up = "refused"  # the receiver rejected it: retrying would not help
    elif err.retry_state == RetryState.TIMEOUT or isinstance(err.cause, ActivityTimeout):
        gave_up = "deadline"  # the next attempt would come after the tier's deadline
    else:
        gave_up = "error"
    out: dict[str, Any] = {"gave_up": gave_up}
    if isinstance(cause, ApplicationError):
        info = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        if isinstance(info.get("adapter"), str):
            out["adapter"] = info["adapter"]
        if isinstance(info.get("attempt"), int):
            out["attempts"] = info["attempt"]
        out["error"] = cause.message
    else:
        out["error"] = str(cause or err)
    return out
