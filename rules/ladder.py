"""The three-letters ladder (三函两书) as rule knowledge: its steps, the letter each step issues,
the period each letter gives, and what happens when a letter's period runs out.

A major risk (high at triage, or flagged later) starts the ladder with a risk-warning letter
(风险提示函); when its period lapses a supervision letter (督办函) follows; when that one lapses,
substantive progress re-arms supervision (as often as `rules.ladder.supervision_rearms` allows),
otherwise an accountability recommendation (问责建议函) names the officials and ends the ladder.
Resolving the risk stops it, and so does the case closing.

Pure: the petition workflow asks these functions and does the side effects itself.
"""

from __future__ import annotations

from typing import Final, Literal

from rules.lifecycle import supervision_deadline_outcome
from rules.ruleset import RuleSet
from rules.vocabulary import DeadlineName, DocumentKind

WARNING: Final = "warning"
SUPERVISION: Final = "supervision"
ACCOUNTABILITY: Final = "accountability"
# How a ladder ends: the risk resolved, an accountability recommendation, or the case closed.
RESOLVED: Final = "resolved"
CASE_CLOSED: Final = "case_closed"
ENDED: Final = "ended"  # PetitionLadder once a ladder ended otherwise than in accountability

# The letter each step issues.
LETTER: Final[dict[str, DocumentKind]] = {
    WARNING: DocumentKind.risk_warning_letter,
    SUPERVISION: DocumentKind.supervision_letter,
    ACCOUNTABILITY: DocumentKind.accountability_letter,
}

# The period a step's letter gives the unit (the accountability letter ends the ladder: none).
PERIOD: Final[dict[str, DeadlineName]] = {
    WARNING: DeadlineName.risk_warning,
    SUPERVISION: DeadlineName.supervision,
}

# The ladder's own clocks (stopped when the ladder ends).
CLOCKS: Final = (DeadlineName.risk_warning, DeadlineName.supervision)

# The reason a ladder started by triage's high risk gives in its letters.
TRIAGE_HIGH_RISK_REASON: Final = "triage: high risk"


def starts_at_triage(rules: RuleSet, high_risk: bool, running: bool) -> bool:
    """Does triage's (or the operator's) high risk start the ladder now?"""
    return high_risk and rules.ladder.start_on_high_risk and not running


def next_step(lapsed: DeadlineName, progress_since_letter: bool, rearms_used: int, rules: RuleSet) -> str | None:
    """The letter that follows when a ladder period lapses (None: `lapsed` is not a ladder period)."""
    if lapsed == DeadlineName.risk_warning:
        return SUPERVISION
    if lapsed == DeadlineName.supervision:
        return supervision_deadline_outcome(progress_since_letter, rearms_used, rules)
    return None


def progress_counts(substantive: bool, step: str | None) -> bool:
    """Progress counts only against a supervision letter; under the warning letter it changes nothing."""
    return substantive and step == SUPERVISION


def clock_status_at_end(how: str) -> Literal["met", "stopped"]:
    """A running ladder clock is met when the risk is resolved, stopped otherwise."""
    return "met" if how == RESOLVED else "stopped"


def search_value_at_end(how: str) -> str:
    """PetitionLadder once the ladder ended: accountability, or ended."""
    return ACCOUNTABILITY if how == ACCOUNTABILITY else ENDED
