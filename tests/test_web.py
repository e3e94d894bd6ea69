"""The web shell over HTTP: login, CSRF, throttling, sessions, the admin page, accessibility.

Every test runs on SQLite and PostgreSQL (the `client` fixture). Browsers are told apart from
API clients by `Accept: text/html`; the TestClient's default `*/*` gets the JSON error shape.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import Request
from sqlalchemy import func, select, update

from townhall.accounts.auth import SESSION_COOKIE
from townhall.accounts.models import LoginAttempt, User, WebSession
from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work, utcnow
from townhall.web.pages import render

from .conftest import PASSWORD, auth, csrf_from, login, make_account

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


# Helpers ------------------------------------------------------------------------------------


def count(runtime, model, *where) -> int:
    with unit_of_work(runtime.session_factory) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def post_login(client, email, password=PASSWORD, *, csrf=None, next_path=None, **kwargs):
    data = {"email": email, "password": password}
    if csrf is not None:
        data["csrf_token"] = csrf
    if next_path is not None:
        data["next"] = next_path
    return client.post("/login", data=data, follow_redirects=False, **kwargs)


def session_cookie_header(raw: str) -> dict[str, str]:
    """Send exactly this session cookie (an explicit Cookie header replaces the client's jar)."""
    return {"Cookie": f"{SESSION_COOKIE}={raw}"}


class PageParser(HTMLParser):
    """Collects what the accessibility checks need from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.ids: list[str] = []
        self.label_fors: set[str] = set()
        self.h1_count = 0
        self.title = ""
        self._in_title = False
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag == "label" and "for" in attributes:
            self.label_fors.add(attributes["for"])
        if tag == "h1":
            self.h1_count += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        self.texts.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


UNLABELLED_INPUT_TYPES = {"hidden", "submit", "button", "reset", "image"}


def assert_accessible_shell(html: str) -> PageParser:
    page = parse(html)
    assert page.find("html")[0].get("lang") == "en"
    assert page.title.strip(), "every page has a title"
    mains = page.find("main")
    assert len(mains) == 1
    assert mains[0].get("id") == "main"
    links = page.find("a")
    assert links[0].get("href") == "#main", "the skip link is the first link on the page"
    assert "skip-link" in links[0].get("class", "")
    assert page.find("header")
    assert page.find("footer")
    assert page.find("nav", **{"aria-label": "Main"})
    assert page.h1_count == 1, "one h1 per page"
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert not duplicates, f"duplicate ids: {duplicates}"
    for tag, attrs in page.tags:
        if tag == "input" and attrs.get("type", "text") in UNLABELLED_INPUT_TYPES:
            continue
        if tag in ("input", "select", "textarea"):
            assert attrs.get("id"), f"<{tag} name={attrs.get('name')!r}> has no id"
            assert attrs["id"] in page.label_fors, f"<{tag} id={attrs['id']!r}> has no label"
    return page


def nav_labels(html: str) -> list[str]:
    start = html.index('aria-label="Main"')
    block = html[start : html.index("</nav>", start)]
    return re.findall(r"<a href=\"[^\"]+\"[^>]*>([^<]+)</a>", block)


# Login ------------------------------------------------------------------------------------


def test_login_with_csrf_sets_an_httponly_session_cookie(client, admin, runtime):
    page = client.get("/login")
    assert page.status_code == 200
    response = post_login(client, admin.email, csrf=csrf_from(page.text), next_path="/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")
    )
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert count(runtime, WebSession, WebSession.user_id == admin.id) == 1
    admin_page = client.get("/admin")
    assert admin_page.status_code == 200
    assert admin.email in admin_page.text


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "stale"])
def test_login_without_a_valid_csrf_token_is_refused(client, admin, runtime, csrf):
    page = client.get("/login")
    if csrf == "stale":
        # A real token, but bound to another browser's anonymous nonce.
        csrf = csrf_from(page.text)
        client.cookies.clear()
        client.get("/login")
    response = post_login(client, admin.email, csrf=csrf)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert not any(
        c.startswith(f"{SESSION_COOKIE}=") for c in response.headers.get_list("set-cookie")
    )
    assert count(runtime, WebSession) == 0
    assert count(runtime, LoginAttempt) == 0, "refused before the password is even looked at"


def test_csrf_failure_is_an_error_page_for_browsers(client, admin):
    client.get("/login")
    response = post_login(client, admin.email, csrf="nope", headers=BROWSER)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "csrf_failed" in response.text
    assert_accessible_shell(response.text)


def test_wrong_password_gives_the_login_page_again_with_a_message(client, admin, runtime):
    csrf = csrf_from(client.get("/login").text)
    response = post_login(client, admin.email, "not-the-password", csrf=csrf)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "do not match an account" in response.text
    assert 'role="alert"' in response.text
    assert f'value="{admin.email}"' in response.text, "the email is kept, the password is not"
    assert "not-the-password" not in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert count(runtime, WebSession) == 0
    assert_accessible_shell(response.text)
    # Unknown emails get the same answer, so accounts cannot be discovered through the form.
    unknown = post_login(client, "nobody@city.example", csrf=csrf)
    assert unknown.status_code == 401
    assert "do not match an account" in unknown.text


def test_login_is_paused_after_too_many_failures(client, admin, runtime, settings):
    csrf = csrf_from(client.get("/login").text)
    for _ in range(settings.login_max_failures):
        assert post_login(client, admin.email, "wrong-password", csrf=csrf).status_code == 401
    # The right password does not get through while the pause lasts.
    blocked = post_login(client, admin.email, PASSWORD, csrf=csrf)
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == str(settings.login_lockout_seconds)
    assert "Too many failed logins" in blocked.text
    assert count(runtime, WebSession) == 0
    # Blocked attempts are not counted, so waiting out the pause is enough.
    assert count(runtime, LoginAttempt) == settings.login_max_failures
    # Another account behind the same address (an office behind NAT) can still log in.
    colleague = make_account(runtime, "staff")
    assert post_login(client, colleague.email, csrf=csrf).status_code == 303


# Sessions ---------------------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(client, admin, runtime):
    login(client, admin.email)
    raw = client.cookies.get(SESSION_COOKIE)
    assert raw
    home = client.get("/")
    assert "Log out" in home.text

    refused = client.post("/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403, "logout needs the CSRF token too"
    assert client.get("/admin").status_code == 200

    response = client.post(
        "/logout", data={"csrf_token": csrf_from(home.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/?logged_out=1"
    with unit_of_work(runtime.session_factory) as session:
        ended = session.scalars(select(WebSession.ended_at)).all()
    assert len(ended) == 1
    assert ended[0] is not None
    # The old cookie, replayed, no longer authenticates anything.
    replay = client.get("/admin", headers=session_cookie_header(raw))
    assert replay.status_code == 401
    me = client.get("/api/v1/me", headers=session_cookie_header(raw))
    assert me.status_code == 401
    after = client.get("/?logged_out=1")
    assert "You have logged out." in after.text
    assert "Log in" in after.text


def test_expired_session_is_refused_but_public_pages_still_work(client, admin, runtime):
    login(client, admin.email)
    raw = client.cookies.get(SESSION_COOKIE)
    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(minutes=1)))

    as_json = client.get("/admin", headers=session_cookie_header(raw))
    assert as_json.status_code == 401
    assert as_json.json()["code"] == "session_expired"
    # The dead cookie is cleared, so the browser stops sending it.
    assert f"{SESSION_COOKIE}=;" in as_json.headers["set-cookie"]

    as_page = client.get("/admin", headers={**BROWSER, **session_cookie_header(raw)})
    assert as_page.status_code == 401
    assert as_page.headers["content-type"].startswith("text/html")
    assert "session has expired" in as_page.text
    assert 'href="/login?next=/admin"' in as_page.text
    assert_accessible_shell(as_page.text)

    public = client.get("/", headers={**BROWSER, **session_cookie_header(raw)})
    assert public.status_code == 200
    assert "Log out" not in public.text
    login_page = client.get("/login", headers=session_cookie_header(raw))
    assert "Your session has expired" in login_page.text


# Admin page -------------------------------------------------------------------------------


def test_admin_page_needs_users_read(client, runtime):
    anonymous = client.get("/admin")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"

    staff = make_account(runtime, "staff")
    login(client, staff.email)
    denied = client.get("/admin")
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    page = client.get("/admin", headers=BROWSER)
    assert page.status_code == 403
    assert "users:read" in page.text
    assert "Admin" not in nav_labels(client.get("/").text)


def test_manager_sees_users_but_cannot_add_them(client, runtime, admin):
    manager = make_account(runtime, "manager")
    login(client, manager.email)
    page = client.get("/admin")
    assert page.status_code == 200
    assert admin.email in page.text
    assert 'action="/admin/users"' not in page.text
    # Only their own tokens: the admin's token is not listed.
    assert admin.token[:10] not in page.text
    assert manager.token[:10] in page.text


def test_admin_creates_a_user_through_the_form(client, admin, runtime):
    login(client, admin.email)
    page = client.get("/admin")
    form = {
        "email": "Clerk@City.Example",
        "display_name": "Counter clerk",
        "role": "staff",
        "password": "a-long-password",
    }
    response = client.post(
        "/admin/users", data={**form, "csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin?created_user=")
    shown = client.get(response.headers["location"])
    assert "User clerk@city.example created." in shown.text
    assert "Counter clerk" in shown.text
    with unit_of_work(runtime.session_factory) as session:
        user = session.scalar(select(User).where(User.email == "clerk@city.example"))
        assert user is not None
        assert user.role == "staff"
        entry = session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "user.create", AuditEntry.object_id == str(user.id)
            )
        )
        assert entry is not None
        assert entry.actor == f"user:{admin.email}"
    # The new user can log in with the password that was set.
    client.cookies.clear()
    login(client, "clerk@city.example", "a-long-password")


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_user_form_without_csrf_is_refused(client, admin, runtime, csrf):
    login(client, admin.email)
    data = {"email": "mallory@city.example", "role": "admin", "password": "a-long-password"}
    if csrf:
        data["csrf_token"] = csrf
    response = client.post("/admin/users", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert count(runtime, User, User.email == "mallory@city.example") == 0


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"email": "admin@city.example"}, 409, "already exists"),
        ({"password": "short"}, 422, "at least 10 characters"),
        ({"role": "mayor"}, 422, "must be one of"),
        # The user row is flushed before the organization is looked up: nothing may remain.
        ({"organization": "no-such-office"}, 422, "No organization no-such-office"),
    ],
)
def test_user_form_mistakes_are_shown_on_the_form(client, admin, runtime, form, status, message):
    login(client, admin.email)
    page = client.get("/admin")
    users_before = count(runtime, User)
    data = {
        "email": "new@city.example",
        "display_name": "Kept name",
        "role": "staff",
        "password": "a-long-password",
        "csrf_token": csrf_from(page.text),
        **form,
    }
    response = client.post("/admin/users", data=data, follow_redirects=False)
    assert response.status_code == status
    assert message in response.text
    assert 'id="user-error"' in response.text
    assert 'value="Kept name"' in response.text, "what was typed is kept"
    assert count(runtime, User) == users_before
    assert_accessible_shell(response.text)


def test_token_created_on_the_admin_page_is_shown_once_and_works(client, admin, runtime):
    login(client, admin.email)
    page = client.get("/admin")
    response = client.post(
        "/admin/tokens",
        data={
            "csrf_token": csrf_from(page.text),
            "name": "harvester",
            "scope": ["account:read", "users:read"],
            "expires_in_days": "30",
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    raw = re.search(r'id="new-token">([^<]+)<', response.text).group(1)
    assert raw.startswith("th_")
    assert_accessible_shell(response.text)

    bearer = {"Authorization": f"Bearer {raw}"}
    me = client.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["email"] == admin.email
    assert client.get("/api/v1/users", headers=bearer).status_code == 200
    assert client.get("/api/v1/audit", headers=bearer).status_code == 403, (
        "scoped to what was ticked"
    )

    listed = client.get("/admin")
    assert "harvester" in listed.text
    assert raw[:10] in listed.text
    assert raw not in listed.text, "never shown again"

    revoke_form = re.search(
        r'action="/admin/tokens/(\d+)/revoke"[^>]*>\s*<input[^>]+value="([^"]+)"', listed.text
    )
    assert revoke_form is not None
    revoked = client.post(
        f"/admin/tokens/{revoke_form.group(1)}/revoke",
        data={"csrf_token": revoke_form.group(2)},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert "revoked" in client.get(revoked.headers["location"]).text
    assert client.get("/api/v1/me", headers=bearer).status_code == 401


def test_token_form_without_csrf_is_refused(client, admin, runtime):
    login(client, admin.email)
    before = [t["id"] for t in client.get("/api/v1/tokens", headers=auth(admin)).json()]
    response = client.post("/admin/tokens", data={"name": "sneaky"})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    after = [t["id"] for t in client.get("/api/v1/tokens", headers=auth(admin)).json()]
    assert after == before


def test_token_form_mistakes_are_shown_on_the_form(client, admin):
    login(client, admin.email)
    page = client.get("/admin")
    response = client.post(
        "/admin/tokens",
        data={"csrf_token": csrf_from(page.text), "name": "kiosk", "scope": "fly"},
    )
    assert response.status_code == 422
    assert "unknown scope(s): fly" in response.text
    assert 'value="kiosk"' in response.text
    assert 'id="new-token"' not in response.text


# Redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example",
        "//evil.example/admin",
        "/\\evil.example",
        "/\t/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_login_refuses_to_redirect_off_site(client, admin, next_path):
    form = client.get("/login", params={"next": next_path})
    assert 'name="next" value="/"' in form.text
    csrf = csrf_from(form.text)
    response = post_login(client, admin.email, csrf=csrf, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_login_follows_a_same_site_next(client, admin):
    form = client.get("/login", params={"next": "/admin?tab=tokens"})
    assert 'name="next" value="/admin?tab=tokens"' in form.text
    response = post_login(client, admin.email, csrf=csrf_from(form.text), next_path="/admin")
    assert response.headers["location"] == "/admin"


# Shell and accessibility -------------------------------------------------------------------


def test_public_pages_have_landmarks_labels_and_a_skip_link(client):
    for path in ("/", "/login"):
        response = client.get(path, headers=BROWSER)
        assert response.status_code == 200
        page = assert_accessible_shell(response.text)
        assert page.find("link", rel="stylesheet", href="/static/townhall.css")
    missing = client.get("/no-such-page", headers=BROWSER)
    assert missing.status_code == 404
    assert "Page not found" in missing.text
    assert_accessible_shell(missing.text)
    assert client.get("/static/townhall.css").status_code == 200


def test_admin_page_is_accessible(client, admin):
    login(client, admin.email)
    response = client.get("/admin", headers=BROWSER)
    page = assert_accessible_shell(response.text)
    # The admin page has real forms: make sure the label check saw them.
    labelled = {a["id"] for t, a in page.tags if t in ("input", "select") and "id" in a}
    assert {"new-email", "new-role", "new-password", "token-name", "token-days"} <= labelled
    assert any(i.startswith("scope-") for i in labelled)
    assert page.find("caption", id="users-caption")


def test_navigation_follows_permissions(client, admin):
    assert nav_labels(client.get("/").text) == ["Data", "Services", "Requests"]
    login(client, admin.email)
    admin_page = client.get("/admin")
    assert nav_labels(admin_page.text) == [
        "Data",
        "Services",
        "Requests",
        "Insights",
        "Governance",
        "Admin",
    ]
    assert '<a href="/admin" aria-current="page">Admin</a>' in admin_page.text
    assert admin.email in client.get("/").text


def test_site_notice_fills_the_banner(app, client):
    """The lockdown banner: whatever sets `request.state.site_notice` shows on every page."""

    @app.get("/test-notice")
    def _notice(request: Request):
        request.state.site_notice = {"message": "Read-only during an incident.", "level": "danger"}
        return render(request, "home.html")

    page = client.get("/test-notice").text
    assert 'role="region" aria-label="Site notice"' in page
    assert "Read-only during an incident." in page
    assert "banner-danger" in page
    assert "Site notice" not in client.get("/").text


# Content Security Policy: scripts only from files ---------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src" / "townhall"
# An executable script block: <script> with no src and no non-JavaScript type (JSON data blocks
# are not run by the browser and are allowed).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(ld\+)?json\")[^>]*>")
INLINE_HANDLER = re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def test_script_src_allows_no_inline_scripts(client):
    policy = client.get("/", headers=BROWSER).headers["content-security-policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'"]


def test_no_template_has_an_inline_script_or_event_handler():
    templates = sorted(SRC.rglob("templates/**/*.html"))
    assert len(templates) > 20
    offenders = [
        f"{path.relative_to(SRC)}: {match.group(0)[:60]}"
        for path in templates
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER)
        for match in pattern.finditer(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("name", ["new-request.js", "track.js"])
def test_request_page_scripts_are_served_as_files(client, name):
    response = client.get(f"/requests-assets/{name}")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "addEventListener" in response.text
