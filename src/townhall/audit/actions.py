"""Appending to the audit trail. Called by every other slice's actions, inside their transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.audit.chain import GENESIS_HASH, entry_hash
from townhall.audit.models import AuditEntry
from townhall.db import utcnow
from townhall.request_context import current_request_id

# Any constant works; it names the lock that serialises appends on PostgreSQL.
_AUDIT_LOCK_KEY = 0x70A0D17


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction; it commits or rolls back with the change.

    Appends are serialised (an advisory lock on PostgreSQL, BEGIN IMMEDIATE on SQLite) so two
    writers can never fork the chain.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK_KEY})
    tail = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq = (tail.seq + 1) if tail else 1
    prev_hash = tail.entry_hash if tail else GENESIS_HASH
    # Round-trip through JSON so what is hashed is exactly what the database gives back.
    clean_changes = json.loads(json.dumps(changes or {}, default=str))
    fields = {
        "seq": seq,
        "at": utcnow(),
        "actor_id": actor.user_id,
        "actor": actor.label,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "changes": clean_changes,
        "request_id": current_request_id(),
        "prev_hash": prev_hash,
    }
    entry = AuditEntry(**fields, entry_hash=entry_hash(**fields))
    session.add(entry)
    session.flush()
    return entry
