"""Writes for the catalog. Each checks permission, changes, and records an audit entry in the
same transaction; events go out after commit. None commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.catalog import queries, search
from townhall.catalog.models import DATASET_STATES, Dataset, DatasetVersion, Resource
from townhall.catalog.vocabularies import FREQUENCIES, GRACE_FRACTION
from townhall.db import utcnow
from townhall.errors import ConflictError, NotFoundError, PermissionDenied, TownhallError
from townhall.events import EventBus
from townhall.events import publish_after_commit as _publish_after_commit


def publish_after_commit(
    session: Session,
    bus: EventBus | None,
    channel: str,
    type: str,
    data: dict[str, Any],
) -> None:
    """`dataset.<slug>` channels are public: only open, published datasets announce anything,
    so a draft or restricted dataset's existence does not leak."""
    slug = channel.removeprefix("dataset.")
    dataset = session.scalar(select(Dataset).where(Dataset.slug == slug))
    if dataset is None or dataset.visibility != "public" or dataset.state != "published":
        return
    _publish_after_commit(session, bus, channel, type, data)


EDITABLE_FIELDS = (
    "title",
    "description",
    "keywords",
    "themes",
    "license_id",
    "contact_name",
    "contact_email",
    "temporal_start",
    "temporal_end",
    "spatial",
    "frequency",
    "languages",
    "landing_page",
    "conforms_to",
    "visibility",
    "steward_id",
)


def _require_edit(actor: Actor, dataset: Dataset) -> None:
    actor.require("datasets:publish")
    if not queries.can_edit(actor, dataset):
        raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def next_update_due(frequency: str | None, last_published_at: datetime | None) -> datetime | None:
    if frequency is None or last_published_at is None:
        return None
    period = FREQUENCIES.get(frequency, ("", None))[1]
    if period is None:
        return None
    grace = max(period * GRACE_FRACTION, timedelta(hours=1))
    return last_published_at + period + grace


def create_dataset(
    session: Session,
    *,
    actor: Actor,
    organization_slug: str,
    slug: str,
    title: str,
    bus: EventBus | None = None,
    **fields: Any,
) -> Dataset:
    actor.require("datasets:publish")
    organization = account_queries.organization_by_slug(session, organization_slug)
    if organization is None:
        raise NotFoundError("organization", organization_slug)
    if not actor.can("system:admin") and organization.id not in actor.organization_ids:
        raise PermissionDenied(f"datasets:publish for {organization_slug}")
    if queries.dataset_by_slug(session, slug):
        raise ConflictError(f"A dataset with slug {slug!r} already exists.")
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise AssertionError(f"unknown dataset fields {unknown}")
    values = {k: v for k, v in fields.items() if v is not None}
    dataset = Dataset(
        slug=slug,
        title=title,
        organization_id=organization.id,
        created_by_id=actor.user_id,
        steward_id=values.pop("steward_id", actor.user_id),
        state="draft",
        **values,
    )
    dataset.organization = organization
    session.add(dataset)
    session.flush()
    _check_temporal(dataset)
    search.index_dataset(session, dataset, [])
    record(
        session,
        actor=actor,
        action="dataset.create",
        object_type="dataset",
        object_id=dataset.id,
        changes={
            "slug": slug,
            "title": title,
            "organization": organization_slug,
            **{k: _jsonable(v) for k, v in values.items()},
        },
    )
    publish_after_commit(session, bus, f"dataset.{slug}", "dataset.created", {"slug": slug})
    return dataset


def _check_temporal(dataset: Dataset) -> None:
    if (
        dataset.temporal_start
        and dataset.temporal_end
        and dataset.temporal_start > dataset.temporal_end
    ):
        raise TownhallError(
            422,
            "invalid_request",
            "temporal_start: must not be after temporal_end",
            errors=[
                {
                    "loc": ["body", "temporal_start"],
                    "message": "after temporal_end",
                    "type": "value_error",
                }
            ],
        )


def update_dataset(
    session: Session, *, actor: Actor, slug: str, bus: EventBus | None = None, **fields: Any
) -> Dataset:
    """Change the given fields only (PATCH semantics); audited with before/after values."""
    dataset = queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted":
        raise NotFoundError("dataset", slug)
    _require_edit(actor, dataset)
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in EDITABLE_FIELDS:
            raise AssertionError(f"unknown dataset field {name}")
        if value is None or getattr(dataset, name) == value:
            continue
        changes[name] = [_jsonable(getattr(dataset, name)), _jsonable(value)]
        setattr(dataset, name, value)
    if not changes:
        return dataset
    _check_temporal(dataset)
    if "visibility" in changes:
        # Making a released dataset open data is a publication: governance decides (licence,
        # steward, classification, review). Imported here: governance reads the catalog.
        from townhall.governance.workflow import check_made_public

        changes.update(check_made_public(session, actor=actor, dataset=dataset))
    dataset.updated_at = utcnow()
    if "frequency" in changes:
        dataset.next_update_due = next_update_due(dataset.frequency, dataset.last_published_at)
    search.index_dataset(session, dataset, queries.column_names(session, dataset))
    session.flush()
    record(
        session,
        actor=actor,
        action="dataset.update",
        object_type="dataset",
        object_id=dataset.id,
        changes=changes,
    )
    publish_after_commit(
        session,
        bus,
        f"dataset.{slug}",
        "dataset.updated",
        {"slug": slug, "fields": sorted(changes)},
    )
    return dataset


def delete_dataset(session: Session, *, actor: Actor, slug: str) -> Dataset:
    """Soft delete (CKAN's `state=deleted`): the record and its versions stay for the audit."""
    dataset = queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted":
        raise NotFoundError("dataset", slug)
    _require_edit(actor, dataset)
    previous = dataset.state
    dataset.state = "deleted"
    dataset.updated_at = utcnow()
    search.unindex_dataset(session, dataset.id)
    record(
        session,
        actor=actor,
        action="dataset.delete",
        object_type="dataset",
        object_id=dataset.id,
        changes={"state": [previous, "deleted"]},
    )
    return dataset


def set_dataset_state(
    session: Session, *, actor: Actor, slug: str, state: str, reason: str = ""
) -> Dataset:
    """Move a dataset's record through the publication workflow (draft, in_review, approved,
    published, withdrawn); the rules (review, licence, steward, classification) are
    `townhall.governance.workflow.check_state_change`, which raises when a move is refused.
    `reason`, when given, is kept in the audit entry (a withdrawal the system made)."""
    # Imported here: governance reads the catalog, so a module-level import would be a cycle.
    from townhall.governance.workflow import check_state_change

    dataset = queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted":
        raise NotFoundError("dataset", slug)
    _require_edit(actor, dataset)
    if state not in DATASET_STATES:
        raise TownhallError(422, "invalid_request", f"state: cannot set {state!r} directly")
    if state == "published" and not dataset.license_id:
        raise ConflictError("A dataset needs a licence before it is published.")
    if dataset.state != state:
        review = check_state_change(session, actor=actor, dataset=dataset, state=state)
        record(
            session,
            actor=actor,
            action="dataset.state",
            object_type="dataset",
            object_id=dataset.id,
            changes={
                "state": [dataset.state, state],
                **review,
                **({"reason": reason} if reason else {}),
            },
        )
        dataset.state = state
        dataset.updated_at = utcnow()
    return dataset


def create_resource(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    name: str,
    description: str = "",
    format: str = "",
    url: str | None = None,
) -> Resource:
    dataset = queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted":
        raise NotFoundError("dataset", slug)
    _require_edit(actor, dataset)
    position = session.scalar(
        select(func.count()).select_from(Resource).where(Resource.dataset_id == dataset.id)
    )
    resource = Resource(
        dataset_id=dataset.id,
        name=name,
        description=description,
        format=format.upper(),
        url=url,
        position=position or 0,
    )
    session.add(resource)
    session.flush()
    # Every resource that may hold a table gets a stable lake table name.
    resource.table_name = f"r_{resource.id}"
    dataset.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="resource.create",
        object_type="resource",
        object_id=resource.id,
        changes={"dataset": slug, "name": name, "format": format, "url": url},
    )
    return resource


def update_resource(session: Session, *, actor: Actor, resource_id: int, **fields: Any) -> Resource:
    resource = queries.resource_by_id(session, resource_id)
    if resource is None:
        raise NotFoundError("resource", resource_id)
    _require_edit(actor, resource.dataset)
    changes: dict[str, Any] = {}
    for name in ("name", "description", "format", "url"):
        value = fields.get(name)
        if value is not None and getattr(resource, name) != value:
            changes[name] = [getattr(resource, name), value]
            setattr(resource, name, value.upper() if name == "format" else value)
    if changes:
        resource.updated_at = utcnow()
        record(
            session,
            actor=actor,
            action="resource.update",
            object_type="resource",
            object_id=resource.id,
            changes=changes,
        )
    return resource


def delete_resource(session: Session, *, actor: Actor, resource_id: int) -> int:
    """Remove a resource's record; its lake table is dropped by the caller after commit."""
    resource = queries.resource_by_id(session, resource_id)
    if resource is None:
        raise NotFoundError("resource", resource_id)
    _require_edit(actor, resource.dataset)
    dataset_id = resource.dataset_id
    record(
        session,
        actor=actor,
        action="resource.delete",
        object_type="resource",
        object_id=resource.id,
        changes={"dataset_id": dataset_id, "name": resource.name},
    )
    session.delete(resource)
    return dataset_id


def record_version(
    session: Session,
    *,
    actor: Actor,
    resource_id: int,
    snapshot_id: int | None,
    row_count: int,
    columns: list[dict[str, Any]],
    source_name: str,
    source_sha256: str | None,
    source_bytes: int | None,
    validation_report: dict[str, Any],
    manifest: dict[str, Any] | None = None,
    bus: EventBus | None = None,
) -> DatasetVersion:
    """Record a table version written to the lake and switch the published pointer to it.

    Called after the lake transaction committed; if this transaction fails, the pointer stays
    on the previous version, so readers never see a half-published table.
    """
    resource = queries.resource_by_id(session, resource_id)
    if resource is None:
        raise NotFoundError("resource", resource_id)
    dataset = resource.dataset
    _require_edit(actor, dataset)
    previous = queries.version_of(session, resource, None)
    number = (
        session.scalar(
            select(func.max(DatasetVersion.number)).where(DatasetVersion.resource_id == resource.id)
        )
        or 0
    ) + 1
    version = DatasetVersion(
        dataset_id=dataset.id,
        resource_id=resource.id,
        number=number,
        status="published",
        snapshot_id=snapshot_id,
        table_name=resource.table_name or f"r_{resource.id}",
        row_count=row_count,
        columns=columns,
        schema_changes=schema_changes(previous.columns if previous else [], columns),
        source_name=source_name[:500],
        source_sha256=source_sha256,
        source_bytes=source_bytes,
        validation_report=validation_report,
        manifest=manifest or {},
        published_by_id=actor.user_id,
        published_by=actor.label,
    )
    session.add(version)
    session.flush()
    if previous is not None:
        previous.status = "superseded"
    now = utcnow()
    resource.published_version_id = version.id
    resource.datastore_active = True
    resource.size_bytes = source_bytes
    resource.sha256 = source_sha256
    resource.updated_at = now
    dataset.last_published_at = now
    dataset.updated_at = now
    dataset.next_update_due = next_update_due(dataset.frequency, now)
    session.flush()
    # A version of open data may not bring personal columns with it: governance checks the
    # dataset as it now reads (409 rolls back; the previous version stays served).
    from townhall.governance.workflow import check_new_version

    governance = check_new_version(session, actor=actor, dataset=dataset)
    search.index_dataset(session, dataset, queries.column_names(session, dataset))
    record(
        session,
        actor=actor,
        action="dataset.version.publish",
        object_type="dataset",
        object_id=dataset.id,
        changes={
            "resource_id": resource.id,
            "version": number,
            "rows": row_count,
            "snapshot_id": snapshot_id,
            "source_sha256": source_sha256,
            "schema_changes": version.schema_changes,
            **governance,
        },
    )
    publish_after_commit(
        session,
        bus,
        f"dataset.{dataset.slug}",
        "dataset.published",
        {"slug": dataset.slug, "resource_id": resource.id, "version": number, "rows": row_count},
    )
    return version


def schema_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    old = {c["name"]: c["type"] for c in before}
    new = {c["name"]: c["type"] for c in after}
    return {
        "added": [n for n in new if n not in old],
        "removed": [n for n in old if n not in new],
        "retyped": {n: [old[n], new[n]] for n in new if n in old and old[n] != new[n]},
    }
