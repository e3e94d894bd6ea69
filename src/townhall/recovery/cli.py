"""`townhall backup`, `townhall restore` and `townhall lockdown ...`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

lockdown_app = typer.Typer(
    help="Read-only mode for everyone but administrators, during an incident.",
    no_args_is_help=True,
)

PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Read the passphrase from environment variable VAR instead of asking for it.",
    ),
]


def _passphrase(variable: str | None, *, confirm: bool) -> str:
    from townhall.cli import err_console

    if variable:
        value = os.environ.get(variable)
        if not value:
            err_console.print(f"[red]Environment variable {variable} is empty or not set[/red]")
            raise typer.Exit(2)
        return value
    return str(
        typer.prompt("Passphrase for the signing key", hide_input=True, confirmation_prompt=confirm)
    )


def backup(
    file: Annotated[Path, typer.Argument(help="The archive to write (must not exist).")],
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Write a consistent backup, online: database, lake catalog and data files, the signing
    keys encrypted with a passphrase, and a signed manifest of SHA-256 sums."""
    from townhall.cli import _runtime, _upgrade, console, err_console, progress_bar
    from townhall.recovery.archive import BackupError
    from townhall.recovery.backup import create_backup
    from townhall.recovery.progress import RichSteps

    passphrase = _passphrase(passphrase_env, confirm=passphrase_env is None)
    runtime = _runtime()
    _upgrade(runtime)
    try:
        with progress_bar() as progress:
            result = create_backup(runtime, file, passphrase=passphrase, steps=RichSteps(progress))
    except BackupError as error:
        err_console.print(f"[red]Backup failed:[/red] {error}")
        raise typer.Exit(1) from error
    for warning in result.warnings:
        err_console.print(f"[yellow]Warning:[/yellow] {warning}")
    database = result.manifest["database"]
    console.print(
        f"[green]Backup written:[/green] {result.path} ({result.bytes} bytes, {result.files} "
        f"members; audit trail up to seq {database['audit_seq']}; signing key "
        f"{result.manifest['key_id']})"
    )


def restore(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The archive to restore.")
    ],
    passphrase_env: PassphraseEnv = None,
    trust_key: Annotated[
        str | None,
        typer.Option(
            "--trust-key",
            metavar="KEY_ID",
            help="Refuse the archive unless its manifest is signed by this key id.",
        ),
    ] = None,
) -> None:
    """Check a backup completely, then restore it into the configured, empty database, lake
    and data folder; then verify the result."""
    from townhall.cli import _runtime, console, err_console, progress_bar
    from townhall.integrity.verify import verify_installation
    from townhall.recovery.archive import BackupError
    from townhall.recovery.progress import RichSteps
    from townhall.recovery.restore import restore_backup

    passphrase = _passphrase(passphrase_env, confirm=False)
    runtime = _runtime()
    try:
        with progress_bar() as progress:
            result = restore_backup(
                runtime,
                file,
                passphrase=passphrase,
                trust_key_id=trust_key,
                steps=RichSteps(progress),
            )
    except BackupError as error:
        err_console.print(f"[red]Restore refused:[/red] {error}")
        raise typer.Exit(1) from error
    console.print(
        f"[green]Restored[/green] the backup of {result.manifest['created_at']}: "
        f"{result.files} lake files, audit trail up to seq "
        f"{result.manifest['database']['audit_seq']}."
    )
    report = verify_installation(runtime)
    if not report.ok:
        for problem in report.problems:
            err_console.print(f"[red]Verify:[/red] {problem}")
        raise typer.Exit(1)
    console.print(
        f"[green]Verified:[/green] {report.entries_checked} audit entries, "
        f"{report.checkpoints_checked} checkpoints, {report.versions_checked} dataset versions "
        f"({report.files_checked} data files)."
    )


@lockdown_app.command("on")
def lockdown_on(
    message: Annotated[str, typer.Option("--message", help="The banner shown on every page.")] = "",
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="Revoke every API token, admins' too.")
    ] = False,
    end_sessions: Annotated[
        bool, typer.Option("--end-sessions", help="End every web session (log everyone out).")
    ] = False,
) -> None:
    """Make the portal read-only for everyone but administrators (or change the message)."""
    from townhall.actor import system_actor
    from townhall.cli import _cli_errors, _runtime, _upgrade, console
    from townhall.db import unit_of_work
    from townhall.recovery.lockdown import LOCKDOWN_CACHE_SECONDS, start_lockdown

    runtime = _runtime()
    _upgrade(runtime)
    with _cli_errors(), unit_of_work(runtime.session_factory) as session:
        row = start_lockdown(
            session,
            actor=system_actor("cli"),
            message=message,
            revoke_tokens=revoke_tokens,
            end_sessions=end_sessions,
        )
        tokens, sessions = row.tokens_revoked, row.sessions_ended
    console.print(
        f"[red]Lockdown on[/red] (every node within {LOCKDOWN_CACHE_SECONDS:g} s). "
        f"Tokens revoked: {tokens}; sessions ended: {sessions}."
    )


@lockdown_app.command("off")
def lockdown_off() -> None:
    """Lift read-only mode."""
    from townhall.actor import system_actor
    from townhall.cli import _cli_errors, _runtime, _upgrade, console
    from townhall.db import unit_of_work
    from townhall.recovery.lockdown import end_lockdown

    runtime = _runtime()
    _upgrade(runtime)
    with _cli_errors(), unit_of_work(runtime.session_factory) as session:
        ended = end_lockdown(session, actor=system_actor("cli"))
    console.print("Lockdown off." if ended else "There was no lockdown.")


@lockdown_app.command("status")
def lockdown_status() -> None:
    """Show whether a lockdown is on, and the recent ones."""
    from townhall.cli import _runtime, _upgrade, console
    from townhall.db import unit_of_work
    from townhall.recovery.lockdown import lockdown_history

    runtime = _runtime()
    _upgrade(runtime)
    table = Table("id", "started", "by", "ended", "by", "tokens", "sessions", "message")
    with unit_of_work(runtime.session_factory) as session:
        history = lockdown_history(session)
        active = any(row.ended_at is None for row in history)
        for row in history:
            table.add_row(
                str(row.id),
                row.started_at.isoformat(timespec="seconds"),
                row.started_by,
                row.ended_at.isoformat(timespec="seconds") if row.ended_at else "",
                row.ended_by,
                str(row.tokens_revoked),
                str(row.sessions_ended),
                row.message,
            )
    console.print("[red]Lockdown is ON[/red]" if active else "No lockdown.")
    if history:
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(lockdown_app, name="lockdown")
