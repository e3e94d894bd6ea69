"""`townhall verify`, `townhall checkpoint` and `townhall keys ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

keys_app = typer.Typer(help="The signing key: show it, rotate it.", no_args_is_help=True)


def verify(
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            help="Check only this dataset's versions against their signed manifests "
            "(repeatable); the audit trail is then skipped.",
        ),
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Only this version number.")
    ] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="Only this resource (id or name).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="A whole-table download (csv, ndjson, json, parquet, geojson) to check against "
            "the version (with --dataset; default the published version).",
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            exists=True,
            dir_okay=False,
            help="A checkpoint saved from /api/v1/integrity/checkpoints (one object, a list, or "
            "JSON lines) that the audit trail must still contain (repeatable).",
        ),
    ] = None,
    no_data: Annotated[
        bool,
        typer.Option("--no-data", help="Check the audit trail and checkpoints only."),
    ] = False,
) -> None:
    """Check the audit trail's hash chain and signed checkpoints, and every dataset version's
    data files against its signed manifest; exit 1 naming each problem found."""
    from townhall.cli import _cli_errors, _runtime, console, err_console, progress_bar
    from townhall.integrity.manifests import verify_download, verify_version
    from townhall.integrity.verify import (
        download_version,
        key_ring_or_problem,
        verify_installation,
    )

    if file is not None and len(dataset or []) != 1:
        err_console.print("[red]--file needs exactly one --dataset[/red]")
        raise typer.Exit(2)
    external = [item for path in checkpoint or [] for item in _read_checkpoints(path)]
    runtime = _runtime()
    with _cli_errors(), progress_bar() as progress:
        tasks: dict[str, Any] = {}

        def advance(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                label = {"audit": "Audit trail", "checkpoints": "Checkpoints"}.get(
                    stage, "Dataset versions"
                )
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        report = verify_installation(
            runtime,
            audit=not dataset,
            dataset_slugs=list(dataset) if dataset else None,
            all_datasets=not no_data,
            version=version if file is None else None,
            resource=resource,
            external_checkpoints=external,
            progress=advance,
        )
        if file is not None and dataset:
            target, resource_name = download_version(
                runtime, dataset[0], resource=resource, version=version
            )
            ring = key_ring_or_problem(runtime, report)
            check = verify_version(runtime.lake, ring, target)
            new = [p for p in check.problems if p not in report.problems]
            report.problems.extend(new)
            if not check.problems:
                found = verify_download(runtime, target, file, resource_name=resource_name)
                if found:
                    report.problems.append(found)
    audit_problems = [p for p in report.problems if p.area == "audit"]
    if not dataset:
        if audit_problems:
            for problem in audit_problems:
                err_console.print(
                    f"[red]Audit trail broken:[/red] {problem.message}", soft_wrap=True
                )
        else:
            console.print(f"[green]Audit trail intact:[/green] {report.entries_checked} entries")
        console.print(f"Checkpoints checked: {report.checkpoints_checked}")
    if report.versions_checked or dataset:
        console.print(
            f"Dataset versions checked: {report.versions_checked} "
            f"({report.files_checked} data files)"
        )
    if file is not None and not report.problems:
        console.print(f"[green]{file.name} matches[/green] {dataset[0] if dataset else ''}")
    for problem in report.problems:
        if problem.area != "audit":
            # One line each, never wrapped, so scripts and people can grep for a file name.
            err_console.print(
                f"[red]{problem.area}:[/red] {problem.subject}: {problem.message}",
                soft_wrap=True,
                highlight=False,
            )
    if report.problems:
        raise typer.Exit(1)
    console.print("[green]Everything checked is intact.[/green]")


def _read_checkpoints(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8").strip()
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return loaded if isinstance(loaded, list) else [loaded]


def checkpoint() -> None:
    """Sign the audit trail's head now (does nothing when it has not moved since the last
    checkpoint); prints the checkpoint to keep elsewhere."""
    from townhall.cli import _runtime, _upgrade, console, err_console
    from townhall.db import unit_of_work
    from townhall.integrity.checkpoints import (
        CheckpointRefused,
        create_checkpoint,
        exported,
        latest_checkpoint,
    )

    runtime = _runtime()
    _upgrade(runtime)
    try:
        with unit_of_work(runtime.session_factory) as session:
            made = create_checkpoint(session, settings=runtime.settings)
            current = made or latest_checkpoint(session)
            document = exported(current) if current else None
    except CheckpointRefused as error:
        err_console.print(f"[red]Refused:[/red] {error}")
        raise typer.Exit(1) from error
    if document is None:
        console.print("The audit trail is empty: nothing to sign.")
        return
    state = "Signed" if made else "Unchanged since the last checkpoint"
    console.print(f"{state}: seq {document['checkpoint']['seq']}")
    print(json.dumps(document, sort_keys=True))


@keys_app.command("show")
def keys_show() -> None:
    """Print the active public key (PEM), its id, and every retired or revoked key id."""
    from townhall.cli import _runtime, console, err_console
    from townhall.integrity.keys import (
        SigningKeyError,
        key_path,
        load_key_ring,
        load_signing_key,
    )

    runtime = _runtime()
    try:
        load_signing_key(runtime.settings)
        ring = load_key_ring(runtime.settings)
    except SigningKeyError as error:
        err_console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    table = Table("key id", "state")
    for info in sorted(ring.keys.values(), key=lambda k: (k.state != "active", k.key_id)):
        table.add_row(info.key_id, info.state)
    console.print(f"Private key: {key_path(runtime.settings)}")
    console.print(table)
    active = ring.active
    if active:
        print(active.pem, end="")


@keys_app.command("rotate")
def keys_rotate(
    compromised: Annotated[
        bool,
        typer.Option(
            "--compromised",
            help="The old key leaked: verify everything, revoke the old key, and sign every "
            "checkpoint and manifest again with the new one.",
        ),
    ] = False,
) -> None:
    """Make a new signing key; the old one is retired (still trusted for what it signed) or,
    with --compromised, revoked."""
    from townhall.actor import system_actor
    from townhall.cli import _runtime, _upgrade, console, err_console
    from townhall.integrity.keys import SigningKeyError
    from townhall.integrity.rotation import rotate_keys

    runtime = _runtime()
    _upgrade(runtime)
    try:
        result = rotate_keys(runtime, actor=system_actor("cli"), compromised=compromised)
    except SigningKeyError as error:
        err_console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    if result.refused:
        err_console.print(
            "[red]Refused: verification found problems; investigate them before re-signing "
            "anything:[/red]"
        )
        for problem in result.refused:
            err_console.print(f"  {problem}")
        raise typer.Exit(1)
    console.print(
        f"New signing key {result.new_key_id}; key {result.old_key_id} "
        f"{'revoked' if compromised else 'retired'}."
    )
    if compromised:
        console.print(
            f"Signed again: {result.resigned_checkpoints} checkpoints, "
            f"{result.resigned_manifests} manifests. Publish the new public key."
        )


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("checkpoint")(checkpoint)
    app.add_typer(keys_app, name="keys")
