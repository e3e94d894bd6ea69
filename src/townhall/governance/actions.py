"""Writes for governance. Each checks permission, changes, and records an audit entry in the
same transaction; none commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.accounts.models import Organization, User
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.catalog import actions as catalog_actions
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset
from townhall.db import utcnow
from townhall.errors import NotFoundError, PermissionDenied, TownhallError
from townhall.governance import queries
from townhall.governance.classification import OPEN_DATA_BLOCKERS, detect_column, rank
from townhall.governance.models import (
    CLASSIFICATIONS,
    ORIGINS,
    ColumnClassification,
    OrganizationPolicy,
    RetentionPolicy,
)
from townhall.governance.workflow import ensure_governance


def _dataset(session: Session, slug: str) -> Dataset:
    dataset = catalog_queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted":
        raise NotFoundError("dataset", slug)
    return dataset


def _require_edit(actor: Actor, dataset: Dataset) -> None:
    actor.require("datasets:publish")
    if not catalog_queries.can_edit(actor, dataset):
        raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")


def _organization(session: Session, slug: str) -> Organization:
    organization = account_queries.organization_by_slug(session, slug)
    if organization is None:
        raise NotFoundError("organization", slug)
    return organization


def set_review_rule(
    session: Session, *, actor: Actor, organization_slug: str, requires_review: bool
) -> OrganizationPolicy:
    """Require (or stop requiring) review before an organization's datasets are published."""
    actor.require("governance:manage")
    organization = _organization(session, organization_slug)
    policy = session.scalar(
        select(OrganizationPolicy).where(OrganizationPolicy.organization_id == organization.id)
    )
    before = bool(policy and policy.requires_review)
    if policy is None:
        policy = OrganizationPolicy(organization_id=organization.id, requires_review=False)
        session.add(policy)
    policy.requires_review = requires_review
    policy.updated_at = utcnow()
    policy.updated_by = actor.label
    session.flush()
    if before != requires_review:
        record(
            session,
            actor=actor,
            action="organization.review_rule",
            object_type="organization",
            object_id=organization.id,
            changes={"requires_review": [before, requires_review]},
        )
    return policy


def classify_dataset(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    classification: str | None = None,
    columns: dict[str, str] | None = None,
    note: str = "",
) -> Dataset:
    """Declare the classification of a dataset and of some of its columns.

    Anyone who may edit the dataset may make it or a column *more* protected; making either
    less protected than it was (declared, or detected from a column's name) needs
    `governance:manage`. Raises TownhallError 422 for an unknown level.

    When the declaration makes a published open dataset hold personal data (the dataset
    declared personal or sensitive, or such a column that a readable version carries), the
    dataset is withdrawn in the same transaction (`withdraw_exposed`).
    """
    dataset = _dataset(session, slug)
    _require_edit(actor, dataset)
    columns = columns or {}
    for level in [classification, *columns.values()]:
        if level is not None and level not in CLASSIFICATIONS:
            raise TownhallError(
                422,
                "invalid_request",
                f"classification: {level!r} is not one of {', '.join(CLASSIFICATIONS)}",
            )
    gov = ensure_governance(session, dataset)
    declared = queries.declared_columns(session, dataset.id)
    changes: dict[str, list[str | None]] = {}
    lowering = False
    if classification is not None and classification != gov.classification:
        lowering |= rank(classification) < rank(gov.classification)
        changes["dataset"] = [gov.classification, classification]
    for name, level in columns.items():
        before = declared.get(name) or detect_column(name) or "public"
        if declared.get(name) == level:
            continue
        lowering |= rank(level) < rank(before)
        changes[f"column:{name}"] = [declared.get(name), level]
    if lowering and not actor.can("governance:manage"):
        raise PermissionDenied("governance:manage (to make data less protected)")
    if not changes:
        return dataset
    if classification is not None:
        gov.classification = classification
    existing = {
        row.column_name: row
        for row in session.scalars(
            select(ColumnClassification).where(ColumnClassification.dataset_id == dataset.id)
        )
    }
    for name, level in columns.items():
        row = existing.get(name)
        if row is None:
            row = ColumnClassification(dataset_id=dataset.id, column_name=name)
            session.add(row)
        row.classification = level
        row.note = note
        row.set_by = actor.label
        row.updated_at = utcnow()
    gov.updated_at = utcnow()
    session.flush()
    record(
        session,
        actor=actor,
        action="dataset.classify",
        object_type="dataset",
        object_id=dataset.id,
        changes={**changes, **({"note": note} if note else {})},
    )
    withdraw_exposed(session, actor=actor, dataset=dataset)
    return dataset


def withdraw_exposed(session: Session, *, actor: Actor, dataset: Dataset) -> str | None:
    """Withdraw `dataset` at once if it is published as open data while its classification
    says it holds personal data; returns the reason given, or None when nothing was exposed.

    Blocking only the next version would leave the personal column public until then. A
    column declared ahead of any version that carries it exposes nothing, so it withdraws
    nothing (it still blocks the version that would bring it). The `dataset.state` entry
    carries the reason; publishing again goes through the normal workflow and its checks.
    """
    if dataset.state != "published" or dataset.visibility != "public":
        return None
    classification = queries.classification_of(session, dataset)
    reasons = []
    if classification.dataset_level in OPEN_DATA_BLOCKERS:
        reasons.append(f"the dataset is classified {classification.dataset_level}")
    readable = queries.readable_columns(session, dataset)
    exposed = [name for name in classification.blocking_columns if name in readable]
    if exposed:
        reasons.append("columns classified personal or sensitive: " + ", ".join(exposed))
    if not reasons:
        return None
    reason = "Withdrawn from open data: " + "; ".join(reasons) + "."
    catalog_actions.set_dataset_state(
        session, actor=actor, slug=dataset.slug, state="withdrawn", reason=reason
    )
    return reason


def mark_operational(
    session: Session, *, actor: Actor, slug: str, source: str, origin: str = "operational"
) -> Dataset:
    """Record that a dataset is made from operational records (so its first release is
    reviewed). Idempotent."""
    if origin not in ORIGINS:
        raise AssertionError(f"unknown origin {origin}")
    dataset = _dataset(session, slug)
    _require_edit(actor, dataset)
    gov = ensure_governance(session, dataset)
    if gov.origin == origin and gov.source == source:
        return dataset
    record(
        session,
        actor=actor,
        action="dataset.origin",
        object_type="dataset",
        object_id=dataset.id,
        changes={"origin": [gov.origin, origin], "source": [gov.source, source]},
    )
    gov.origin = origin
    gov.source = source
    gov.updated_at = utcnow()
    return dataset


def set_steward(session: Session, *, actor: Actor, slug: str, steward_email: str) -> Dataset:
    """Name the account answerable for a dataset (it must be able to edit it)."""
    dataset = _dataset(session, slug)
    _require_edit(actor, dataset)
    user = session.scalar(select(User).where(User.email == steward_email.strip().lower()))
    if user is None or not user.is_active:
        raise TownhallError(422, "invalid_request", f"steward: no active account {steward_email!r}")
    if dataset.steward_id != user.id:
        record(
            session,
            actor=actor,
            action="dataset.steward",
            object_type="dataset",
            object_id=dataset.id,
            changes={"steward": [dataset.steward_id, user.id]},
        )
        dataset.steward_id = user.id
        dataset.updated_at = utcnow()
    return dataset


def _set_note(session: Session, dataset: Dataset, note: str) -> None:
    gov = ensure_governance(session, dataset)
    gov.review_note = note[:10_000]


def submit_for_review(session: Session, *, actor: Actor, slug: str, note: str = "") -> Dataset:
    dataset = _dataset(session, slug)
    _require_edit(actor, dataset)
    _set_note(session, dataset, note)
    return catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="in_review")


def approve(
    session: Session, *, actor: Actor, slug: str, note: str = "", publish: bool = False
) -> Dataset:
    """Approve a dataset in review; with `publish`, publish it at once as well."""
    dataset = _dataset(session, slug)
    actor.require("datasets:review")
    _set_note(session, dataset, note)
    catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="approved")
    if publish:
        catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="published")
    return dataset


def send_back(session: Session, *, actor: Actor, slug: str, note: str) -> Dataset:
    """Return a dataset in review to draft, saying why."""
    dataset = _dataset(session, slug)
    actor.require("datasets:review")
    if dataset.state != "in_review":
        raise TownhallError(409, "conflict", f"The dataset is {dataset.state}, not in review.")
    _set_note(session, dataset, note)
    return catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="draft")


def set_retention_policy(
    session: Session,
    *,
    actor: Actor,
    record_type: str,
    after_days: int | None = None,
    enabled: bool | None = None,
) -> RetentionPolicy:
    from townhall.governance.retention import RULES

    actor.require("governance:manage")
    rule = RULES.get(record_type)
    if rule is None:
        raise NotFoundError("retention_policy", record_type)
    if after_days is not None and after_days < rule.minimum_days:
        raise TownhallError(
            422,
            "invalid_request",
            f"after_days: at least {rule.minimum_days} for {record_type}",
        )
    policy = session.scalar(
        select(RetentionPolicy).where(RetentionPolicy.record_type == record_type)
    )
    if policy is None:
        policy = RetentionPolicy(
            record_type=record_type, after_days=rule.default_days, enabled=True
        )
        session.add(policy)
    changes: dict[str, list[object]] = {}
    if after_days is not None and after_days != policy.after_days:
        changes["after_days"] = [policy.after_days, after_days]
        policy.after_days = after_days
    if enabled is not None and enabled != policy.enabled:
        changes["enabled"] = [policy.enabled, enabled]
        policy.enabled = enabled
    policy.updated_at = utcnow()
    policy.updated_by = actor.label
    session.flush()
    if changes:
        record(
            session,
            actor=actor,
            action="retention.policy",
            object_type="retention_policy",
            object_id=record_type,
            changes=changes,
        )
    return policy
