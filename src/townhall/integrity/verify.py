"""`townhall verify`: the audit chain, its signed checkpoints, and every dataset version's files.

Each part reads the database in short transactions (on SQLite every transaction holds the
write lock) and hashes data files outside them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from townhall.audit.queries import ChainReport, verify_chain
from townhall.db import unit_of_work
from townhall.errors import NotFoundError
from townhall.integrity.checkpoints import verify_checkpoints
from townhall.integrity.keys import KeyRing, SigningKeyError, load_key_ring
from townhall.integrity.manifests import VersionFacts, verify_version
from townhall.integrity.problems import Problem

if TYPE_CHECKING:
    from townhall.runtime import Runtime

Progress = Callable[[str, int, int | None], None]
"""`progress(stage, done, total)`; stage is `audit`, `checkpoints` or `datasets`."""


@dataclass
class VerificationReport:
    entries_checked: int = 0
    checkpoints_checked: int = 0
    versions_checked: int = 0
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def key_ring_or_problem(runtime: Runtime, report: VerificationReport) -> KeyRing:
    try:
        return load_key_ring(runtime.settings)
    except SigningKeyError as error:
        report.problems.append(Problem("checkpoint", "signing key", str(error)))
        return KeyRing({})


def verify_audit(
    runtime: Runtime,
    report: VerificationReport,
    ring: KeyRing,
    *,
    external_checkpoints: Iterable[dict[str, Any]] = (),
    progress: Progress | None = None,
) -> None:
    """The hash chain, then every checkpoint (stored, logged and given)."""

    def advance(done: int, total: int) -> None:
        if progress:
            progress("audit", done, total)

    with unit_of_work(runtime.read_session_factory) as session:
        chain: ChainReport = verify_chain(session, progress=advance)
    report.entries_checked = chain.entries_checked
    if not chain.ok:
        report.problems.append(
            Problem("audit", f"audit entry seq {chain.first_bad_seq}", chain.problem or "")
        )
    with unit_of_work(runtime.read_session_factory) as session:
        checked = verify_checkpoints(
            session, ring, settings=runtime.settings, external=external_checkpoints
        )
    report.checkpoints_checked = checked.checked
    report.problems.extend(checked.problems)
    if progress:
        progress("checkpoints", checked.checked, checked.checked)


def load_versions(
    runtime: Runtime,
    *,
    dataset_slugs: list[str] | None = None,
    version: int | None = None,
    resource: str | None = None,
) -> list[VersionFacts]:
    """Versions to check: of the named datasets (all datasets when None), optionally only
    number `version` of resource `resource` (id or name). Raises NotFoundError for an unknown
    dataset, resource or version."""
    from townhall.catalog import queries as catalog_queries
    from townhall.catalog.models import Dataset, DatasetVersion

    facts: list[VersionFacts] = []
    with unit_of_work(runtime.read_session_factory) as session:
        if dataset_slugs is None:
            datasets = list(session.scalars(select(Dataset).order_by(Dataset.slug)))
        else:
            datasets = []
            for slug in dataset_slugs:
                dataset = catalog_queries.dataset_by_slug(session, slug)
                if dataset is None:
                    raise NotFoundError("dataset", slug)
                datasets.append(dataset)
        for dataset in datasets:
            query = (
                select(DatasetVersion)
                .where(DatasetVersion.dataset_id == dataset.id)
                .order_by(DatasetVersion.resource_id, DatasetVersion.number)
            )
            if resource is not None:
                chosen = next(
                    (r for r in dataset.resources if str(r.id) == resource or r.name == resource),
                    None,
                )
                if chosen is None:
                    raise NotFoundError("resource", f"{resource} in {dataset.slug}")
                query = query.where(DatasetVersion.resource_id == chosen.id)
            if version is not None:
                query = query.where(DatasetVersion.number == version)
            found = [VersionFacts.of(v, dataset.slug) for v in session.scalars(query)]
            if version is not None and not found:
                raise NotFoundError("version", f"{version} of {dataset.slug}")
            facts.extend(found)
    return facts


def verify_versions(
    runtime: Runtime,
    report: VerificationReport,
    ring: KeyRing,
    versions: list[VersionFacts],
    *,
    progress: Progress | None = None,
) -> None:
    for done, version in enumerate(versions, start=1):
        check = verify_version(runtime.lake, ring, version)
        report.versions_checked += 1
        report.files_checked += check.files_checked
        report.problems.extend(check.problems)
        if progress:
            progress("datasets", done, len(versions))


def verify_installation(
    runtime: Runtime,
    *,
    audit: bool = True,
    dataset_slugs: list[str] | None = None,
    all_datasets: bool = True,
    version: int | None = None,
    resource: str | None = None,
    external_checkpoints: Iterable[dict[str, Any]] = (),
    progress: Progress | None = None,
) -> VerificationReport:
    """Everything `townhall verify` checks. `dataset_slugs` limits the dataset part to those
    datasets; `all_datasets=False` with no slugs skips it. Raises NotFoundError for an unknown
    dataset, resource or version."""
    report = VerificationReport()
    ring = key_ring_or_problem(runtime, report)
    versions: list[VersionFacts] = []
    if dataset_slugs or all_datasets:
        versions = load_versions(
            runtime, dataset_slugs=dataset_slugs or None, version=version, resource=resource
        )
    if audit:
        verify_audit(
            runtime, report, ring, external_checkpoints=external_checkpoints, progress=progress
        )
    if versions:
        verify_versions(runtime, report, ring, versions, progress=progress)
    return report


def download_version(
    runtime: Runtime, slug: str, *, resource: str | None = None, version: int | None = None
) -> tuple[VersionFacts, str]:
    """The version a download is checked against: `version` of the resource (id or name;
    default the first with a table), or its published version. Returns the version and the
    resource's name. Raises NotFoundError."""
    from townhall.catalog import queries as catalog_queries

    with unit_of_work(runtime.read_session_factory) as session:
        dataset = catalog_queries.dataset_by_slug(session, slug)
        if dataset is None:
            raise NotFoundError("dataset", slug)
        if resource is not None:
            chosen = next(
                (r for r in dataset.resources if str(r.id) == resource or r.name == resource),
                None,
            )
        else:
            chosen = next((r for r in dataset.resources if r.published_version_id), None)
        if chosen is None:
            raise NotFoundError("resource", f"{resource or '(with a table)'} in {slug}")
        found = catalog_queries.version_of(session, chosen, version)
        if found is None:
            raise NotFoundError("version", f"{version or '(published)'} of {slug}")
        return VersionFacts.of(found, dataset.slug), chosen.name
