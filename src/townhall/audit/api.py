"""Reading and verifying the audit trail over the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.audit import queries
from townhall.deps import DbSession
from townhall.schemas import MAX_ID, PublicOutput

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
AuditReader = Annotated[Actor, Depends(requires("audit:read"))]


class AuditEntryPublic(PublicOutput):
    seq: int
    at: datetime
    actor_id: int | None
    actor: str
    action: str
    object_type: str
    object_id: str
    changes: dict[str, Any]
    request_id: str | None
    prev_hash: str
    entry_hash: str


class ChainReportPublic(PublicOutput):
    ok: bool
    entries_checked: int
    first_bad_seq: int | None
    problem: str | None


@router.get("", response_model=list[AuditEntryPublic], summary="Recent audit entries")
def list_audit_entries(
    db: DbSession,
    _actor: AuditReader,
    object_type: Annotated[str | None, Query(max_length=60)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryPublic]:
    entries = queries.list_entries(
        db, object_type=object_type, object_id=object_id, limit=limit, before_seq=before_seq
    )
    return [AuditEntryPublic.model_validate(e) for e in entries]


@router.get("/verify", response_model=ChainReportPublic, summary="Verify the hash chain")
def verify_audit_chain(db: DbSession, _actor: AuditReader) -> ChainReportPublic:
    report = queries.verify_chain(db)
    return ChainReportPublic(
        ok=report.ok,
        entries_checked=report.entries_checked,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
    )
