"""Every `workflow.patched(...)` id of the petition workflow, oldest first.

A patch gates a change in the commands a case emits: a case whose history was written before the
change replays on the old path, a new one takes the new path. Never rename or reuse an id; remove
one only when no case started before it can still be open (docs/architecture.md, "Changing
workflow code safely"; tests/test_replay.py replays the recorded histories of each generation).
"""

from __future__ import annotations

from typing import Final

# Search attributes are upserted only when one changed since the last upsert (tests/histories/*.v1).
UPSERT_CHANGED: Final = "upsert-changed-search-attributes"
# The digest and the arbitration track echo a token the case gave them (tests/histories/*.v2).
SIGNAL_TOKENS: Final = "engine-signal-tokens"
# New search attributes (PetitionLocality, PetitionLadder) and the ones a later action changes
# (PetitionRisk on flag_major_risk): more upserts.
MORE_SEARCH_ATTRIBUTES: Final = "more-search-attributes"
# Immediate notices (the high-risk SMS and its fallback) are scheduled with URGENT_PRIORITY, so that
# under a backlog (a deadline surge) they are taken before every default-priority activity.
URGENT_NOTICE: Final = "urgent-notice-queue"
# save_case finding no row for the case fails for good (CaseNotRegistered) instead of being retried
# forever; the case registers itself again and saves once more.
REREGISTER_LOST_CASE: Final = "reregister-lost-case"
# A long life (a nail case's hundreds of visits) continues as new when the server suggests it or past
# CaseStart.continue_as_new_after events, carrying its whole state (CaseStart.carried).
CONTINUE_AS_NEW: Final = "continue-as-new"
# A closing case waits for its arbitration track (a child workflow) to end before it completes.
AWAIT_ARBITRATION_TRACK: Final = "await-arbitration-track"
