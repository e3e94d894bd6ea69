"""The one-click unsubscribe page (RFC 8058).

Mail clients POST `List-Unsubscribe=One-Click` to the link in the `List-Unsubscribe` header;
people following the link in the email body get a page with one button. A GET never
unsubscribes, because mail scanners follow every link they see. The token in the URL is the
only credential: it is random, per subscription, and unsubscribing is idempotent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from townhall.accounts.auth import PublicActor
from townhall.deps import DbSession
from townhall.notify import actions, queries
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)


def _topic_label(topic: str) -> str:
    kind, _, rest = topic.partition(":")
    if kind == "request":
        return f"request {rest}"
    if kind == "area":
        district, _, service = rest.partition(":")
        return f"new requests in {district}" + ("" if service == "*" else f" ({service})")
    if kind == "office":
        return f"the office {rest}"
    if kind == "office-status":
        return f"the live status of the office {rest}"
    return "every event"


@router.get("/notify/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, db: DbSession, actor: PublicActor
) -> HTMLResponse:
    subscription = queries.subscription_by_token(db, token)
    return render(
        request,
        "notify/unsubscribe.html",
        {
            "token": token,
            "found": subscription is not None,
            "active": bool(subscription and subscription.active),
            "topic_label": _topic_label(subscription.topic) if subscription else "",
            "done": False,
        },
        status_code=200 if subscription else 404,
        actor=actor,
    )


@router.post("/notify/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request, db: DbSession, actor: PublicActor) -> HTMLResponse:
    subscription = actions.unsubscribe(db, actor=actor, token=token)
    return render(
        request,
        "notify/unsubscribe.html",
        {
            "token": token,
            "found": subscription is not None,
            "active": False,
            "topic_label": _topic_label(subscription.topic) if subscription else "",
            "done": subscription is not None,
        },
        status_code=200 if subscription else 404,
        actor=actor,
    )
