"""Native JSON routes for privacy-safe publishing under /api/v1."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from townhall.accounts.auth import PublicActor, requires
from townhall.actor import Actor
from townhall.catalog import queries as catalog_queries
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.publishing import actions, queries
from townhall.publishing.models import PublicationPipeline
from townhall.publishing.schemas import (
    PipelineCreate,
    PipelinePublic,
    PipelineSettings,
    PrivacyReportPublic,
    RunPublic,
)
from townhall.schemas import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["publishing"])
Reader = Annotated[Actor, Depends(requires("governance:read"))]
Manager = Annotated[Actor, Depends(requires("governance:manage"))]


class RunQueued(BaseModel):
    ok: bool = True
    source: str
    task_id: str


def _pipeline(db: DbSession, source: str) -> PublicationPipeline:
    pipeline = queries.pipeline_by_source(db, source)
    if pipeline is None:
        raise NotFoundError("pipeline", source)
    return pipeline


@router.get(
    "/publishing/pipelines",
    response_model=list[PipelinePublic],
    summary="Privacy-safe publication pipelines and their settings",
)
def list_pipelines(db: DbSession, _actor: Reader) -> list[PipelinePublic]:
    return [PipelinePublic.model_validate(p) for p in queries.pipelines(db)]


@router.post(
    "/publishing/pipelines",
    response_model=PipelinePublic,
    status_code=201,
    summary="Set up the pipeline that publishes one kind of operational record",
)
def create_pipeline(body: PipelineCreate, db: DbSession, actor: Manager) -> PipelinePublic:
    settings = body.model_dump(
        exclude={"source", "organization", "steward_email", "records_slug", "counts_slug"},
        exclude_none=True,
    )
    pipeline = actions.create_pipeline(
        db,
        actor=actor,
        source=body.source,
        organization_slug=body.organization,
        steward_email=body.steward_email,
        records_slug=body.records_slug,
        counts_slug=body.counts_slug,
        **settings,
    )
    return PipelinePublic.model_validate(pipeline)


@router.patch(
    "/publishing/pipelines/{source}",
    response_model=PipelinePublic,
    summary="Change a pipeline's settings (k, epsilon, generalisation, schedule)",
)
def update_pipeline(
    source: str, body: PipelineSettings, db: DbSession, actor: Manager
) -> PipelinePublic:
    _pipeline(db, source)
    pipeline = actions.update_pipeline(
        db, actor=actor, source=source, **body.model_dump(exclude_none=True)
    )
    return PipelinePublic.model_validate(pipeline)


@router.post(
    "/publishing/pipelines/{source}/run",
    response_model=RunQueued,
    status_code=202,
    summary="Queue a run now, due or not (job publishing.run_pipeline)",
)
def queue_run(source: str, request: Request, db: DbSession, _actor: Manager) -> RunQueued:
    pipeline_id = _pipeline(db, source).id
    result = request.app.state.runtime.jobs.enqueue("publishing.run_pipeline", pipeline_id, 1)
    return RunQueued(source=source, task_id=str(result.id))


@router.get(
    "/publishing/pipelines/{source}/runs",
    response_model=list[RunPublic],
    summary="A pipeline's recent runs with their reports",
)
def list_runs(
    source: str,
    db: DbSession,
    _actor: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[RunPublic]:
    return [RunPublic.model_validate(r) for r in queries.runs(db, _pipeline(db, source).id, limit)]


@router.get(
    "/datasets/{slug}/privacy-report",
    response_model=PrivacyReportPublic,
    summary="The privacy report of a dataset version made from operational data",
    description="What was removed, generalised, suppressed and noised, with k and epsilon. "
    "Latest version unless `version` is given.",
)
def privacy_report(
    slug: str,
    db: DbSession,
    actor: PublicActor,
    version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> PrivacyReportPublic:
    dataset = catalog_queries.dataset_by_slug(db, slug)
    if (
        dataset is None
        or dataset.state == "deleted"
        or not catalog_queries.can_read(actor, dataset)
    ):
        raise NotFoundError("dataset", slug)
    found = queries.privacy_report(db, dataset.id, version)
    if found is None:
        raise NotFoundError("privacy_report", f"{slug} version {version or 'latest'}")
    return PrivacyReportPublic(
        dataset=slug, version=found.version_number, created_at=found.created_at, report=found.report
    )
