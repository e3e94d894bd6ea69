"""Writes for notifications: queue messages, manage subscriptions and templates.

Messages are rows created in the caller's transaction (so a notification is never promised for
a change that rolled back, nor lost for one that committed); delivery jobs are queued after
commit. Nothing here talks to SMTP or HTTP: `tasks.py` does, one message id at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.audit.actions import record
from townhall.db import utcnow
from townhall.errors import NotFoundError, TownhallError
from townhall.jobs import enqueue_after_commit
from townhall.notify import queries
from townhall.notify.defaults import DEFAULT_TEMPLATES
from townhall.notify.models import (
    NotifyMessage,
    NotifySubscription,
    NotifySuppression,
    NotifyTemplate,
)
from townhall.notify.templating import render
from townhall.outbound import OutboundPolicy, OutboundRefused

if TYPE_CHECKING:
    from townhall.jobs import JobQueue

DELIVER_EMAIL = "notify.deliver_email"
DELIVER_WEBHOOK = "notify.deliver_webhook"
TOPIC_KINDS = ("request", "area", "office", "office-status", "*")


def _invalid(field: str, message: str) -> TownhallError:
    return TownhallError(
        422,
        "invalid_request",
        f"{field}: {message}",
        errors=[{"loc": ["body", field], "message": message, "type": "value_error"}],
    )


# Templates -------------------------------------------------------------------------------------


def current_template(session: Session, slug: str, language: str = "en") -> NotifyTemplate:
    """The newest version of a template in `language` (falling back to English). Version 1
    is created from `DEFAULT_TEMPLATES` the first time a default template is used. Raises
    NotFoundError for a slug that is neither stored nor a default."""
    for lang in dict.fromkeys((language, "en")):
        template = queries.latest_template(session, slug, lang)
        if template is not None:
            return template
    default = DEFAULT_TEMPLATES.get(slug)
    if default is None:
        raise NotFoundError("template", slug)
    template = NotifyTemplate(
        slug=slug,
        language="en",
        version=1,
        channel=default["channel"],
        subject=default["subject"],
        body=default["body"],
        created_by="default",
    )
    session.add(template)
    session.flush()
    return template


def save_template(
    session: Session,
    *,
    actor: Actor,
    slug: str,
    subject: str,
    body: str,
    language: str = "en",
    channel: str = "email",
) -> NotifyTemplate:
    """Add a new version of a template (versions are never edited in place)."""
    actor.require("system:admin")
    if not body.strip():
        raise _invalid("body", "must not be empty")
    latest = queries.latest_template(session, slug, language)
    template = NotifyTemplate(
        slug=slug,
        language=language,
        version=(latest.version + 1) if latest else 1,
        channel=channel,
        subject=subject,
        body=body,
        created_by=actor.label,
    )
    session.add(template)
    session.flush()
    record(
        session,
        actor=actor,
        action="notify.template.save",
        object_type="notify_template",
        object_id=template.id,
        changes={"slug": slug, "language": language, "version": template.version},
    )
    return template


# Messages --------------------------------------------------------------------------------------


def _enqueue(session: Session, jobs: JobQueue | None, name: str, message: NotifyMessage) -> None:
    if jobs is not None:
        enqueue_after_commit(session, jobs, name, message.id)


def queue_email(
    session: Session,
    *,
    to: str,
    template_slug: str,
    personalisation: Mapping[str, Any],
    reference: str | None = None,
    language: str = "en",
    subscription: NotifySubscription | None = None,
    event_type: str | None = None,
    unsubscribe_url: str | None = None,
    jobs: JobQueue | None = None,
) -> NotifyMessage:
    """Create an email message from the current template version and queue its delivery.

    An address that failed permanently before gets a message that is `permanent-failure`
    at once and is never sent: Notify's rule that a hard bounce is not retried.
    """
    template = current_template(session, template_slug, language)
    values = dict(personalisation)
    if unsubscribe_url:
        values["unsubscribe_url"] = unsubscribe_url
    body = render(template.body, values)
    if unsubscribe_url:
        body = f"{body.rstrip()}\n\n--\nTo stop these emails: {unsubscribe_url}\n"
    now = utcnow()
    message = NotifyMessage(
        channel="email",
        recipient=to.strip(),
        subscription_id=subscription.id if subscription else None,
        template_id=template.id,
        template_slug=template.slug,
        template_version=template.version,
        event_type=event_type,
        reference=reference,
        subject=render(template.subject, values)[:300],
        body=body,
        payload={"unsubscribe_url": unsubscribe_url} if unsubscribe_url else {},
        status="created",
        created_at=now,
        updated_at=now,
    )
    suppression = queries.suppression_for(session, to)
    if suppression is not None:
        message.status = "permanent-failure"
        message.last_error = f"address suppressed since {suppression.created_at.isoformat()}"
    session.add(message)
    session.flush()
    if message.status == "created":
        _enqueue(session, jobs, DELIVER_EMAIL, message)
    return message


def queue_webhook(
    session: Session,
    *,
    subscription: NotifySubscription,
    event_type: str,
    payload: Mapping[str, Any],
    reference: str | None = None,
    jobs: JobQueue | None = None,
) -> NotifyMessage:
    now = utcnow()
    message = NotifyMessage(
        channel="webhook",
        recipient=subscription.target,
        subscription_id=subscription.id,
        event_type=event_type,
        reference=reference,
        payload=dict(payload),
        status="created",
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    _enqueue(session, jobs, DELIVER_WEBHOOK, message)
    return message


def notify_topics(
    session: Session,
    *,
    topics: Iterable[str],
    event_type: str,
    email_template: str,
    personalisation: Mapping[str, Any],
    payload: Mapping[str, Any],
    reference: str | None,
    unsubscribe_url_for: Any,
    exclude_emails: Iterable[str] = (),
    jobs: JobQueue | None = None,
    channels: Iterable[str] = ("email", "webhook"),
) -> list[NotifyMessage]:
    """One message per active subscription to any of `topics` (an address that follows
    several matching topics hears once). Webhooks subscribed to `*` hear every event.

    `unsubscribe_url_for(subscription)` gives each email its one-click link. `channels`
    narrows who hears (routine news may go to systems only, never to people's inboxes).
    """
    allowed_channels = set(channels)
    excluded = {address.strip().lower() for address in exclude_emails}
    sent_to: set[tuple[str, str]] = set()
    messages = []
    for subscription in queries.subscriptions_for_topics(session, [*topics, "*"]):
        key = (subscription.channel, subscription.target.strip().lower())
        if key in sent_to or subscription.channel not in allowed_channels:
            continue
        if subscription.channel == "email":
            if subscription.topic == "*" or key[1] in excluded:
                continue
            sent_to.add(key)
            messages.append(
                queue_email(
                    session,
                    to=subscription.target,
                    template_slug=email_template,
                    personalisation=personalisation,
                    reference=reference,
                    language=subscription.language,
                    subscription=subscription,
                    event_type=event_type,
                    unsubscribe_url=unsubscribe_url_for(subscription),
                    jobs=jobs,
                )
            )
        elif subscription.channel == "webhook":
            sent_to.add(key)
            messages.append(
                queue_webhook(
                    session,
                    subscription=subscription,
                    event_type=event_type,
                    payload={"event": event_type, "data": dict(payload)},
                    reference=reference,
                    jobs=jobs,
                )
            )
    return messages


def suppress_address(
    session: Session, *, address: str, reason: str, message_id: int | None = None
) -> NotifySuppression:
    """Never send to `address` again. Idempotent."""
    existing = queries.suppression_for(session, address)
    if existing is not None:
        return existing
    suppression = NotifySuppression(
        address=address.strip().lower(), reason=reason[:2000], message_id=message_id
    )
    session.add(suppression)
    session.flush()
    return suppression


def requeue_message(session: Session, *, actor: Actor, message_id: int, jobs: JobQueue) -> None:
    """Replay a dead-lettered or technically failed message (never a permanent failure)."""
    actor.require("system:admin")
    message = session.get(NotifyMessage, message_id)
    if message is None:
        raise NotFoundError("message", message_id)
    if message.status not in ("technical-failure", "temporary-failure"):
        raise TownhallError(409, "conflict", f"A {message.status} message cannot be sent again.")
    message.status = "created"
    message.attempts = 0
    message.dead_lettered_at = None
    message.next_attempt_at = None
    message.updated_at = utcnow()
    record(
        session,
        actor=actor,
        action="notify.message.requeue",
        object_type="notify_message",
        object_id=message.id,
        changes={"channel": message.channel},
    )
    _enqueue(
        session, jobs, DELIVER_EMAIL if message.channel == "email" else DELIVER_WEBHOOK, message
    )


# Subscriptions ---------------------------------------------------------------------------------


def _check_topic(topic: str, channel: str) -> None:
    kind = topic.split(":", 1)[0]
    if kind not in TOPIC_KINDS or (kind != "*" and ":" not in topic):
        raise _invalid(
            "topic",
            "must be request:<code>, area:<district>:<service>, office:<slug> "
            "or office-status:<office slug>",
        )
    if topic == "*" and channel != "webhook":
        raise _invalid("topic", "only webhooks may subscribe to every event")


def _check_webhook_url(url: str, outbound: OutboundPolicy | None) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what can fail ("http://host:x/")
    except ValueError:
        raise _invalid("target", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("target", "a webhook needs an http(s) URL")
    if outbound is not None:
        # Early feedback for an obvious private address; delivery checks every resolution.
        try:
            outbound.check_literal(parts.hostname)
        except OutboundRefused as refused:
            raise _invalid("target", str(refused)) from None


def subscribe(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    topic: str,
    target: str,
    secret: str | None = None,
    language: str = "en",
    outbound: OutboundPolicy | None = None,
) -> NotifySubscription:
    """Follow a topic by email (anyone: the address is the resident's to give) or by webhook
    (administrators). Idempotent for an address already following the topic. `outbound`,
    when given, refuses a webhook URL that names a private address outright."""
    if channel not in ("email", "webhook"):
        raise _invalid("channel", "must be email or webhook")
    _check_topic(topic, channel)
    target = target.strip()
    if channel == "webhook":
        actor.require("system:admin")
        _check_webhook_url(target, outbound)
    elif "@" not in target or len(target) > 320:
        raise _invalid("target", "is not an email address")
    existing = session.scalar(
        select(NotifySubscription).where(
            NotifySubscription.channel == channel,
            NotifySubscription.topic == topic,
            NotifySubscription.target == target,
            NotifySubscription.active.is_(True),
        )
    )
    if existing is not None:
        return existing
    subscription = NotifySubscription(
        channel=channel,
        topic=topic,
        target=target,
        secret=(secret or secrets.token_urlsafe(32)) if channel == "webhook" else "",
        language=language,
        token=secrets.token_urlsafe(24),
        created_by=actor.label,
    )
    session.add(subscription)
    session.flush()
    record(
        session,
        actor=actor,
        action="notify.subscribe",
        object_type="notify_subscription",
        object_id=subscription.id,
        # An email address is personal data: the audit trail keeps only the channel and topic.
        changes={
            "channel": channel,
            "topic": topic,
            **({"target": target} if channel == "webhook" else {}),
        },
    )
    return subscription


def unsubscribe(session: Session, *, actor: Actor, token: str) -> NotifySubscription | None:
    """One-click unsubscribe by the link's token. Idempotent; None for an unknown token."""
    subscription = queries.subscription_by_token(session, token)
    if subscription is None:
        return None
    if subscription.active:
        subscription.active = False
        subscription.unsubscribed_at = utcnow()
        record(
            session,
            actor=actor,
            action="notify.unsubscribe",
            object_type="notify_subscription",
            object_id=subscription.id,
            changes={"topic": subscription.topic, "channel": subscription.channel},
        )
    return subscription


def delete_subscription(session: Session, *, actor: Actor, subscription_id: int) -> None:
    actor.require("system:admin")
    subscription = session.get(NotifySubscription, subscription_id)
    if subscription is None:
        raise NotFoundError("subscription", subscription_id)
    subscription.active = False
    subscription.unsubscribed_at = subscription.unsubscribed_at or utcnow()
    record(
        session,
        actor=actor,
        action="notify.subscription.delete",
        object_type="notify_subscription",
        object_id=subscription.id,
        changes={"topic": subscription.topic},
    )


def follow_by_email(
    session: Session,
    *,
    actor: Actor,
    topic: str,
    email: str,
    personalisation: Mapping[str, Any],
    unsubscribe_url_for: Callable[[str], str],
    jobs: JobQueue | None,
    reference: str | None = None,
) -> str:
    """Follow a topic by email; a new follower gets a confirmation carrying the one-click
    unsubscribe link (an address typed in by someone else can leave at once). Idempotent: an
    address already following gets no second email. Returns the unsubscribe URL."""
    already = {s.target for s in queries.subscriptions_for_topics(session, [topic])}
    subscription = subscribe(
        session, actor=actor, channel="email", topic=topic, target=email.strip()
    )
    unsubscribe_url = unsubscribe_url_for(subscription.token)
    if subscription.target not in already:
        queue_email(
            session,
            to=subscription.target,
            template_slug="subscription.confirm",
            personalisation=personalisation,
            reference=reference or topic,
            subscription=subscription,
            event_type="subscription.created",
            unsubscribe_url=unsubscribe_url,
            jobs=jobs,
        )
    return unsubscribe_url
