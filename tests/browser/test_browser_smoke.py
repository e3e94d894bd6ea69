"""Smoke test in a real browser: Debian's Chromium, driven by Playwright, against a real
`townhall serve` process on loopback with its own data folder.

It walks what an administrator does first: find the skip link by keyboard, hit the admin page,
log in through the form, see the users, create an API token, use it, log out. Screenshots land
in `test-artifacts/` (gitignored) for a human to look at.
"""

from __future__ import annotations

import re
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
    townhall_command,
    watch_problems,
)

pytestmark = pytest.mark.browser

SITE_NAME = "Riverside City Hall"
ADMIN_EMAIL = "admin@riverside.example"
ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A `townhall serve` subprocess with an admin account; always stopped at the end."""
    work = tmp_path_factory.mktemp("browser-smoke")
    port = free_port()
    env = server_environment(work, port, TOWNHALL_SITE_NAME=SITE_NAME)
    run_in_environment(
        townhall_command("users", "create", "--email", ADMIN_EMAIL, "--role", "admin",
                         "--password", ADMIN_PASSWORD, "--name", "Ada Admin"),
        env, work, timeout=120,
    )  # fmt: skip
    with serving(work, port, env) as running:
        yield running


def test_admin_logs_in_sees_users_and_creates_a_token(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    try:
        # The skip link is the first thing the keyboard reaches, and it moves focus to <main>.
        page.goto(f"{server.base_url}/")
        expect(page).to_have_title(SITE_NAME)
        expect(page.get_by_role("heading", level=1)).to_have_text(SITE_NAME)
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to main content")
        expect(skip).to_be_focused()
        expect(skip).to_be_in_viewport()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
        screenshot(page, "browser-home")

        # The admin page sends a visitor to log in, and back after.
        response = page.goto(f"{server.base_url}/admin")
        assert response is not None
        assert response.status == 401
        expect(page.get_by_role("heading", name="Please log in")).to_be_visible()
        screenshot(page, "browser-error-401")
        page.get_by_role("main").get_by_role("link", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/login\?next=/admin$"))

        # Log in with the keyboard only; the email field has focus when the page opens.
        email = page.get_by_label("Email")
        expect(email).to_be_focused()
        page.keyboard.type(ADMIN_EMAIL)
        page.keyboard.press("Tab")
        expect(page.get_by_label("Password")).to_be_focused()
        page.keyboard.type(ADMIN_PASSWORD)
        screenshot(page, "browser-login")
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{server.base_url}/admin")
        expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
        expect(page.get_by_role("link", name="Admin", exact=True)).to_have_attribute(
            "aria-current", "page"
        )

        users = page.get_by_role("table", name="Users")
        admin_row = users.get_by_role("row").filter(has_text=ADMIN_EMAIL)
        expect(admin_row).to_have_count(1)
        expect(admin_row.get_by_role("cell").nth(1)).to_have_text("Ada Admin")
        expect(admin_row.get_by_role("cell").nth(2)).to_have_text("admin")
        screenshot(page, "browser-admin")

        # Create a token limited to two permissions; it is shown once.
        page.get_by_label("Token name").fill("smoke test")
        page.get_by_label(re.compile(r"^account:read\b")).check()
        page.get_by_label(re.compile(r"^users:read\b")).check()
        page.get_by_label("Expires in (days)").fill("30")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_role("heading", name="Token created")).to_be_visible()
        token = page.locator("#new-token").inner_text().strip()
        assert token.startswith("th_")
        screenshot(page, "browser-token-created")

        me = httpx.get(
            f"{server.base_url}/api/v1/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            trust_env=False,  # loopback: no proxy from the environment
        )
        assert me.status_code == 200, me.text
        assert me.json()["email"] == ADMIN_EMAIL

        page.get_by_role("link", name="Back to API tokens").click()
        tokens = page.get_by_role("table", name="API tokens")
        row = tokens.get_by_role("row").filter(has_text="smoke test")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("account:read, users:read")
        expect(row).to_contain_text(token[:10])
        expect(page.locator("body")).not_to_contain_text(token)

        # On a phone the page does not scroll sideways; only the tables do, inside their box.
        page.set_viewport_size({"width": 375, "height": 800})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        screenshot(page, "browser-admin-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{server.base_url}/?logged_out=1")
        expect(page.get_by_role("status")).to_have_text("You have logged out.")
        assert page.goto(f"{server.base_url}/admin").status == 401  # type: ignore[union-attr]

        assert problems == [], problems
    except Exception:
        screenshot(page, "browser-failure")
        print(server.log())  # pytest shows it only when the test fails
        raise
    finally:
        context.close()
