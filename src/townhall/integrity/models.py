"""Signed checkpoints of the audit trail's head."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from townhall.db import Base, UTCDateTime


class AuditCheckpoint(Base):
    """`{seq, entry_hash, at, prev}` of the chain's head at one moment, signed with Ed25519.

    Checkpoints chain too: `prev` is the `checkpoint_hash` of the checkpoint before (64 zeros
    for the first), so a checkpoint removed from the middle is seen. The signature covers the
    canonical JSON of the four fields (docs/integrity.md), not the key id, so re-signing after
    a key rotation leaves `checkpoint_hash` and the chain of checkpoints unchanged.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    prev: Mapped[str] = mapped_column(String(64))
    checkpoint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(200))
