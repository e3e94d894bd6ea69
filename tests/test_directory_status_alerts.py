"""Followers of an office's live status: a resident follows by email, staff close the office
unexpectedly and reopen it, and the emails arrive through a real SMTP server (aiosmtpd) with
their one-click unsubscribe; the scheduled watch tells webhooks of the daily opening and
closing but not inboxes; long queues are announced once per threshold, with hysteresis and a
minimum interval. Both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from townhall.actor import system_actor
from townhall.db import unit_of_work, utcnow
from townhall.directory import actions, queries
from townhall.directory.models import OfficeStatusSignal
from townhall.directory.tasks import watch_offices
from townhall.notify import actions as notify
from townhall.notify import tasks as notify_tasks
from townhall.notify.models import NotifyMessage
from townhall.runtime import Runtime

from .conftest import auth
from .test_directory_api import HOURS, TUESDAY_8PM, TUESDAY_10AM, city  # noqa: F401 - fixture
from .test_notify import Mailbox, mailbox  # noqa: F401 - fixture

SYSTEM = system_actor("test")
FOLLOW = "/api/v1/directory/offices/city-hall/follow"
STATUS = "/api/v1/directory/offices/city-hall/status"


@pytest.fixture
def smtp_runtime(runtime, settings, mailbox) -> Iterator[Runtime]:  # noqa: F811
    _, port = mailbox
    own = Runtime(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port}))
    yield own
    own.close()


def office_messages(runtime: Runtime, **where) -> list[NotifyMessage]:
    with unit_of_work(runtime.session_factory) as session:
        query = select(NotifyMessage).where(NotifyMessage.reference == "office-status:city-hall")
        for name, value in where.items():
            query = query.where(getattr(NotifyMessage, name) == value)
        return list(session.scalars(query.order_by(NotifyMessage.id)))


def test_followers_hear_of_an_unexpected_closure_and_the_reopening(
    client,
    city,  # noqa: F811
    smtp_runtime,
    mailbox,  # noqa: F811
) -> None:
    box: Mailbox = mailbox[0]
    manager = city["manager"]
    assert client.post(FOLLOW, json={"email": "not-an-address"}).status_code == 422
    assert (
        client.post(
            "/api/v1/directory/offices/nowhere/follow", json={"email": "ann@example.org"}
        ).status_code
        == 404
    )
    followed = client.post(FOLLOW, json={"email": "ann@example.org"})
    assert followed.status_code == 201, followed.text
    assert client.post(FOLLOW, json={"email": "ann@example.org"}).status_code == 201
    [confirmation] = office_messages(smtp_runtime)
    assert confirmation.template_slug == "subscription.confirm"

    closed = client.put(
        STATUS,
        headers=auth(manager),
        json={"condition": "unexpectedly_closed", "message": "Water leak"},
    )
    assert closed.status_code == 200, closed.text
    again = client.put(
        STATUS,
        headers=auth(manager),
        json={"condition": "unexpectedly_closed", "message": "Water leak"},
    )
    assert again.status_code == 200
    news = office_messages(smtp_runtime, template_slug="office.status_changed")
    assert len(news) == 1, "the same status saved twice is told once"
    for message in office_messages(smtp_runtime):
        assert notify_tasks.deliver_email(smtp_runtime, message.id) == "delivered"
    mail = box.to("ann@example.org")[-1]
    assert mail["Subject"] == "Riverton City Hall: Closed unexpectedly"
    body = mail.get_content()
    assert "Water leak" in body
    assert "/offices/city-hall" in body
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert "/notify/unsubscribe/" in unsubscribe
    assert unsubscribe in body
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    assert (
        client.put(STATUS, headers=auth(manager), json={"condition": "normal"}).status_code == 200
    )
    reopened = office_messages(smtp_runtime, template_slug="office.status_changed")
    assert len(reopened) == 2
    assert "Closed unexpectedly" not in reopened[-1].subject

    # One click (what mail clients POST), and the next change reaches nobody.
    token = unsubscribe.rsplit("/", 1)[1]
    assert client.post(f"/notify/unsubscribe/{token}").status_code == 200
    client.put(
        STATUS, headers=auth(manager), json={"condition": "reduced", "message": "One desk only"}
    )
    assert len(office_messages(smtp_runtime, template_slug="office.status_changed")) == 2


def _watch(runtime: Runtime, at: str | datetime) -> str | None:
    now = datetime.fromisoformat(at.replace("Z", "+00:00")) if isinstance(at, str) else at
    followers = actions.StatusFollowers.from_settings(runtime.settings, runtime.jobs)
    with unit_of_work(runtime.session_factory) as session:
        location = queries.location_by_slug(session, "city-hall")
        return actions.watch_office_status(session, location=location, followers=followers, now=now)


def test_the_daily_opening_and_closing_reach_webhooks_but_not_inboxes(
    client,
    city,  # noqa: F811
    runtime,
) -> None:
    with unit_of_work(runtime.session_factory) as session:
        notify.subscribe(
            session,
            actor=SYSTEM,
            channel="email",
            topic="office-status:city-hall",
            target="ann@example.org",
        )
        notify.subscribe(
            session,
            actor=SYSTEM,
            channel="webhook",
            topic="office-status:city-hall",
            target="https://hooks.example/x",
        )
    assert _watch(runtime, TUESDAY_10AM) is None, "the first look is recorded silently"
    assert _watch(runtime, TUESDAY_10AM) is None
    assert _watch(runtime, TUESDAY_8PM) == "schedule"
    assert _watch(runtime, TUESDAY_8PM) is None, "told once"
    [hook] = office_messages(runtime)
    assert hook.channel == "webhook"
    assert hook.payload["event"] == "office.status_changed"
    assert hook.payload["data"]["change"] == "schedule"
    assert hook.payload["data"]["status"]["state"] == "closed"
    assert "ann@example.org" not in str(hook.payload)
    # The scheduled job looks at every office, and finds nothing new.
    assert watch_offices(runtime) in ({}, {"city-hall": "schedule"}, {"north-annex": "schedule"})


def test_wait_bands_have_hysteresis() -> None:
    assert actions.wait_band(29, [30, 60]) == 0
    assert actions.wait_band(30, [30, 60]) == 1
    assert actions.wait_band(75, [30, 60]) == 2
    assert actions.wait_band(25, [30, 60], previous=1) == 1, "24 minutes is 80% of 30"
    assert actions.wait_band(23, [30, 60], previous=1) == 0
    assert actions.wait_band(50, [30, 60], previous=2) == 2
    assert actions.wait_band(40, [30, 60], previous=2) == 1
    assert actions.wait_band(40, []) == 0


def test_a_long_queue_is_announced_once_per_threshold(client, city, runtime) -> None:  # noqa: F811
    manager, clerk = city["manager"], city["clerk"]
    all_day = [
        {"day": d, "opens": "00:00", "closes": "23:59"}
        for d in ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    ]
    replaced = client.put(
        "/api/v1/directory/offices/city-hall/hours", headers=auth(manager), json={"hours": all_day}
    )
    assert replaced.status_code == 200, replaced.text
    no_holidays = client.patch(
        "/api/v1/directory/offices/city-hall",
        headers=auth(manager),
        json={"observes_public_holidays": False},
    )
    assert no_holidays.status_code == 200, no_holidays.text
    now = utcnow()
    for at in (now, now + timedelta(minutes=17)):
        live = client.get(
            "/api/v1/directory/offices/city-hall/live", params={"at": at.isoformat()}
        ).json()
        if live["status"]["state"] != "open":
            pytest.skip(f"city hall is {live['status']['state']} at {at} (23:59 local)")
    with unit_of_work(runtime.session_factory) as session:
        notify.subscribe(
            session,
            actor=SYSTEM,
            channel="email",
            topic="office-status:city-hall",
            target="ann@example.org",
        )
    assert _watch(runtime, now) is None

    def issue(n: int) -> None:
        for _ in range(n):
            response = client.post(
                "/api/v1/directory/offices/city-hall/tickets",
                headers=auth(clerk),
                json={"service": "birth-certificate"},
            )
            assert response.status_code == 201, response.text

    issue(5)  # 5 waiting x 10 minutes / 2 desks = 25 minutes: under 30
    assert _watch(runtime, now) is None
    issue(1)  # 30 minutes
    assert _watch(runtime, now + timedelta(seconds=1)) == "wait"
    [message] = office_messages(runtime)
    assert "30 minutes" in message.body
    issue(6)  # 60 minutes, but within 15 minutes of the last wait news
    assert _watch(runtime, now + timedelta(minutes=5)) is None
    assert _watch(runtime, now + timedelta(minutes=16)) == "wait"
    assert len(office_messages(runtime)) == 2
    with unit_of_work(runtime.session_factory) as session:
        signal = session.get(OfficeStatusSignal, queries.location_by_slug(session, "city-hall").id)
        assert signal.wait_band == 2
        assert signal.longest_wait_minutes == 60
