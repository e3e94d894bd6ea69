"""Announcements: an administrator broadcasts a short notice to every live page.

The notice goes out on the public channel `public.announcements` (every node's subscribers
hear it through the event bus) once the audit entry that records it has committed. Nothing
else is stored: an announcement is a live notice, not content.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import Field
from sqlalchemy.orm import Session

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.deps import DbSession
from townhall.events import EventBus, publish_after_commit
from townhall.schemas import PublicOutput, StrictInput

ANNOUNCEMENTS_CHANNEL = "public.announcements"
ANNOUNCEMENT_EVENT = "announcement"
MAX_MESSAGE_LENGTH = 1000


class AnnouncementCreate(StrictInput):
    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)]


class AnnouncementPublic(PublicOutput):
    ok: bool = True
    channel: str
    event: str
    message: str


def announce(session: Session, *, actor: Actor, bus: EventBus | None, message: str) -> None:
    """Record the announcement in the audit trail and publish it after commit.

    Raises 401/403 without `system:admin`. Not idempotent: each call is one more notice.
    """
    actor.require("system:admin")
    record(
        session,
        actor=actor,
        action="announcement.publish",
        object_type="channel",
        object_id=ANNOUNCEMENTS_CHANNEL,
        changes={"message": message},
    )
    # The payload is public: the message only, never who sent it.
    publish_after_commit(
        session, bus, ANNOUNCEMENTS_CHANNEL, ANNOUNCEMENT_EVENT, {"message": message}
    )


router = APIRouter(prefix="/api/v1", tags=["events"])


@router.post(
    "/events/announce",
    response_model=AnnouncementPublic,
    status_code=202,
    summary="Broadcast a notice to every live page",
)
def post_announcement(
    body: AnnouncementCreate,
    request: Request,
    db: DbSession,
    actor: Annotated[Actor, Depends(requires("system:admin"))],
) -> AnnouncementPublic:
    """Pages following `public.announcements` get an `announcement` event with
    `{"message": ...}`. 202: the event leaves once the audit entry commits."""
    announce(db, actor=actor, bus=request.app.state.runtime.events, message=body.message)
    return AnnouncementPublic(
        channel=ANNOUNCEMENTS_CHANNEL, event=ANNOUNCEMENT_EVENT, message=body.message
    )


def register(app: FastAPI) -> None:
    app.include_router(router)
