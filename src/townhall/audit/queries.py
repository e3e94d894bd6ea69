"""Reading and verifying the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.audit.chain import GENESIS_HASH, entry_hash
from townhall.audit.models import AuditEntry


@dataclass(frozen=True)
class ChainReport:
    entries_checked: int
    first_bad_seq: int | None = None
    first_bad_id: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(
    session: Session,
    *,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
) -> ChainReport:
    """Walk the chain in order and report the first entry that is missing, moved or altered."""
    total = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    last_seq = 0
    while True:
        batch = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq > last_seq)
            .order_by(AuditEntry.seq)
            .limit(batch_size)
        ).all()
        if not batch:
            break
        for entry in batch:
            problem = _entry_problem(entry, expected_seq, prev_hash)
            if problem:
                return ChainReport(checked, entry.seq, entry.id, problem)
            prev_hash = entry.entry_hash
            expected_seq += 1
            checked += 1
        last_seq = batch[-1].seq
        if progress:
            progress(checked, total)
    return ChainReport(checked)


def _entry_problem(entry: AuditEntry, expected_seq: int, prev_hash: str) -> str | None:
    if entry.seq != expected_seq:
        return (
            f"entry seq {entry.seq} (id {entry.id}) found where seq {expected_seq} was expected: "
            f"entries {expected_seq}..{entry.seq - 1} are missing or were moved"
        )
    if entry.prev_hash != prev_hash:
        return (
            f"entry seq {entry.seq} (id {entry.id}) does not link to the entry before it: "
            "an entry before it was changed, removed or reordered"
        )
    recomputed = entry_hash(
        seq=entry.seq,
        at=entry.at,
        actor_id=entry.actor_id,
        actor=entry.actor,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        changes=entry.changes,
        request_id=entry.request_id,
        prev_hash=entry.prev_hash,
    )
    if recomputed != entry.entry_hash:
        return f"entry seq {entry.seq} (id {entry.id}) was altered: its hash does not match"
    return None


def list_entries(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if before_seq:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query))
