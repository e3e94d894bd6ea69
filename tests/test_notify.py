"""Notifications end to end: email through a real SMTP server (aiosmtpd) read back as it
arrives, webhooks to a real HTTP receiver on loopback (signatures, retries with backoff through
Huey, dead letters), GOV.UK Notify's message lifecycle, suppression, one-click unsubscribe,
template versions. Both backends.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select

from townhall.actor import ANONYMOUS, system_actor
from townhall.db import unit_of_work
from townhall.notify import delivery, tasks
from townhall.notify.models import NotifyMessage, NotifySubscription, NotifySuppression
from townhall.runtime import Runtime
from townhall.service_requests import actions

from .conftest import auth, make_account
from .test_open311 import _free_port
from .test_service_requests import setup_city

SYSTEM = system_actor("test")


# A real SMTP server --------------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler: keeps what arrives; refuses some recipients like real servers do."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.rcpt_replies = {
            "bounce@example.org": "550 5.1.1 No such user",
            "full@example.org": "452 4.2.2 Mailbox full",
        }

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: N802
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 Message accepted"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def mail_runtime(runtime, settings, mailbox) -> Iterator[Runtime]:
    """The test's database, with SMTP pointed at the aiosmtpd server."""
    _, port = mailbox
    mail_settings = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "mail_from": "desk@city.example",
            "base_url": "https://city.example",
        }
    )
    own = Runtime(mail_settings)
    setup_city(own)
    yield own
    own.close()


def effects(runtime: Runtime) -> actions.Effects:
    return actions.Effects(
        jobs=runtime.jobs, base_url=runtime.settings.base_url, site_name="Riverton"
    )


def submit(runtime: Runtime, **fields: Any) -> str:
    values = {"service_code": "GRAFFITI", "address": "Old Bridge", "district_code": "D01"}
    values.update(fields)
    with unit_of_work(runtime.session_factory) as session:
        return actions.submit_request(
            session, actor=ANONYMOUS, submission=actions.Submission(**values),
            effects=effects(runtime),
        ).request.tracking_code  # fmt: skip


def messages(runtime: Runtime, **where: Any) -> list[NotifyMessage]:
    with unit_of_work(runtime.session_factory) as session:
        query = select(NotifyMessage).order_by(NotifyMessage.id)
        for name, value in where.items():
            query = query.where(getattr(NotifyMessage, name) == value)
        return list(session.scalars(query))


def deliver_all(runtime: Runtime) -> list[str]:
    """Run every email job now, as a worker would."""
    outcomes = []
    for message in messages(runtime, channel="email"):
        outcomes.append(tasks.deliver_email(runtime, message.id))
    return outcomes


# Email ---------------------------------------------------------------------------------------


def test_acknowledgement_arrives_with_the_tracking_code(mail_runtime, mailbox) -> None:
    box, _ = mailbox
    code = submit(mail_runtime, resident_email="ann@example.org", resident_name="Ann Lee")
    [message] = messages(mail_runtime)
    assert message.status == "created"
    assert tasks.deliver_email(mail_runtime, message.id) == "delivered"
    [mail] = box.to("ann@example.org")
    assert mail["From"] == "desk@city.example"
    assert code in mail["Subject"]
    body = mail.get_content()
    assert f"https://city.example/requests/{code}" in body
    assert f"https://city.example/requests/{code}/private?key=" in body
    unsubscribe = str(mail["List-Unsubscribe"]).strip("<>")
    assert unsubscribe.startswith("https://city.example/notify/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [delivered] = messages(mail_runtime)
    assert (delivered.status, delivered.attempts) == ("delivered", 1)
    assert delivered.template_slug == "request.acknowledgement"
    assert delivered.template_version == 1
    # Idempotent: a second run of the same job sends nothing.
    assert tasks.deliver_email(mail_runtime, message.id) == "skipped"
    assert len(box.messages) == 1


def test_status_changes_and_replies_reach_the_resident(mail_runtime, mailbox) -> None:
    box, _ = mailbox
    code = submit(mail_runtime, resident_email="ann@example.org")
    with unit_of_work(mail_runtime.session_factory) as session:
        actions.transition(
            session,
            actor=SYSTEM,
            code=code,
            to="in_progress",
            public_note="Crew booked for Monday.",
            internal_note="Not for the resident.",
            effects=effects(mail_runtime),
        )
        actions.assign(
            session, actor=SYSTEM, code=code, user_id=None, effects=effects(mail_runtime)
        )  # internal: no email
        actions.reply_to_resident(
            session,
            actor=SYSTEM,
            code=code,
            body="Can you send a photo?",
            effects=effects(mail_runtime),
        )
    assert deliver_all(mail_runtime) == ["delivered", "delivered", "delivered"]
    subjects = [m["Subject"] for m in box.to("ann@example.org")]
    assert subjects == [
        f"We received your request {code}",
        f"Update on request {code}: In progress",
        f"A message about your request {code}",
    ]
    bodies = [m.get_content() for m in box.to("ann@example.org")]
    assert "Crew booked for Monday." in bodies[1]
    assert "Not for the resident" not in bodies[1]
    assert "Can you send a photo?" in bodies[2]


def test_a_permanent_failure_is_never_sent_again(mail_runtime, mailbox) -> None:
    box, _ = mailbox
    code = submit(mail_runtime, resident_email="bounce@example.org")
    assert deliver_all(mail_runtime) == ["permanent"]
    [failed] = messages(mail_runtime)
    assert failed.status == "permanent-failure"
    assert "550" in failed.last_error
    with unit_of_work(mail_runtime.session_factory) as session:
        assert session.scalar(select(NotifySuppression.address)) == "bounce@example.org"
        actions.transition(session, actor=SYSTEM, code=code, to="resolved",
                           public_note="Done.", effects=effects(mail_runtime))  # fmt: skip
    second = messages(mail_runtime)[-1]
    assert second.status == "permanent-failure"
    assert "suppressed" in second.last_error
    assert tasks.deliver_email(mail_runtime, second.id) == "skipped"
    assert box.messages == []


def test_temporary_failures_retry_with_backoff_then_stop(
    mail_runtime, mailbox, monkeypatch
) -> None:
    monkeypatch.setattr(
        delivery,
        "EMAIL_RETRY",
        delivery.RetryPolicy(max_attempts=3, base_seconds=0, max_delay_seconds=0),
    )
    submit(mail_runtime, resident_email="full@example.org")
    [message] = messages(mail_runtime)
    huey = mail_runtime.jobs.huey
    queued_before = huey.pending_count() + huey.scheduled_count()
    assert tasks.deliver_email(mail_runtime, message.id) == "temporary"
    [retrying] = messages(mail_runtime)
    assert (retrying.status, retrying.attempts) == ("temporary-failure", 1)
    assert retrying.next_attempt_at is not None
    assert huey.pending_count() + huey.scheduled_count() == queued_before + 1, "retry queued"
    assert tasks.deliver_email(mail_runtime, message.id) == "temporary"
    assert tasks.deliver_email(mail_runtime, message.id) == "temporary"
    [final] = messages(mail_runtime)
    assert (final.status, final.attempts, final.next_attempt_at) == ("temporary-failure", 3, None)
    assert tasks.deliver_email(mail_runtime, message.id) == "skipped", "no fourth attempt"


def test_backoff_grows_exponentially() -> None:
    policy = delivery.RetryPolicy(max_attempts=8, base_seconds=30, max_delay_seconds=3600)
    assert [policy.delay_after(n) for n in range(1, 9)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600,
    ]  # fmt: skip


def test_no_smtp_server_is_a_technical_failure(runtime, monkeypatch) -> None:
    monkeypatch.setattr(
        delivery,
        "EMAIL_RETRY",
        delivery.RetryPolicy(max_attempts=2, base_seconds=0, max_delay_seconds=0),
    )
    own = Runtime(
        runtime.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": _free_port()})
    )
    try:
        setup_city(own)
        submit(own, resident_email="ann@example.org")
        [message] = messages(own)
        assert tasks.deliver_email(own, message.id) == "technical"
        assert tasks.deliver_email(own, message.id) == "technical"
        [final] = messages(own)
        assert final.status == "technical-failure"
        assert final.attempts == 2
    finally:
        own.close()


# Webhooks ------------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on loopback that answers with the next status of a script."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def add_webhook(client: TestClient, admin, url: str, topic: str = "*") -> dict[str, Any]:
    response = client.post(
        "/api/v1/notify/webhooks", json={"url": url, "topic": topic}, headers=auth(admin)
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_webhooks_are_signed_and_carry_no_personal_data(
    client, runtime, admin, receiver_factory
) -> None:
    setup_city(runtime)
    receiver = receiver_factory([204])
    hook = add_webhook(client, admin, receiver.url)
    assert (
        client.get(
            "/api/v1/notify/subscriptions", headers=auth(make_account(runtime, "staff"))
        ).status_code
        == 403
    )
    code = submit(runtime, resident_email="ann@example.org", resident_phone="413-555-0100",
                  description="Tags. Call 413-555-0100.")  # fmt: skip
    [message] = messages(runtime, channel="webhook")
    assert tasks.deliver_webhook(runtime, message.id) == "delivered"
    [(headers, body)] = receiver.calls
    assert headers["X-Townhall-Event"] == "request.created"
    assert headers["Content-Type"] == "application/json"
    assert delivery.verify_signature(
        hook["secret"], body,
        timestamp=headers["X-Townhall-Timestamp"], signature=headers["X-Townhall-Signature"],
    )  # fmt: skip
    assert not delivery.verify_signature(
        "wrong-secret", body,
        timestamp=headers["X-Townhall-Timestamp"], signature=headers["X-Townhall-Signature"],
    )  # fmt: skip
    assert not delivery.verify_signature(
        hook["secret"], body + b" ",
        timestamp=headers["X-Townhall-Timestamp"], signature=headers["X-Townhall-Signature"],
    )  # fmt: skip
    payload = json.loads(body)
    assert payload["event"] == "request.created"
    assert payload["data"]["tracking_code"] == code
    assert "ann@example.org" not in body.decode()
    assert "555-0100" not in body.decode()


def test_webhooks_retry_with_backoff_through_huey(
    client, runtime, admin, receiver_factory, monkeypatch
) -> None:
    """A real consumer: the receiver fails twice, then takes the delivery."""
    setup_city(runtime)
    monkeypatch.setattr(
        delivery,
        "WEBHOOK_RETRY",
        delivery.RetryPolicy(max_attempts=5, base_seconds=0.5, max_delay_seconds=2),
    )
    receiver = receiver_factory([500, 503, 200])
    add_webhook(client, admin, receiver.url)
    runtime.jobs.start_consumer(workers=1)
    response = client.post(
        "/api/v1/requests", json={"service_code": "GRAFFITI", "address": "Old Bridge"}
    )
    assert response.status_code == 201
    delivered = wait_until(
        lambda: [m for m in messages(runtime, channel="webhook") if m.status == "delivered"]
    )
    assert delivered[0].attempts == 3
    assert len(receiver.calls) == 3
    deliveries = {headers["X-Townhall-Delivery"] for headers, _ in receiver.calls}
    assert deliveries == {str(delivered[0].id)}, "the same delivery id on every attempt"


def test_webhooks_are_dead_lettered_then_replayed(
    client, runtime, admin, receiver_factory, monkeypatch
) -> None:
    setup_city(runtime)
    monkeypatch.setattr(
        delivery,
        "WEBHOOK_RETRY",
        delivery.RetryPolicy(max_attempts=3, base_seconds=0, max_delay_seconds=0),
    )
    receiver = receiver_factory([500])
    add_webhook(client, admin, receiver.url)
    submit(runtime)
    [message] = messages(runtime, channel="webhook")
    for _ in range(3):
        assert tasks.deliver_webhook(runtime, message.id) == "temporary"
    assert tasks.deliver_webhook(runtime, message.id) == "skipped"
    [dead] = messages(runtime, channel="webhook")
    assert dead.status == "technical-failure"
    assert dead.dead_lettered_at is not None
    listed = client.get("/api/v1/notify/messages?dead_lettered=true", headers=auth(admin)).json()
    assert [m["id"] for m in listed["items"]] == [dead.id]
    receiver.statuses = [200]
    replay = client.post(f"/api/v1/notify/messages/{dead.id}/retry", headers=auth(admin))
    assert replay.status_code == 200
    assert replay.json()["status"] == "created"
    assert tasks.deliver_webhook(runtime, dead.id) == "delivered"


def test_a_gone_webhook_stops_receiving(client, runtime, admin, receiver_factory) -> None:
    setup_city(runtime)
    receiver = receiver_factory([410])
    hook = add_webhook(client, admin, receiver.url)
    submit(runtime)
    [message] = messages(runtime, channel="webhook")
    assert tasks.deliver_webhook(runtime, message.id) == "permanent"
    with unit_of_work(runtime.session_factory) as session:
        assert session.get(NotifySubscription, hook["id"]).active is False
    submit(runtime)
    assert len(messages(runtime, channel="webhook")) == 1


# Subscriptions and templates -----------------------------------------------------------------


def test_one_click_unsubscribe(client, runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, resident_email="ann@example.org")
    with unit_of_work(runtime.session_factory) as session:
        token = session.scalar(select(NotifySubscription.token))
    page = client.get(f"/notify/unsubscribe/{token}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Unsubscribe" in page.text
    with unit_of_work(runtime.session_factory) as session:
        assert session.scalar(select(NotifySubscription.active)) is True, "GET changes nothing"
    # What a mail client sends for RFC 8058 one-click.
    done = client.post(
        f"/notify/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200
    assert client.post(f"/notify/unsubscribe/{token}").status_code == 200, "idempotent"
    assert client.post("/notify/unsubscribe/not-a-token").status_code == 404
    with unit_of_work(runtime.session_factory) as session:
        actions.transition(session, actor=SYSTEM, code=code, to="resolved", public_note="Done.")
    assert [m.template_slug for m in messages(runtime)] == ["request.acknowledgement"]


def test_area_subscribers_hear_of_new_requests(runtime) -> None:
    from townhall.notify import actions as notify

    setup_city(runtime)
    with unit_of_work(runtime.session_factory) as session:
        notify.subscribe(session, actor=ANONYMOUS, channel="email", topic="area:D01:*",
                         target="watcher@example.org")  # fmt: skip
        notify.subscribe(session, actor=ANONYMOUS, channel="email", topic="area:D02:*",
                         target="elsewhere@example.org")  # fmt: skip
    code = submit(runtime, district_code="D01")
    [message] = messages(runtime)
    assert message.recipient == "watcher@example.org"
    assert message.template_slug == "request.new_in_area"
    assert code in message.body


def test_template_versions_are_recorded_per_message(client, runtime, admin) -> None:
    setup_city(runtime)
    submit(runtime, resident_email="ann@example.org")
    saved = client.put(
        "/api/v1/notify/templates/request.acknowledgement",
        json={"subject": "Got it: ((tracking_code))", "body": "Thanks! ((tracking_url))"},
        headers=auth(admin),
    )
    assert saved.status_code == 200
    assert saved.json()["version"] == 2
    code = submit(runtime, resident_email="bo@example.org")
    first, second = messages(runtime)
    assert first.template_version == 1
    assert (second.template_version, second.subject) == (2, f"Got it: {code}")
    versions = client.get("/api/v1/notify/templates", headers=auth(admin)).json()
    assert [t["version"] for t in versions if t["slug"] == "request.acknowledgement"] == [1, 2]


def test_the_sweeper_queues_messages_that_were_never_queued(runtime) -> None:
    setup_city(runtime)
    with unit_of_work(runtime.session_factory) as session:
        actions.submit_request(
            session, actor=ANONYMOUS,
            submission=actions.Submission(service_code="GRAFFITI", address="x",
                                          resident_email="ann@example.org"),
            effects=actions.Effects(jobs=None),  # the crash between commit and enqueue
        )  # fmt: skip
    before = runtime.jobs.huey.pending_count()
    assert tasks.send_pending(runtime, 0) == 1
    assert runtime.jobs.huey.pending_count() == before + 1


# Outbound requests refuse private addresses (SSRF) ---------------------------------------------


@pytest.fixture
def strict_runtime(runtime, settings) -> Iterator[Runtime]:
    """The test's database with the production default: no private destinations."""
    own = Runtime(settings.model_copy(update={"outbound_allow_private": False}))
    yield own
    own.close()


def test_a_webhook_to_a_private_address_is_refused_and_dead_lettered(
    strict_runtime, admin, receiver_factory
) -> None:
    from townhall.app import create_app
    from townhall.notify import actions as notify

    setup_city(strict_runtime)
    receiver = receiver_factory([200])
    with TestClient(create_app(strict_runtime.settings, runtime=strict_runtime)) as client:
        refused = client.post(
            "/api/v1/notify/webhooks", json={"url": receiver.url, "topic": "*"},
            headers=auth(admin),
        )  # fmt: skip
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["loc"] == ["body", "target"]
        assert "TOWNHALL_OUTBOUND_ALLOW" in refused.json()["message"]
    # A URL whose name only resolves to loopback at delivery time (or a stored subscription
    # from before the rule) is stopped where the connection is made.
    with unit_of_work(strict_runtime.session_factory) as session:
        notify.subscribe(session, actor=SYSTEM, channel="webhook", topic="*",
                         target=receiver.url.replace("127.0.0.1", "localhost"))  # fmt: skip
    submit(strict_runtime)
    [message] = messages(strict_runtime, channel="webhook")
    assert tasks.deliver_webhook(strict_runtime, message.id) == "technical"
    [dead] = messages(strict_runtime, channel="webhook")
    assert dead.status == "technical-failure", "no retries: retrying cannot help"
    assert dead.attempts == 1
    assert dead.dead_lettered_at is not None
    assert "refused" in dead.last_error
    assert "127.0.0.1" in dead.last_error
    assert receiver.calls == [], "nothing reached the private address"


def test_an_allowlisted_network_receives_webhooks(runtime, settings, receiver_factory) -> None:
    from townhall.notify import actions as notify

    own = Runtime(
        settings.model_copy(
            update={"outbound_allow_private": False, "outbound_allowed_hosts": ["127.0.0.0/8"]}
        )
    )
    try:
        setup_city(own)
        receiver = receiver_factory([204])
        with unit_of_work(own.session_factory) as session:
            notify.subscribe(session, actor=SYSTEM, channel="webhook", topic="*",
                             target=receiver.url)  # fmt: skip
        submit(own)
        [message] = messages(own, channel="webhook")
        assert tasks.deliver_webhook(own, message.id) == "delivered"
        assert len(receiver.calls) == 1
    finally:
        own.close()
