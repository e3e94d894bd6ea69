"""Signed checkpoints of the audit trail: what the hash chain alone cannot show.

The chain shows that the entries present are complete and unaltered relative to each other. It
cannot show that the last entries were cut off, nor that someone with write access recomputed
every hash after an edit. A checkpoint signs the head of the chain (`seq`, `entry_hash`) with
the installation's Ed25519 key; verification then checks that the chain still holds exactly
that entry at that `seq`. Deleting entries up to or past a checkpoint, or rewriting the chain
before it, is then found and named.

Checkpoints are kept in three places, so deleting them from the database is not enough to hide
a cut: the table `audit_checkpoints`, a local append-only log in the data folder
(`integrity/checkpoints.jsonl`), and wherever anyone copied them from the public endpoint
`GET /api/v1/integrity/checkpoints` (`townhall verify --checkpoint FILE` checks those).

Making a checkpoint is not itself audited: its own audit entry would move the head again, so
every periodic run would find something new to sign.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from townhall.audit.chain import GENESIS_HASH, entry_hash
from townhall.audit.models import AuditEntry
from townhall.config import Settings
from townhall.db import after_commit, utcnow
from townhall.integrity.keys import KeyRing, SigningKey, canonical_json, load_signing_key
from townhall.integrity.models import AuditCheckpoint
from townhall.integrity.problems import Problem

log = logging.getLogger(__name__)

CHECKPOINT_TYPE = "townhall.audit-checkpoint/1"
LOG_FILE = Path("integrity") / "checkpoints.jsonl"
# Serialises checkpoint writers on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
_CHECKPOINT_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"townhall.integrity.checkpoint").digest()[:8], "big", signed=True
)
_BATCH = 5000


class CheckpointRefused(Exception):
    """The chain since the last checkpoint is broken: signing its head would bless the damage."""


def canonical_at(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def checkpoint_document(*, seq: int, entry_hash: str, at: datetime, prev: str) -> dict[str, Any]:
    """What is signed and hashed (docs/integrity.md, "Audit checkpoints")."""
    return {
        "type": CHECKPOINT_TYPE,
        "seq": seq,
        "entry_hash": entry_hash,
        "at": canonical_at(at),
        "prev": prev,
    }


def document_of(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return checkpoint_document(
        seq=checkpoint.seq,
        entry_hash=checkpoint.entry_hash,
        at=checkpoint.at,
        prev=checkpoint.prev,
    )


def hash_document(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document)).hexdigest()


def log_path(settings: Settings) -> Path:
    return (settings.data_dir / LOG_FILE).resolve()


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))


def list_checkpoints(
    session: Session, *, limit: int = 100, before_id: int | None = None
) -> list[AuditCheckpoint]:
    """Newest first."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditCheckpoint.id < before_id)
    return list(session.scalars(query))


def create_checkpoint(
    session: Session, *, settings: Settings, key: SigningKey | None = None
) -> AuditCheckpoint | None:
    """Sign the chain's head in the caller's transaction; the log line is written after commit.

    Returns None when there is nothing new to sign (an empty trail, or a head already
    checkpointed): idempotent, so a job retried or run on two nodes at once makes one
    checkpoint. Raises CheckpointRefused when the entries since the last checkpoint do not
    chain (the damage must be investigated, not signed), SigningKeyError when the key cannot
    be loaded.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHECKPOINT_LOCK_KEY})
    head = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    if head is None:
        return None
    last = latest_checkpoint(session)
    if last is not None and last.seq >= head.seq:
        return None
    _check_segment(session, last)
    key = key or load_signing_key(settings)
    document = checkpoint_document(
        seq=head.seq,
        entry_hash=head.entry_hash,
        at=utcnow(),
        prev=last.checkpoint_hash if last else GENESIS_HASH,
    )
    checkpoint = AuditCheckpoint(
        seq=document["seq"],
        entry_hash=document["entry_hash"],
        at=datetime.fromisoformat(document["at"]),
        prev=document["prev"],
        checkpoint_hash=hash_document(document),
        signature=key.sign(document),
    )
    session.add(checkpoint)
    session.flush()
    line = exported(checkpoint)
    after_commit(session, lambda: append_to_log(settings, line))
    return checkpoint


def exported(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    """The portable form: what the API serves, the log keeps and `--checkpoint FILE` reads."""
    return {
        "checkpoint": document_of(checkpoint),
        "checkpoint_hash": checkpoint.checkpoint_hash,
        "signature": checkpoint.signature,
    }


def append_to_log(settings: Settings, line: dict[str, Any]) -> None:
    """Append one checkpoint to the local log (one JSON object per line, fsynced)."""
    path = log_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        # The database copy is the record; the log is a second witness. Say so loudly.
        log.exception("could not append checkpoint to %s", path)


def read_log(settings: Settings) -> list[dict[str, Any]]:
    path = log_path(settings)
    if not path.is_file():
        return []
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            lines.append({"_unreadable": number})
    return lines


def _check_segment(session: Session, last: AuditCheckpoint | None) -> None:
    """The entries after the last checkpoint must chain from it, one by one."""
    expected_seq = (last.seq + 1) if last else 1
    prev = last.entry_hash if last else GENESIS_HASH
    if last is not None:
        anchor = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == last.seq))
        if anchor != last.entry_hash:
            raise CheckpointRefused(
                f"the audit trail no longer holds entry {last.seq} as checkpoint {last.id} "
                "signed it; run `townhall verify`"
            )
    while True:
        batch = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq >= expected_seq)
            .order_by(AuditEntry.seq)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        for entry in batch:
            if (
                entry.seq != expected_seq
                or entry.prev_hash != prev
                or _rehash(entry) != (entry.entry_hash)
            ):
                raise CheckpointRefused(
                    f"audit entry seq {entry.seq} does not chain; run `townhall verify`"
                )
            prev = entry.entry_hash
            expected_seq += 1


def _rehash(entry: AuditEntry) -> str:
    return entry_hash(
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


# Verification ------------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    checked: int
    problems: list[Problem]


def verify_checkpoints(
    session: Session,
    ring: KeyRing,
    *,
    settings: Settings,
    external: Iterable[dict[str, Any]] = (),
) -> CheckpointReport:
    """Check every stored checkpoint, the local log and any `external` exported checkpoints.

    For each: the signature is by a trusted key, the stored hash matches its fields, it links
    to the checkpoint before it, and the audit trail still holds the signed entry at its seq.
    """
    problems: list[Problem] = []
    checked = 0
    prev = GENESIS_HASH
    last_seq = 0
    known: set[str] = set()
    for checkpoint in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        checked += 1
        subject = f"checkpoint {checkpoint.id} (seq {checkpoint.seq})"
        document = document_of(checkpoint)
        known.add(checkpoint.checkpoint_hash)
        if hash_document(document) != checkpoint.checkpoint_hash:
            problems.append(
                Problem("checkpoint", subject, "its fields were changed after it was signed")
            )
        reason = ring.verify_document(document, checkpoint.signature)
        if reason:
            problems.append(Problem("checkpoint", subject, f"not trustworthy: {reason}"))
        if checkpoint.prev != prev:
            problems.append(
                Problem(
                    "checkpoint",
                    subject,
                    "does not link to the checkpoint before it: a checkpoint was removed or "
                    "reordered",
                )
            )
        if checkpoint.seq < last_seq:
            problems.append(Problem("checkpoint", subject, "goes backwards in the audit trail"))
        problems.extend(_chain_holds(session, subject, checkpoint.seq, checkpoint.entry_hash))
        prev = checkpoint.checkpoint_hash
        last_seq = max(last_seq, checkpoint.seq)
    for number, line in enumerate(read_log(settings), start=1):
        checked += 1
        subject = f"logged checkpoint (line {number} of {log_path(settings)})"
        found = _check_exported(session, ring, line, subject)
        problems.extend(found)
        if not found and line.get("checkpoint_hash") not in known:
            problems.append(
                Problem(
                    "checkpoint",
                    subject,
                    "is missing from the database: checkpoints were deleted there",
                )
            )
    for number, line in enumerate(external, start=1):
        checked += 1
        problems.extend(_check_exported(session, ring, line, f"given checkpoint {number}"))
    return CheckpointReport(checked, problems)


def _check_exported(
    session: Session, ring: KeyRing, line: dict[str, Any], subject: str
) -> list[Problem]:
    document = line.get("checkpoint")
    if not isinstance(document, dict) or document.get("type") != CHECKPOINT_TYPE:
        return [Problem("checkpoint", subject, "is not a Townhall audit checkpoint")]
    reason = ring.verify_document(document, line.get("signature"))
    if reason:
        return [Problem("checkpoint", subject, f"not trustworthy: {reason}")]
    seq, signed_hash = document.get("seq"), document.get("entry_hash")
    if not isinstance(seq, int) or not isinstance(signed_hash, str):
        return [Problem("checkpoint", subject, "has no seq or entry_hash")]
    return _chain_holds(session, f"{subject} (seq {seq})", seq, signed_hash)


def _chain_holds(session: Session, subject: str, seq: int, signed_hash: str) -> list[Problem]:
    stored = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))
    if stored is None:
        return [
            Problem(
                "checkpoint",
                subject,
                f"the audit trail has no entry {seq} any more: entries up to the signed head "
                "were deleted (the tail was cut)",
            )
        ]
    if stored != signed_hash:
        return [
            Problem(
                "checkpoint",
                subject,
                f"audit entry {seq} is not the one that was signed: the trail was rewritten "
                "up to it",
            )
        ]
    return []


def resign_checkpoints(session: Session, key: SigningKey) -> int:
    """Sign every checkpoint again with `key` (after a key rotation); returns how many."""
    count = 0
    for checkpoint in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        checkpoint.signature = key.sign(document_of(checkpoint))
        count += 1
    return count


def rewrite_log(settings: Settings, session: Session) -> None:
    """Replace the local log with the database's checkpoints (after re-signing them)."""
    path = log_path(settings)
    lines = [
        json.dumps(exported(c), sort_keys=True, ensure_ascii=False)
        for c in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    with contextlib.suppress(FileNotFoundError):
        os.replace(temporary, path)
