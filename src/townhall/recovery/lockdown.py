"""Lockdown: the portal goes read-only for everyone but administrators, with a banner.

The switch is a row in `lockdowns` (so every node sees it); each process reads it at most every
`LOCKDOWN_CACHE_SECONDS` (`LockdownCache`), and `LockdownMiddleware` (middleware.py) refuses
writes with `503 read_only_mode`. Turning it on can also revoke every API token and end every
web session, the first moves of an incident response. Every change is audited.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from townhall.accounts import actions as accounts_actions
from townhall.accounts import queries as accounts_queries
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import after_commit, unit_of_work, utcnow
from townhall.recovery.models import Lockdown

log = logging.getLogger(__name__)

LOCKDOWN_CACHE_SECONDS = 5.0
"""How stale a node's view of the switch may be: the longest a write can still slip through on
another node after `townhall lockdown on` returns."""
DEFAULT_MESSAGE = (
    "This portal is temporarily read-only while the office deals with an incident. You can "
    "still read and download everything; please try changes again later."
)
MAX_MESSAGE_LENGTH = 1000


@dataclass(frozen=True)
class LockdownState:
    active: bool
    message: str = ""
    since: datetime | None = None

    @property
    def notice(self) -> dict[str, str] | None:
        """What the web shell shows as its banner (`request.state.site_notice`)."""
        if not self.active:
            return None
        return {"message": self.message or DEFAULT_MESSAGE, "level": "danger"}


OPEN = LockdownState(active=False)


def current_lockdown(session: Session) -> Lockdown | None:
    return session.scalar(
        select(Lockdown).where(Lockdown.ended_at.is_(None)).order_by(Lockdown.id.desc()).limit(1)
    )


def lockdown_history(session: Session, *, limit: int = 20) -> list[Lockdown]:
    return list(session.scalars(select(Lockdown).order_by(Lockdown.id.desc()).limit(limit)))


def state_of(lockdown: Lockdown | None) -> LockdownState:
    if lockdown is None:
        return OPEN
    return LockdownState(True, lockdown.message, lockdown.started_at)


def start_lockdown(
    session: Session,
    *,
    actor: Actor,
    message: str = "",
    revoke_tokens: bool = False,
    end_sessions: bool = False,
    cache: LockdownCache | None = None,
) -> Lockdown:
    """Turn read-only mode on (or change its message when it is already on).

    `revoke_tokens` revokes every API token (administrators' too: make new ones from the
    shell with `townhall tokens create`); `end_sessions` ends every web session. Raises 401/403
    without `system:admin`. Idempotent apart from the audit entries it adds.
    """
    actor.require("system:admin")
    message = message.strip()[:MAX_MESSAGE_LENGTH]
    lockdown = current_lockdown(session)
    started = lockdown is None
    if lockdown is None:
        lockdown = Lockdown(message=message, started_by=actor.label, started_at=utcnow())
        session.add(lockdown)
        session.flush()
    elif message:
        lockdown.message = message
    tokens = _revoke_all_tokens(session, actor) if revoke_tokens else 0
    sessions = (
        accounts_actions.end_all_sessions(session, actor=actor, reason="lockdown")
        if end_sessions
        else 0
    )
    lockdown.tokens_revoked += tokens
    lockdown.sessions_ended += sessions
    record(
        session,
        actor=actor,
        action="lockdown.start" if started else "lockdown.update",
        object_type="lockdown",
        object_id=lockdown.id,
        changes={
            "message": lockdown.message,
            "tokens_revoked": tokens,
            "sessions_ended": sessions,
        },
    )
    if cache is not None:
        after_commit(session, cache.invalidate)
    return lockdown


def end_lockdown(
    session: Session, *, actor: Actor, cache: LockdownCache | None = None
) -> Lockdown | None:
    """Turn read-only mode off; returns the lockdown that ended, or None if there was none
    (idempotent: nothing is recorded then). Raises 401/403 without `system:admin`."""
    actor.require("system:admin")
    lockdown = current_lockdown(session)
    if lockdown is None:
        return None
    lockdown.ended_at = utcnow()
    lockdown.ended_by = actor.label
    record(
        session,
        actor=actor,
        action="lockdown.end",
        object_type="lockdown",
        object_id=lockdown.id,
        changes={"started_at": lockdown.started_at.isoformat()},
    )
    if cache is not None:
        after_commit(session, cache.invalidate)
    return lockdown


def _revoke_all_tokens(session: Session, actor: Actor) -> int:
    revoked = 0
    for token in accounts_queries.list_tokens(session):
        if token.revoked_at is None:
            accounts_actions.revoke_api_token(session, actor=actor, token_id=token.id)
            revoked += 1
    return revoked


class LockdownCache:
    """One process's view of the switch, read from the database at most every `ttl` seconds.

    A failed read (database down, table not migrated yet) keeps the last known state and is
    retried on the next request after `ttl`: a lockdown never lifts because a read failed.

    Read ahead: once half the `ttl` has passed, the next request starts one background read
    and is answered from the cached state, which is still within `ttl`. Under steady traffic
    no request waits for the switch, and none is answered from a view older than `ttl`; only
    a request after a quiet spell longer than `ttl` (or after `invalidate`) waits for a read.
    Measured under load: when every request in flight waited on the expiry for a thread of
    the pool, the status lookups' p99 went from tens of milliseconds to over a second.
    """

    def __init__(self, session_factory: sessionmaker[Session], ttl: float | None = None) -> None:
        self._session_factory = session_factory
        self._ttl = LOCKDOWN_CACHE_SECONDS if ttl is None else ttl
        self._state = OPEN
        self._expires = 0.0
        self._read_ahead_at = 0.0
        self._reading_ahead = False
        self._generation = 0  # bumped by `invalidate`: a read begun before it counts for nothing
        self._lock = threading.Lock()

    def fresh(self) -> LockdownState | None:
        """The cached state if still fresh, else None (then call `refresh`, off the loop).

        Past half the `ttl`, also starts one background read (a daemon thread), so that
        under steady traffic the state is renewed before it expires."""
        now = time.monotonic()
        if now >= self._expires:
            return None
        held = self._state  # taken before the read begins, which may land at once
        if now >= self._read_ahead_at and not self._reading_ahead:
            self._reading_ahead = True
            threading.Thread(target=self._read_ahead, daemon=True).start()
        return held

    def refresh(self) -> LockdownState:
        with self._lock:
            if time.monotonic() < self._expires:
                return self._state
            return self._read()

    def _read_ahead(self) -> None:
        try:
            with self._lock:
                self._read()
        finally:
            self._reading_ahead = False

    def _read(self) -> LockdownState:
        """Read the switch (the caller holds the lock)."""
        generation = self._generation
        try:
            with unit_of_work(self._session_factory) as session:
                state = state_of(current_lockdown(session))
        except SQLAlchemyError:
            log.warning("could not read the lockdown switch; keeping the last known state")
            state = self._state
        if generation != self._generation:
            return state  # invalidated meanwhile: this read may predate the change
        self._state = state
        now = time.monotonic()
        self._read_ahead_at = now + self._ttl / 2
        self._expires = now + self._ttl
        return self._state

    def invalidate(self) -> None:
        self._generation += 1
        self._expires = 0.0
