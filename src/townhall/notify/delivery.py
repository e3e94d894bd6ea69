"""Talking to the outside: SMTP for email, HTTP POST for webhooks, and the retry policy.

Each sender returns an `Outcome` instead of raising, so the job records exactly what
happened: `delivered`, `temporary` (try again later), `permanent` (the recipient refused for
good) or `technical` (our configuration or the provider is broken; try again later).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal

import httpx

from townhall import __version__
from townhall.config import Settings
from townhall.outbound import OutboundPolicy, OutboundRefused, guarded_client

OutcomeKind = Literal["delivered", "temporary", "permanent", "technical"]
SIGNATURE_HEADER = "X-Townhall-Signature"
TIMESTAMP_HEADER = "X-Townhall-Timestamp"
EVENT_HEADER = "X-Townhall-Event"
DELIVERY_HEADER = "X-Townhall-Delivery"


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave. `final` stops the retries at once: retrying cannot help (a
    destination the outbound policy refuses) until an operator changes something."""

    kind: OutcomeKind
    detail: str = ""
    response_status: int | None = None
    final: bool = False


@dataclass
class RetryPolicy:
    """`max_attempts` sends in all; the wait before attempt n+1 is `base_seconds * 2**(n-1)`,
    capped at `max_delay_seconds`."""

    max_attempts: int
    base_seconds: float
    max_delay_seconds: float

    def delay_after(self, attempts: int) -> float:
        return min(self.base_seconds * 2 ** max(attempts - 1, 0), self.max_delay_seconds)


# About 8.5 hours of tries for email, 2 hours for webhooks (30 s, 1 min, 2 min, ... 1 h).
EMAIL_RETRY = RetryPolicy(max_attempts=6, base_seconds=60, max_delay_seconds=4 * 3600)
WEBHOOK_RETRY = RetryPolicy(max_attempts=8, base_seconds=30, max_delay_seconds=3600)
WEBHOOK_TIMEOUT_SECONDS = 10.0
SMTP_TIMEOUT_SECONDS = 30.0


# Email -----------------------------------------------------------------------------------------


def build_email(
    settings: Settings,
    *,
    to: str,
    subject: str,
    body: str,
    message_id: int,
    unsubscribe_url: str | None,
) -> EmailMessage:
    # Long headers (the unsubscribe URL) are not folded: some mail clients mangle folded URLs.
    email = EmailMessage(policy=email_policy.default.clone(max_line_length=998))
    email["From"] = settings.mail_from
    email["To"] = to
    email["Subject"] = subject
    email["Date"] = formatdate(localtime=False)
    domain = settings.mail_from.rpartition("@")[2] or "localhost"
    email["Message-ID"] = make_msgid(idstring=f"th{message_id}", domain=domain)
    email["X-Townhall-Message"] = str(message_id)
    email["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to the URL.
        email["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email.set_content(body)
    return email


def _smtp_outcome(code: int, text: bytes | str, *, recipient_side: bool) -> Outcome:
    detail = f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    if 500 <= code < 600:
        return Outcome("permanent" if recipient_side else "technical", detail[:1000])
    return Outcome("temporary", detail[:1000])


def send_email(settings: Settings, email: EmailMessage) -> Outcome:
    """One SMTP transaction. 5xx on the recipient or the data is permanent; 4xx temporary;
    refused sender, failed login, no server or a dropped connection are technical."""
    if not settings.smtp_host:
        return Outcome("technical", "no SMTP server configured (TOWNHALL_SMTP_HOST)")
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                smtp.login(settings.smtp_username, password)
            smtp.send_message(email)
    except smtplib.SMTPRecipientsRefused as refused:
        code, text = next(iter(refused.recipients.values()))
        return _smtp_outcome(code, text, recipient_side=True)
    except smtplib.SMTPSenderRefused as error:
        return Outcome("technical", f"sender refused: {error.smtp_code} {error.smtp_error!r}")
    except smtplib.SMTPAuthenticationError as error:
        return Outcome("technical", f"login failed: {error.smtp_code}")
    except smtplib.SMTPDataError as error:
        return _smtp_outcome(error.smtp_code, error.smtp_error, recipient_side=True)
    except (smtplib.SMTPException, OSError) as error:
        return Outcome("technical", f"{type(error).__name__}: {error}"[:1000])
    return Outcome("delivered")


# Webhooks --------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` (the timestamp is signed so a
    captured delivery cannot be replayed later as a fresh one)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    *,
    timestamp: str,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - stamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def post_webhook(
    url: str,
    *,
    secret: str,
    payload: dict[str, Any],
    event_type: str,
    delivery_id: int,
    now: float | None = None,
    outbound: OutboundPolicy | None = None,
) -> Outcome:
    """POST the JSON payload, signed. 2xx delivered; 410 Gone permanent (the receiver says
    stop); anything else, timeouts included, temporary. A destination that `outbound`
    (default: public addresses only) refuses is a final technical failure, never sent."""
    body = webhook_body(payload)
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Townhall-Webhooks/{__version__}",
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        with guarded_client(
            outbound or OutboundPolicy(),
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
        ) as client:
            response = client.post(url, content=body, headers=headers)
    except OutboundRefused as refused:
        return Outcome("technical", f"refused: {refused}"[:1000], final=True)
    except httpx.HTTPError as error:
        return Outcome("temporary", f"{type(error).__name__}: {error}"[:1000])
    if 200 <= response.status_code < 300:
        return Outcome("delivered", response_status=response.status_code)
    kind: OutcomeKind = "permanent" if response.status_code == 410 else "temporary"
    return Outcome(kind, f"HTTP {response.status_code}", response_status=response.status_code)
