"""The lockdown switch over HTTP: anyone may read it (the banner says as much), administrators
turn it on and off."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from townhall.accounts.auth import PublicActor, requires
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.recovery import lockdown
from townhall.recovery.middleware import cache_of
from townhall.schemas import PublicOutput, StrictInput

router = APIRouter(prefix="/api/v1", tags=["system"])
Admin = Annotated[Actor, Depends(requires("system:admin"))]


class LockdownPublic(PublicOutput):
    active: bool
    message: str
    since: datetime | None


class LockdownChange(StrictInput):
    active: bool
    message: Annotated[str, Field(max_length=lockdown.MAX_MESSAGE_LENGTH)] = ""
    revoke_tokens: bool = False
    end_sessions: bool = False


def _public(state: lockdown.LockdownState) -> LockdownPublic:
    notice = state.notice
    return LockdownPublic(
        active=state.active, message=notice["message"] if notice else "", since=state.since
    )


@router.get("/lockdown", response_model=LockdownPublic, summary="Is the portal read-only?")
def read_lockdown(db: DbSession, _actor: PublicActor) -> LockdownPublic:
    return _public(lockdown.state_of(lockdown.current_lockdown(db)))


@router.put(
    "/lockdown",
    response_model=LockdownPublic,
    summary="Turn read-only mode on or off",
    description="`active: true` makes the portal read-only for everyone but administrators "
    "(writes get `503 read_only_mode`) and shows `message` on every page; `revoke_tokens` "
    "revokes every API token (this one too) and `end_sessions` ends every web session. Every "
    "node applies it within a few seconds. Audited.",
)
def change_lockdown(
    body: LockdownChange, request: Request, db: DbSession, actor: Admin
) -> LockdownPublic:
    cache = cache_of(request.app)
    if body.active:
        row = lockdown.start_lockdown(
            db,
            actor=actor,
            message=body.message,
            revoke_tokens=body.revoke_tokens,
            end_sessions=body.end_sessions,
            cache=cache,
        )
        return _public(lockdown.state_of(row))
    lockdown.end_lockdown(db, actor=actor, cache=cache)
    return _public(lockdown.OPEN)
