"""The CLI contract scripts rely on: users create, tokens create (token alone on the last line),
tokens list/revoke, verify exiting non-zero and naming the first bad entry."""

from __future__ import annotations

from sqlalchemy import update
from typer.testing import CliRunner

from townhall.audit.models import AuditEntry
from townhall.cli import app
from townhall.db import unit_of_work


def _env(settings) -> dict[str, str]:
    return {
        "TOWNHALL_DATABASE_URL": settings.resolved_database_url,
        "TOWNHALL_DATA_DIR": str(settings.data_dir),
        "TOWNHALL_LAKE_CATALOG_URL": settings.resolved_lake_catalog_url,
        "TOWNHALL_SECRET_KEY": settings.secret_key.get_secret_value(),
    }


def test_users_tokens_and_verify(runtime, client):
    runner = CliRunner()
    env = _env(runtime.settings)
    created = runner.invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "ops@city.example",
            "--role",
            "admin",
            "--password",
            "long-enough-password",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    assert "ops@city.example" in created.output

    token_run = runner.invoke(
        app,
        [
            "tokens",
            "create",
            "--email",
            "ops@city.example",
            "--scope",
            "users:read",
            "--expires-days",
            "7",
        ],
        env=env,
    )
    assert token_run.exit_code == 0, token_run.output
    token = token_run.output.strip().splitlines()[-1]
    assert token.startswith("th_")
    me = client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    # The scope limits the token: users:read but not users:manage.
    denied = client.post(
        "/api/v1/users",
        headers={"Authorization": f"Bearer {token}"},
        json={"email": "x@city.example", "role": "staff"},
    )
    assert denied.status_code == 403

    listed = runner.invoke(app, ["tokens", "list"], env=env)
    assert token[:10] in listed.output
    assert token not in listed.output

    verified = runner.invoke(app, ["verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "intact" in verified.output

    with unit_of_work(runtime.session_factory) as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(action="forged"))
    broken = runner.invoke(app, ["verify"], env=env)
    assert broken.exit_code == 1
    assert "seq 2" in broken.output


def test_bad_role_and_duplicate_user_exit_non_zero(runtime):
    runner = CliRunner()
    env = _env(runtime.settings)
    bad = runner.invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "a@city.example",
            "--role",
            "king",
            "--password",
            "long-enough-password",
        ],
        env=env,
    )
    assert bad.exit_code == 1
    assert "role" in bad.output
    args = [
        "users",
        "create",
        "--email",
        "b@city.example",
        "--role",
        "staff",
        "--password",
        "long-enough-password",
    ]
    assert runner.invoke(app, args, env=env).exit_code == 0
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_revoke_token_by_id(runtime, client):
    runner = CliRunner()
    env = _env(runtime.settings)
    runner.invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "c@city.example",
            "--role",
            "staff",
            "--password",
            "long-enough-password",
        ],
        env=env,
    )
    token = runner.invoke(app, ["tokens", "create", "--email", "c@city.example"], env=env)
    raw = token.output.strip().splitlines()[-1]
    assert client.get("/api/v1/me", headers={"Authorization": raw}).status_code == 200
    token_id = client.get("/api/v1/tokens", headers={"Authorization": raw}).json()[0]["id"]
    revoked = runner.invoke(app, ["tokens", "revoke", str(token_id)], env=env)
    assert revoked.exit_code == 0
    assert client.get("/api/v1/me", headers={"Authorization": raw}).status_code == 401


def test_every_command_has_help():
    import typer.main

    runner = CliRunner()
    root = typer.main.get_command(app)
    assert runner.invoke(app, ["--help"]).exit_code == 0
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        assert command.help, f"command {name} has no help"
        sub = getattr(command, "commands", {})
        for sub_name, sub_command in sub.items():
            assert sub_command.help, f"command {name} {sub_name} has no help"
            result = runner.invoke(app, [name, sub_name, "--help"])
            assert result.exit_code == 0, result.output


def test_serve_warms_a_fresh_app_up_without_touching_the_database(runtime):
    """`townhall serve` runs `warm_up` before it serves: the OpenAPI document, every template
    and every route are prepared, and not one statement reaches the database."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from townhall.app import create_app
    from townhall.cli import warm_up

    web_app = create_app(runtime.settings, runtime=runtime)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        warm_up(web_app)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)
    assert statements == []
    schema = web_app.openapi_schema
    assert schema is not None
    assert "/api/v1/datasets" in schema["paths"]
    environment = web_app.state.templates.env
    names = environment.list_templates()
    assert "error.html" in names
    assert "_charts.html" in names
    # Every template compiled into Jinja's cache (keys are (loader ref, name)) before serving.
    assert set(names) <= {name for _, name in environment.cache}
    # The app still answers as usual afterwards, from the document it built.
    client = TestClient(web_app)
    assert client.get("/api/openapi.json").json() == schema
    missing = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert missing.status_code == 404
    assert "<html" in missing.text
