"""Native JSON routes for governance under /api/v1: classification, the review workflow,
review rules, the data inventory and retention."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from townhall.accounts import queries as account_queries
from townhall.accounts.auth import requires
from townhall.accounts.models import User
from townhall.actor import Actor
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.governance import actions, queries, retention
from townhall.governance.schemas import (
    Approval,
    ClassificationUpdate,
    ColumnPublic,
    DatasetGovernancePublic,
    InventoryItem,
    InventoryPublic,
    RetentionPolicyPublic,
    RetentionPolicyUpdate,
    RetentionRunPublic,
    RetentionRunRequest,
    ReviewNote,
    ReviewRule,
    ReviewRulePublic,
    SendBack,
    StewardUpdate,
)
from townhall.governance.workflow import publication_blockers

router = APIRouter(prefix="/api/v1", tags=["governance"])
Publisher = Annotated[Actor, Depends(requires("datasets:publish"))]
Reviewer = Annotated[Actor, Depends(requires("datasets:review"))]
Reader = Annotated[Actor, Depends(requires("governance:read"))]
Manager = Annotated[Actor, Depends(requires("governance:manage"))]


def visible_dataset(session: Session, actor: Actor, slug: str) -> Dataset:
    dataset = catalog_queries.dataset_by_slug(session, slug)
    if (
        dataset is None
        or dataset.state == "deleted"
        or not catalog_queries.can_read(actor, dataset)
    ):
        raise NotFoundError("dataset", slug)
    return dataset


def governance_public(session: Session, dataset: Dataset, actor: Actor) -> DatasetGovernancePublic:
    classification = queries.classification_of(session, dataset)
    gov = queries.governance_of(session, dataset.id)
    needed, why = queries.review_required(session, dataset)
    steward = session.get(User, dataset.steward_id) if dataset.steward_id else None
    return DatasetGovernancePublic(
        slug=dataset.slug,
        state=dataset.state,
        visibility=dataset.visibility,
        classification=classification.effective,
        dataset_classification=classification.dataset_level,
        columns=[
            ColumnPublic(name=name, classification=level, source=source)
            for name, (level, source) in classification.columns.items()
        ],
        origin=gov.origin if gov else "upload",
        source=gov.source if gov else None,
        steward=steward.email if steward else None,
        license_id=dataset.license_id,
        review_required=needed,
        review_reason=why,
        submitted_by=(gov.submitted_by or None) if gov else None,
        submitted_at=gov.submitted_at if gov else None,
        reviewed_by=(gov.reviewed_by or None) if gov else None,
        reviewed_at=gov.reviewed_at if gov else None,
        review_note=gov.review_note if gov else "",
        first_published_at=gov.first_published_at if gov else None,
        blockers=publication_blockers(session, dataset, actor=actor),
    )


@router.get(
    "/datasets/{slug}/governance",
    response_model=DatasetGovernancePublic,
    summary="A dataset's classification, review state and what blocks its publication",
)
def read_governance(slug: str, db: DbSession, actor: Reader) -> DatasetGovernancePublic:
    return governance_public(db, visible_dataset(db, actor, slug), actor)


@router.put(
    "/datasets/{slug}/classification",
    response_model=DatasetGovernancePublic,
    summary="Declare the classification of a dataset and its columns",
    description="Making data more protected needs the right to edit the dataset; less "
    "protected (including a column whose name looks personal) needs `governance:manage`.",
)
def classify(
    slug: str, body: ClassificationUpdate, db: DbSession, actor: Publisher
) -> DatasetGovernancePublic:
    visible_dataset(db, actor, slug)
    dataset = actions.classify_dataset(
        db,
        actor=actor,
        slug=slug,
        classification=body.classification,
        columns=dict(body.columns),
        note=body.note,
    )
    return governance_public(db, dataset, actor)


@router.put(
    "/datasets/{slug}/steward",
    response_model=DatasetGovernancePublic,
    summary="Name the dataset's steward",
)
def set_steward(
    slug: str, body: StewardUpdate, db: DbSession, actor: Publisher
) -> DatasetGovernancePublic:
    visible_dataset(db, actor, slug)
    dataset = actions.set_steward(db, actor=actor, slug=slug, steward_email=body.email)
    return governance_public(db, dataset, actor)


@router.post(
    "/datasets/{slug}/submit",
    response_model=DatasetGovernancePublic,
    summary="Submit a dataset for review",
)
def submit(
    slug: str, db: DbSession, actor: Publisher, body: ReviewNote | None = None
) -> DatasetGovernancePublic:
    visible_dataset(db, actor, slug)
    dataset = actions.submit_for_review(db, actor=actor, slug=slug, note=body.note if body else "")
    return governance_public(db, dataset, actor)


@router.post(
    "/datasets/{slug}/approve",
    response_model=DatasetGovernancePublic,
    summary="Approve a dataset in review (optionally publishing it)",
)
def approve(
    slug: str, db: DbSession, actor: Reviewer, body: Approval | None = None
) -> DatasetGovernancePublic:
    visible_dataset(db, actor, slug)
    body = body or Approval()
    dataset = actions.approve(db, actor=actor, slug=slug, note=body.note, publish=body.publish)
    return governance_public(db, dataset, actor)


@router.post(
    "/datasets/{slug}/send-back",
    response_model=DatasetGovernancePublic,
    summary="Return a dataset in review to draft, saying what must change",
)
def send_back(slug: str, body: SendBack, db: DbSession, actor: Reviewer) -> DatasetGovernancePublic:
    visible_dataset(db, actor, slug)
    dataset = actions.send_back(db, actor=actor, slug=slug, note=body.note)
    return governance_public(db, dataset, actor)


@router.get(
    "/review-queue",
    response_model=list[DatasetGovernancePublic],
    summary="Datasets waiting for review that the caller may review",
)
def review_queue(db: DbSession, actor: Reviewer) -> list[DatasetGovernancePublic]:
    return [
        governance_public(db, dataset, actor)
        for dataset in queries.review_queue(db)
        if catalog_queries.can_edit(actor, dataset)
    ]


@router.get(
    "/organizations/{slug}/review-rule",
    response_model=ReviewRulePublic,
    summary="Whether an organization's datasets need review before publication",
)
def read_review_rule(slug: str, db: DbSession, _actor: Reader) -> ReviewRulePublic:
    organization = account_queries.organization_by_slug(db, slug)
    if organization is None:
        raise NotFoundError("organization", slug)
    return ReviewRulePublic(
        organization=slug, requires_review=queries.requires_review(db, organization.id)
    )


@router.put(
    "/organizations/{slug}/review-rule",
    response_model=ReviewRulePublic,
    summary="Require (or stop requiring) review before publication",
)
def set_review_rule(slug: str, body: ReviewRule, db: DbSession, actor: Manager) -> ReviewRulePublic:
    policy = actions.set_review_rule(
        db, actor=actor, organization_slug=slug, requires_review=body.requires_review
    )
    return ReviewRulePublic(organization=slug, requires_review=policy.requires_review)


@router.get("/inventory", response_model=InventoryPublic, summary="The data inventory")
def inventory(
    request: Request,
    db: DbSession,
    _actor: Reader,
    organization: Annotated[str | None, Query(max_length=100)] = None,
    classification: Annotated[str | None, Query(max_length=20)] = None,
) -> InventoryPublic:
    recorder = getattr(request.app.state, "dataset_usage", None)
    pending = recorder.pending() if recorder is not None else []
    rows = [row.as_dict() for row in queries.inventory(db, pending_usage=pending)]
    if organization:
        rows = [r for r in rows if r["organization"] == organization]
    if classification:
        rows = [r for r in rows if r["classification"] == classification]
    return InventoryPublic(total=len(rows), items=[InventoryItem(**r) for r in rows])


def _policy_public(policy: retention.EffectivePolicy) -> RetentionPolicyPublic:
    rule = policy.rule
    return RetentionPolicyPublic(
        record_type=rule.record_type,
        description=rule.description,
        action=rule.action,
        fields=list(rule.fields),
        after_days=policy.after_days,
        enabled=policy.enabled,
        default_days=rule.default_days,
        minimum_days=rule.minimum_days,
    )


@router.get(
    "/retention/policies",
    response_model=list[RetentionPolicyPublic],
    summary="Retention policies per record type",
)
def list_retention_policies(db: DbSession, _actor: Reader) -> list[RetentionPolicyPublic]:
    return [_policy_public(p) for p in retention.policies(db)]


@router.put(
    "/retention/policies/{record_type}",
    response_model=RetentionPolicyPublic,
    summary="Change a retention policy's delay or switch it off",
)
def update_retention_policy(
    record_type: str, body: RetentionPolicyUpdate, db: DbSession, actor: Manager
) -> RetentionPolicyPublic:
    actions.set_retention_policy(
        db, actor=actor, record_type=record_type, after_days=body.after_days, enabled=body.enabled
    )
    policy = next(p for p in retention.policies(db) if p.rule.record_type == record_type)
    return _policy_public(policy)


@router.post(
    "/retention/runs",
    response_model=RetentionRunPublic,
    status_code=201,
    summary="Apply the retention policies now (or see what they would change)",
)
def run_retention(
    db: DbSession, actor: Manager, body: RetentionRunRequest | None = None
) -> RetentionRunPublic:
    run = retention.apply_retention(db, actor=actor, dry_run=bool(body and body.dry_run))
    return RetentionRunPublic.model_validate(run)


@router.get(
    "/retention/runs",
    response_model=list[RetentionRunPublic],
    summary="Past retention runs and what each changed",
)
def list_retention_runs(
    db: DbSession, _actor: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RetentionRunPublic]:
    return [RetentionRunPublic.model_validate(r) for r in queries.retention_runs(db, limit)]
