"""The models that cross Temporal's boundary: intake, workflow input, actions, activity I/O, views.

Side-effect free: imported by the workflow sandbox, the activities, the starter and the tests.
Task-queue names live here too, so there is one place to look.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from temporalio.common import Priority

from rules.deadlines import CalendarSnapshot, Pause
from rules.ruleset import RuleSet
from rules.triage import TriageResult
from rules.vocabulary import (
    MAX_CONTENT_CHARS,
    MAX_DISPUTED_AMOUNT,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    MAX_OFFICIALS,
    MAX_TITLE_CHARS,
    MAX_WORKER_COUNT,
    ArbitrationEvent,
    Category,
    Channel,
    DeadlineName,
    DocumentKind,
    NotificationTier,
    NotifyChannel,
    OfficeLevel,
    Outcome,
    RecipientRole,
    RedirectRoute,
    Risk,
    ScoreRule,
    StaffRole,
    Stage,
)
from workflows.validation_messages import describe_validation_error as describe_validation_error

TASK_QUEUE = "petitions"
# Task priority (Temporal's priority key: 1 is served first, 3 is the default, 5 last). A petition
# stated high risk at intake is started with it, so that its workflow tasks and activities are
# taken ahead of a backlog (a deadline surge); a workflow's activities inherit it. Every immediate
# notice (the high-risk SMS, and its fallback) asks for it too, whatever the case was started with.
URGENT_PRIORITY = Priority(priority_key=1)
PETITION_WORKFLOW = "PetitionWorkflow"
DIGEST_WORKFLOW = "BatchDigestWorkflow"
ARBITRATION_WORKFLOW = "ArbitrationWorkflow"

# --------------------------------------------------------------------------------------------
# Intake
# --------------------------------------------------------------------------------------------

_GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_GB11643_CHECK = "10X98765432"
# ASCII digits only: `\d` would also match other scripts' digits (٣, ३), which NFKC leaves alone.
_MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")
_LANDLINE_RE = re.compile(r"^0[0-9]{2,3}-?[0-9]{7,8}$")


def gb11643_check_digit(first17: str) -> str:
    """The check digit of a mainland resident identity number (GB 11643-1999, ISO 7064 MOD 11-2)."""
    total = sum(int(d) * w for d, w in zip(first17, _GB11643_WEIGHTS, strict=True))
    return _GB11643_CHECK[total % 11]


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(1, len(name) - 1)


def mask_id(id_number: str) -> str:
    return id_number[:3] + "*" * (len(id_number) - 4) + id_number[-1:]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "***"


_PII_PATTERNS = (
    (re.compile(r"(?<![0-9])[1-9][0-9]{5}(?:19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx](?![0-9])"), "[身份证号]"),
    (re.compile(r"(?<![0-9])[1-9][0-9]{14}(?![0-9])"), "[身份证号]"),
    (re.compile(r"(?<![0-9])[0-9]{16,19}(?![0-9])"), "[卡号]"),
    (re.compile(r"(?<![0-9])1[3-9][0-9][\s-]?[0-9]{4}[\s-]?[0-9]{4}(?![0-9])"), "[电话]"),
    (re.compile(r"(?<![0-9])0[0-9]{2,3}-?[0-9]{7,8}(?![0-9])"), "[电话]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[邮箱]"),
)


def mask_personal_data(text: str, names: list[str] | tuple[str, ...] = ()) -> str:
    """The text with identity numbers, card numbers, phones, e-mails and the given names masked.

    For petitions kept as training examples: what the petition says stays, who wrote it goes.
    """
    out = text
    for name in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        out = out.replace(name, "某某")
    for rx, repl in _PII_PATTERNS:
        out = rx.sub(repl, out)
    return out


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# What no text field may hold: C0/C1 control characters (NUL makes PostgreSQL refuse the row for
# good) and lone surrogates (not characters: they cannot be written as UTF-8). Multi-line fields
# (content, documents' text, reasons, notes) may hold line breaks and tabs.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_MULTILINE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_characters(value: str, *, multiline: bool) -> str:
    """`value` with CR LF and CR made LF (multi-line fields); ValueError naming the first character
    that is not text, by its code and position (never echoing the text)."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    found = (_NOT_MULTILINE_TEXT if multiline else _NOT_TEXT).search(value)
    if found is None:
        return value
    char, where = found.group(), f"at character {found.start() + 1:,}"
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        raise ValueError(f"holds a lone surrogate ({code}) {where}, which is not a character; re-enter it")
    if char in "\n\r\t":
        raise ValueError(f"holds a line break or tab {where}; this field is a single line")
    allowed = "printable text, line breaks and tabs" if multiline else "printable text"
    raise ValueError(f"holds a control character ({code}) {where}; it may hold only {allowed}")


def _text(
    max_chars: int, what: str, *, required: str | None = None, multiline: bool = False, hint: str = ""
) -> AfterValidator:
    """A text field: no control characters or lone surrogates, trimmed, at most `max_chars`
    characters (`what` names it in the sentence, `hint` says what to do instead); `required`, if
    given, is the sentence for an empty value."""

    def check(value: str) -> str:
        value = _check_characters(value, multiline=multiline).strip()
        if required is not None and not value:
            raise ValueError(required)
        if len(value) > max_chars:
            limit = f"{what} may be at most {max_chars:,} characters"
            raise ValueError(f"is {len(value):,} characters long; {limit}{hint}")
        return value

    return AfterValidator(check)


def _number(what: str, *, whole: bool) -> BeforeValidator:
    """Refuses what JSON or Python would otherwise turn into a number silently: true/false, NaN and
    Infinity (also as strings such as "1e999"), and, for counts, fractions; an integral float
    (3.0, 1e30) becomes an int so that the limit after it judges its size."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"is {str(value).lower()}, not {what}")
        if isinstance(value, float | str):
            try:
                number = float(value)
            except (ValueError, OverflowError):
                return value  # not a number at all: the type's own sentence says so
            if not math.isfinite(number):
                raise ValueError(f"is not a finite number; give {what} in digits")
            if whole and isinstance(value, float):
                if not number.is_integer():
                    raise ValueError(f"is not a whole number; give {what} as a whole number")
                return int(number)
        return value

    return BeforeValidator(check)


def _figure(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 1e15 else f"{value:.3g}"


def _at_most(limit: int, sentence: str) -> AfterValidator:
    """A number no larger than `limit`; `sentence` says so, with `{limit}` where the figure goes."""

    def check(value: float) -> float:
        if value > limit:
            raise ValueError(f"is {_figure(value)}; {sentence.format(limit=_figure(limit))}")
        return value

    return AfterValidator(check)


_AMOUNT = "an amount of money in yuan"
_Amount = Annotated[
    float,
    _number(_AMOUNT, whole=False),
    Field(ge=0),
    _at_most(MAX_DISPUTED_AMOUNT, "an amount may be at most {limit} yuan"),
]
_WorkerCount = Annotated[
    int,
    _number("a number of workers", whole=True),
    Field(ge=1),
    _at_most(MAX_WORKER_COUNT, "a petition may count at most {limit} workers"),
]


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


class Petitioner(_Model):
    name: Annotated[str, _text(MAX_NAME_CHARS, "a name", required="the petitioner's name is empty")]
    id_number: Annotated[str, _text(MAX_NAME_CHARS, "an identity number")] | None = None
    phone: Annotated[str, _text(MAX_NAME_CHARS, "a phone number")] | None = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, v: str | None) -> str | None:
        if v is None:
            return None
        # Full-width digits and Ｘ (a Chinese input method's) are the same number: stored as ASCII,
        # so that the same person is recognised on the next visit.
        v = unicodedata.normalize("NFKC", v).strip().upper()
        if not re.fullmatch(r"[0-9]{17}[0-9X]", v):
            raise ValueError("a mainland identity number has 17 digits and a check character (digit or X)")
        expected = gb11643_check_digit(v[:17])
        if v[17] != expected:
            raise ValueError("the identity number's check digit is wrong (GB 11643-1999); please re-read the card")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = unicodedata.normalize("NFKC", v).strip().replace(" ", "")
        if not (_MOBILE_RE.match(v) or _LANDLINE_RE.match(v)):
            raise ValueError("a phone number is an 11-digit mobile number starting 13-19, or a landline like 010-12345678")
        return v

    def masked(self) -> dict[str, str | None]:
        return {
            "name": mask_name(self.name),
            "id_number": mask_id(self.id_number) if self.id_number else None,
            "phone": mask_phone(self.phone) if self.phone else None,
        }

    def same_person(self, other: Petitioner) -> str | None:
        """Why `other` is this petitioner again (the same identity number, or the same name and
        phone where the identity numbers do not tell them apart), else None."""
        if self.id_number and self.id_number == other.id_number:
            return "the same identity number"
        if self.id_number and other.id_number:
            return None
        if _folded(self.name) == _folded(other.name) and self.phone == other.phone:
            if self.phone:
                return "the same name and phone number"
            return "the same name, with no identity number or phone"
        return None


class Intake(_Model):
    """The petition record an operator registers at the intake desk (the scenario contract's `petition`)."""

    channel: Channel
    office_level: OfficeLevel
    locality: Annotated[str, _text(MAX_NAME_CHARS, "a locality's name", required="must not be empty")]
    petitioners: list[Petitioner] = Field(min_length=1)
    title: Annotated[str, _text(MAX_TITLE_CHARS, "a title", required="must not be empty")]
    # Its length is capped at the desk (engine/desk.py parse_intake), not here: a case started
    # another way with longer content must still decode, and triage reads only MAX_CONTENT_CHARS.
    content: Annotated[
        str, _text(sys.maxsize, "a petition's content", required="must not be empty", multiline=True)
    ]
    category: Category | None = None
    risk: Risk | None = None
    disputed_amount: _Amount | None = None
    facts_clear: bool | None = None
    responsible_unit: Annotated[str, _text(MAX_NAME_CHARS, "a unit's name")] | None = None
    # Not in the contract's example, but intake desks record them: people in the visit (人次) and,
    # for wage arrears, how many workers are owed (the classifier also reads it from the text).
    worker_count: _WorkerCount | None = None

    @field_validator("responsible_unit")
    @classmethod
    def _unit(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return v.strip() or None

    @field_validator("petitioners")
    @classmethod
    def _each_once(cls, v: list[Petitioner]) -> list[Petitioner]:
        for j, later in enumerate(v):
            for i in range(j):
                why = v[i].same_person(later)
                if why is not None:
                    again = f"petitioners[{j}] is petitioners[{i}] again ({why})"
                    raise ValueError(f"{again}; list each petitioner once")
        return v


def printable(text: str, limit: int = 40) -> str:
    """`text` as it may appear in a message: control characters and lone surrogates escaped (a
    terminal or UTF-8 stderr could not show them), cut to about `limit` characters."""
    out: list[str] = []
    size = 0
    for ch in text:
        piece = ch if ch.isprintable() else ascii(ch)[1:-1]
        if size + len(piece) > limit:
            return "".join(out) + "…"
        out.append(piece)
        size += len(piece)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Workflow input and views
# --------------------------------------------------------------------------------------------


class Actor(_Model):
    """Who takes an action: a signed-in staff account (engine/staff.py), or the engine itself."""

    name: str
    role: StaffRole
    unit: str | None = None

    def record(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value, **({"unit": self.unit} if self.unit else {})}


class CaseStart(_Model):
    """Everything a case needs, fixed at registration: it keeps these rules and this calendar."""

    case_id: str
    intake: Intake
    rules: RuleSet
    calendar: CalendarSnapshot
    matter_key: str
    # Set when the same petitioner's same matter was finalised by re-review: not accepted again.
    prior_final_case: str | None = None
    use_search_attributes: bool = True
    registered_by: Actor | None = None
    # Continue as new once the run's history has this many events (None: only when the server
    # suggests it). Tests set it low; a nail case with hundreds of visits reaches the suggestion.
    continue_as_new_after: int | None = Field(default=None, ge=10)
    # The case's state when a long life continues as new (workflows/petition.py): the new run
    # resumes from it instead of registering again. None for a case's first run.
    carried: CaseModel | None = None


class TimelineEvent(_Model):
    seq: int
    at: datetime
    offset_s: int
    kind: Literal["stage", "notification", "document", "score", "overdue", "rejected", "ladder", "visit", "info", "leader"]
    data: dict[str, Any] = Field(default_factory=dict)

    def contract(self) -> dict[str, Any]:
        return {"offset_s": self.offset_s, "kind": self.kind, **self.data, "at": self.at.isoformat()}


class DeadlineView(_Model):
    name: DeadlineName
    started_at: datetime
    due: datetime
    provisional: bool
    status: Literal["running", "paused", "met", "overdue", "stopped"]


class CaseStanding(_Model):
    """Where a case stands: what both the database keeps of it (CaseSnapshot) and the desk shows
    of it (CaseState) begin with (workflows/case_model.py, `standing`)."""

    case_id: str
    stage: Stage
    status: Literal["open", "closed"]
    outcome: Outcome | None
    category: Category | None
    risk: Risk | None
    unit: str | None
    visits: int
    nail_case: bool
    mediation_eligible: bool


class CaseState(CaseStanding):
    """The `state` query: the case as the desk shows it (petitioners masked)."""

    locality: str
    title: str
    petitioners: list[dict[str, str | None]]
    extension_used: int
    ladder_stage: str | None
    rules_version: str
    calendar: str
    deadlines: list[DeadlineView]
    overdue: list[DeadlineName]
    registered_at: datetime | None
    leader: str | None = None  # 领导包案


class Timeline(_Model):
    case_id: str
    events: list[TimelineEvent]


# --------------------------------------------------------------------------------------------
# Actions (one update per action of the scenario contract; one input model each)
# --------------------------------------------------------------------------------------------


class _Action(_Model):
    # Set by the intake desk from the signed-in account, never taken from the action's data.
    by: Actor | None = None


_Note = Annotated[str, _text(MAX_NOTE_CHARS, "a note", multiline=True)]
_Reason = Annotated[str, _text(MAX_NOTE_CHARS, "a reason", multiline=True)]


class AcceptInput(_Action):
    unit: Annotated[
        str, _text(MAX_NAME_CHARS, "a unit's name", required="name the unit that accepts the case")
    ]
    facts_clear: bool | None = None
    disputed_amount: _Amount | None = None


class ReasonInput(_Action):
    reason: Annotated[
        str, _text(MAX_NOTE_CHARS, "a reason", required="give the reason in a sentence", multiline=True)
    ]


class RedirectInput(_Action):
    route: RedirectRoute
    reason: _Reason | None = None


class MediationResultInput(_Action):
    success: bool
    fulfilled: bool = False
    # What the agreement (人民调解协议书) names: the other party and the agreed terms.
    other_party: Annotated[str, _text(MAX_NAME_CHARS, "a party's name")] = ""
    terms: Annotated[str, _text(MAX_NOTE_CHARS, "the agreed terms", multiline=True)] = ""


class ExtendInput(_Action):
    # The rules cap the days (rules/default.toml [extension]); a refusal there is recorded.
    days: Annotated[int, _number("a number of days", whole=True), Field(gt=0)]
    approved_by: Annotated[
        str, _text(MAX_NAME_CHARS, "a name", required="name the leader who approved the extension")
    ]
    reason: Annotated[
        str, _text(MAX_NOTE_CHARS, "a reason", required="give the reason for the extension", multiline=True)
    ]


_NO_TEXT = "the document's text must not be empty"


class TextInput(_Action):
    text: Annotated[
        str,
        _text(MAX_CONTENT_CHARS, "a document's text", required=_NO_TEXT, multiline=True),
    ]


class NoInput(_Action):
    pass


class RepeatVisitInput(_Action):
    """Another petition on an open matter: how it came and how many came (the cockpit counts them)."""

    channel: Channel | None = None
    persons: int = Field(default=1, ge=1, le=MAX_WORKER_COUNT)


class FlagRiskInput(_Action):
    reason: Annotated[
        str, _text(MAX_NOTE_CHARS, "a reason", required="say why the risk is major", multiline=True)
    ]
    # Officials the supervision office names for a possible accountability letter (else configured per unit).
    officials: list[
        Annotated[str, _text(MAX_NAME_CHARS, "a name", required="an official's name must not be empty")]
    ] = Field(default_factory=list, max_length=MAX_OFFICIALS)


class ProgressInput(_Action):
    substantive: bool
    note: _Note = ""


class NoteInput(_Action):
    note: _Note = ""


class LeaderInput(_Action):
    """领导包案: the leader who personally owns the case until it is resolved."""

    leader: Annotated[str, _text(MAX_NAME_CHARS, "a leader", required="name the leader who takes the case")]
    note: _Note = ""


class WithdrawInput(_Action):
    reason: _Reason = ""


class BatchDelivered(_Model):
    digest_id: str
    delivered_at: datetime
    recipient: str
    delivered: bool = True
    # Echoes BatchEnqueue.token: only the digest the case joined knows it (payloads are encrypted).
    token: str = ""


class PauseInput(_Action):
    deadline: DeadlineName = DeadlineName.handling
    reason: _Reason = ""


class ArbitrationInput(_Action):
    event: ArbitrationEvent
    note: _Note = ""


class ArbitrationStep(_Model):
    event: ArbitrationEvent
    at: datetime
    note: str = ""


class ArbitrationOverdue(_Model):
    deadline: DeadlineName
    due: datetime
    token: str = ""


class ArbitrationCase(_Model):
    """The collective wage arrears case the arbitration green channel (workflows/arbitration.py)
    runs for: what its track starts with and what each record of it names."""

    case_id: str
    unit: str
    workers: int | None
    amount: float | None


class ArbitrationStart(ArbitrationCase):
    rules: RuleSet
    calendar: CalendarSnapshot
    # A secret the child echoes in its signals to the case, so that nobody else can send them.
    parent_token: str = ""


class ArbitrationRecord(ArbitrationCase):
    status: str
    outcome: str | None
    at: datetime


class ActionResult(_Model):
    case_id: str
    action: str
    stage: Stage
    outcome: Outcome | None
    events: list[TimelineEvent]


# Action name -> (update name, input model). The starter validates `data` with these before
# sending, so malformed data is refused with a sentence that names the field.
ACTION_INPUTS: dict[str, type[BaseModel]] = {
    "accept": AcceptInput,
    "not_accept": ReasonInput,
    "redirect": RedirectInput,
    "mediation_result": MediationResultInput,
    "extend": ExtendInput,
    "issue_opinion": TextInput,
    "request_review": NoInput,
    "review_decision": TextInput,
    "request_re_review": NoInput,
    "re_review_decision": TextInput,
    "flag_major_risk": FlagRiskInput,
    "report_progress": ProgressInput,
    "risk_resolved": NoteInput,
    "repeat_visit": RepeatVisitInput,
    "withdraw": WithdrawInput,
    # The cockpit: the leader who takes the case (领导包案).
    "assign_leader": LeaderInput,
    # Beyond the contract: steps of the arbitration green channel for collective wage arrears,
    # and pausing a period while waiting for the petitioner's materials.
    "arbitration": ArbitrationInput,
    "pause_clock": PauseInput,
    "resume_clock": PauseInput,
}

# --------------------------------------------------------------------------------------------
# Activity inputs and outputs
# --------------------------------------------------------------------------------------------


class RegisterCaseInput(_Model):
    case_id: str
    matter_key: str
    intake: Intake
    rules_version: str
    registered_at: datetime


class RegisterCaseResult(_Model):
    case_id: str
    created: bool


class TriageRequest(_Model):
    case_id: str
    intake: Intake
    collective_min_workers: int


class TriageOutcome(TriageResult):
    """What triage decided (rules/triage.py) and the leaders the routing names for the case's
    locality and category. TriageResult's fields with defaults came with the learned model: older
    histories lack them, so they keep their defaults."""

    model_config = ConfigDict(extra="forbid")

    principal_leader: str
    deputy_leader: str


class DocumentRequest(_Model):
    idempotency_key: str
    case_id: str
    kind: DocumentKind
    issued_at: datetime
    fields: dict[str, Any] = Field(default_factory=dict)


class DocumentIssued(_Model):
    kind: DocumentKind
    sha256: str
    ledger_index: int
    verification_code: str
    path: str


class NotificationRequest(_Model):
    idempotency_key: str
    case_id: str
    tier: NotificationTier
    recipient_role: RecipientRole
    recipient: str
    channel: NotifyChannel
    subject: str
    body: str
    deadline: datetime | None = None


class NotificationSent(_Model):
    channel: NotifyChannel
    delivered: bool
    adapter: str
    sent_at: datetime
    detail: str = ""


class ScoreRequest(_Model):
    idempotency_key: str
    case_id: str
    unit: str
    rule: ScoreRule | str
    points: int
    occurred_at: datetime
    rules_version: str
    official: str | None = None
    note: str = ""


class CaseSnapshot(CaseStanding):
    """What the database keeps of a case between steps (its row and its new timeline events)."""

    mediation_succeeded: bool
    overdue: bool
    closed_at: datetime | None
    events: list[TimelineEvent]
    # The next period the petitioner waits on (acceptance, mediation, handling, review…), if any.
    next_deadline: DeadlineName | None = None
    next_due: datetime | None = None
    next_due_provisional: bool = False
    # The period that ran out first, of those still out, and when (the cockpit's days overdue).
    overdue_deadline: DeadlineName | None = None
    overdue_due: datetime | None = None


class BatchEnqueue(_Model):
    case_id: str
    unit: str
    title: str
    batch_at: datetime
    task_queue: str
    token: str = ""


class DigestItem(_Model):
    case_id: str
    title: str
    token: str = ""  # echoed in BatchDelivered


class DigestStart(_Model):
    digest_id: str
    unit: str
    batch_at: datetime


class DigestRequest(_Model):
    digest_id: str
    unit: str
    batch_at: datetime
    items: list[DigestItem]


# --------------------------------------------------------------------------------------------
# The petition workflow's state: one model of everything that changes in a case's life (the rest
# is fixed in CaseStart). workflows/case_model.py derives from it the `state` query, the snapshot
# the database keeps and the facts the rules look at. It travels in CaseStart.carried when a long
# life continues as new, so the new run resumes exactly where the last one stopped.
# --------------------------------------------------------------------------------------------


class ClockState(_Model):
    """A statutory period; its due instant is always recomputed from its start and rule
    (workflows/clocks.py), never patched onto a timer."""

    name: DeadlineName
    started_at: datetime
    extra: int = 0  # days added by an extension
    due: datetime
    provisional: bool = False
    status: Literal["running", "paused", "met", "overdue", "stopped"] = "running"
    pauses: list[Pause] = Field(default_factory=list)


class LadderState(_Model):
    """The three-letters ladder (三函两书) of rules/ladder.py, as far as this case climbed it."""

    step: str | None = None  # warning | supervision while a letter runs; None otherwise
    progress: bool = False  # substantive progress reported under the supervision letter
    rearms: int = 0  # supervision letters re-armed for progress
    officials: list[str] = Field(default_factory=list)  # named by flag_major_risk
    reason: str = ""
    # PetitionLadder: warning | supervision while a letter runs, then accountability (the ladder
    # ended in an accountability recommendation) or ended (resolved, or the case closed).
    search_value: str | None = None


class CaseModel(_Model):
    """Everything about one case that changes during its life."""

    registered_at: datetime | None = None  # the intake: offsets and the acceptance period count from it
    stage: Stage = Stage.registered
    outcome: Outcome | None = None
    closed: bool = False
    ready: bool = False  # registration and triage have run
    events: list[TimelineEvent] = Field(default_factory=list)
    persisted: int = 0  # events saved to the database (a save sends the ones after them)
    clocks: dict[DeadlineName, ClockState] = Field(default_factory=dict)
    triage: TriageOutcome | None = None
    category: Category | None = None
    risk: Risk | None = None
    unit: str | None = None
    visits: int = 1
    nail_case: bool = False
    leader: str | None = None  # 领导包案
    mediation_eligible: bool = False
    mediation_failed: bool = False
    mediation_agreed_unfulfilled: bool = False
    mediated: bool = False
    failed_review_scored: bool = False
    extension_used: int = 0
    review_decided: bool = False
    opinion: DocumentIssued | None = None  # the handling opinion, enclosed in ladder notices
    ladder: LadderState = Field(default_factory=LadderState)
    arbitration: str | None = None  # the green channel's last step ("started", "filed"…)
    # A secret the case's own digest and arbitration track echo in their signals.
    signal_token: str = ""
    search_attributes: dict[str, str | bool] = Field(default_factory=dict)  # name -> value last upserted
    occurrences: dict[str, int] = Field(default_factory=dict)  # idempotency keys issued, per kind


CaseStart.model_rebuild()




# --------------------------------------------------------------------------------------------
# Search attributes: no PII, only what a supervisor filters on (`temporal workflow list --query`).
# --------------------------------------------------------------------------------------------
from temporalio.common import SearchAttributeKey  # noqa: E402

SA_STAGE = SearchAttributeKey.for_keyword("PetitionStage")
SA_CATEGORY = SearchAttributeKey.for_keyword("PetitionCategory")
SA_RISK = SearchAttributeKey.for_keyword("PetitionRisk")
SA_UNIT = SearchAttributeKey.for_keyword("PetitionUnit")
SA_OVERDUE = SearchAttributeKey.for_bool("PetitionOverdue")
SA_OUTCOME = SearchAttributeKey.for_keyword("PetitionOutcome")
SA_LOCALITY = SearchAttributeKey.for_keyword("PetitionLocality")  # a place name, never a person's
SA_LADDER = SearchAttributeKey.for_keyword("PetitionLadder")  # warning | supervision | accountability | ended
SEARCH_ATTRIBUTES = (SA_STAGE, SA_CATEGORY, SA_RISK, SA_UNIT, SA_OVERDUE, SA_OUTCOME, SA_LOCALITY, SA_LADDER)
__all__ = ["ValidationError"]
