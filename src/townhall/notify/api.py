"""Native JSON routes for notifications under /api/v1/notify (administrators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from townhall.accounts.auth import requires
from townhall.actor import Actor
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.notify import actions, queries
from townhall.notify.defaults import DEFAULT_TEMPLATES
from townhall.notify.schemas import (
    MessagePage,
    MessagePublic,
    SubscriptionPublic,
    TemplatePublic,
    TemplateSave,
    WebhookCreate,
    WebhookCreated,
)
from townhall.outbound import OutboundPolicy

router = APIRouter(prefix="/api/v1/notify", tags=["notifications"])
Admin = Annotated[Actor, Depends(requires("system:admin"))]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a database integer: larger is a 404, not a 500


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, summary="Add a webhook")
def create_webhook(
    body: WebhookCreate, db: DbSession, actor: Admin, request: Request
) -> WebhookCreated:
    """Events are POSTed as JSON with `X-Townhall-Signature: sha256=<hex>`, the HMAC-SHA256
    of `<X-Townhall-Timestamp>.<body>` under the secret; failures are retried with
    exponential backoff, then dead-lettered."""
    subscription = actions.subscribe(
        db,
        actor=actor,
        channel="webhook",
        topic=body.topic,
        target=body.url,
        secret=body.secret,
        outbound=OutboundPolicy.from_settings(request.app.state.settings),
    )
    return WebhookCreated(
        **SubscriptionPublic.model_validate(subscription).model_dump(),
        secret=subscription.secret,
    )


@router.get("/subscriptions", response_model=list[SubscriptionPublic], summary="Subscriptions")
def list_subscriptions(
    db: DbSession,
    actor: Admin,
    channel: Annotated[str | None, Query(pattern="^(email|webhook)$")] = None,
    topic: Annotated[str | None, Query(max_length=200)] = None,
) -> list[SubscriptionPublic]:
    return [
        SubscriptionPublic.model_validate(s)
        for s in queries.subscriptions(db, channel=channel, topic=topic)
    ]


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Remove")
def delete_subscription(subscription_id: RowId, db: DbSession, actor: Admin) -> None:
    actions.delete_subscription(db, actor=actor, subscription_id=subscription_id)


@router.get("/messages", response_model=MessagePage, summary="Messages and their status")
def list_messages(
    db: DbSession,
    actor: Admin,
    reference: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(max_length=30)] = None,
    channel: Annotated[str | None, Query(pattern="^(email|webhook)$")] = None,
    dead_lettered: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> MessagePage:
    rows, total = queries.messages(
        db,
        reference=reference,
        status=status,
        channel=channel,
        dead_lettered=dead_lettered,
        limit=limit,
        offset=offset,
    )
    return MessagePage(
        total=total,
        limit=limit,
        offset=offset,
        items=[MessagePublic.model_validate(m) for m in rows],
    )


@router.post(
    "/messages/{message_id}/retry", response_model=MessagePublic, summary="Replay a message"
)
def retry_message(
    message_id: RowId, db: DbSession, actor: Admin, request: Request
) -> MessagePublic:
    actions.requeue_message(
        db, actor=actor, message_id=message_id, jobs=request.app.state.runtime.jobs
    )
    message = queries.message_by_id(db, message_id)
    return MessagePublic.model_validate(message)


@router.get("/templates", response_model=list[TemplatePublic], summary="Templates")
def list_templates(db: DbSession, actor: Admin) -> list[TemplatePublic]:
    """Every stored version; a default template never edited nor used yet is listed as the
    version 1 it will be stored as (without an id)."""
    found = []
    for slug in sorted({*DEFAULT_TEMPLATES, *queries.template_slugs(db)}):
        versions = queries.template_versions(db, slug)
        if not versions and slug in DEFAULT_TEMPLATES:
            default = DEFAULT_TEMPLATES[slug]
            found.append(
                TemplatePublic(
                    id=None,
                    slug=slug,
                    language="en",
                    version=1,
                    channel=default["channel"],
                    subject=default["subject"],
                    body=default["body"],
                    created_at=None,
                    created_by="default",
                )
            )
        found += [TemplatePublic.model_validate(t) for t in versions]
    return found


@router.put(
    "/templates/{slug}", response_model=TemplatePublic, summary="Save a new template version"
)
def save_template(slug: str, body: TemplateSave, db: DbSession, actor: Admin) -> TemplatePublic:
    if len(slug) > 100:
        raise NotFoundError("template", slug[:100])
    template = actions.save_template(
        db,
        actor=actor,
        slug=slug,
        subject=body.subject,
        body=body.body,
        language=body.language,
        channel=body.channel,
    )
    return TemplatePublic.model_validate(template)
