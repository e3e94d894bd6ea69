"""The publication workflow: draft -> in_review -> approved -> published -> withdrawn.

`check_state_change` is called by `catalog.actions.set_dataset_state` before a dataset's state
changes, inside the same transaction. It raises when the change is not allowed and otherwise
updates the dataset's governance record and returns what the audit entry should add.

Rules:
- Review is required when the dataset's organization requires it, and for a dataset made from
  operational data until it has been published once. Then `published` can only follow
  `approved`, and `approved` only follows `in_review`.
- Approving needs `datasets:review`. Where review is required, nobody approves a dataset they
  created or submitted (system actors, the operator's shell and jobs, are not people and may).
- Without required review, publishers publish directly (from draft or withdrawn), as in CKAN.
- Before `approved` or `published`: a licence, a steward, and no column declared personal or
  sensitive while the dataset is public (open data). Columns whose names look personal and
  that nobody classified block a publisher; an actor with `governance:manage` publishing one
  confirms it public, and the audit entry names the columns.
- `draft` (recall, send back, unpublish) and `withdrawn` are always allowed to an editor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.catalog.models import Dataset
from townhall.db import utcnow
from townhall.errors import ConflictError, PermissionDenied, TownhallError
from townhall.governance import queries
from townhall.governance.models import ColumnClassification, DatasetGovernance

TRANSITIONS: dict[str, frozenset[str]] = {
    # to state: the states it may come from
    "draft": frozenset({"in_review", "approved", "published", "withdrawn"}),
    "in_review": frozenset({"draft", "withdrawn"}),
    "approved": frozenset({"in_review"}),
    "published": frozenset({"approved", "draft", "withdrawn"}),
    "withdrawn": frozenset({"draft", "in_review", "approved", "published"}),
}


def ensure_governance(session: Session, dataset: Dataset) -> DatasetGovernance:
    gov = queries.governance_of(session, dataset.id)
    if gov is None:
        gov = DatasetGovernance(
            dataset_id=dataset.id,
            classification="public",
            origin="upload",
            submitted_by="",
            reviewed_by="",
            review_note="",
        )
        session.add(gov)
        session.flush()
    return gov


def publication_blockers(
    session: Session, dataset: Dataset, *, actor: Actor | None = None
) -> list[dict[str, Any]]:
    """What keeps the dataset from being published now, as `errors` items (empty: nothing)."""
    problems: list[dict[str, Any]] = []
    if not dataset.license_id:
        problems.append(_problem("license_id", "A dataset needs a licence before it is published."))
    if dataset.steward_id is None:
        problems.append(_problem("steward", "A dataset needs a steward before it is published."))
    if dataset.visibility == "public":
        classification = queries.classification_of(session, dataset)
        if classification.dataset_level in ("personal", "sensitive"):
            problems.append(
                _problem(
                    "classification",
                    f"The dataset is classified {classification.dataset_level}: it cannot be "
                    "open data. Make it restricted or private, or publish an anonymised "
                    "version.",
                )
            )
        if classification.blocking_columns:
            problems.append(
                _problem(
                    "columns",
                    "Columns classified personal or sensitive cannot be open data: "
                    + ", ".join(classification.blocking_columns),
                )
            )
        unconfirmed = classification.unconfirmed_columns
        if unconfirmed and not (actor is not None and actor.can("governance:manage")):
            problems.append(
                _problem(
                    "columns",
                    "These columns look personal and nobody has classified them: "
                    + ", ".join(unconfirmed)
                    + ". Classify them (PUT /api/v1/datasets/{slug}/classification) first.",
                )
            )
    return problems


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"loc": ["dataset", field], "message": message, "type": "publication_blocked"}


def _blocked(problems: list[dict[str, Any]]) -> TownhallError:
    message = problems[0]["message"]
    if len(problems) > 1:
        message += f" ({len(problems) - 1} more in `errors`)"
    return TownhallError(409, "conflict", message, errors=problems)


def _is_own(actor: Actor, dataset: Dataset, gov: DatasetGovernance) -> bool:
    if actor.user_id is None:
        return False
    return actor.user_id in (dataset.created_by_id, gov.submitted_by_id)


def check_state_change(
    session: Session, *, actor: Actor, dataset: Dataset, state: str
) -> dict[str, Any]:
    """Allow or refuse `dataset` moving to `state`; see the module docstring for the rules.

    Raises ConflictError (409, `errors` naming each blocker) for a change the workflow does not
    allow, PermissionDenied for an approval by someone who may not approve. Returns extra
    fields for the audit entry of the change.
    """
    current = dataset.state
    allowed_from = TRANSITIONS.get(state)
    if allowed_from is None:
        raise TownhallError(422, "invalid_request", f"state: unknown state {state!r}")
    if current not in allowed_from:
        raise ConflictError(f"A dataset cannot go from {current} to {state}.")
    gov = ensure_governance(session, dataset)
    needs_review, why = queries.review_required(session, dataset)
    audit: dict[str, Any] = {}
    now = utcnow()
    if state == "in_review":
        gov.submitted_by_id = actor.user_id
        gov.submitted_by = actor.label
        gov.submitted_at = now
        gov.reviewed_by_id = None
        gov.reviewed_by = ""
        gov.reviewed_at = None
        audit["review"] = "submitted"
    elif state == "approved":
        if not actor.can("datasets:review"):
            raise PermissionDenied("datasets:review")
        if needs_review and _is_own(actor, dataset, gov):
            raise TownhallError(
                403,
                "permission_denied",
                "You created or submitted this dataset; another reviewer must approve it.",
            )
        problems = publication_blockers(session, dataset, actor=actor)
        if problems:
            raise _blocked(problems)
        gov.reviewed_by_id = actor.user_id
        gov.reviewed_by = actor.label
        gov.reviewed_at = now
        audit.update(review="approved", review_note=gov.review_note)
    elif state == "published":
        if needs_review and current != "approved":
            raise ConflictError(
                f"This dataset must be reviewed before it is published ({why}): submit it "
                "for review (POST /api/v1/datasets/{slug}/submit)."
            )
        problems = publication_blockers(session, dataset, actor=actor)
        if problems:
            raise _blocked(problems)
        confirmed = _confirm_unconfirmed(session, actor, dataset)
        if confirmed:
            audit["confirmed_public_columns"] = confirmed
        if current == "approved":
            audit["approved_by"] = gov.reviewed_by
        if gov.first_published_at is None:
            gov.first_published_at = now
    elif state == "draft" and current == "in_review":
        audit.update(review="sent_back", review_note=gov.review_note)
    if needs_review:
        audit["review_required"] = why
    gov.updated_at = now
    return audit


def _confirm_unconfirmed(session: Session, actor: Actor, dataset: Dataset) -> list[str]:
    """Record detected-personal columns as public when a governance manager publishes them."""
    if dataset.visibility != "public":
        return []
    unconfirmed = queries.classification_of(session, dataset).unconfirmed_columns
    for name in unconfirmed:
        session.add(
            ColumnClassification(
                dataset_id=dataset.id,
                column_name=name,
                classification="public",
                note="confirmed public when published",
                set_by=actor.label,
            )
        )
    if unconfirmed:
        session.flush()
    return unconfirmed


def check_made_public(session: Session, *, actor: Actor, dataset: Dataset) -> dict[str, Any]:
    """Govern a published (or approved) dataset whose visibility has just become `public`
    outside the state workflow: `catalog.actions.update_dataset`, and through it CKAN
    `package_update`/`package_patch` with `private: false`.

    Called after the new visibility is set on `dataset`, in the same transaction. The same
    rules as publishing apply (licence, steward, no personal or sensitive column, detected
    columns confirmed only by `governance:manage`), and where review is required the change
    is itself a release, so it needs someone who could approve it: `datasets:review`, and not
    the dataset's creator or submitter. Raises 409 (`errors` naming each blocker) or 403;
    returns extra fields for the audit entry. Does nothing for other states or visibilities.
    """
    if dataset.state not in ("published", "approved") or dataset.visibility != "public":
        return {}
    gov = ensure_governance(session, dataset)
    needs_review, why = queries.review_required(session, dataset)
    audit: dict[str, Any] = {}
    if needs_review:
        if not actor.can("datasets:review") or _is_own(actor, dataset, gov):
            raise TownhallError(
                403,
                "permission_denied",
                f"Making this dataset open data is a release that must be reviewed ({why}): "
                "set it to draft, change its visibility, and submit it for review.",
            )
        audit["review_required"] = why
        audit["approved_by"] = actor.label
    problems = publication_blockers(session, dataset, actor=actor)
    if problems:
        raise _blocked(problems)
    confirmed = _confirm_unconfirmed(session, actor, dataset)
    if confirmed:
        audit["confirmed_public_columns"] = confirmed
    gov.updated_at = utcnow()
    return audit


def check_new_version(session: Session, *, actor: Actor, dataset: Dataset) -> dict[str, Any]:
    """Govern a new table version of a published, public dataset (every ingest path: upload,
    URL fetch, `townhall datasets ingest`, CKAN `resource_create`/`resource_update`/
    `datastore_create`, the privacy-safe publishing pipeline) before it is served.

    Called by `catalog.actions.record_version` after the published pointer has moved to the
    new version, in the same transaction, so the classification sees the new columns. A
    version that adds a column declared personal or sensitive, or one whose name looks
    personal that nobody classified (unless the actor holds `governance:manage`, whose
    publication confirms it public, as on first publication), raises 409 naming the columns;
    the transaction rolls back and the previous version stays served. Returns extra fields
    for the audit entry. No review: a new version of a released dataset is routine, as in CKAN.
    """
    if dataset.state != "published" or dataset.visibility != "public":
        return {}
    problems = publication_blockers(session, dataset, actor=actor)
    if problems:
        raise _blocked(problems)
    confirmed = _confirm_unconfirmed(session, actor, dataset)
    return {"confirmed_public_columns": confirmed} if confirmed else {}
