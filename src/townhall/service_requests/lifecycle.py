"""The request lifecycle: sub-statuses, the transitions allowed between them, and SLA clocks.

Open311 knows only `open` and `closed`; staff need more. Each sub-status maps to one Open311
status. Closed requests can only be reopened (to `triaged`). Waiting for the resident stops the
SLA clock: the time spent waiting is added to `expected_at` when work resumes, so a resident who
takes a week to answer does not make the office late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

SUB_STATUSES: Final[dict[str, str]] = {
    # sub-status: label shown to residents and staff
    "received": "Received",
    "triaged": "Triaged",
    "assigned": "Assigned",
    "in_progress": "In progress",
    "waiting_for_resident": "Waiting for your reply",
    "resolved": "Resolved",
    "closed_not_fixed": "Closed without a fix",
    "duplicate": "Duplicate",
    "rejected": "Rejected",
}
OPEN_SUB_STATUSES: Final = frozenset(
    {"received", "triaged", "assigned", "in_progress", "waiting_for_resident"}
)
CLOSED_SUB_STATUSES: Final = frozenset(SUB_STATUSES) - OPEN_SUB_STATUSES
_CLOSINGS: Final = frozenset({"resolved", "closed_not_fixed", "duplicate", "rejected"})

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "received": frozenset({"triaged", "assigned", "in_progress", "waiting_for_resident"})
    | _CLOSINGS,
    "triaged": frozenset({"assigned", "in_progress", "waiting_for_resident"}) | _CLOSINGS,
    "assigned": frozenset({"triaged", "in_progress", "waiting_for_resident"}) | _CLOSINGS,
    # Work has started: it is no longer a question of rejecting the request.
    "in_progress": frozenset({"assigned", "waiting_for_resident"}) | (_CLOSINGS - {"rejected"}),
    "waiting_for_resident": frozenset({"triaged", "assigned", "in_progress"}) | _CLOSINGS,
    # Closed requests may only be reopened.
    **{closed: frozenset({"triaged"}) for closed in _CLOSINGS},
}

PRIORITIES: Final[dict[int, str]] = {1: "Urgent", 2: "High", 3: "Normal", 4: "Low"}

# Demo and legacy statuses (the demo city's received/acknowledged/in_progress/closed) mapped to
# sub-statuses; closed ones are refined by their resolution.
RESOLUTION_SUB_STATUS: Final[dict[str, str]] = {
    "resolved": "resolved",
    "duplicate": "duplicate",
    "no_action_needed": "closed_not_fixed",
    "referred": "closed_not_fixed",
    "rejected": "rejected",
}


def open311_status(sub_status: str) -> str:
    """`open` or `closed`. Raises KeyError for an unknown sub-status."""
    if sub_status not in SUB_STATUSES:
        raise KeyError(sub_status)
    return "open" if sub_status in OPEN_SUB_STATUSES else "closed"


def allowed_transitions(sub_status: str) -> frozenset[str]:
    return TRANSITIONS.get(sub_status, frozenset())


def can_transition(from_sub_status: str, to_sub_status: str) -> bool:
    return to_sub_status in allowed_transitions(from_sub_status)


@dataclass(frozen=True)
class SlaState:
    """Where a request stands against its expected time.

    `remaining` is negative once late; `paused` while waiting for the resident (the clock is
    frozen at the moment the pause began). `risk` orders the work queue: late first, then the
    share of the allowed time already used.
    """

    expected_at: datetime | None
    remaining: timedelta | None
    paused: bool
    late: bool
    risk: float


def sla_state(
    *,
    requested_at: datetime,
    expected_at: datetime | None,
    sla_paused_at: datetime | None,
    closed_at: datetime | None,
    now: datetime,
) -> SlaState:
    if expected_at is None:
        return SlaState(None, None, sla_paused_at is not None, False, 0.0)
    clock = closed_at or sla_paused_at or now
    remaining = expected_at - clock
    allowed = max((expected_at - requested_at).total_seconds(), 1.0)
    used = (clock - requested_at).total_seconds()
    return SlaState(
        expected_at=expected_at,
        remaining=remaining,
        paused=sla_paused_at is not None,
        late=remaining.total_seconds() < 0,
        risk=used / allowed,
    )
