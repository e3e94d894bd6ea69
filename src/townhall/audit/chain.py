"""The hash chain itself: how an entry's hash is computed. Documented in docs/audit.md so anyone
can re-implement `townhall verify`."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_entry(
    *,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    changes: dict[str, Any],
    request_id: str | None,
    prev_hash: str,
) -> bytes:
    document = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "changes": changes,
        "request_id": request_id,
        "prev_hash": prev_hash,
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def entry_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_entry(**fields)).hexdigest()
