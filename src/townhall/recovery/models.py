"""Lockdowns: when the portal was read-only, who said so, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from townhall.db import Base, UTCDateTime, utcnow


class Lockdown(Base):
    """One period of read-only mode. The current lockdown is the row with no `ended_at`.

    Kept in the database (not in a node's memory) so every node sees it within
    `LOCKDOWN_CACHE_SECONDS`; past rows are the incident's timeline.
    """

    __tablename__ = "lockdowns"

    id: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_by: Mapped[str] = mapped_column(String(400))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    ended_by: Mapped[str] = mapped_column(String(400), default="")
    tokens_revoked: Mapped[int] = mapped_column(Integer, default=0)
    sessions_ended: Mapped[int] = mapped_column(Integer, default=0)
