"""A resident reports a problem in a real browser and watches its status change live, under the
Content Security Policy that allows no inline script (`script-src 'self'`).

The request form's and the tracking page's scripts are files (`/requests-assets/`): choosing a
request type reloads its questions, and the tracking page follows the request over SSE. A
script blocked by the policy would show up as a console error, which fails the test.
"""

from __future__ import annotations

import re
import sys
import textwrap
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
    watch_problems,
)

pytestmark = pytest.mark.browser

SEED = textwrap.dedent(
    """
    from townhall.accounts import actions as accounts
    from townhall.actor import system_actor
    from townhall.config import Settings
    from townhall.db import unit_of_work
    from townhall.migrate import upgrade
    from townhall.runtime import Runtime
    from townhall.service_requests import actions

    runtime = Runtime(Settings())
    upgrade(runtime.engine)
    actor = system_actor("browser-test")
    with unit_of_work(runtime.session_factory) as session:
        accounts.create_organization(
            session, actor=actor, slug="public-works", name="Public Works"
        )
        for code, name in (("POTHOLE", "Pothole repair"), ("GRAFFITI", "Graffiti removal")):
            actions.create_service(
                session, actor=actor, code=code, name=name, organization_slug="public-works"
            )
        user = accounts.create_user(
            session, actor=actor, email="crew@city.example", password="crew-password-123",
            role="staff", organization_slugs=["public-works"],
        )
        _, token = accounts.create_api_token(session, actor=actor, user_id=user.id)
    print(token)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("browser-requests")
    port = free_port()
    env = server_environment(work, port)
    token = run_in_environment([sys.executable, "-c", SEED], env, work, timeout=180)
    with serving(work, port, env) as running:
        running.token = token.strip().splitlines()[-1]
        yield running


def test_resident_reports_and_follows_a_request_live(browser: Browser, server: LiveServer):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems = watch_problems(page)
    try:
        response = page.goto(f"{server.base_url}/requests/new")
        assert response is not None
        assert (
            "'unsafe-inline'"
            not in response.headers["content-security-policy"].split("script-src")[1].split(";")[0]
        )
        # new-request.js: choosing a type loads its questions.
        page.get_by_label("What are you reporting?").select_option("GRAFFITI")
        expect(page).to_have_url(re.compile(r"/requests/new\?service=GRAFFITI$"))
        page.get_by_label("Describe the problem").fill("Tags on the old bridge.")
        page.get_by_label("Address or nearest crossing").fill("Old Bridge")
        page.get_by_role("button", name="Send report").click()
        expect(page).to_have_url(re.compile(r"/requests/[A-Z0-9-]+\?created=1$"))
        code = re.search(r"/requests/([A-Z0-9-]+)\?", page.url).group(1)  # type: ignore[union-attr]

        # track.js: the page says it updates itself, then does when the crew takes the job.
        expect(page.locator("#live-note")).to_be_visible()
        expect(page.locator("#status-label")).to_have_text("Received")
        screenshot(page, "requests-track-before")
        changed = httpx.post(
            f"{server.base_url}/api/v1/requests/{code}/transitions",
            headers={"Authorization": f"Bearer {server.token}"},
            json={"sub_status": "in_progress", "public_note": "Crew on the way."},
            trust_env=False,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        expect(page.locator("#status-label")).to_have_text("In progress", timeout=15_000)
        expect(page.locator("#history")).to_contain_text("Crew on the way.")
        screenshot(page, "requests-track-after")
        assert problems == [], problems
    except Exception:
        print(server.log())
        raise
    finally:
        context.close()
