"""Seeding the demo city into a Townhall instance: offices, staff, directory, requests, datasets.

Every write goes through the slices' actions (so the demo has a real audit trail), except the
60,000 service requests, which the requests slice bulk-loads for speed.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rich.progress import Progress
from sqlalchemy.orm import Session

from townhall.accounts import actions as account_actions
from townhall.accounts import queries as account_queries
from townhall.actor import Actor, system_actor
from townhall.db import unit_of_work
from townhall.demo.city import DemoCity, districts_geojson, generate_city

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

DEMO_ADMIN_EMAIL = "admin@riverton.example.org"
DEMO_PASSWORD = "riverton-demo"  # noqa: S105 - published on purpose: demo accounts only
FREQUENCY_CODES = {"annual": "ANNUAL", "monthly": "MONTHLY", "irregular": "IRREG"}
PUBLISH_DEMO_JOB = "publishing.publish_demo_datasets"
OperationalData = Literal["queue", "now", "skip"]


def seed_demo_city(
    runtime: Runtime,
    *,
    seed: int = 2026,
    request_count: int = 60_000,
    only_if_empty: bool = False,
    progress: Progress | None = None,
    operational_data: OperationalData = "queue",
) -> str:
    """Seed everything; with `only_if_empty`, do nothing when the demo is already there.

    The operational open datasets (service requests and office visits through the
    privacy-safe pipelines, about 40 s) come last, once everything else has committed:
    `queue` hands them to the job `publishing.publish_demo_datasets` so that a server can
    start serving at once, `now` publishes them here (on `progress` too), `skip` leaves them.
    """
    with unit_of_work(runtime.session_factory) as session:
        if account_queries.user_by_email(session, DEMO_ADMIN_EMAIL) is not None:
            if only_if_empty:
                return "Demo city already seeded; nothing to do."
            raise RuntimeError("the demo city is already seeded in this database")
    task = progress.add_task("Generating Riverton", total=None) if progress else None
    city = generate_city(seed, request_count=request_count)
    actor = system_actor("demo-seed")

    def step(description: str, total: int | None = None) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=description, total=total, completed=0)

    step("Offices and staff")
    _seed_accounts(runtime, city, actor)

    from townhall.directory.demo import seed_directory

    step("Service directory")
    with unit_of_work(runtime.session_factory) as session:
        seed_directory(session, actor=actor, city=city)

    from townhall.service_requests.demo import seed_requests

    step("Service requests", total=len(city.service_requests))
    with unit_of_work(runtime.session_factory) as session:

        def advance(done: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done)

        seed_requests(session, actor, city, progress=advance)

    step("Open datasets", total=len(city.datasets) + 1)
    _seed_datasets(runtime, city, actor, progress, task)
    summary = (
        f"Seeded {city.name}: {len(city.districts)} districts, {len(city.offices)} offices, "
        f"{len(city.services)} services, {len(city.staff)} staff, "
        f"{len(city.service_requests)} service requests, {len(city.datasets) + 1} datasets. "
        f"Log in as {DEMO_ADMIN_EMAIL} / {DEMO_PASSWORD}."
    )
    return summary + _operational_data(runtime, operational_data, progress)


def _operational_data(runtime: Runtime, mode: OperationalData, progress: Progress | None) -> str:
    """Publish the operational open datasets as `mode` says; returns a line for the summary."""
    if mode == "skip":
        return ""
    if mode == "queue":
        # Everything the pipelines read has committed above: the job sees it all.
        runtime.jobs.enqueue(PUBLISH_DEMO_JOB)
        log.info("queued %s: the operational open datasets follow shortly", PUBLISH_DEMO_JOB)
        return (
            f" Operational open data (service requests, office visits) is being published "
            f"in the background (job {PUBLISH_DEMO_JOB}, about a minute)."
        )
    from townhall.publishing.demo import publish_operational_datasets

    task = progress.add_task("Operational open data", total=None) if progress else None

    def on_step(description: str, done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(
                task, description=f"Operational open data: {description}", completed=done,
                total=total,
            )  # fmt: skip

    slugs = publish_operational_datasets(runtime, steward_email=DEMO_ADMIN_EMAIL, on_step=on_step)
    return f" Published operational open data: {', '.join(slugs)}."


def _seed_accounts(runtime: Runtime, city: DemoCity, actor: Actor) -> None:
    with unit_of_work(runtime.session_factory) as session:
        for office in city.offices:
            account_actions.create_organization(
                session,
                actor=actor,
                slug=office.slug,
                name=office.name,
                kind="office",
                description=f"{office.address}, {office.postal_code}",
            )
        account_actions.create_user(
            session,
            actor=actor,
            email=DEMO_ADMIN_EMAIL,
            password=DEMO_PASSWORD,
            role="admin",
            display_name="Demo administrator",
            organization_slugs=[office.slug for office in city.offices],
        )
        for member in city.staff:
            if member.email == DEMO_ADMIN_EMAIL:
                continue
            account_actions.create_user(
                session,
                actor=actor,
                email=member.email,
                password=DEMO_PASSWORD,
                role=member.role,
                display_name=member.name,
                organization_slugs=[member.office_slug] if member.office_slug else [],
            )


def _steward_for(session: Session, city: DemoCity, office_slug: str) -> int:
    """A publisher of the office looks after its datasets; the demo admin otherwise."""
    emails = [m.email for m in city.staff if m.role == "publisher" and m.office_slug == office_slug]
    for email in [*emails, DEMO_ADMIN_EMAIL]:
        user = account_queries.user_by_email(session, email)
        if user is not None:
            return user.id
    raise RuntimeError("the demo admin must exist before datasets are seeded")


def _seed_datasets(
    runtime: Runtime, city: DemoCity, actor: Actor, progress: Progress | None, task: object
) -> None:
    from townhall.catalog import actions as catalog_actions
    from townhall.datastore.ingest import ingest_file

    with tempfile.TemporaryDirectory(dir=runtime.settings.data_dir) as tmp:
        folder = Path(tmp)
        items: list[tuple[str, int, Path]] = []
        with unit_of_work(runtime.session_factory) as session:
            for dataset in city.datasets:
                catalog_actions.create_dataset(
                    session,
                    actor=actor,
                    organization_slug=dataset.publisher_office_slug,
                    slug=dataset.slug,
                    title=dataset.title,
                    description=dataset.description,
                    keywords=list(dataset.keywords),
                    themes=[dataset.theme],
                    license_id=dataset.license_id,
                    frequency=FREQUENCY_CODES.get(dataset.frequency, "IRREG"),
                    languages=["en"],
                    contact_email=f"opendata@{city.domain}",
                    steward_id=_steward_for(session, city, dataset.publisher_office_slug),
                )
                resource = catalog_actions.create_resource(
                    session,
                    actor=actor,
                    slug=dataset.slug,
                    name=f"{dataset.title} (CSV)",
                    format="CSV",
                )
                path = folder / f"{dataset.slug}.csv"
                with path.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow([c.name for c in dataset.columns])
                    writer.writerows(dataset.rows)
                items.append((dataset.slug, resource.id, path))
            catalog_actions.create_dataset(
                session,
                actor=actor,
                organization_slug=city.offices[0].slug,
                slug="district-boundaries",
                title=f"{city.name} district boundaries",
                description="Boundaries of the city's districts, with their population.",
                keywords=["districts", "boundaries", "geography"],
                themes=["REGI"],
                license_id="CC-BY-4.0",
                frequency="IRREG",
                languages=["en"],
                steward_id=_steward_for(session, city, city.offices[0].slug),
            )
            boundaries = catalog_actions.create_resource(
                session,
                actor=actor,
                slug="district-boundaries",
                name="Districts (GeoJSON)",
                format="GeoJSON",
            )
            geojson_path = folder / "districts.geojson"
            geojson_path.write_text(json.dumps(districts_geojson(city)), encoding="utf-8")
            items.append(("district-boundaries", boundaries.id, geojson_path))
        for done, (slug, resource_id, path) in enumerate(items, start=1):
            ingest_file(
                runtime, actor=actor, resource_id=resource_id, path=path, source_name=path.name
            )
            with unit_of_work(runtime.session_factory) as session:
                catalog_actions.set_dataset_state(
                    session, actor=actor, slug=slug, state="published"
                )
            if progress is not None:
                progress.update(task, completed=done)  # type: ignore[arg-type]
