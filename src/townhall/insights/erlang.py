"""Erlang C: how many agents (desks) a queue needs to meet a service level.

Pure functions, no I/O. The model: visitors arrive at random (Poisson) at `arrivals_per_hour`,
each takes on average `handling_seconds` at a desk (exponential), `agents` identical desks
serve one queue, nobody gives up. The standard reference is any call-centre planning text; the
worked example in the tests (10 erlangs, 80% within 20 s -> 14 agents) is the classic one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 1000


def traffic_erlangs(arrivals_per_hour: float, handling_seconds: float) -> float:
    """Offered load A: the average number of desks busy if nobody ever waited."""
    return arrivals_per_hour * handling_seconds / 3600.0


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that an arriving visitor has to wait, with `agents` desks and `traffic`
    erlangs. 1.0 when the desks cannot keep up (agents <= traffic); 0.0 with no traffic.

    Computed through the Erlang B recursion, which stays stable for hundreds of agents where
    the textbook factorial formula overflows."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = traffic * blocking / (k + traffic * blocking)
    return agents * blocking / (agents - traffic * (1 - blocking))


def service_level(
    agents: int, traffic: float, handling_seconds: float, target_seconds: float
) -> float:
    """Share of visitors who wait no longer than `target_seconds`."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    waiting = erlang_c(agents, traffic)
    return 1.0 - waiting * math.exp(-(agents - traffic) * target_seconds / handling_seconds)


def average_wait_seconds(agents: int, traffic: float, handling_seconds: float) -> float:
    """Average speed of answer: the mean wait over all visitors (infinite when overloaded)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * handling_seconds / (agents - traffic)


@dataclass(frozen=True)
class StaffingNeed:
    agents: int
    traffic: float
    service_level: float
    wait_probability: float
    average_wait_seconds: float
    occupancy: float


def agents_needed(
    arrivals_per_hour: float,
    handling_seconds: float,
    *,
    target_seconds: float,
    target_level: float,
) -> StaffingNeed:
    """The fewest desks that serve `target_level` of visitors within `target_seconds`.

    No arrivals need no desk. Raises ValueError for a non-positive handling time or a target
    level outside (0, 1)."""
    if handling_seconds <= 0:
        raise ValueError("handling_seconds must be positive")
    if not 0 < target_level < 1:
        raise ValueError("target_level must be between 0 and 1")
    traffic = traffic_erlangs(max(arrivals_per_hour, 0.0), handling_seconds)
    if traffic <= 0:
        return StaffingNeed(0, 0.0, 1.0, 0.0, 0.0, 0.0)
    agents = max(1, math.floor(traffic) + 1)
    while agents < MAX_AGENTS:
        level = service_level(agents, traffic, handling_seconds, target_seconds)
        if level >= target_level:
            break
        agents += 1
    return StaffingNeed(
        agents=agents,
        traffic=traffic,
        service_level=service_level(agents, traffic, handling_seconds, target_seconds),
        wait_probability=erlang_c(agents, traffic),
        average_wait_seconds=average_wait_seconds(agents, traffic, handling_seconds),
        occupancy=traffic / agents,
    )
