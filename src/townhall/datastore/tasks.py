"""Datastore jobs: fetch a resource's URL and ingest it.

`datastore.fetch_and_ingest(resource_id)` streams the URL to a file under the data folder with
httpx (size-limited by `max_upload_bytes`, hashed on the way), then ingests it as the next
version. Idempotent: a file whose SHA-256 equals the published version's source is not loaded
again. Network errors and bad files raise, so the job retries and, after its last attempt,
ends as a recorded JobFailure (the resource keeps serving its previous version throughout).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from townhall.actor import system_actor
from townhall.catalog import queries as catalog_queries
from townhall.datastore.ingest import ingest_file
from townhall.db import unit_of_work
from townhall.jobs import job
from townhall.outbound import OutboundPolicy, OutboundRefused, guarded_client

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

FETCH_TIMEOUT = httpx.Timeout(30.0, read=120.0)
MAX_REDIRECTS = 5
CHUNK_BYTES = 1024 * 1024


class FetchError(Exception):
    """The URL could not be fetched (status, size, network); the message says why."""


@job("datastore.fetch_and_ingest", retries=3, retry_delay=60)
def fetch_and_ingest(runtime: Runtime, resource_id: int) -> int | None:
    """Fetch resource `resource_id`'s URL and publish it; returns the new version number, or
    None when the resource is gone, has no URL, or the file is unchanged."""
    with unit_of_work(runtime.session_factory) as session:
        resource = catalog_queries.resource_by_id(session, resource_id)
        if resource is None or resource.dataset.state == "deleted" or not resource.url:
            log.warning("fetch_and_ingest: resource %s is gone or has no URL", resource_id)
            return None
        url = resource.url
        current = catalog_queries.version_of(session, resource, None)
        current_sha = current.source_sha256 if current else None
    directory = runtime.settings.data_dir.resolve() / "tmp" / "fetch"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"fetch-{uuid.uuid4().hex}"
    try:
        sha256, size = download(
            url,
            target,
            max_bytes=runtime.settings.max_upload_bytes,
            outbound=OutboundPolicy.from_settings(runtime.settings),
        )
        if sha256 == current_sha:
            log.info("fetch_and_ingest: %s unchanged (sha256 %s); no new version", url, sha256)
            return None
        version = ingest_file(
            runtime,
            actor=system_actor(f"job:datastore.fetch_and_ingest:{resource_id}"),
            resource_id=resource_id,
            path=target,
            source_name=_name_of(url),
            source_sha256=sha256,
            source_bytes=size,
        )
        return version.number
    finally:
        with contextlib.suppress(OSError):
            target.unlink()


def _name_of(url: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name
    return name or urlsplit(url).netloc or "download"


def download(
    url: str, target: Path, *, max_bytes: int, outbound: OutboundPolicy | None = None
) -> tuple[str, int]:
    """Stream `url` into `target`; returns (sha256, size). Raises FetchError for a non-2xx
    status, a body over `max_bytes` or a destination (redirects included) that `outbound`
    (default: public addresses only) refuses; httpx.HTTPError for network failures."""
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            guarded_client(
                outbound or OutboundPolicy(),
                timeout=FETCH_TIMEOUT,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FetchError(f"GET {url} answered {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url} is {declared} bytes, over the {max_bytes} limit")
            with target.open("wb") as handle:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"{url} is larger than the {max_bytes} bytes limit")
                    handle.write(chunk)
                    digest.update(chunk)
    except OutboundRefused as refused:
        raise FetchError(f"GET {url} refused: {refused}") from None
    return digest.hexdigest(), size
