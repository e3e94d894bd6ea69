"""Smoke test in a real browser: Debian's Chromium, driven by Playwright, against a real
`townhall serve` process on loopback with its own data folder.

It walks what an administrator does first: find the skip link by keyboard, hit the admin page,
log in through the form, see the users, create an API token, use it, log out. Screenshots land
in `test-artifacts/` (gitignored) for a human to look at.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SITE_NAME = "Riverside City Hall"
ADMIN_EMAIL = "admin@riverside.example"
ADMIN_PASSWORD = "correct-horse-battery-staple"
START_TIMEOUT_SECONDS = 60


@dataclass
class Server:
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _townhall(*args: str) -> list[str]:
    # `python -m townhall` rather than the script: works whether or not the venv's bin is on PATH.
    return [sys.executable, "-m", "townhall", *args]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A `townhall serve` subprocess with an admin account; always killed at the end."""
    work = tmp_path_factory.mktemp("browser-smoke")
    port = _free_port()
    # Only our settings: a TOWNHALL_* variable from the calling shell (a PostgreSQL URL, Redis)
    # must not leak in, and the working folder has no townhall.toml to pick up.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOWNHALL_")}
    env.update(
        TOWNHALL_DATA_DIR=str(work / "data"),
        TOWNHALL_SECRET_KEY=secrets.token_urlsafe(32),
        TOWNHALL_SITE_NAME=SITE_NAME,
        TOWNHALL_BASE_URL=f"http://127.0.0.1:{port}",
    )
    created = subprocess.run(
        _townhall("users", "create", "--email", ADMIN_EMAIL, "--role", "admin",
                  "--password", ADMIN_PASSWORD, "--name", "Ada Admin"),
        env=env, cwd=work, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr

    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _townhall("serve", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Server(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"townhall serve exited with {process.returncode}:\n{running.log()}")
            try:
                if (
                    httpx.get(f"{running.base_url}/healthz", timeout=1, trust_env=False).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"townhall serve did not answer in time:\n{running.log()}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM} "
            "(`make test` installs it through scripts/ensure-system.sh)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Problems:
    """Console errors, script errors and failed sub-resources seen by a page."""

    items: list[str]

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.items.append(f"page error: {error}"))
        # Chromium also logs every 4xx document as a console error ("Failed to load
        # resource"); the expected 401 pages are documents, failed sub-resources are below.
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and self.items.append(f"console: {message.text}")
            ),
        )
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and response.request.resource_type != "document"
                and self.items.append(f"{response.status} {response.url}")
            ),
        )


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_admin_logs_in_sees_users_and_creates_a_token(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = Problems([])
    problems.watch(page)
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

        assert problems.items == [], problems.items
    except Exception:
        screenshot(page, "browser-failure")
        print(server.log())  # pytest shows it only when the test fails
        raise
    finally:
        context.close()
