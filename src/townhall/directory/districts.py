"""Which district a point lies in: point-in-polygon over the published district boundaries.

The directory holds no district shapes of its own (a location only carries a `district_code`), so
the boundaries come from an open dataset: `district_boundaries_dataset` (default
`district-boundaries`, the demo city's), a table with a geometry column and a code column
(`district_code_field`). The polygons are loaded once per process into a shapely STRtree with
prepared geometries, so a lookup is a bounding-box probe plus one or two exact tests (under 0.1 ms
for the demo city's 12 districts on a busy 2-core machine). The published version is re-checked at
most every `CHECK_SECONDS`; a new version (or a withdrawn dataset) replaces the index, so every
node follows a boundary change within that time without restarting.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Point, shape

from townhall.catalog import queries as catalog_queries
from townhall.datastore.coltypes import is_geometry
from townhall.datastore.lake import quote_identifier, table_ref
from townhall.db import unit_of_work

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

# How stale the boundaries may be on a node after a new version is published.
CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class DistrictIndex:
    """District polygons in an STRtree; `locate` answers the code of the polygon that covers
    a point (a point on a shared border goes to the first code in sort order), or None."""

    codes: tuple[str, ...]
    geometries: Any  # numpy array of prepared shapely geometries, same order as `codes`
    tree: STRtree

    @classmethod
    def build(cls, features: Sequence[tuple[str, Any]]) -> DistrictIndex:
        ordered = sorted(
            ((code, geometry) for code, geometry in features if geometry is not None),
            key=lambda item: item[0],
        )
        geometries = shapely.make_valid(np.array([g for _, g in ordered], dtype=object))
        shapely.prepare(geometries)  # in place: each `covers` below reuses its prepared form
        return cls(tuple(code for code, _ in ordered), geometries, STRtree(geometries))

    def __len__(self) -> int:
        return len(self.codes)

    def locate(self, lat: float, long: float) -> str | None:
        point = Point(long, lat)  # GeoJSON order: x is longitude
        candidates = sorted(int(i) for i in self.tree.query(point))
        for index in candidates:
            if self.geometries[index].covers(point):
                return self.codes[index]
        return None


EMPTY = DistrictIndex.build([])


@dataclass(frozen=True)
class _Source:
    """Where the boundaries are: one published version of one table."""

    key: tuple[int, int]  # (version id, snapshot id): changes whenever a version is published
    table: str
    snapshot: int
    geometry_column: str
    geometry_is_native: bool  # GEOMETRY (spatial extension) or GeoJSON text


def _published_source(runtime: Runtime) -> _Source | None:
    settings = runtime.settings
    slug = settings.district_boundaries_dataset
    if not slug:
        return None
    with unit_of_work(runtime.read_session_factory) as session:
        dataset = catalog_queries.dataset_by_slug(session, slug)
        if dataset is None or dataset.state == "deleted":
            return None
        for resource in dataset.resources:
            version = catalog_queries.version_of(session, resource, None)
            if version is None or version.snapshot_id is None:
                continue
            columns = {c["name"]: c for c in version.columns or ()}
            geometry = next(
                (c for c in columns.values() if c.get("type") == "geometry"),
                None,
            )
            if geometry is None or settings.district_code_field not in columns:
                continue
            return _Source(
                key=(version.id, int(version.snapshot_id)),
                table=version.table_name,
                snapshot=int(version.snapshot_id),
                geometry_column=geometry["name"],
                geometry_is_native=is_geometry(str(geometry.get("db_type") or "")),
            )
    return None


def _read_features(runtime: Runtime, source: _Source) -> list[tuple[str, Any]]:
    code = quote_identifier(runtime.settings.district_code_field)
    column = quote_identifier(source.geometry_column)
    table = table_ref(source.table, snapshot=source.snapshot)
    if source.geometry_is_native:
        connection = runtime.lake.connect(read_only=True, extensions=("spatial",))
        try:
            rows = connection.execute(
                f"SELECT CAST({code} AS VARCHAR), ST_AsWKB({column}) FROM {table}"
            ).fetchall()
        finally:
            connection.close()
        return [(str(c), shapely.from_wkb(bytes(g))) for c, g in rows if c and g is not None]
    rows = runtime.lake.read(f"SELECT CAST({code} AS VARCHAR), {column} FROM {table}").rows
    features = []
    for c, g in rows:
        if not c or g is None:
            continue
        features.append((str(c), shape(json.loads(g) if isinstance(g, str) else g)))
    return features


class DistrictLocator:
    """`locator(lat, long)` -> district code or None; what `Effects.locate` expects.

    Thread-safe; never raises (a lookup that cannot be answered leaves the district empty and
    is logged, rather than failing a resident's submission)."""

    def __init__(self, runtime: Runtime, *, check_seconds: float = CHECK_SECONDS) -> None:
        self._runtime = runtime
        self._check_seconds = check_seconds
        self._lock = threading.Lock()
        self._index = EMPTY
        self._key: tuple[int, int] | None = None
        self._checked_at = float("-inf")

    def __call__(self, lat: float, long: float) -> str | None:
        return self.index().locate(lat, long)

    def index(self) -> DistrictIndex:
        if time.monotonic() - self._checked_at >= self._check_seconds:
            self.refresh()
        return self._index

    def refresh(self, *, force: bool = False) -> DistrictIndex:
        """Re-read the boundaries if their published version changed (or `force`)."""
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                source = _published_source(self._runtime)
                if source is None:
                    self._index, self._key = EMPTY, None
                elif force or source.key != self._key:
                    self._index = DistrictIndex.build(_read_features(self._runtime, source))
                    self._key = source.key
                    log.info("district boundaries loaded: %d districts", len(self._index))
            except Exception:
                # Keep serving the last good index; the next check tries again.
                log.exception("district boundaries could not be loaded")
            return self._index
