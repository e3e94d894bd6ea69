"""The `townhall` command: serve, worker, database, users, tokens, demo data, verification."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from townhall.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

app = typer.Typer(
    name="townhall",
    help="Townhall: open data portal, public service desk and insight for public offices.\n\n"
    "Settings come from TOWNHALL_* environment variables and an optional townhall.toml; "
    "see docs/configuration.md.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Database schema: create and upgrade.", no_args_is_help=True)
users_app = typer.Typer(help="Create and list user accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo city.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(demo_app, name="demo")

console = Console()
err_console = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's message names the bad setting
        err_console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _runtime():  # noqa: ANN202 - Runtime, imported lazily to keep `--help` fast
    from townhall.runtime import Runtime

    return Runtime(load_settings())


def _upgrade(runtime: object) -> None:
    from townhall.migrate import upgrade

    upgrade(runtime.engine)  # type: ignore[attr-defined]


# Seconds requests still running at shutdown get to finish (event streams end at once).
SHUTDOWN_GRACE_SECONDS = 20


def server_choices() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop and httptools when importable (a bare
    Starlette endpoint answers about 8,600 req/s on them against 3,100 on h11, issue 5), the
    pure-Python pair otherwise. Explicit, so a missing C extension shows in the startup line
    instead of silently costing most of the throughput."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed the demo city first (skipped if present).")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Uvicorn worker processes (more than 1 needs Redis).")
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log one line per request (off by default: under load the log line costs CPU "
            "the requests need; a proxy in front usually keeps this log).",
        ),
    ] = False,
) -> None:
    """Migrate the database and serve the portal and the APIs.

    Without Redis this process also runs the job consumer; SIGTERM or Ctrl-C stop it cleanly.
    Runs on uvloop and httptools when installed (they are, with uvicorn[standard]).
    """
    import uvicorn

    from townhall.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    runtime = _runtime()
    _upgrade(runtime)
    if demo:
        _seed_demo(runtime, only_if_empty=True)
    loop, http = server_choices()
    fast = {
        "loop": loop,
        "http": http,
        "access_log": access_log,
        "proxy_headers": True,
        "log_level": "info",
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    console.print(
        f"Townhall serving on http://{host}:{port}/ ({workers} worker"
        f"{'s' if workers > 1 else ''}, {loop}, {http}, access log {'on' if access_log else 'off'})"
    )
    if workers > 1:
        if runtime.settings.redis_url is None:
            # Each process would have its own in-memory event bus (a page on one would never
            # hear an event published by another) and its own SQLite job consumer.
            err_console.print(
                "[red]--workers above 1 needs TOWNHALL_REDIS_URL[/red] (events must cross "
                "processes); run one process, or several nodes with Redis."
            )
            raise typer.Exit(2)
        runtime.close()
        uvicorn.run(
            "townhall.cli:_app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **fast,  # type: ignore[arg-type]
        )
        return
    web_app = create_app(runtime.settings, runtime=runtime)
    warm_up(web_app)
    config = uvicorn.Config(
        web_app,
        host=host,
        port=port,
        **fast,  # type: ignore[arg-type]
    )
    freeze_startup_heap()
    server = _server_closing_streams(config, runtime.events.close_streams)
    server.run()
    runtime.close()
    if not server.started:
        raise typer.Exit(3)


def _app_from_environment():  # noqa: ANN202 - FastAPI; uvicorn's factory for --workers
    from townhall.app import create_app

    app = create_app(load_settings())
    warm_up(app)
    freeze_startup_heap()
    return app


def warm_up(app: FastAPI) -> None:
    """Do before serving the one-time work the first request to each route would otherwise
    pay: build the OpenAPI document (cached on the app), compile every template, and let
    FastAPI prepare every route (it builds each route's dependency model lazily, on the first
    request that tries to match it, so the first unknown page walked and built all of them).

    Measured on 2 busy cores, first request after start-up: `/api/openapi.json` 0.6-0.7 s,
    a 404 page 0.3 s, `/` 60 ms (docs/operations.md). Reads nothing from the database and
    writes nothing; called before `freeze_startup_heap`, so what it builds is frozen too.
    """
    app.openapi()
    environment = app.state.templates.env
    for name in environment.list_templates():
        environment.get_template(name)
    # A path no route has: matching it walks, and so prepares, every route (nothing runs).
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/\x00/\x00/\x00/\x00/\x00/\x00/\x00/\x00",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    for route in app.router.routes:
        route.matches(scope)


def freeze_startup_heap() -> None:
    """Hide what start-up built (modules, routes, schemas: most of the heap) from the garbage
    collector, once the app is made and before it serves (`gc.freeze`).

    Without it every full collection walks all of it: pauses of 35-200 ms were seen under
    load, each one holding up every request in flight (most of the status lookups' p99).
    Only `serve` does this; tests, which build many apps in one process, do not.
    """
    import gc

    gc.collect()
    gc.freeze()


def _server_closing_streams(config: object, close_streams: object):  # noqa: ANN202
    """A uvicorn Server that ends event streams as soon as it is asked to stop.

    uvicorn waits for open connections before the app's shutdown runs, and an SSE stream
    never ends by itself: without this, SIGTERM would wait for every browser to leave.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            close_streams()  # type: ignore[operator]
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    return Server(config)  # type: ignore[arg-type]


@app.command()
def worker(
    threads: Annotated[int, typer.Option(help="Worker threads in this process.")] = 4,
) -> None:
    """Run background jobs (production, with TOWNHALL_REDIS_URL set).

    SIGTERM stops gracefully (running jobs get time to finish), Ctrl-C at once; a job cut
    short is queued again.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    runtime = _runtime()
    if runtime.settings.redis_url is None:
        console.print(
            "[yellow]No TOWNHALL_REDIS_URL: using the SQLite queue in the data folder. "
            "`townhall serve` already runs a consumer in embedded mode, and events that "
            "jobs publish here reach no page without Redis.[/yellow]"
        )
    # Jobs publish events with `publish_threadsafe`, which needs no running loop with Redis.
    console.print(
        f"Townhall worker: {threads} threads on the {runtime.jobs.backend} queue; "
        f"jobs: {', '.join(runtime.jobs.job_names)}"
    )
    try:
        runtime.jobs.run_worker(threads)
    finally:
        runtime.events.close()
        runtime.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (safe to run again)."""
    from townhall.migrate import current_revision

    runtime = _runtime()
    _upgrade(runtime)
    console.print(f"Database at revision {current_revision(runtime.engine)}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[str, typer.Option(help="admin, publisher, manager, staff or partner.")],
    password: Annotated[
        str, typer.Option(help="Initial password (10+ characters).", prompt=True, hide_input=True)
    ],
    org: Annotated[
        list[str] | None, typer.Option("--org", help="Organization slug (repeatable).")
    ] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create a user with a role and organization memberships."""
    from townhall.accounts import actions
    from townhall.actor import system_actor
    from townhall.db import unit_of_work

    runtime = _runtime()
    _upgrade(runtime)
    with _cli_errors(), unit_of_work(runtime.session_factory) as session:
        user = actions.create_user(
            session,
            actor=system_actor("cli"),
            email=email,
            password=password,
            role=role,
            display_name=name,
            organization_slugs=org or [],
        )
        user_id = user.id
    console.print(f"Created user {email} (id {user_id}, role {role})")


@users_app.command("list")
def users_list() -> None:
    """List every user and their role."""
    from townhall.accounts import queries
    from townhall.db import unit_of_work

    runtime = _runtime()
    table = Table("id", "email", "role", "active", "organizations")
    with unit_of_work(runtime.session_factory) as session:
        users, _ = queries.list_users(session, limit=100_000)
        for user in users:
            orgs = ", ".join(m.organization.slug for m in user.memberships)
            table.add_row(str(user.id), user.email, user.role, str(user.is_active), orgs)
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A permission the token is limited to (repeatable)."),
    ] = None,
    expires_days: Annotated[
        int, typer.Option("--expires-days", help="Days until the token expires.")
    ] = 365,
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
) -> None:
    """Create an API token; the token alone is printed on the last line."""
    from townhall.accounts import actions, queries
    from townhall.actor import system_actor
    from townhall.db import unit_of_work

    runtime = _runtime()
    _upgrade(runtime)
    with _cli_errors(), unit_of_work(runtime.session_factory) as session:
        user = queries.user_by_email(session, email)
        if user is None:
            err_console.print(f"[red]No user with email {email}[/red]")
            raise typer.Exit(1)
        token, raw = actions.create_api_token(
            session,
            actor=system_actor("cli"),
            user_id=user.id,
            name=name,
            scopes=scope or [],
            expires_in_days=expires_days,
        )
        token_id = token.id
    console.print(f"Token {token_id} for {email}; store it now, it is not shown again:")
    print(raw)


@tokens_app.command("list")
def tokens_list(
    email: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None,
) -> None:
    """List tokens (never the tokens themselves, only their first characters)."""
    from townhall.accounts import queries
    from townhall.db import unit_of_work

    runtime = _runtime()
    table = Table("id", "user", "name", "starts with", "scopes", "expires", "state")
    with unit_of_work(runtime.session_factory) as session:
        user_id = None
        if email:
            user = queries.user_by_email(session, email)
            if user is None:
                err_console.print(f"[red]No user with email {email}[/red]")
                raise typer.Exit(1)
            user_id = user.id
        for token in queries.list_tokens(session, user_id=user_id):
            state = "revoked" if token.revoked_at else "active"
            table.add_row(
                str(token.id),
                token.user.email,
                token.name,
                token.prefix,
                ", ".join(token.scopes) or "(all)",
                token.expires_at.date().isoformat() if token.expires_at else "never",
                state,
            )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token at once (idempotent)."""
    from townhall.accounts import actions
    from townhall.actor import system_actor
    from townhall.db import unit_of_work

    runtime = _runtime()
    with _cli_errors(), unit_of_work(runtime.session_factory) as session:
        actions.revoke_api_token(session, actor=system_actor("cli"), token_id=token_id)
    console.print(f"Token {token_id} revoked")


@demo_app.command("seed")
def demo_seed(
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same city.")
    ] = 2026,
    requests: Annotated[int, typer.Option(help="Number of service requests.")] = 60_000,
    publish_now: Annotated[
        bool,
        typer.Option(
            "--publish-now",
            help="Publish the operational open datasets (service requests, office visits) "
            "here, with a progress bar, instead of queueing the job "
            "publishing.publish_demo_datasets for the server or worker.",
        ),
    ] = False,
) -> None:
    """Seed the demo city (districts, offices, services, staff, requests, datasets)."""
    runtime = _runtime()
    _upgrade(runtime)
    _seed_demo(
        runtime,
        only_if_empty=False,
        seed=seed,
        request_count=requests,
        operational_data="now" if publish_now else "queue",
    )


def _seed_demo(
    runtime: object,
    *,
    only_if_empty: bool,
    seed: int = 2026,
    request_count: int = 60_000,
    operational_data: str = "queue",
) -> None:
    from townhall.demo.seed import seed_demo_city

    with progress_bar() as progress:
        summary = seed_demo_city(
            runtime,  # type: ignore[arg-type]
            seed=seed,
            request_count=request_count,
            only_if_empty=only_if_empty,
            progress=progress,
            operational_data=operational_data,  # type: ignore[arg-type]
        )
    console.print(summary)


class _cli_errors:  # noqa: N801 - used as a context manager, reads like a phrase
    """Turn expected errors into a red line and exit code 1 instead of a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, _tb: object) -> bool:
        from townhall.errors import TownhallError

        if isinstance(exc, TownhallError):
            err_console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(1)
        return False


from townhall.datastore.cli import datasets_app  # noqa: E402 - after `app`, which it extends

app.add_typer(datasets_app, name="datasets")

# Integrity (verify, checkpoint, keys) and recovery (backup, restore, lockdown) live in their
# slices; registered here, after `app` exists, as the datastore's commands are.
from townhall.integrity.cli import register as register_integrity_commands  # noqa: E402
from townhall.recovery.cli import register as register_recovery_commands  # noqa: E402

register_integrity_commands(app)
register_recovery_commands(app)
