"""One run of a privacy-safe publication pipeline.

1. Claim the run (a compare-and-set on `last_run_at`, so two workers never run one pipeline
   at once) and record it as `running`.
2. Make the two datasets on the first run (draft, marked as made from operational data, every
   published column declared public, the pipeline's steward and CC-BY-4.0 licence).
3. Read the records (`sources.py`): direct identifiers are never selected; free text is
   scrubbed; location and time are generalised and then k-anonymised (`anonymity.py`).
4. Check the result again (every group has k rows, no free-text cell still holds personal
   data the scrubber can see) and refuse to publish if it fails.
5. Publish the records table as the next version of its dataset (`datastore.ingest`).
6. Noise the counts of every complete week not yet released, once and for all
   (`dp.py`, `DpCount`), and publish all released weeks as the next version of the counts
   dataset.
7. Keep a privacy report per version; on the first run submit both datasets for review (their
   first release is always reviewed); once approved, the next run publishes them.

Any failure leaves the previous versions published and the run `failed` with its error.
"""

from __future__ import annotations

import csv
import logging
import shutil
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update

from townhall.actor import Actor
from townhall.catalog import actions as catalog_actions
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset
from townhall.datastore.ingest import ingest_file
from townhall.db import unit_of_work, utcnow
from townhall.errors import NotFoundError, TownhallError
from townhall.governance import actions as governance_actions
from townhall.publishing import dp, sources
from townhall.publishing.anonymity import k_anonymise
from townhall.publishing.models import DpCount, PrivacyReport, PublicationPipeline, PublicationRun
from townhall.publishing.scrub import MEASURED, residual_personal_data

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

LICENCE = "CC-BY-4.0"
# A run still marked running after this long died with its worker; another may start.
STALE_RUN = timedelta(hours=6)


class PipelineRefused(Exception):
    """The anonymised table failed its own checks; nothing was published."""


def _claim(
    runtime: Runtime, pipeline_id: int, *, force: bool, actor: Actor, trigger: str
) -> tuple[int, datetime | None] | None:
    """Mark the run started: (run id, the previous last_run_at); None when it is not due
    (or another run holds it)."""
    now = utcnow()
    with unit_of_work(runtime.session_factory) as session:
        pipeline = session.get(PublicationPipeline, pipeline_id)
        if pipeline is None:
            raise NotFoundError("pipeline", pipeline_id)
        if not pipeline.enabled and not force:
            return None
        running = session.scalar(
            select(PublicationRun.id).where(
                PublicationRun.pipeline_id == pipeline_id,
                PublicationRun.status == "running",
                PublicationRun.started_at > now - STALE_RUN,
            )
        )
        if running is not None:
            return None
        previous = pipeline.last_run_at
        due_before = now - timedelta(hours=pipeline.interval_hours) + timedelta(minutes=5)
        condition = [PublicationPipeline.id == pipeline_id]
        if not force:
            condition.append(
                or_(
                    PublicationPipeline.last_run_at.is_(None),
                    PublicationPipeline.last_run_at <= due_before,
                )
            )
        claimed = session.execute(
            update(PublicationPipeline)
            .where(*condition)
            .values(last_run_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            return None
        run = PublicationRun(
            pipeline_id=pipeline_id,
            started_at=now,
            status="running",
            trigger=trigger,
            actor=actor.label,
            rows_in=0,
            rows_out=0,
            report={},
        )
        session.add(run)
        session.flush()
        return run.id, previous


def run_pipeline(
    runtime: Runtime,
    pipeline_id: int,
    *,
    actor: Actor,
    trigger: str = "schedule",
    force: bool = False,
    now: datetime | None = None,
) -> PublicationRun | None:
    """Run the pipeline if it is due (always with `force`); returns the finished run, or None
    when nothing ran. Needs `governance:manage`. Failures are recorded on the run and raised.
    """
    actor.require("governance:manage")
    claimed = _claim(runtime, pipeline_id, force=force, actor=actor, trigger=trigger)
    if claimed is None:
        return None
    run_id, previous_run_at = claimed
    workdir = runtime.settings.data_dir.resolve() / "tmp" / "publishing" / uuid.uuid4().hex
    try:
        report = _run(runtime, pipeline_id, run_id, actor, now or utcnow(), workdir)
    except Exception as error:
        message = str(error) if isinstance(error, PipelineRefused | TownhallError) else repr(error)
        with unit_of_work(runtime.session_factory) as session:
            run = session.get(PublicationRun, run_id)
            if run is not None:
                run.status = "failed"
                run.error = message[:4000]
                run.finished_at = utcnow()
            pipeline = session.get(PublicationPipeline, pipeline_id)
            if pipeline is not None:
                # Due again, so the job's retry (or the next scheduled check) runs it.
                pipeline.last_run_at = previous_run_at
        log.exception("publication pipeline %s failed", pipeline_id)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with unit_of_work(runtime.session_factory) as session:
        run = session.get(PublicationRun, run_id)
        pipeline = session.get(PublicationPipeline, pipeline_id)
        assert run is not None
        assert pipeline is not None
        run.status = "succeeded"
        run.finished_at = utcnow()
        run.rows_in = report["records"]["rows_in"]
        run.rows_out = report["records"]["rows_out"]
        run.report = report
        pipeline.last_success_at = run.finished_at
        session.flush()
        session.expunge(run)
    return run


def _ensure_dataset(
    runtime: Runtime,
    actor: Actor,
    pipeline: PublicationPipeline,
    slug: str,
    title: str,
    description: str,
    columns: list[str],
) -> int:
    """The dataset's only resource id, making dataset and resource on first need."""
    with unit_of_work(runtime.session_factory) as session:
        dataset = catalog_queries.dataset_by_slug(session, slug)
        organization = pipeline_organization_slug(session, pipeline)
        if dataset is None:
            dataset = catalog_actions.create_dataset(
                session,
                actor=actor,
                organization_slug=organization,
                slug=slug,
                title=title,
                description=description,
                license_id=LICENCE,
                frequency="DAILY" if pipeline.interval_hours <= 24 else "WEEKLY",
                keywords=["operational data", "anonymised", pipeline.source.replace("_", " ")],
                languages=["en"],
            )
            if pipeline.steward_id is not None:
                dataset.steward_id = pipeline.steward_id
        governance_actions.mark_operational(session, actor=actor, slug=slug, source=pipeline.source)
        governance_actions.classify_dataset(
            session,
            actor=actor,
            slug=slug,
            classification="public",
            columns=dict.fromkeys(columns, "public"),
            note="anonymised by the privacy-safe publication pipeline; see its privacy report",
        )
        if not dataset.resources:
            resource = catalog_actions.create_resource(
                session, actor=actor, slug=slug, name=f"{title} (CSV)", format="CSV"
            )
            return resource.id
        return dataset.resources[0].id


def pipeline_organization_slug(session: Any, pipeline: PublicationPipeline) -> str:
    from townhall.accounts.models import Organization

    organization = session.get(Organization, pipeline.organization_id)
    assert organization is not None
    return organization.slug


def _write_csv(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def _schema(columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "fields": [
            {"name": name, "type": kind, "description": description}
            for name, kind, description in columns
        ]
    }


def _run(
    runtime: Runtime,
    pipeline_id: int,
    run_id: int,
    actor: Actor,
    now: datetime,
    workdir: Path,
) -> dict[str, Any]:
    with unit_of_work(runtime.session_factory) as session:
        pipeline = session.get(PublicationPipeline, pipeline_id)
        assert pipeline is not None
        session.expunge(pipeline)
        extract = sources.EXTRACTORS[pipeline.source](session, pipeline, now)
    records_title, counts_title = sources.TITLES[pipeline.source]

    # Records: generalise and suppress until k-anonymous, then check again.
    anonymous = k_anonymise(
        extract.rows,
        extract.quasi_identifiers,
        k=pipeline.k,
        max_suppression=pipeline.max_suppression,
    )
    _verify_k(anonymous.rows, [q.column for q in extract.quasi_identifiers], pipeline.k)
    names = [name for name, _, _ in extract.columns]
    table = []
    for row in anonymous.rows:
        values = dict(row)
        for qi in extract.quasi_identifiers:
            values[f"{qi.column}_level"] = anonymous.levels[qi.column]
        table.append(["" if values.get(n) is None else values.get(n) for n in names])
    residual = _residual_free_text(table, names, extract.free_text.get("column"))
    if residual:
        raise PipelineRefused(
            f"{residual} free-text cells still hold personal data after scrubbing; "
            "nothing was published"
        )
    records_path = workdir / f"{pipeline.records_slug}.csv"
    _write_csv(records_path, names, table)
    records_resource = _ensure_dataset(
        runtime,
        actor,
        pipeline,
        pipeline.records_slug,
        records_title,
        _records_description(pipeline, extract),
        names,
    )
    k_report = anonymous.report(len(extract.rows), pipeline.max_suppression)
    records_report = {
        "kind": "records",
        "source": pipeline.source,
        "generated_at": now.isoformat(),
        "window_days": pipeline.window_days,
        "direct_identifiers_dropped": list(extract.dropped),
        "k_anonymity": k_report,
        "location": {
            "mode": pipeline.location_mode,
            "h3_resolution": pipeline.h3_resolution if pipeline.location_mode == "h3" else None,
        },
        "time": {"granularity": pipeline.time_granularity, "timezone": pipeline.timezone},
        "free_text": (
            {**extract.free_text, "scrubber_measured": MEASURED, "residual_check": "passed"}
            if extract.free_text
            else None
        ),
        "rows_in": len(extract.rows),
        "rows_out": len(anonymous.rows),
    }
    records_version = ingest_file(
        runtime,
        actor=actor,
        resource_id=records_resource,
        path=records_path,
        source_name=f"{pipeline.records_slug}-{now:%Y%m%dT%H%M}.csv",
        table_schema=_schema(extract.columns),
    )

    # Counts: noise each complete week not yet released, once, and publish every released week.
    counts_report = _release_counts(runtime, pipeline, extract, now)
    count_columns = [
        ("week_start", "date", "Monday the week starts on (local time)"),
        (extract.area_label.replace(" ", "_"), "string", f"The {extract.area_label}, or other"),
        (extract.category_label.replace(" ", "_"), "string",
         f"The {extract.category_label}, or other"),
        ("count", "integer", "Number of records, with differentially private noise added"),
        ("epsilon", "number", "Privacy budget spent on this count's week"),
    ]  # fmt: skip
    with unit_of_work(runtime.session_factory) as session:
        released = [
            [c.week_start.isoformat(), c.area, c.category, c.count, c.epsilon]
            for c in session.scalars(
                select(DpCount)
                .where(DpCount.pipeline_id == pipeline.id)
                .order_by(DpCount.week_start, DpCount.area, DpCount.category)
            )
        ]
    counts_path = workdir / f"{pipeline.counts_slug}.csv"
    _write_csv(counts_path, [c[0] for c in count_columns], released)
    counts_resource = _ensure_dataset(
        runtime,
        actor,
        pipeline,
        pipeline.counts_slug,
        counts_title,
        _counts_description(pipeline, extract),
        [c[0] for c in count_columns],
    )
    counts_version = ingest_file(
        runtime,
        actor=actor,
        resource_id=counts_resource,
        path=counts_path,
        source_name=f"{pipeline.counts_slug}-{now:%Y%m%dT%H%M}.csv",
        table_schema=_schema(count_columns),
    )
    counts_report = {
        "kind": "dp_counts",
        "source": pipeline.source,
        "generated_at": now.isoformat(),
        "rows_out": len(released),
        **counts_report,
    }

    with unit_of_work(runtime.session_factory) as session:
        for version, report in ((records_version, records_report), (counts_version, counts_report)):
            session.add(
                PrivacyReport(
                    run_id=run_id,
                    dataset_id=version.dataset_id,
                    resource_id=version.resource_id,
                    dataset_version_id=version.id,
                    version_number=version.number,
                    report=report,
                )
            )
    states = {
        slug: _advance_workflow(runtime, actor, slug)
        for slug in (pipeline.records_slug, pipeline.counts_slug)
    }
    return {
        "records": {**records_report, "version": records_version.number},
        "counts": {**counts_report, "version": counts_version.number},
        "dataset_states": states,
    }


def _verify_k(rows: list[dict[str, Any]], columns: list[str], k: int) -> None:
    groups: dict[tuple[Any, ...], int] = defaultdict(int)
    for row in rows:
        groups[tuple(row[c] for c in columns)] += 1
    small = [key for key, count in groups.items() if count < k]
    if small:
        raise PipelineRefused(f"{len(small)} groups are smaller than k={k}; nothing published")


def _residual_free_text(table: list[list[Any]], names: list[str], column: str | None) -> int:
    if not column:
        return 0
    index = names.index(column)
    return sum(1 for row in table if row[index] and residual_personal_data(str(row[index])))


def _release_counts(
    runtime: Runtime, pipeline: PublicationPipeline, extract: sources.Extract, now: datetime
) -> dict[str, Any]:
    zone = ZoneInfo(pipeline.timezone)
    this_week = sources.week_start(now, zone)
    first_week = sources.week_start(now - timedelta(days=pipeline.window_days), zone)
    by_week: dict[Any, list[tuple[str, str]]] = defaultdict(list)
    for week, area, category in extract.dp_records:
        by_week[week].append((area, category))
    with unit_of_work(runtime.session_factory) as session:
        done = set(
            session.scalars(
                select(DpCount.week_start).where(DpCount.pipeline_id == pipeline.id).distinct()
            )
        )
        released = []
        # Only whole weeks, and never the first (partial) week of the window.
        for week in sources.iter_weeks(
            first_week + timedelta(days=7), this_week - timedelta(days=7)
        ):
            if week in done:
                continue
            noisy = dp.noisy_counts(
                by_week.get(week, []),
                areas=extract.dp_areas,
                categories=extract.dp_categories,
                epsilon=pipeline.epsilon,
            )
            for (area, category), count in noisy.items():
                session.add(
                    DpCount(
                        pipeline_id=pipeline.id,
                        week_start=week,
                        area=area,
                        category=category,
                        count=count,
                        epsilon=pipeline.epsilon,
                    )
                )
            released.append(week.isoformat())
    return {
        "differential_privacy": {
            "library": "OpenDP",
            "mechanism": "make_count_by_categories then Laplace noise (discrete), "
            f"scale {dp.laplace_scale(pipeline.epsilon):g}",
            "epsilon_per_week": pipeline.epsilon,
            "unit_of_privacy": "one record (one "
            + ("service request" if pipeline.source == "service_requests" else "office visit")
            + ")",
            "total_epsilon_per_record": pipeline.epsilon,
            "why_total_equals_per_week": "each record falls in exactly one week and each "
            "week is noised once, ever",
            "areas": [*extract.dp_areas, dp.OTHER],
            "categories": [*extract.dp_categories, dp.OTHER],
            "weeks_released_this_run": released,
            "negative_counts_shown_as_zero": True,
        }
    }


def _advance_workflow(runtime: Runtime, actor: Actor, slug: str) -> str:
    """First run: submit for review. Approved: publish. Otherwise leave the state alone."""
    with unit_of_work(runtime.session_factory) as session:
        dataset: Dataset | None = catalog_queries.dataset_by_slug(session, slug)
        assert dataset is not None
        if dataset.state in ("draft",):
            catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="in_review")
        elif dataset.state == "approved":
            catalog_actions.set_dataset_state(session, actor=actor, slug=slug, state="published")
        return dataset.state


def _records_description(pipeline: PublicationPipeline, extract: sources.Extract) -> str:
    what = "service request" if pipeline.source == "service_requests" else "office visit"
    return (
        f"One row per {what} of the last {pipeline.window_days} days, anonymised before "
        f"publication: direct identifiers dropped, free text scrubbed of personal data, "
        f"location and time generalised, and every combination of the quasi-identifiers "
        f"({', '.join(q.column for q in extract.quasi_identifiers)}) shared by at least "
        f"{pipeline.k} rows (k-anonymity; rarer rows are left out). Each version has a "
        f"privacy report: GET /api/v1/datasets/{pipeline.records_slug}/privacy-report."
    )


def _counts_description(pipeline: PublicationPipeline, extract: sources.Extract) -> str:
    return (
        f"Weekly counts by {extract.area_label} and {extract.category_label}, with random "
        f"noise added through OpenDP so that no single record can be inferred (differential "
        f"privacy, epsilon {pipeline.epsilon:g} per week; each record is counted in one week "
        f"only). Counts can be off by a few either way and are never negative. Privacy "
        f"report: GET /api/v1/datasets/{pipeline.counts_slug}/privacy-report."
    )
