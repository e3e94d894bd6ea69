"""A resident finds a service by words in a real browser, opens its page, sees the nearest open
office with its wait, and watches the wait change live when the kiosk posts a ticket.

Debian's Chromium through Playwright, against a real `townhall serve` subprocess on loopback with
its own data folder, seeded with the demo city's directory. City Hall is made open around the
clock (holidays ignored) so the test does not depend on the hour it runs at.
"""

from __future__ import annotations

import re
import sys
import textwrap
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from .conftest import (
    LiveServer,
    free_port,
    run_in_environment,
    screenshot,
    server_environment,
    serving,
)

pytestmark = pytest.mark.browser

SEED = textwrap.dedent(
    """
    from datetime import time
    from townhall.accounts import actions as accounts
    from townhall.actor import system_actor
    from townhall.config import Settings
    from townhall.db import unit_of_work
    from townhall.demo.city import generate_city
    from townhall.directory import actions
    from townhall.directory.demo import seed_directory
    from townhall.migrate import upgrade
    from townhall.runtime import Runtime

    runtime = Runtime(Settings())
    upgrade(runtime.engine)
    actor = system_actor("browser-test")
    with unit_of_work(runtime.session_factory) as session:
        seed_directory(session, actor=actor, city=generate_city(request_count=0))
        actions.update_location(
            session, actor=actor, slug="city-hall", observes_public_holidays=False
        )
        actions.set_weekly_hours(
            session, actor=actor, slug="city-hall",
            weekly_hours=[(day, time(0, 0), time(23, 59, 59)) for day in range(7)],
        )
        user = accounts.create_user(
            session, actor=actor, email="kiosk@city.example", password="kiosk-password-123",
            role="staff", organization_slugs=["city-hall"],
        )
        _, token = accounts.create_api_token(session, actor=actor, user_id=user.id)
    print(token)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("browser-directory")
    port = free_port()
    env = server_environment(work, port)
    token = run_in_environment([sys.executable, "-c", SEED], env, work, timeout=180)
    with serving(work, port, env) as running:
        running.token = token.strip().splitlines()[-1]
        yield running


def test_resident_finds_a_service_and_watches_the_wait_change(browser: Browser, server: LiveServer):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"),
    )
    try:
        page.goto(f"{server.base_url}/services")
        search = page.get_by_label("What do you need?")
        search.fill("birth certficate")  # sic: typos are forgiven
        search.press("Enter")
        expect(page.locator("#result-count")).to_contain_text("found")
        page.get_by_role("link", name="Birth certificate copy").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Birth certificate copy")
        expect(page.get_by_role("heading", name="What to bring")).to_be_visible()

        nearest = page.locator("section.nearest")
        expect(nearest).to_contain_text("Riverton City Hall")
        expect(nearest.locator("[data-office-status]")).to_contain_text("Open now")
        wait = nearest.locator('[data-wait="city-hall:birth-cert"]')
        expect(wait).to_have_text("0 waiting, about 0 min")
        # The map drew the offices (markers are SVG paths; no tile server is needed).
        expect(
            page.locator("#office-map.map-ready path.leaflet-interactive").first
        ).to_be_attached()
        expect(page.locator("html")).to_have_attribute("data-live", "connected", timeout=15_000)
        screenshot(page, "directory-service-before")

        # The kiosk at City Hall hands out a ticket for this service.
        response = httpx.post(
            f"{server.base_url}/api/v1/directory/offices/city-hall/visits",
            headers={"Authorization": f"Bearer {server.token}"},
            json={
                "event_id": f"kiosk-{uuid.uuid4()}",
                "type": "issued",
                "ticket": "B001",
                "service": "BIRTH_CERT",
            },
            trust_env=False,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        # 1 waiting; 7 typical minutes over 8 desks rounds up to 1 minute.
        expect(wait).to_have_text("1 waiting, about 1 min", timeout=15_000)
        expect(page.locator("html")).to_have_attribute("data-live-updated", re.compile(r"^\d{4}-"))
        screenshot(page, "directory-service-after")

        page.goto(f"{server.base_url}/status")
        expect(page.locator('[data-office-waiting="city-hall"]')).to_have_text("1")
        assert problems == [], problems
    except Exception:
        print(server.log())
        raise
    finally:
        context.close()
