"""Delivery jobs: one message id each, idempotent, with their own backoff.

A job first claims its message with a conditional UPDATE (so a retry, the sweeper and a
duplicate delivery of the same job cannot send twice at once), commits `sending`, talks to
SMTP or the webhook receiver outside any transaction, then records the outcome. A temporary
failure schedules the next attempt through Huey with an exponentially growing delay; when the
attempts run out, email ends `temporary-failure` or `technical-failure`, and a webhook is
dead-lettered (`technical-failure` plus `dead_lettered_at`) for an operator to replay.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, update

from townhall.db import unit_of_work, utcnow
from townhall.jobs import JobFailure, job
from townhall.notify import actions, delivery, queries
from townhall.notify.models import NotifyMessage, NotifySubscription
from townhall.outbound import OutboundPolicy

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

# A message left `sending` this long was interrupted mid-send (a crash): it may be claimed again.
STALE_SENDING = timedelta(minutes=15)


def _claim(runtime: Runtime, message_id: int, channel: str) -> bool:
    now = utcnow()
    with unit_of_work(runtime.session_factory) as session:
        claimed = session.execute(
            update(NotifyMessage)
            .where(
                NotifyMessage.id == message_id,
                NotifyMessage.channel == channel,
                or_(
                    NotifyMessage.status == "created",
                    (NotifyMessage.status == "temporary-failure")
                    & NotifyMessage.next_attempt_at.is_not(None)
                    & (NotifyMessage.next_attempt_at <= now + timedelta(seconds=1)),
                    (NotifyMessage.status == "sending")
                    & (NotifyMessage.updated_at < now - STALE_SENDING),
                ),
            )
            .values(
                status="sending",
                attempts=NotifyMessage.attempts + 1,
                updated_at=now,
                sent_at=now,
                next_attempt_at=None,
            )
        )
        return bool(claimed.rowcount)


def _record(
    runtime: Runtime,
    message_id: int,
    outcome: delivery.Outcome,
    policy: delivery.RetryPolicy,
    job_name: str,
) -> None:
    now = utcnow()
    retry_in: float | None = None
    with unit_of_work(runtime.session_factory) as session:
        message = queries.message_by_id(session, message_id)
        if message is None:
            return
        message.updated_at = now
        message.response_status = outcome.response_status
        message.last_error = outcome.detail or None
        if outcome.kind == "delivered":
            message.status = "delivered"
            message.delivered_at = now
        elif outcome.kind == "permanent":
            message.status = "permanent-failure"
            if message.channel == "email":
                actions.suppress_address(
                    session, address=message.recipient, reason=outcome.detail, message_id=message.id
                )
            elif message.subscription_id is not None:
                # 410 Gone: the receiver asked us to stop; stop sending to that webhook.
                subscription = session.get(NotifySubscription, message.subscription_id)
                if subscription is not None and subscription.active:
                    subscription.active = False
                    subscription.unsubscribed_at = now
        elif message.attempts < policy.max_attempts and not outcome.final:
            retry_in = policy.delay_after(message.attempts)
            message.status = "temporary-failure"
            message.next_attempt_at = now + timedelta(seconds=retry_in)
        else:
            # Out of attempts. A recipient that kept answering 4xx stays temporary-failure
            # (Notify's final "inbox full"); our own breakage is a technical failure.
            # A final outcome (a refused destination) skips the remaining attempts.
            recipient_side = outcome.kind == "temporary" and message.channel == "email"
            message.status = "temporary-failure" if recipient_side else "technical-failure"
            message.next_attempt_at = None
            if message.channel == "webhook":
                message.status = "technical-failure"
                message.dead_lettered_at = now
                log.warning("webhook message %s dead-lettered: %s", message.id, outcome.detail)
    if retry_in is not None:
        runtime.jobs.enqueue(job_name, message_id, delay=retry_in)


def _mark_technical_failure(runtime: Runtime, message_id: int, *, failure: JobFailure) -> None:
    with unit_of_work(runtime.session_factory) as session:
        message = queries.message_by_id(session, message_id)
        if message is None or message.status in ("delivered", "permanent-failure"):
            return
        message.status = "technical-failure"
        message.last_error = failure.error
        message.updated_at = utcnow()
        if message.channel == "webhook":
            message.dead_lettered_at = utcnow()


@job(
    actions.DELIVER_EMAIL,
    retries=2,
    retry_delay=30,
    on_failure=_mark_technical_failure,
)
def deliver_email(runtime: Runtime, message_id: int) -> str:
    """Send one email message. Returns the status it ended in (or `skipped`)."""
    with unit_of_work(runtime.session_factory) as session:
        message = queries.message_by_id(session, message_id)
        if message is None or message.channel != "email":
            return "skipped"
        if queries.suppression_for(session, message.recipient) is not None and message.status in (
            "created",
            "temporary-failure",
        ):
            message.status = "permanent-failure"
            message.last_error = "address suppressed"
            message.updated_at = utcnow()
            return message.status
    if not _claim(runtime, message_id, "email"):
        return "skipped"
    with unit_of_work(runtime.session_factory) as session:
        message = queries.message_by_id(session, message_id)
        assert message is not None
        email = delivery.build_email(
            runtime.settings,
            to=message.recipient,
            subject=message.subject,
            body=message.body,
            message_id=message.id,
            unsubscribe_url=(message.payload or {}).get("unsubscribe_url"),
        )
    outcome = delivery.send_email(runtime.settings, email)
    _record(runtime, message_id, outcome, delivery.EMAIL_RETRY, actions.DELIVER_EMAIL)
    return outcome.kind


@job(
    actions.DELIVER_WEBHOOK,
    retries=2,
    retry_delay=30,
    on_failure=_mark_technical_failure,
)
def deliver_webhook(runtime: Runtime, message_id: int) -> str:
    """POST one webhook message, signed with its subscription's secret."""
    if not _claim(runtime, message_id, "webhook"):
        return "skipped"
    with unit_of_work(runtime.session_factory) as session:
        message = queries.message_by_id(session, message_id)
        assert message is not None
        subscription = (
            session.get(NotifySubscription, message.subscription_id)
            if message.subscription_id
            else None
        )
        if subscription is None or not subscription.active:
            message.status = "permanent-failure"
            message.last_error = "the webhook subscription was removed"
            message.updated_at = utcnow()
            return message.status
        payload: dict[str, Any] = dict(message.payload or {})
        url, secret, event_type = message.recipient, subscription.secret, message.event_type
    outcome = delivery.post_webhook(
        url,
        secret=secret,
        payload=payload,
        event_type=event_type or "event",
        delivery_id=message_id,
        outbound=OutboundPolicy.from_settings(runtime.settings),
    )
    _record(runtime, message_id, outcome, delivery.WEBHOOK_RETRY, actions.DELIVER_WEBHOOK)
    return outcome.kind


@job("notify.send_pending", retries=0)
def send_pending(runtime: Runtime, older_than_seconds: int = 60) -> int:
    """Queue delivery for messages that were never queued or whose retry is overdue (a
    crash between commit and enqueue, a lost scheduled task). Safe to run any time."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with unit_of_work(runtime.session_factory) as session:
        ids = queries.pending_message_ids(session, older_than=cutoff)
        channels = {
            message_id: session.get(NotifyMessage, message_id).channel  # type: ignore[union-attr]
            for message_id in ids
        }
    for message_id, channel in channels.items():
        name = actions.DELIVER_EMAIL if channel == "email" else actions.DELIVER_WEBHOOK
        runtime.jobs.enqueue(name, message_id)
    return len(ids)


def _sweep_every(_settings: object) -> timedelta:
    """Once a minute: a message lost between commit and enqueue waits at most that long."""
    return timedelta(minutes=1)


SCHEDULE = {"notify.send_pending": _sweep_every}
"""Job name -> function of the settings giving its interval (None: not scheduled)."""
