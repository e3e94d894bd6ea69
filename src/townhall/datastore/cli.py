"""`townhall datasets ...`: load files into datasets from the operator's shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

datasets_app = typer.Typer(help="Load files into datasets.", no_args_is_help=True)

STAGES = {
    "detecting": "Detecting format",
    "reading": "Reading",
    "validating": "Validating",
    "writing": "Writing table",
    "recording": "Publishing version",
    "done": "Done",
}


@datasets_app.command(
    "ingest",
    help="Load FILE (CSV/TSV, JSON, NDJSON, xlsx, Parquet, GeoJSON) as the next version of a "
    "dataset's table, with a progress bar. A bad file changes nothing and exits with code 1.",
)
def ingest(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file to load.")
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset's slug.")],
    resource: Annotated[
        str | None,
        typer.Option(
            "--resource",
            help="Resource name; created if missing. Default: the first resource, or a new one "
            "named after the file.",
        ),
    ] = None,
    schema: Annotated[
        Path | None,
        typer.Option("--schema", exists=True, dir_okay=False, help="Frictionless Table Schema."),
    ] = None,
) -> None:
    """`townhall datasets ingest FILE --dataset SLUG`: see the command's help."""
    from townhall.actor import system_actor
    from townhall.catalog import actions as catalog_actions
    from townhall.catalog import queries as catalog_queries
    from townhall.cli import _cli_errors, _runtime, console, progress_bar
    from townhall.datastore.ingest import ingest_file
    from townhall.db import unit_of_work
    from townhall.errors import NotFoundError, TownhallError

    runtime = _runtime()
    actor = system_actor("cli")
    with _cli_errors():
        with unit_of_work(runtime.session_factory) as session:
            found = catalog_queries.dataset_by_slug(session, dataset)
            if found is None or found.state == "deleted":
                raise NotFoundError("dataset", dataset)
            wanted = resource or (found.resources[0].name if found.resources else file.name)
            chosen = next((r for r in found.resources if r.name == wanted), None)
            if chosen is None:
                chosen = catalog_actions.create_resource(
                    session,
                    actor=actor,
                    slug=dataset,
                    name=wanted,
                    format=file.suffix.lstrip(".").upper(),
                )
            resource_id = chosen.id
        with progress_bar() as progress:
            task = progress.add_task(STAGES["detecting"], total=100)

            def report(stage: str, fraction: float | None) -> None:
                update: dict[str, object] = {"description": STAGES.get(stage, stage)}
                if fraction is not None:
                    update["completed"] = round(fraction * 100)
                progress.update(task, **update)  # type: ignore[arg-type]

            try:
                version = ingest_file(
                    runtime,
                    actor=actor,
                    resource_id=resource_id,
                    path=file,
                    source_name=file.name,
                    table_schema=schema.read_text(encoding="utf-8") if schema else None,
                    progress=report,
                )
            except TownhallError as error:
                progress.stop()
                for item in error.errors[:20]:
                    message = item.get("message") if isinstance(item, dict) else None
                    if message:
                        console.print(f"  [yellow]{message}[/yellow]")
                raise
    console.print(
        f"[green]Published[/green] {dataset} version {version.number}: "
        f"{version.row_count} rows, {len(version.columns)} columns "
        f"(sha256 {version.source_sha256})"
    )
    runtime.close()
