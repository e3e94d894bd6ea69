"""The privacy-safe publication page: pipelines, their settings and recent runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.publishing import queries
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Reader = Annotated[Actor, Depends(requires("governance:read"))]
Manager = Annotated[Actor, Depends(requires("governance:manage"))]


@router.get("/governance/publishing", response_class=HTMLResponse)
def publishing_page(request: Request, db: DbSession, actor: Reader) -> HTMLResponse:
    items = [(p, queries.runs(db, p.id, 10)) for p in queries.pipelines(db)]
    return render(request, "publishing/pipelines.html", {"items": items}, actor=actor)


@router.post("/governance/publishing/{source}/run")
def run_submit(request: Request, source: str, db: DbSession, _actor: Manager) -> Response:
    pipeline = queries.pipeline_by_source(db, source)
    if pipeline is None:
        raise NotFoundError("pipeline", source)
    request.app.state.runtime.jobs.enqueue("publishing.run_pipeline", pipeline.id, 1)
    return RedirectResponse("/governance/publishing?queued=1", status_code=303)
