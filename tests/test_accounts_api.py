"""Accounts over the native API: tokens in both header forms, scopes, expiry, revocation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from townhall.accounts.models import ApiToken, WebSession
from townhall.db import unit_of_work, utcnow

from .conftest import auth, login, make_account


def test_bearer_and_bare_token_both_authenticate(client, admin):
    assert client.get("/api/v1/me", headers=auth(admin)).json()["email"] == admin.email
    bare = client.get("/api/v1/me", headers={"Authorization": admin.token})
    assert bare.status_code == 200
    assert bare.json()["via"] == "token"


def test_admin_creates_user_and_it_is_audited(client, admin):
    response = client.post(
        "/api/v1/users",
        headers=auth(admin),
        json={"email": "Clerk@City.Example", "password": "a-long-password", "role": "staff"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "clerk@city.example"
    entries = client.get("/api/v1/audit", headers=auth(admin)).json()
    assert entries[0]["action"] == "user.create"
    assert entries[0]["actor"] == f"user:{admin.email}"
    assert entries[0]["request_id"] == response.headers["x-request-id"]


def test_duplicate_email_is_409_and_changes_nothing(client, admin):
    body = {"email": "dup@city.example", "password": "a-long-password", "role": "staff"}
    assert client.post("/api/v1/users", headers=auth(admin), json=body).status_code == 201
    again = client.post("/api/v1/users", headers=auth(admin), json=body)
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    users = client.get("/api/v1/users", headers=auth(admin)).json()
    assert [u["email"] for u in users["items"]].count("dup@city.example") == 1


def test_staff_cannot_create_users(client, runtime):
    staff = make_account(runtime, "staff")
    response = client.post(
        "/api/v1/users",
        headers=auth(staff),
        json={"email": "x@city.example", "password": "a-long-password", "role": "admin"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_scoped_token_only_has_its_scopes(client, runtime):
    scoped = make_account(runtime, "admin", scopes=["open311:submit"])
    assert client.get("/api/v1/users", headers=auth(scoped)).status_code == 403


def test_token_is_shown_once_and_stored_hashed(client, admin, runtime):
    created = client.post(
        "/api/v1/tokens", headers=auth(admin), json={"name": "harvester", "scopes": ["users:read"]}
    )
    assert created.status_code == 201
    raw = created.json()["token"]
    listed = client.get("/api/v1/tokens", headers=auth(admin)).json()
    assert all("token" not in item for item in listed)
    with unit_of_work(runtime.session_factory) as session:
        hashes = session.scalars(
            ApiToken.__table__.select().with_only_columns(ApiToken.token_hash)
        ).all()
    assert raw not in hashes
    assert (
        client.get("/api/v1/users", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    )


def test_revoked_and_expired_tokens_are_refused(client, admin, runtime):
    other = make_account(runtime, "publisher")
    token_id = client.get("/api/v1/tokens", headers=auth(other)).json()[0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=auth(other)).status_code == 200
    refused = client.get("/api/v1/me", headers=auth(other))
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"

    with unit_of_work(runtime.session_factory) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == admin.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = client.get("/api/v1/me", headers=auth(admin))
    assert expired.status_code == 401
    assert "expired" in expired.json()["message"]


def test_unknown_token_and_bad_header(client):
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}).json()["code"] == (
        "invalid_token"
    )
    odd = client.get("/api/v1/me", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert odd.status_code == 401
    assert client.get("/api/v1/me").json()["code"] == "not_authenticated"


def test_unknown_scope_is_refused(client, admin):
    response = client.post("/api/v1/tokens", headers=auth(admin), json={"scopes": ["fly"]})
    assert response.status_code == 422
    assert "fly" in response.json()["message"]


def test_deactivated_user_token_stops_working(client, admin, runtime):
    staff = make_account(runtime, "staff")
    response = client.patch(
        f"/api/v1/users/{staff.id}", headers=auth(admin), json={"is_active": False}
    )
    assert response.status_code == 200
    assert client.get("/api/v1/me", headers=auth(staff)).status_code == 401


def test_logging_in_again_while_logged_in_starts_a_second_session(client, runtime):
    """The login's attempt record and new session share the request's unit of work: on SQLite
    a second transaction waited on the write lock the caller's session lookup held, until
    "database is locked"."""
    account = make_account(runtime, "staff")
    login(client, account.email)
    login(client, account.email)
    assert client.get("/api/v1/me").json()["email"] == account.email
    with unit_of_work(runtime.session_factory) as session:
        sessions = session.scalar(select(func.count()).select_from(WebSession))
    assert sessions == 2
