"""Governance pages: the data inventory, the review queue, one dataset's governance, retention.

Plain server-rendered HTML, complete without JavaScript; every form posts with its CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.catalog import queries as catalog_queries
from townhall.deps import DbSession
from townhall.governance import actions, queries, retention
from townhall.governance.api import governance_public, visible_dataset
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Publisher = Annotated[Actor, Depends(requires("datasets:publish"))]
Reviewer = Annotated[Actor, Depends(requires("datasets:review"))]
Reader = Annotated[Actor, Depends(requires("governance:read"))]
Manager = Annotated[Actor, Depends(requires("governance:manage"))]


@router.get("/governance", response_class=HTMLResponse)
def inventory_page(request: Request, db: DbSession, actor: Reader) -> HTMLResponse:
    """Every dataset with its classification, steward, licence, freshness and usage."""
    recorder = getattr(request.app.state, "dataset_usage", None)
    pending = recorder.pending() if recorder is not None else []
    rows = [row.as_dict() for row in queries.inventory(db, pending_usage=pending)]
    return render(request, "governance/inventory.html", {"rows": rows}, actor=actor)


@router.get("/governance/review", response_class=HTMLResponse)
def review_page(request: Request, db: DbSession, actor: Reviewer) -> HTMLResponse:
    items = [
        governance_public(db, dataset, actor)
        for dataset in queries.review_queue(db)
        if catalog_queries.can_edit(actor, dataset)
    ]
    return render(request, "governance/review.html", {"items": items}, actor=actor)


@router.post("/governance/review/{slug}/approve")
def approve_submit(
    slug: str,
    db: DbSession,
    actor: Reviewer,
    note: Annotated[str, Form(max_length=10_000)] = "",
    publish: Annotated[bool, Form()] = False,
) -> Response:
    visible_dataset(db, actor, slug)
    actions.approve(db, actor=actor, slug=slug, note=note, publish=publish)
    return RedirectResponse("/governance/review?done=approved", status_code=303)


@router.post("/governance/review/{slug}/send-back")
def send_back_submit(
    slug: str,
    db: DbSession,
    actor: Reviewer,
    note: Annotated[str, Form(min_length=1, max_length=10_000)],
) -> Response:
    visible_dataset(db, actor, slug)
    actions.send_back(db, actor=actor, slug=slug, note=note)
    return RedirectResponse("/governance/review?done=sent_back", status_code=303)


@router.get("/governance/datasets/{slug}", response_class=HTMLResponse)
def dataset_page(request: Request, slug: str, db: DbSession, actor: Reader) -> HTMLResponse:
    dataset = visible_dataset(db, actor, slug)
    return render(
        request,
        "governance/dataset.html",
        {
            "dataset": dataset,
            "gov": governance_public(db, dataset, actor),
            "editable": catalog_queries.can_edit(actor, dataset),
        },
        actor=actor,
    )


@router.post("/governance/datasets/{slug}/submit")
def submit_submit(
    slug: str,
    db: DbSession,
    actor: Publisher,
    note: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    visible_dataset(db, actor, slug)
    actions.submit_for_review(db, actor=actor, slug=slug, note=note)
    return RedirectResponse(f"/governance/datasets/{slug}?submitted=1", status_code=303)


@router.get("/governance/retention", response_class=HTMLResponse)
def retention_page(request: Request, db: DbSession, actor: Reader) -> HTMLResponse:
    return render(
        request,
        "governance/retention.html",
        {"policies": retention.policies(db), "runs": queries.retention_runs(db, 20)},
        actor=actor,
    )


@router.post("/governance/retention/run")
def retention_run_submit(
    db: DbSession, actor: Manager, dry_run: Annotated[bool, Form()] = False
) -> Response:
    retention.apply_retention(db, actor=actor, dry_run=dry_run)
    return RedirectResponse("/governance/retention?ran=1", status_code=303)
