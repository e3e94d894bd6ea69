"""Lockdown: read-only for everyone but administrators, a banner on every page, every API's own
error shape, tokens revoked and sessions ended on request, all of it audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from townhall.accounts.actions import end_all_sessions
from townhall.accounts.auth import actor_for_user
from townhall.accounts.models import User
from townhall.app import create_app
from townhall.audit.models import AuditEntry
from townhall.cli import app as cli_app
from townhall.db import unit_of_work
from townhall.errors import TownhallError
from townhall.recovery import lockdown as lockdown_module
from townhall.runtime import Runtime

from .conftest import auth, login, make_account
from .test_integrity import cli_env


def cli(runtime, *args):
    result = CliRunner().invoke(cli_app, list(args), env=cli_env(runtime.settings))
    assert result.exit_code == 0, result.output
    return result.output


def lock(runtime, app, *args):
    output = cli(runtime, "lockdown", "on", *args)
    # The CLI wrote to the database; this node would see it within LOCKDOWN_CACHE_SECONDS.
    app.state.lockdown_cache.invalidate()
    return output


def unlock(runtime, app):
    cli(runtime, "lockdown", "off")
    app.state.lockdown_cache.invalidate()


@pytest.fixture
def staff(runtime):
    return make_account(runtime, "manager")


def new_org(client, account, slug):
    return client.post(
        "/api/v1/organizations", headers=auth(account), json={"slug": slug, "name": slug}
    )


def test_writes_are_refused_for_non_admins_in_the_native_shape(client, app, runtime, admin, staff):
    client.get("/")  # the cache is made on first use
    lock(runtime, app, "--message", "Security incident: read-only until 18:00.")
    refused = client.post(
        "/api/v1/request-services",
        headers=auth(staff),
        json={"code": "potholes", "name": "Potholes"},
    )
    assert refused.status_code == 503
    body = refused.json()
    assert body["code"] == "read_only_mode"
    assert set(body) == {"ok", "status", "code", "message", "errors", "request_id"}
    assert body["ok"] is False
    assert body["status"] == 503
    assert "read-only until 18:00" in body["message"]
    assert refused.headers["x-request-id"] == body["request_id"]
    # Reading goes on.
    assert client.get("/api/v1/datasets").status_code == 200
    assert client.get("/api/v1/lockdown").json()["active"] is True
    # Administrators keep working.
    assert new_org(client, admin, "ops").status_code == 201
    # A bad token is refused as always (401), lockdown or not.
    bad = client.post("/api/v1/organizations", headers={"Authorization": "Bearer th_nope"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "invalid_token"
    unlock(runtime, app)
    assert client.get("/api/v1/lockdown").json()["active"] is False
    created = client.post(
        "/api/v1/request-services",
        headers=auth(staff),
        json={"code": "potholes", "name": "Potholes"},
    )
    assert created.status_code != 503


def test_scoped_admin_token_without_system_admin_is_refused(client, app, runtime):
    scoped = make_account(runtime, "admin", scopes=["organizations:manage"])
    client.get("/")
    lock(runtime, app)
    assert new_org(client, scoped, "office-x").status_code == 503


def test_banner_on_every_page_and_html_refusal(client, app, runtime):
    client.get("/")
    lock(runtime, app, "--message", "Maintenance <b>tonight</b>")
    for path in ("/", "/datasets", "/services", "/login", "/no-such-page"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert 'aria-label="Site notice"' in page.text, path
        assert "Maintenance &lt;b&gt;tonight&lt;/b&gt;" in page.text, path
    form = client.post(
        "/requests/new", data={"description": "a hole"}, headers={"Accept": "text/html"}
    )
    assert form.status_code == 503
    assert "text/html" in form.headers["content-type"]
    assert "Site notice" in form.text
    unlock(runtime, app)
    assert 'aria-label="Site notice"' not in client.get("/").text


def test_compatibility_apis_keep_their_error_shapes(client, app, runtime, staff):
    client.get("/")
    lock(runtime, app)
    ckan = client.post("/api/3/action/organization_create", headers=auth(staff), json={"name": "x"})
    body = ckan.json()
    assert body["success"] is False
    assert "__type" in body["error"]
    assert "read-only" in body["error"]["message"]
    # CKAN read actions answer POST too: they still work.
    search = client.post("/api/3/action/package_search", json={"q": ""})
    assert search.status_code == 200
    assert search.json()["success"] is True
    open311 = client.post(
        "/open311/v2/requests.json", data={"service_code": "x", "description": "y"}
    )
    assert open311.status_code == 503
    errors = open311.json()
    assert isinstance(errors, list)
    assert errors[0]["code"] == 503
    assert "read-only" in errors[0]["description"]
    # SQL is sent by POST but changes nothing.
    sql = client.post("/api/v1/sql", json={"sql": "SELECT 1"})
    assert sql.status_code != 503


def test_login_and_logout_stay_open_and_admin_sessions_work(client, app, runtime, admin):
    client.get("/")
    lock(runtime, app)
    login(client, admin.email)  # 303, asserted inside
    page = client.get("/admin")
    assert page.status_code == 200
    logout = client.post("/logout", data={}, follow_redirects=False)
    assert logout.status_code != 503


def test_revoke_tokens_and_end_sessions(client, app, runtime, admin, staff):
    browser_user = make_account(runtime, "manager")
    login(client, browser_user.email)
    assert client.get("/api/v1/me").status_code == 200
    output = lock(runtime, app, "--revoke-tokens", "--end-sessions")
    assert "Tokens revoked: " in output
    unlock(runtime, app)
    assert client.get("/api/v1/me", headers=auth(staff)).status_code == 401
    assert client.get("/api/v1/me", headers=auth(admin)).status_code == 401
    client.cookies.clear()
    with unit_of_work(runtime.session_factory) as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert actions.count("token.revoke") >= 3
    assert "lockdown.start" in actions
    assert "lockdown.end" in actions
    status = cli(runtime, "lockdown", "status")
    assert "No lockdown" in status


def test_ended_session_cookie_no_longer_logs_in(client, app, runtime):
    user = make_account(runtime, "manager")
    login(client, user.email)
    assert client.get("/api/v1/me").status_code == 200
    lock(runtime, app, "--end-sessions")
    unlock(runtime, app)
    assert client.get("/api/v1/me").status_code == 401


def test_end_all_sessions_is_an_audited_admin_action(client, runtime, admin, staff):
    user = make_account(runtime, "manager")
    login(client, user.email)
    with unit_of_work(runtime.session_factory) as session:
        with pytest.raises(TownhallError) as refused:
            end_all_sessions(session, actor=actor_for(session, staff), reason="test")
        assert refused.value.status == 403
    with unit_of_work(runtime.session_factory) as session:
        ended = end_all_sessions(session, actor=actor_for(session, admin), reason="incident 7")
    assert ended == 1
    assert client.get("/api/v1/me").status_code == 401
    with unit_of_work(runtime.session_factory) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert entry is not None
        assert entry.action == "session.end_all"
        assert entry.actor == f"user:{admin.email}"
        assert '"incident 7"' in json.dumps(entry.changes)
        # Idempotent: nothing left to end.
        assert end_all_sessions(session, actor=actor_for(session, admin), reason="again") == 0


def actor_for(session, account):
    return actor_for_user(session.get(User, account.id))


def test_api_switch_is_for_admins_and_audited(client, runtime, admin, staff):
    denied = client.put("/api/v1/lockdown", headers=auth(staff), json={"active": True})
    assert denied.status_code == 403
    on = client.put(
        "/api/v1/lockdown", headers=auth(admin), json={"active": True, "message": "Incident"}
    )
    assert on.status_code == 200
    assert on.json() == {"active": True, "message": "Incident", "since": on.json()["since"]}
    # This node applies it at once (its cache is cleared when the change commits).
    assert new_org(client, staff, "office-y").status_code == 503
    off = client.put("/api/v1/lockdown", headers=auth(admin), json={"active": False})
    assert off.json()["active"] is False
    assert client.get("/api/v1/lockdown").json()["active"] is False
    with unit_of_work(runtime.session_factory) as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert [e.action for e in entries][-2:] == ["lockdown.start", "lockdown.end"]
    assert entries[-2].actor == f"user:{admin.email}"


def test_another_node_sees_the_switch_within_the_cache_time(
    client, runtime, admin, staff, monkeypatch
):
    monkeypatch.setattr(lockdown_module, "LOCKDOWN_CACHE_SECONDS", 0.3)
    other_runtime = Runtime(runtime.settings)
    other = create_app(other_runtime.settings, runtime=other_runtime)
    from fastapi.testclient import TestClient

    with TestClient(other) as node_b:
        assert new_org(node_b, admin, "office-a").status_code == 201
        client.put("/api/v1/lockdown", headers=auth(admin), json={"active": True})
        import time

        time.sleep(0.4)
        assert new_org(node_b, staff, "office-b").status_code == 503
        assert "Site notice" in node_b.get("/", headers={"Accept": "text/html"}).text
    other_runtime.close()


def test_the_cache_reads_ahead_without_making_a_request_wait(runtime):
    """Past half its time the cache answers from what it holds and reads again in the
    background; past its whole time a caller must read (`refresh`) before answering."""
    import time

    from townhall.actor import system_actor

    cache = lockdown_module.LockdownCache(runtime.read_session_factory, ttl=4.0)
    assert cache.fresh() is None  # never read: the caller must wait for a read
    read_at = time.monotonic()
    assert cache.refresh().active is False
    with unit_of_work(runtime.session_factory) as session:
        lockdown_module.start_lockdown(session, actor=system_actor("test"), message="Read ahead")
    if time.monotonic() - read_at < 1.9:
        assert cache.fresh().active is False  # within half its time: no read yet
    time.sleep(max(0.0, read_at + 2.1 - time.monotonic()))
    assert cache.fresh().active is False  # past half: the held state, and a read begins
    deadline = time.monotonic() + 5
    while (state := cache.fresh()) is not None and not state.active:
        assert time.monotonic() < deadline, "the background read never landed"
        time.sleep(0.02)
    assert state is not None
    assert state.message == "Read ahead"
    cache.invalidate()
    assert cache.fresh() is None
