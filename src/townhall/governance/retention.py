"""Retention: how long each kind of record keeps its personal data, applied by a scheduled job.

Each rule below is built in (what "anonymise" means for a record type is code, reviewed like
code); a `RetentionPolicy` row changes only its delay or switches it off. `apply_retention`
runs every enabled rule with bulk SQL (no per-row Python), records a `RetentionRun` with what
each rule matched and changed, and an audit entry. It is idempotent: a second run the same day
finds nothing left to change. With `dry_run`, it counts and changes nothing.

Retention reaches into other slices' tables (service requests, accounts). That is on purpose
and the one exception to "slices talk through actions": a data protection officer should be
able to read every retention rule in this one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, Numeric, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from townhall.accounts.models import LoginAttempt, WebSession
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.governance.models import DatasetUsage, RetentionPolicy, RetentionRun
from townhall.service_requests.models import (
    RequestAttachment,
    RequestMessage,
    RequestUpdate,
    ServiceRequest,
)

# Three decimals of a degree: about 110 m north-south, enough for area statistics, too coarse
# to point at one house.
ANONYMISED_COORDINATE_DECIMALS = 3

Apply = Callable[[Session, datetime, bool], tuple[int, dict[str, int]]]
"""`apply(session, cutoff, dry_run)` -> (records matched, {table: rows changed})."""


@dataclass(frozen=True)
class RetentionRule:
    record_type: str
    description: str
    action: str  # anonymise | delete
    fields: tuple[str, ...]
    default_days: int
    minimum_days: int
    apply: Apply


def _closed_before(cutoff: datetime) -> Any:
    return and_(ServiceRequest.status == "closed", ServiceRequest.closed_at < cutoff)


def _request_personal_fields(
    session: Session, cutoff: datetime, dry_run: bool
) -> tuple[int, dict[str, int]]:
    still_personal = or_(
        ServiceRequest.resident_name.is_not(None),
        ServiceRequest.resident_email.is_not(None),
        ServiceRequest.resident_phone.is_not(None),
        ServiceRequest.resident_user_id.is_not(None),
        ServiceRequest.resident_key_hash.is_not(None),
        ServiceRequest.device_id.is_not(None),
        ServiceRequest.account_id.is_not(None),
        ServiceRequest.client_hash.is_not(None),
        ServiceRequest.address.is_not(None),
        ServiceRequest.address_id.is_not(None),
        ServiceRequest.media_url.is_not(None),
        ServiceRequest.description != ServiceRequest.public_description,
    )
    where = and_(_closed_before(cutoff), still_personal)
    matched = session.scalar(select(func.count()).select_from(ServiceRequest).where(where)) or 0
    notes_where = and_(
        RequestUpdate.request_id.in_(select(ServiceRequest.id).where(_closed_before(cutoff))),
        RequestUpdate.internal_note.is_not(None),
    )
    notes = session.scalar(select(func.count()).select_from(RequestUpdate).where(notes_where)) or 0
    if dry_run or not (matched or notes):
        return matched, {"service_requests": matched, "request_updates": notes}
    rounded = {
        column: cast(func.round(cast(getattr(ServiceRequest, column), Numeric), 3), Float)
        for column in ("lat", "long")
    }
    changed = session.execute(
        update(ServiceRequest)
        .where(where)
        .values(
            resident_name=None,
            resident_email=None,
            resident_phone=None,
            resident_user_id=None,
            resident_key_hash=None,
            device_id=None,
            account_id=None,
            client_hash=None,
            address=None,
            address_id=None,
            media_url=None,
            attribute_values={},
            # The exact words go; the copy scrubbed at submission stays.
            description=ServiceRequest.public_description,
            **rounded,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    cleared = session.execute(
        update(RequestUpdate)
        .where(notes_where)
        .values(internal_note=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return matched, {"service_requests": changed or 0, "request_updates": cleared or 0}


def _delete_rows(model: Any, where: Callable[[datetime], Any], table: str) -> Apply:
    def apply(session: Session, cutoff: datetime, dry_run: bool) -> tuple[int, dict[str, int]]:
        condition = where(cutoff)
        matched = session.scalar(select(func.count()).select_from(model).where(condition)) or 0
        if dry_run or not matched:
            return matched, {table: matched}
        deleted = session.execute(
            delete(model).where(condition).execution_options(synchronize_session=False)
        ).rowcount
        return matched, {table: deleted or 0}

    return apply


def _closed_request_ids(cutoff: datetime) -> Any:
    return select(ServiceRequest.id).where(_closed_before(cutoff))


RULES: dict[str, RetentionRule] = {
    rule.record_type: rule
    for rule in (
        RetentionRule(
            record_type="service_request.personal_fields",
            description="Closed service requests: the resident's name, email, phone, account "
            "and device ids, the exact address and words, attribute answers and staff-only "
            "notes are removed; coordinates are rounded to about 100 m. The request, its "
            "category, dates, status and scrubbed public description stay for statistics.",
            action="anonymise",
            fields=(
                "resident_name",
                "resident_email",
                "resident_phone",
                "resident_user_id",
                "resident_key_hash",
                "device_id",
                "account_id",
                "client_hash",
                "address",
                "address_id",
                "media_url",
                "attribute_values",
                "description",
                "lat",
                "long",
                "request_updates.internal_note",
            ),
            default_days=365,
            minimum_days=30,
            apply=_request_personal_fields,
        ),
        RetentionRule(
            record_type="service_request.messages",
            description="Messages between residents and staff about closed requests are deleted.",
            action="delete",
            fields=("request_messages.*",),
            default_days=365,
            minimum_days=30,
            apply=_delete_rows(
                RequestMessage,
                lambda cutoff: RequestMessage.request_id.in_(_closed_request_ids(cutoff)),
                "request_messages",
            ),
        ),
        RetentionRule(
            record_type="service_request.private_attachments",
            description="Photos and documents of closed requests that were never made public "
            "are deleted.",
            action="delete",
            fields=("request_attachments.*",),
            default_days=365,
            minimum_days=30,
            apply=_delete_rows(
                RequestAttachment,
                lambda cutoff: and_(
                    RequestAttachment.is_public.is_(False),
                    RequestAttachment.request_id.in_(_closed_request_ids(cutoff)),
                ),
                "request_attachments",
            ),
        ),
        RetentionRule(
            record_type="accounts.login_attempts",
            description="Login attempts (email and client address) are deleted.",
            action="delete",
            fields=("login_attempts.*",),
            default_days=90,
            minimum_days=1,
            apply=_delete_rows(
                LoginAttempt, lambda cutoff: LoginAttempt.at < cutoff, "login_attempts"
            ),
        ),
        RetentionRule(
            record_type="accounts.web_sessions",
            description="Ended or expired web sessions (with their browser's user agent) are "
            "deleted.",
            action="delete",
            fields=("web_sessions.*",),
            default_days=90,
            minimum_days=1,
            apply=_delete_rows(
                WebSession, lambda cutoff: WebSession.expires_at < cutoff, "web_sessions"
            ),
        ),
        RetentionRule(
            record_type="governance.dataset_usage",
            description="Per-consumer dataset read counts are deleted.",
            action="delete",
            fields=("governance_dataset_usage.*",),
            default_days=400,
            minimum_days=31,
            apply=_delete_rows(
                DatasetUsage, lambda cutoff: DatasetUsage.day < cutoff.date(), "dataset_usage"
            ),
        ),
    )
}


@dataclass(frozen=True)
class EffectivePolicy:
    rule: RetentionRule
    after_days: int
    enabled: bool
    updated_by: str | None


def policies(session: Session) -> list[EffectivePolicy]:
    """Every built-in rule with its delay and switch as configured (defaults otherwise)."""
    stored = {p.record_type: p for p in session.scalars(select(RetentionPolicy))}
    result = []
    for record_type, rule in RULES.items():
        policy = stored.get(record_type)
        result.append(
            EffectivePolicy(
                rule=rule,
                after_days=policy.after_days if policy else rule.default_days,
                enabled=policy.enabled if policy else True,
                updated_by=policy.updated_by if policy else None,
            )
        )
    return result


def apply_retention(
    session: Session, *, actor: Actor, dry_run: bool = False, now: datetime | None = None
) -> RetentionRun:
    """Apply every enabled policy; returns the run with its report. Needs `governance:manage`.

    The report lists, per policy: the cutoff, the records that matched, and rows changed per
    table (for a dry run: the rows that would change).
    """
    actor.require("governance:manage")
    now = now or utcnow()
    run = RetentionRun(started_at=now, dry_run=dry_run, actor=actor.label, changed=0, report={})
    entries = []
    total = 0
    for policy in policies(session):
        rule = policy.rule
        cutoff = now - timedelta(days=policy.after_days)
        entry: dict[str, Any] = {
            "record_type": rule.record_type,
            "action": rule.action,
            "after_days": policy.after_days,
            "enabled": policy.enabled,
            "cutoff": cutoff.isoformat(),
            "fields": list(rule.fields),
            "matched": 0,
            "changed": {},
        }
        if policy.enabled:
            matched, changed = rule.apply(session, cutoff, dry_run)
            entry["matched"] = matched
            entry["changed"] = changed
            total += sum(changed.values()) if not dry_run else 0
        entries.append(entry)
    run.report = {"policies": entries, "dry_run": dry_run}
    run.changed = total
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    if not dry_run:
        record(
            session,
            actor=actor,
            action="retention.run",
            object_type="retention_run",
            object_id=run.id,
            changes={
                "changed": total,
                "by_policy": {
                    e["record_type"]: sum(e["changed"].values()) for e in entries if e["enabled"]
                },
            },
        )
    return run
