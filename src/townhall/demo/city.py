"""Generate the demo city of Riverton: geography, offices, services, staff, requests, datasets.

Why: demos, screenshots, benchmarks and tests need one believable city whose patterns (weekly
and yearly seasonality, storms, equity gaps between districts, personal data hidden in free text)
are known in advance, so dashboards and the privacy scrubber can be checked against the truth.

Everything is derived from `seed` through independent named random streams, and "now" is the
`end` argument, never the clock: the same arguments give the same city, byte for byte. The module
holds no database code; seeding a database from a `DemoCity` is the caller's job.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Polygon

from townhall.demo import texts

TIMEZONE: Final = "America/New_York"
CENTRE_LAT: Final = 42.2187  # an invented city in the Connecticut River valley
CENTRE_LON: Final = -72.6153
# A fixed "now" keeps the output deterministic; pass `end=` to move the whole history.
DEFAULT_END: Final = datetime(2026, 5, 1, tzinfo=UTC)
HISTORY_DAYS: Final = 730
DEFAULT_REQUEST_COUNT: Final = 60_000

_TZ: Final = ZoneInfo(TIMEZONE)
_KM_PER_DEG: Final = 111.32
_COS_LAT: Final = math.cos(math.radians(CENTRE_LAT))
_SPACING_KM: Final = 0.5  # lattice cells are city blocks of about 500 m
_GRID: Final = 32  # cells per side: the lattice spans 16 km, the city about 13 km
# Points are drawn at least this far (as a fraction of a block) from a block's edges, so that
# rounding coordinates to 6 decimals (about 0.1 m) can never push a point over a boundary.
_EDGE_MARGIN: Final = 0.06
_TRACKING_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I look-alikes


# --- public data shapes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class District:
    """An administrative district: the unit of every area-level indicator."""

    id: int
    code: str  # "D01"...
    slug: str
    name: str
    population: int
    households: int
    area_km2: float
    median_household_income: int  # USD per year
    postal_code: str
    centre_lat: float  # a point inside the district (its busiest block), for labels and maps
    centre_lon: float
    # GeoJSON Polygon rings of (lon, lat): exterior counter-clockwise first, then holes (RFC 7946).
    rings: tuple[tuple[tuple[float, float], ...], ...]
    # Ground truth the generator used, for tests and for checking equity dashboards: how much
    # more (>1) or less (<1) residents report per head, and how much slower (>1) work gets done.
    reporting_propensity: float
    response_factor: float

    def geometry(self) -> dict[str, Any]:
        """The boundary as a GeoJSON Polygon geometry."""
        return {"type": "Polygon", "coordinates": [[list(p) for p in ring] for ring in self.rings]}


@dataclass(frozen=True, slots=True)
class Office:
    """A place residents can visit: city hall, a service centre, a permit office, a depot."""

    id: int
    slug: str
    name: str
    kind: str  # city_hall | service_center | permit_office | depot | parks
    district_code: str
    address: str
    postal_code: str
    lat: float
    lon: float
    phone: str
    email: str
    counters: int  # service desks open in parallel, for queue and staffing models
    wheelchair_accessible: bool
    timezone: str


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """One opening interval, in the office's local time; a lunch break is two intervals."""

    office_slug: str
    weekday: int  # 0 = Monday ... 6 = Sunday
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class PublicService:
    """An entry of the service directory; `accepts_requests` ones are Open311 service types."""

    id: int
    code: str
    slug: str
    name: str
    category: str
    description: str
    documents: tuple[str, ...]  # what to bring
    fee_cents: int  # USD cents; 0 is free
    fee_note: str
    processing_days: int | None  # for directory services; None for request types
    target_days: int | None  # published service level for request types; None otherwise
    channels: tuple[str, ...]  # online | in_person | phone | app | mail
    keywords: tuple[str, ...]
    life_events: tuple[str, ...]
    accepts_requests: bool
    office_slug: str  # responsible office
    available_at: tuple[str, ...]  # offices serving it in person


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A staff account; partners are contractors working for one office."""

    id: int
    name: str
    email: str
    role: str  # admin | publisher | manager | staff | partner
    title: str
    office_slug: str | None
    organisation: str


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """One Open311-style request and its lifecycle, as seen at the city's `end` instant.

    `status` is received -> acknowledged -> in_progress -> closed (Open311 reports the first
    three as "open"). All datetimes are UTC. `description_pii` lists the kinds of personal data
    planted in `description` ("name", "phone", "email", "plate"); empty means none was planted.
    """

    id: int
    tracking_code: str
    service_code: str
    district_code: str
    office_slug: str
    channel: str  # web | app | phone | walk_in | email
    requested_at: datetime
    acknowledged_at: datetime | None
    started_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    expected_at: datetime  # requested_at + the service's target days
    status: str
    resolution: str | None  # resolved | duplicate | no_action_needed | referred, when closed
    status_notes: str
    address: str
    postal_code: str
    lat: float
    lon: float
    description: str
    description_pii: tuple[str, ...]
    resident_name: str | None
    resident_email: str | None
    assigned_staff_id: int | None

    @property
    def is_open(self) -> bool:
        """Open311's view: everything not closed is open."""
        return self.status != "closed"

    @property
    def contains_pii(self) -> bool:
        """Whether the free text holds planted personal data the scrubber must find."""
        return bool(self.description_pii)


@dataclass(frozen=True, slots=True)
class DatasetColumn:
    """A column in Frictionless Table Schema terms."""

    name: str
    type: str  # string | integer | number | boolean
    description: str


@dataclass(frozen=True, slots=True)
class OpenDataset:
    """An open dataset with its metadata and the table itself (rows aligned with columns)."""

    slug: str
    title: str
    description: str
    keywords: tuple[str, ...]
    license_id: str  # SPDX identifier
    theme: str  # DCAT-AP data theme code (EU vocabulary): SOCI, ENVI, ECON, GOVE, HEAL...
    frequency: str  # annual | monthly | irregular
    publisher_office_slug: str
    columns: tuple[DatasetColumn, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name, for CSV writers and JSON."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class DemoCity:
    """The whole demo city. Requests are sorted by `requested_at` and numbered from 1."""

    seed: int
    name: str
    state: str
    domain: str
    timezone: str
    centre_lat: float
    centre_lon: float
    start: datetime
    end: datetime
    districts: tuple[District, ...]
    offices: tuple[Office, ...]
    opening_hours: tuple[OpeningHours, ...]
    services: tuple[PublicService, ...]
    staff: tuple[StaffMember, ...]
    service_requests: tuple[ServiceRequest, ...]
    datasets: tuple[OpenDataset, ...]


# --- random streams ------------------------------------------------------------------------------


def _stream(seed: int, name: str) -> random.Random:
    """An independent stream per part, so changing one part (say `request_count`) leaves the
    others identical."""
    # Demo data, not secrets: a seeded PRNG is the point.
    return random.Random(f"riverton:{seed}:{name}")  # noqa: S311


# --- geography -----------------------------------------------------------------------------------


def _lonlat(x: float, y: float) -> tuple[float, float]:
    """Local plane (km east, km north of the centre) to rounded (lon, lat)."""
    return (
        round(CENTRE_LON + x / (_KM_PER_DEG * _COS_LAT), 6),
        round(CENTRE_LAT + y / _KM_PER_DEG, 6),
    )


@dataclass(frozen=True, slots=True)
class _Block:
    """A lattice cell: a jittered quadrilateral city block. Corners counter-clockwise."""

    i: int
    j: int
    corners: tuple[tuple[float, float], ...]
    cx: float
    cy: float
    area: float

    def point(self, a: float, b: float) -> tuple[float, float]:
        """Bilinear point for a, b in [0, 1]; inside the block because blocks are convex."""
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = self.corners
        w0, w1, w2, w3 = (1 - a) * (1 - b), a * (1 - b), a * b, (1 - a) * b
        return (w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3, w0 * y0 + w1 * y1 + w2 * y2 + w3 * y3)


def _lattice(rng: random.Random) -> dict[tuple[int, int], _Block]:
    """Jittered, gently warped and rotated street grid: blocks share their corners exactly, so
    districts made of blocks tile the city with no gap or overlap."""
    angle = math.radians(rng.uniform(-20, 20))
    ca, sa = math.cos(angle), math.sin(angle)
    ph1, ph2 = rng.uniform(0, math.tau), rng.uniform(0, math.tau)
    half = _GRID / 2
    verts: list[list[tuple[float, float]]] = []
    for i in range(_GRID + 1):
        column = []
        for j in range(_GRID + 1):
            x = (i - half + rng.uniform(-0.15, 0.15)) * _SPACING_KM
            y = (j - half + rng.uniform(-0.15, 0.15)) * _SPACING_KM
            x, y = x + 0.3 * math.sin(y / 2.4 + ph1), y + 0.3 * math.sin(x / 2.9 + ph2)
            column.append((x * ca - y * sa, x * sa + y * ca))
        verts.append(column)
    blocks = {}
    for i in range(_GRID):
        for j in range(_GRID):
            corners = (verts[i][j], verts[i + 1][j], verts[i + 1][j + 1], verts[i][j + 1])
            area = 0.5 * abs(
                sum(
                    corners[n][0] * corners[(n + 1) % 4][1]
                    - corners[(n + 1) % 4][0] * corners[n][1]
                    for n in range(4)
                )
            )
            cx = sum(c[0] for c in corners) / 4
            cy = sum(c[1] for c in corners) / 4
            blocks[(i, j)] = _Block(i, j, corners, cx, cy, area)
    return blocks


def _neighbours(cell: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    i, j = cell
    return ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))


def _components(cells: set[tuple[int, int]]) -> list[set[tuple[int, int]]]:
    """Edge-connected components, largest first (ties broken by position, for determinism)."""
    seen: set[tuple[int, int]] = set()
    parts = []
    for start in sorted(cells):
        if start in seen:
            continue
        part, todo = {start}, [start]
        seen.add(start)
        while todo:
            for n in _neighbours(todo.pop()):
                if n in cells and n not in seen:
                    seen.add(n)
                    part.add(n)
                    todo.append(n)
        parts.append(part)
    parts.sort(key=lambda p: (-len(p), min(p)))
    return parts


def _city_cells(rng: random.Random, blocks: dict[tuple[int, int], _Block]) -> set[tuple[int, int]]:
    """Blocks inside a wobbly outline, connected and without holes."""
    radius = rng.uniform(6.0, 6.8)
    waves = [(k, rng.uniform(0.04, 0.12) / k**0.3, rng.uniform(0, math.tau)) for k in (2, 3, 5)]

    def outline(theta: float) -> float:
        return radius * (1 + sum(a * math.sin(k * theta + p) for k, a, p in waves))

    inside = {
        c for c, b in blocks.items() if math.hypot(b.cx, b.cy) < outline(math.atan2(b.cy, b.cx))
    }
    inside = _components(inside)[0]
    # Fill holes: whatever the outside cannot reach belongs to the city.
    outside = set(blocks) - inside
    border = {c for c in outside if c[0] in (0, _GRID - 1) or c[1] in (0, _GRID - 1)}
    reached, todo = set(border), list(border)
    while todo:
        for n in _neighbours(todo.pop()):
            if n in outside and n not in reached:
                reached.add(n)
                todo.append(n)
    return inside | (outside - reached)


def _partition(
    rng: random.Random, blocks: dict[tuple[int, int], _Block], city: set[tuple[int, int]], k: int
) -> list[set[tuple[int, int]]]:
    """Split the city into k edge-connected districts: a weighted Voronoi of seed blocks on
    two jittered rings around a compact old town (uneven sizes, borders along streets), then
    stray pieces merged into their neighbours."""
    ordered = sorted(city)

    def nearest(x: float, y: float) -> tuple[int, int]:
        return min(ordered, key=lambda c: math.hypot(blocks[c].cx - x, blocks[c].cy - y))

    seeds = [nearest(0.0, 0.0)]
    inner = (k - 1) // 3 + 1
    for count, radius in ((inner, rng.uniform(2.2, 2.8)), (k - 1 - inner, rng.uniform(4.4, 5.0))):
        offset = rng.uniform(0, math.tau)
        for n in range(count):
            theta = offset + math.tau * (n + rng.uniform(-0.2, 0.2)) / count
            r = radius * rng.uniform(0.9, 1.1)
            cell = nearest(r * math.cos(theta), r * math.sin(theta))
            if cell in seeds:  # pragma: no cover - rings are kilometres apart
                raise RuntimeError("two district seeds share a block")
            seeds.append(cell)
    weights = [0.0] + [rng.uniform(-0.15, 0.3) for _ in seeds[1:]]
    owner = {}
    for c in ordered:
        b = blocks[c]
        owner[c] = min(
            range(k),
            key=lambda n: (
                math.hypot(b.cx - blocks[seeds[n]].cx, b.cy - blocks[seeds[n]].cy) - weights[n]
            ),
        )
    for _ in range(50):
        moved = False
        for n in range(k):
            parts = _components({c for c in ordered if owner[c] == n})
            for part in parts[1:]:
                for c in sorted(part):
                    votes = [owner[m] for m in _neighbours(c) if m in owner and owner[m] != n]
                    if votes:
                        owner[c] = max(sorted(set(votes)), key=votes.count)
                        moved = True
        if not moved:
            break
    else:  # pragma: no cover - would mean the repair loop does not converge for some seed
        raise RuntimeError("district partition did not converge")
    return [{c for c in ordered if owner[c] == n} for n in range(k)]


def _rings(geom: Polygon) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Plane polygon to GeoJSON rings in (lon, lat), exterior CCW and holes CW."""

    def ring(coords: Sequence[tuple[float, float]], ccw: bool) -> tuple[tuple[float, float], ...]:
        pts = tuple(_lonlat(x, y) for x, y in coords)
        signed = sum(
            pts[n][0] * pts[n + 1][1] - pts[n + 1][0] * pts[n][1] for n in range(len(pts) - 1)
        )
        return pts if (signed > 0) == ccw else pts[::-1]

    return (ring(geom.exterior.coords, True), *(ring(h.coords, False) for h in geom.interiors))


# --- calendar ------------------------------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _holidays(years: range) -> set[date]:
    """US federal holidays as observed (a Saturday one on Friday, a Sunday one on Monday)."""
    days = set()
    for y in years:
        fixed = [date(y, 1, 1), date(y, 6, 19), date(y, 7, 4), date(y, 11, 11), date(y, 12, 25)]
        for d in fixed:
            days.add(d - timedelta(days=1) if d.weekday() == 5 else d)
            if d.weekday() == 6:
                days.add(d + timedelta(days=1))
        days |= {
            _nth_weekday(y, 1, 0, 3),  # Martin Luther King Jr. Day
            _nth_weekday(y, 2, 0, 3),  # Presidents' Day
            _nth_weekday(y, 5, 0, -1),  # Memorial Day
            _nth_weekday(y, 9, 0, 1),  # Labor Day
            _nth_weekday(y, 10, 0, 2),  # Indigenous Peoples' Day
            _nth_weekday(y, 11, 3, 4),  # Thanksgiving
        }
    return days


# --- request model -------------------------------------------------------------------------------


def _cos(peak: float, amp: float) -> Callable[[float], float]:
    """Yearly wave peaking on day-of-year `peak`."""
    return lambda doy: 1 + amp * math.cos(math.tau * (doy - peak) / 365.25)


def _bell(peak: float, width: float, floor: float) -> Callable[[float], float]:
    """A season that exists only around `peak` (leaves, mowing, snow)."""

    def season(doy: float) -> float:
        d = (doy - peak + 182.625) % 365.25 - 182.625
        return floor + math.exp(-0.5 * (d / width) ** 2)

    return season


_WEEK_DEFAULT: Final = (1.15, 1.05, 1.0, 1.0, 0.95, 0.55, 0.45)
_WEEK_NIGHTLIFE: Final = (0.7, 0.65, 0.7, 0.85, 1.2, 1.9, 1.55)
_WEEK_COLLECTION: Final = (1.35, 1.25, 1.2, 1.2, 1.15, 0.3, 0.15)
_WEEK_STEADY: Final = (1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.75)

_HOURS: Final[dict[str, tuple[int, ...]]] = {
    "day": (2, 1, 1, 1, 1, 3, 8, 20, 38, 46, 48, 45, 40, 42, 43, 40, 34, 28, 22, 18, 14, 10, 6, 3),
    "weekend": (4, 2, 1, 1, 1, 2, 4, 9, 18, 28, 34, 36, 35, 33, 31, 29, 26, 22, 18, 15, 12, 9, 7,
                5),
    "night": (30, 24, 14, 6, 3, 2, 3, 4, 6, 7, 8, 8, 8, 8, 8, 9, 10, 12, 15, 19, 24, 32, 38, 36),
    "evening": (6, 3, 2, 1, 1, 3, 8, 12, 14, 14, 13, 12, 11, 11, 11, 12, 14, 20, 30, 38, 36, 28, 18,
                10),
    "early": (3, 2, 2, 3, 6, 14, 30, 40, 38, 32, 26, 22, 18, 16, 14, 12, 10, 9, 8, 6, 5, 4, 3, 3),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _RequestModel:
    """How one request type behaves over time and space."""

    share: float  # relative yearly volume
    season: Callable[[float], float]
    weekly: tuple[float, ...]
    hours: str  # key of _HOURS; "day" switches to "weekend" on weekends
    affinity: str  # which districts report it more: flat | dense | green | poor
    location: str  # where inside a district: people | green
    hotspots: bool  # a few blocks draw repeated reports (a dumping spot, a party house)
    weather: tuple[float, float, float, float]  # extra demand per unit of snow, wind, rain, thaw
    around_the_clock: bool = False  # handled at night and on weekends too


_MODELS: Final[dict[str, _RequestModel]] = {
    "POTHOLE": _RequestModel(10, _cos(70, 0.65), _WEEK_DEFAULT, "day", "flat", "people",
                             False, (0, 0, 0, 0.5)),  # freeze-thaw: peaks late winter
    "STREETLIGHT": _RequestModel(7, _cos(355, 0.3), _WEEK_DEFAULT, "evening", "flat", "people",
                                 False, (0, 0.3, 0, 0)),
    "GRAFFITI": _RequestModel(5, _cos(200, 0.3), _WEEK_DEFAULT, "day", "dense", "people",
                              True, (0, 0, 0, 0)),
    "MISSED_COLLECTION": _RequestModel(11, _cos(200, 0.15), _WEEK_COLLECTION, "day", "flat",
                                       "people", False, (0.4, 0, 0, 0)),
    "BULKY_WASTE": _RequestModel(6, _cos(175, 0.4), _WEEK_DEFAULT, "day", "flat", "people",
                                 False, (0, 0, 0, 0)),
    "NOISE": _RequestModel(9, _cos(200, 0.5), _WEEK_NIGHTLIFE, "night", "dense", "people",
                           True, (0, 0, 0, 0), around_the_clock=True),
    "ILLEGAL_DUMPING": _RequestModel(5, _cos(235, 0.3), _WEEK_DEFAULT, "day", "poor", "green",
                                     True, (0, 0, 0, 0)),
    "TREE": _RequestModel(5, _bell(200, 50, 0.45), _WEEK_DEFAULT, "day", "green", "green",
                          False, (0, 2.5, 0.3, 0)),  # summer growth, then wind storms
    "ABANDONED_VEHICLE": _RequestModel(4, _cos(120, 0.1), _WEEK_DEFAULT, "day", "dense",
                                       "people", True, (0, 0, 0, 0)),
    "SNOW_ICE": _RequestModel(6, _bell(20, 32, 0.0), _WEEK_STEADY, "early", "flat", "people",
                              False, (3.0, 0, 0, 0), around_the_clock=True),
    "LEAF_COLLECTION": _RequestModel(4, _bell(310, 16, 0.01), _WEEK_DEFAULT, "day", "green",
                                     "green", False, (0, 0.3, 0, 0)),
    "OVERGROWN": _RequestModel(4, _bell(195, 38, 0.02), _WEEK_DEFAULT, "day", "green", "green",
                               False, (0, 0, 0.2, 0)),
    "SIDEWALK": _RequestModel(3, _cos(110, 0.3), _WEEK_DEFAULT, "day", "flat", "people",
                              False, (0, 0, 0, 0.2)),
    "TRAFFIC_SIGNAL": _RequestModel(3, _cos(0, 0.05), _WEEK_STEADY, "day", "dense", "people",
                                    False, (0.2, 1.0, 0.3, 0), around_the_clock=True),
    "STORM_DRAIN": _RequestModel(3, _cos(315, 0.4), _WEEK_DEFAULT, "day", "flat", "people",
                                 False, (0.3, 0, 2.0, 0)),
    "DEAD_ANIMAL": _RequestModel(2, _cos(220, 0.35), _WEEK_STEADY, "day", "green", "green",
                                 False, (0, 0, 0, 0)),
    "RODENT": _RequestModel(3, _cos(225, 0.55), _WEEK_DEFAULT, "day", "dense", "people",
                            True, (0, 0, 0, 0)),
}  # fmt: skip


def _weather(rng: random.Random, days: Sequence[date]) -> list[tuple[float, float, float, float]]:
    """Daily (snow, wind, rain, thaw) intensities: storms that make demand spike."""
    n = len(days)
    snow, wind, rain = [0.0] * n, [0.0] * n, [0.0] * n

    def hit(series: list[float], d: int, size: float, decay: Sequence[float]) -> None:
        for lag, f in enumerate(decay):
            if d + lag < n:
                series[d + lag] += size * f

    for d, day in enumerate(days):
        if day.month in (12, 1, 2, 3) and rng.random() < 0.065:
            hit(snow, d, rng.uniform(0.4, 2.5), (1.0, 0.7, 0.3, 0.1))
        if rng.random() < (0.035 if day.month in (8, 9, 10) else 0.018):
            hit(wind, d, rng.uniform(0.5, 2.0), (1.0, 0.4, 0.1))
        if day.month in range(3, 12) and rng.random() < 0.06:
            hit(rain, d, rng.uniform(0.3, 1.5), (1.0, 0.3))
    # Potholes open up a week or two after snow and ice, as water freezes and thaws.
    thaw = [0.08 * sum(snow[max(0, d - 20) : max(0, d - 4)]) for d in range(n)]
    return list(zip(snow, wind, rain, thaw, strict=True))


# --- the generator -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Geo:
    """Geography shared by the parts that place things on the map."""

    blocks: dict[tuple[int, int], _Block]
    district_cells: list[list[tuple[int, int]]]
    cell_people: dict[tuple[int, int], float]
    cell_green: dict[tuple[int, int], float]
    streets: list[str]  # by lattice row j (a street runs along a row)
    avenues: list[str]  # by lattice column i


def _street_names(rng: random.Random) -> tuple[list[str], list[str]]:
    """Street names by lattice row and avenue names by column; the middle row is Main Street."""
    streets = [f"{n} {rng.choice(texts.STREET_SUFFIXES)}" for n in texts.STREET_NAMES]
    avenues = [f"{n} {rng.choice(texts.AVENUE_SUFFIXES)}" for n in texts.AVENUE_NAMES]
    rng.shuffle(streets)
    rng.shuffle(avenues)
    streets, avenues = streets[: _GRID + 1], avenues[: _GRID + 1]
    streets[_GRID // 2] = "Main Street"
    avenues[_GRID // 2 + 1] = "River Road"
    return streets, avenues


def _address(geo: _Geo, cell: tuple[int, int], a: float, b: float, on_row: bool) -> tuple[str, str]:
    """US-style block numbering from the lattice: (house address, cross street)."""
    i, j = cell
    row = geo.streets[j if b < 0.5 else j + 1]
    column = geo.avenues[i if a < 0.5 else i + 1]
    if on_row:
        number = (i + 1) * 100 + 2 * int(a * 48) + (1 if b < 0.5 else 2)
        return f"{number} {row}", column
    number = (j + 1) * 100 + 2 * int(b * 48) + (1 if a < 0.5 else 2)
    return f"{number} {column}", row


def _build_districts(seed: int) -> tuple[list[District], _Geo]:
    rng = _stream(seed, "geography")
    blocks = _lattice(rng)
    city = _city_cells(rng, blocks)
    k = rng.randint(9, 12)
    parts = _partition(rng, blocks, city, k)
    streets, avenues = _street_names(rng)
    names = [texts.DISTRICT_NAMES[0], *rng.sample(texts.DISTRICT_NAMES[1:], k - 1)]

    people: dict[tuple[int, int], float] = {}
    for n, part in enumerate(parts):
        # Industrial land and a few leafy suburbs are thinner than distance alone predicts.
        district_density = 0.45 if names[n] == "Ironworks" else rng.lognormvariate(0, 0.2)
        for c in sorted(part):
            b = blocks[c]
            density = 9000 * math.exp(-math.hypot(b.cx, b.cy) / 2.8)  # people per km2
            people[c] = density * district_density * b.area * rng.lognormvariate(0, 0.35)
    green = {c: blocks[c].area / (1 + people[c] / blocks[c].area / 2500) for c in people}

    incomes = [round(rng.lognormvariate(math.log(68000), 0.3), -2) for _ in parts]
    rank = {n: r / (k - 1) for r, n in enumerate(sorted(range(k), key=lambda n: incomes[n]))}
    districts = []
    for n, part in enumerate(parts):
        cells = sorted(part)
        plane = shapely.union_all([Polygon(blocks[c].corners) for c in cells])
        if plane.geom_type != "Polygon":  # pragma: no cover - guarded by _partition
            raise RuntimeError(f"district {names[n]} is not one polygon")
        population = round(sum(people[c] for c in cells))
        busiest = max(cells, key=lambda c: people[c])
        lon, lat = _lonlat(blocks[busiest].cx, blocks[busiest].cy)
        districts.append(
            District(
                id=n + 1,
                code=f"D{n + 1:02d}",
                slug=names[n].lower().replace(" ", "-"),
                name=names[n],
                population=population,
                households=round(population / rng.uniform(2.1, 2.8)),
                area_km2=round(plane.area, 2),
                median_household_income=int(incomes[n]),
                postal_code=f"0{1060 + n}",
                centre_lat=lat,
                centre_lon=lon,
                rings=_rings(plane),
                # The equity gap: richer districts report more per head and get faster service.
                reporting_propensity=round(0.55 + 1.05 * rank[n] * rng.uniform(0.85, 1.15), 3),
                response_factor=round(1.4 - 0.55 * rank[n] * rng.uniform(0.9, 1.1), 3),
            )
        )
    geo = _Geo(blocks, [sorted(p) for p in parts], people, green, streets, avenues)
    return districts, geo


_OFFICE_HOURS: Final[dict[str, tuple[tuple[int, str, str], ...]]] = {
    # late Thursday at city hall, lunch break at the permit centre, Saturday mornings elsewhere
    "city_hall": tuple((d, "08:30", "19:00" if d == 3 else "16:30") for d in range(5)),
    "permit_office": tuple(
        iv for d in range(5) for iv in ((d, "08:00", "12:00"), (d, "13:00", "16:00"))
    ),
    "service_center": ((0, "12:00", "19:00"), *((d, "09:00", "17:00") for d in range(1, 5)),
                       (5, "09:00", "12:00")),
    "service_center_short": (*((d, "09:00", "17:00") for d in range(1, 5)), (5, "09:00", "12:00")),
    "depot": (*((d, "07:00", "15:30") for d in range(5)), (5, "08:00", "12:00")),
    "parks": tuple((d, "07:00", "15:00") for d in range(5)),
}  # fmt: skip


def _build_offices(
    seed: int, districts: Sequence[District], geo: _Geo
) -> tuple[list[Office], list[OpeningHours]]:
    rng = _stream(seed, "offices")
    density = {d.code: d.population / d.area_km2 for d in districts}
    by_density = sorted(districts, key=lambda d: density[d.code])
    central = districts[0]
    outer = [d for d in by_density if d is not central]
    depot_district = next((d for d in districts if d.name == "Ironworks"), outer[0])
    parks_district = next(d for d in outer if d is not depot_district)
    centres = sorted(outer, key=lambda d: -d.population)
    centres = [d for d in centres if d not in (depot_district, parks_district)][:3]
    central_cells = sorted(geo.district_cells[0], key=lambda c: -geo.cell_people[c])
    plan = [
        ("city-hall", f"{texts.CITY_NAME} City Hall", "city_hall", central, central_cells[0], 8),
        (
            "permit-center",
            "Permit & Licensing Center",
            "permit_office",
            central,
            central_cells[1],
            4,
        ),
        ("public-works-yard", "Public Works Yard", "depot", depot_district, None, 2),
        ("parks-forestry", "Parks & Forestry Office", "parks", parks_district, None, 1),
    ] + [
        (f"{d.slug}-service-center", f"{d.name} Service Center", "service_center", d, None, 3)
        for d in centres
    ]
    offices, hours = [], []
    for n, (slug, name, kind, district, cell, counters) in enumerate(plan):
        cells = geo.district_cells[district.id - 1]
        if cell is None:
            cell = max(cells, key=lambda c: geo.cell_people[c] * rng.uniform(0.5, 1.5))
        a, b = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        lon, lat = _lonlat(*geo.blocks[cell].point(a, b))
        address, _ = _address(geo, cell, a, b, on_row=rng.random() < 0.5)
        offices.append(
            Office(
                id=n + 1,
                slug=slug,
                name=name,
                kind=kind,
                district_code=district.code,
                address=address,
                postal_code=district.postal_code,
                lat=lat,
                lon=lon,
                phone=f"({texts.AREA_CODE}) 555-01{10 + n:02d}",
                email=f"{slug}@{texts.CITY_DOMAIN}",
                counters=counters,
                wheelchair_accessible=kind != "depot",
                timezone=TIMEZONE,
            )
        )
        pattern = "service_center_short" if kind == "service_center" and n % 2 else kind
        hours += [
            OpeningHours(slug, day, time.fromisoformat(o), time.fromisoformat(c))
            for day, o, c in _OFFICE_HOURS[pattern]
        ]
    return offices, hours


def _build_services(offices: Sequence[Office]) -> list[PublicService]:
    centres = tuple(o.slug for o in offices if o.kind == "service_center")
    services = []
    for n, spec in enumerate(texts.SERVICES):
        accepts = "target_days" in spec
        where: list[str] = []
        for role in spec.get("available_at", ()):
            where += centres if role == "service-centers" else [role]
        services.append(
            PublicService(
                id=n + 1,
                code=spec["code"],
                slug=spec["code"].lower().replace("_", "-"),
                name=spec["name"],
                category=spec["category"],
                description=spec["description"],
                documents=tuple(spec.get("documents", ())),
                fee_cents=spec.get("fee_cents", 0),
                fee_note=spec.get("fee_note", "Free" if not spec.get("fee_cents") else ""),
                processing_days=spec.get("processing_days"),
                target_days=spec.get("target_days"),
                channels=tuple(spec.get("channels", ("online", "app", "phone"))),
                keywords=tuple(spec["keywords"]),
                life_events=tuple(spec.get("life_events", ())),
                accepts_requests=accepts,
                office_slug=spec["office"],
                available_at=tuple(where),
            )
        )
    return services


def _build_staff(seed: int, offices: Sequence[Office]) -> list[StaffMember]:
    rng = _stream(seed, "staff")
    plan: list[tuple[str, str | None, str]] = [("admin", "city-hall", "")] * 2
    plan += [("publisher", "city-hall", "")] * 3
    per_office = {"city_hall": 5, "permit_office": 3, "depot": 4, "parks": 2, "service_center": 2}
    for office in offices:
        plan.append(("manager", office.slug, ""))
        plan += [("staff", office.slug, "")] * per_office[office.kind]
    for organisation, _, office_slug in texts.PARTNERS:
        plan += [("partner", office_slug, organisation)] * 2
    domains = {org: domain for org, domain, _ in texts.PARTNERS}
    people = rng.sample(list(itertools.product(texts.FIRST_NAMES, texts.LAST_NAMES)), len(plan))
    staff = []
    for n, ((role, office_slug, organisation), (first, last)) in enumerate(
        zip(plan, people, strict=True)
    ):
        local = f"{first}.{last}".lower().replace("'", "")
        staff.append(
            StaffMember(
                id=n + 1,
                name=f"{first} {last}",
                email=f"{local}@{domains.get(organisation, texts.CITY_DOMAIN)}",
                role=role,
                title=rng.choice(texts.STAFF_TITLES[role]),
                office_slug=office_slug,
                organisation=organisation or f"City of {texts.CITY_NAME}",
            )
        )
    return staff


def _slots(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _fake_phone(rng: random.Random) -> str:
    line = f"01{rng.randrange(100):02d}"  # 555-0100..0199 is reserved for fiction
    fmt = rng.randrange(4)
    if fmt == 0:
        return f"({texts.AREA_CODE}) 555-{line}"
    if fmt == 1:
        return f"{texts.AREA_CODE}-555-{line}"
    if fmt == 2:
        return f"{texts.AREA_CODE}.555.{line}"
    return f"{texts.AREA_CODE}555{line}"


def _fake_email(rng: random.Random, first: str, last: str) -> str:
    first, last = first.lower(), last.lower().replace("'", "")
    local = rng.choice(
        (f"{first}.{last}", f"{first}{last}{rng.randrange(10, 99)}", f"{first[0]}{last}")
    )
    return f"{local}@{texts.RESIDENT_DOMAIN}"


def _fake_plate(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTVWXYZ"
    if rng.random() < 0.5:
        return f"{rng.randrange(1, 10)}{''.join(rng.choices(letters, k=3))}{rng.randrange(10, 99)}"
    return f"{''.join(rng.choices(letters, k=3))} {rng.randrange(100, 1000)}"


@dataclass(slots=True)
class _Demand:
    """Expected requests per (day, service, district), flattened into cumulative weights."""

    days: list[date]
    holidays: set[date]
    kinds: list[PublicService]
    models: list[_RequestModel]
    cum: list[float]  # index = (day * n_services + service) * n_districts + district
    cell_cum: list[list[list[float]]]  # [service][district] -> cumulative block weights


def _demand(
    seed: int,
    start: datetime,
    end: datetime,
    districts: Sequence[District],
    services: Sequence[PublicService],
    geo: _Geo,
) -> _Demand:
    """Intensity = season and storms x weekly rhythm x holidays x slow growth (per day and
    service) x population, reporting propensity and local affinity (per district)."""
    first_day = start.astimezone(_TZ).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(_TZ).date()
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    holidays = _holidays(range(first_day.year, last_day.year + 1))
    weather = _weather(_stream(seed, f"weather:{first_day}"), days)
    kinds = [s for s in services if s.accepts_requests]
    models = [_MODELS[s.code] for s in kinds]

    def share_of_day(day: date) -> float:  # the first and last days are only partly covered
        lo = max(start, datetime.combine(day, time(), tzinfo=_TZ))
        hi = min(end, datetime.combine(day + timedelta(days=1), time(), tzinfo=_TZ))
        return max(0.0, (hi - lo).total_seconds() / 86400)

    shares = [share_of_day(d) for d in days]
    day_factor: list[list[float]] = []
    for service, model in zip(kinds, models, strict=True):
        series = []
        for d, day in enumerate(days):
            storms = sum(w * x for w, x in zip(model.weather, weather[d], strict=True))
            f = (model.season(day.timetuple().tm_yday) + storms) * model.weekly[day.weekday()]
            if day in holidays and not model.around_the_clock:
                f *= 0.55
            if service.code == "MISSED_COLLECTION" and day - timedelta(days=1) in holidays:
                f *= 1.8  # collection slips a day after a holiday and some streets are missed
            series.append(f * (1 + 0.08 * d / 365) * shares[d])
        mean = sum(series) / len(series)
        day_factor.append([model.share * f / mean for f in series])

    mean_density = sum(d.population for d in districts) / sum(d.area_km2 for d in districts)
    mean_income = sum(d.median_household_income for d in districts) / len(districts)
    rng = _stream(seed, "places")
    district_factor: list[list[float]] = []
    cell_cum: list[list[list[float]]] = []
    for model in models:
        row, cums = [], []
        for n, d in enumerate(districts):
            relative = d.population / d.area_km2 / mean_density
            affinity = {
                "flat": 1.0,
                "dense": relative**0.5,
                "green": relative**-0.5,
                "poor": (mean_income / d.median_household_income) ** 0.8
                * (1.8 if d.name == "Ironworks" else 1.0),
            }[model.affinity]
            noise = rng.lognormvariate(0, 0.15)
            row.append(d.population * d.reporting_propensity * affinity * noise)
            cells = geo.district_cells[n]
            source = geo.cell_people if model.location == "people" else geo.cell_green
            weights = [source[c] for c in cells]
            if model.hotspots:
                for c in rng.sample(range(len(cells)), min(2, len(cells))):
                    weights[c] += 0.15 * sum(weights)
            cums.append(list(itertools.accumulate(weights)))
        district_factor.append(row)
        cell_cum.append(cums)

    n_s, n_d = len(models), len(districts)
    cum = list(
        itertools.accumulate(
            day_factor[s][d] * district_factor[s][k]
            for d in range(len(days))
            for s in range(n_s)
            for k in range(n_d)
        )
    )
    return _Demand(days, holidays, kinds, models, cum, cell_cum)


_HOUR_CUM: Final = {key: list(itertools.accumulate(v)) for key, v in _HOURS.items()}
_CHANNELS: Final = ("web", "app", "phone", "walk_in", "email")


class _RequestWriter:
    """Turns one sampled (day, service, district) into a full request. Timestamps are epoch
    seconds until the end: 60,000 requests must take seconds, not minutes."""

    def __init__(
        self,
        rng: random.Random,
        demand: _Demand,
        districts: Sequence[District],
        staff: Sequence[StaffMember],
        geo: _Geo,
        start: datetime,
        end: datetime,
    ) -> None:
        self.rng, self.demand, self.districts, self.geo = rng, demand, districts, geo
        self.random = rng.random
        self.start, self.end = math.ceil(start.timestamp()), math.floor(end.timestamp())
        self.templates = {
            s.code: [(t, _slots(t)) for t in texts.TEMPLATES[s.code]] for s in demand.kinds
        }
        self.workers: dict[str, list[int]] = {}
        for member in staff:
            if member.role in ("staff", "partner") and member.office_slug:
                self.workers.setdefault(member.office_slug, []).append(member.id)
        self.fallback_workers = [m.id for m in staff if m.role == "staff"]
        self._hour_starts: dict[int, list[int]] = {}
        self._work_starts: dict[tuple[int, int], int | None] = {}

    def pick(self, seq: Sequence[Any]) -> Any:
        """rng.choice, three times faster; still deterministic."""
        return seq[int(self.random() * len(seq))]

    def write(self, d: int, s: int, k: int) -> dict[str, Any]:
        """One request as keyword arguments for ServiceRequest (timestamps as epoch seconds)."""
        service, model, district = self.demand.kinds[s], self.demand.models[s], self.districts[k]
        requested, local_hour = self._when(d, model)
        day = self.demand.days[d]
        business = day.weekday() < 5 and day not in self.demand.holidays and 8 <= local_hour < 17
        lat, lon, address, cross = self._where(s, k)
        channel = self._channel(d / len(self.demand.days), business)
        resident_name = resident_email = None
        if self.random() < 0.4:
            first, last = self.pick(texts.FIRST_NAMES), self.pick(texts.LAST_NAMES)
            resident_name = f"{first} {last}"
            if self.random() < 0.85:
                resident_email = _fake_email(self.rng, first, last)
        text, pii = self._describe(service.code, address, cross, resident_name)
        target = (service.target_days or 5) * 86400
        return {
            "service_code": service.code,
            "district_code": district.code,
            "office_slug": service.office_slug,
            "channel": channel,
            "expected_at": requested + target,
            "address": address,
            "postal_code": district.postal_code,
            "lat": lat,
            "lon": lon,
            "description": text,
            "description_pii": pii,
            "resident_name": resident_name,
            "resident_email": resident_email,
            **self._lifecycle(requested, target, model, district, service.office_slug),
        }

    def _when(self, d: int, model: _RequestModel) -> tuple[int, int]:
        """An instant inside [start, end) following the service's daily rhythm."""
        day = self.demand.days[d]
        starts = self._hour_starts.get(d)
        if starts is None:  # local hour starts in UTC, so DST days come out right
            starts = [
                int(datetime.combine(day, time(h), tzinfo=_TZ).timestamp()) for h in range(24)
            ]
            self._hour_starts[d] = starts
        profile = "weekend" if model.hours == "day" and day.weekday() >= 5 else model.hours
        cum = _HOUR_CUM[profile]
        for _ in range(50):
            hour = bisect.bisect(cum, self.random() * cum[-1])
            moment = starts[hour] + int(self.random() * 3600)
            if self.start <= moment < self.end:
                return moment, hour
        return min(max(moment, self.start), self.end - 1), hour

    def _where(self, s: int, k: int) -> tuple[float, float, str, str]:
        """A block weighted by people (or greenery), a point inside it, and its address."""
        cums = self.demand.cell_cum[s][k]
        cell = self.geo.district_cells[k][bisect.bisect(cums, self.random() * cums[-1])]
        a = _EDGE_MARGIN + (1 - 2 * _EDGE_MARGIN) * self.random()
        b = _EDGE_MARGIN + (1 - 2 * _EDGE_MARGIN) * self.random()
        lon, lat = _lonlat(*self.geo.blocks[cell].point(a, b))
        address, cross = _address(self.geo, cell, a, b, on_row=self.random() < 0.5)
        return lat, lon, address, cross

    def _channel(self, progress: float, business: bool) -> str:
        """Apps gain on the web and the phone over the two years; phones ring in office hours."""
        weights = (
            0.36 - 0.08 * progress,
            0.18 + 0.16 * progress,
            0.34 - 0.08 * progress,
            0.05,
            0.07,
        )
        x, channel = self.random() * sum(weights), _CHANNELS[-1]
        for name, w in zip(_CHANNELS, weights, strict=True):
            if x < w:
                channel = name
                break
            x -= w
        if channel in ("phone", "walk_in") and not business:
            channel = "app" if self.random() < 0.5 else "web"
        return channel

    def _describe(
        self, code: str, address: str, cross: str, resident_name: str | None
    ) -> tuple[str, tuple[str, ...]]:
        """Free text from templates, sometimes carrying personal data, with its PII label."""
        template, needed = self.pick(self.templates[code])
        values = {"addr": address, "street": address.split(" ", 1)[1], "cross": cross}
        own = texts.SLOT_VALUES.get(code, {})
        for slot in needed:
            if slot not in values:
                values[slot] = self.pick(own.get(slot) or texts.COMMON_SLOTS[slot])
        text = template.format(**values)
        opener = self.pick(texts.OPENERS)
        if opener.endswith(", "):  # "Hi, there is...", not "Hi, There is..."
            text = text[0].lower() + text[1:]
        text = opener + text
        pii: tuple[str, ...] = ()
        if code == "ABANDONED_VEHICLE" and self.random() < 0.45:
            text += self.pick(texts.PLATE_SNIPPETS).format(plate=_fake_plate(self.rng))
            pii = ("plate",)
        if self.random() < 0.08:
            snippet, found = self.pick(texts.PII_SNIPPETS)
            if resident_name and self.random() < 0.6:
                first, last = resident_name.split(" ", 1)  # residents sign with their own name
            else:
                first, last = self.pick(texts.FIRST_NAMES), self.pick(texts.LAST_NAMES)
            text += snippet.format(
                first=first,
                last=last,
                phone=_fake_phone(self.rng),
                email=_fake_email(self.rng, first, last),
            )
            pii = (*pii, *found)
        text = " ".join(text.split())
        if self.random() < 0.1:
            text = text.lower()
        elif self.random() < 0.02 and not pii:
            text = ""  # Open311 descriptions are optional and some residents leave them out
        return text, pii

    def _working(self, moment: int, start_hour: int) -> int:
        """The same instant if it falls in working hours (start_hour-17:00 local on working
        days), else a moment in the first hours of the next working day."""
        key = (moment // 3600, start_hour)
        if key not in self._work_starts:
            local = datetime.fromtimestamp(moment, _TZ)
            holidays = self.demand.holidays
            if (
                local.weekday() < 5
                and local.date() not in holidays
                and start_hour <= local.hour < 17
            ):
                self._work_starts[key] = None
            else:
                day = local.date() + timedelta(days=1) if local.hour >= start_hour else local.date()
                while day.weekday() >= 5 or day in holidays:
                    day += timedelta(days=1)
                begin = datetime.combine(day, time(start_hour), tzinfo=_TZ)
                self._work_starts[key] = int(begin.timestamp())
        begin_ts = self._work_starts[key]
        return moment if begin_ts is None else begin_ts + int(self.random() * 3 * 3600)

    def _lifecycle(
        self, requested: int, target: int, model: _RequestModel, district: District, office: str
    ) -> dict[str, Any]:
        """Plan received -> acknowledged -> in progress -> closed, then cut the plan at `end`."""
        gauss = self.rng.gauss
        roll = self.random()
        resolution = (
            "duplicate"
            if roll < 0.05
            else "no_action_needed"
            if roll < 0.11
            else "referred"
            if roll < 0.14
            else "resolved"
        )
        urgent = model.around_the_clock
        ack = requested + int(3600 * math.exp(math.log(0.5 if urgent else 3.0) + gauss()))
        if not urgent:
            ack = self._working(ack, 8)
        if resolution == "duplicate":
            duration = int(3600 * math.exp(math.log(6) + 0.8 * gauss()))
        else:
            stuck = 6.0 if self.random() < 0.02 else 1.0  # the long tail every backlog has
            duration = int(
                target * 0.6 * district.response_factor * stuck * math.exp(0.7 * gauss())
            )
        closed = max(ack + 600, requested + duration)
        if not urgent:
            closed = self._working(closed, 7)
        started = None
        if resolution != "duplicate":
            started = ack + int((closed - ack) * (0.2 + 0.6 * self.random()))
            closed = max(closed, started + 300)

        end, notes = self.end, ""
        if ack > end:
            status, ack, started, closed = "received", None, None, None
        elif (started is None or started > end) and closed > end:
            status, started, closed, notes = "acknowledged", None, None, "Received and queued."
        elif closed > end:
            status, closed, notes = "in_progress", None, "Assigned to a crew."
        else:
            status, notes = "closed", self.pick(texts.STATUS_NOTES[resolution])
        assigned = None
        if started is not None:
            assigned = self.pick(self.workers.get(office) or self.fallback_workers)
        return {
            "requested_at": requested,
            "acknowledged_at": ack,
            "started_at": started,
            "closed_at": closed,
            "updated_at": closed or started or ack or requested,
            "status": status,
            "resolution": resolution if status == "closed" else None,
            "status_notes": notes,
            "assigned_staff_id": assigned,
        }


_TIMESTAMPS: Final = (
    "requested_at",
    "acknowledged_at",
    "started_at",
    "closed_at",
    "updated_at",
    "expected_at",
)


def _build_requests(
    seed: int,
    count: int,
    end: datetime,
    districts: Sequence[District],
    services: Sequence[PublicService],
    staff: Sequence[StaffMember],
    geo: _Geo,
) -> list[ServiceRequest]:
    """Sample `count` (day, service, district) triples from the demand, write each one out,
    sort by time and number them."""
    start = end - timedelta(days=HISTORY_DAYS)
    demand = _demand(seed, start, end, districts, services, geo)
    rng = _stream(seed, f"requests:{count}:{end.isoformat()}")
    picks = rng.choices(range(len(demand.cum)), cum_weights=demand.cum, k=count) if count else []
    writer = _RequestWriter(rng, demand, districts, staff, geo, start, end)
    n_s, n_d = len(demand.kinds), len(districts)
    drafts = []
    for pick in sorted(picks):
        d, rest = divmod(pick, n_s * n_d)
        drafts.append(writer.write(d, *divmod(rest, n_d)))
    drafts.sort(key=lambda r: r["requested_at"])  # stable: ties keep their sampled order

    code_rng = _stream(seed, f"tracking:{count}:{end.isoformat()}")
    used: set[str] = set()
    requests = []
    to_datetime = datetime.fromtimestamp
    for n, draft in enumerate(drafts):
        code = ""
        while not code or code in used:  # 8 symbols of 5 bits each from one 40-bit draw
            bits = code_rng.getrandbits(40)
            code = "RVT-" + "".join(_TRACKING_ALPHABET[(bits >> (5 * i)) & 31] for i in range(8))
        used.add(code)
        for key in _TIMESTAMPS:
            if draft[key] is not None:
                draft[key] = to_datetime(draft[key], UTC)
        requests.append(ServiceRequest(id=n + 1, tracking_code=code, **draft))
    return requests


# --- open datasets -------------------------------------------------------------------------------

_DAY_ABBR: Final = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")


def opening_hours_osm(hours: Sequence[OpeningHours]) -> str:
    """OpenStreetMap `opening_hours` syntax ("Mo-We,Fr 08:30-16:30; Th 08:30-19:00"), the
    compact form open data consumers expect."""
    per_day = {
        day: ",".join(
            f"{h.opens:%H:%M}-{h.closes:%H:%M}"
            for h in sorted(hours, key=lambda h: h.opens)
            if h.weekday == day
        )
        for day in range(7)
    }
    rules = []
    for spans, group in itertools.groupby(range(7), key=lambda d: per_day[d]):
        days = list(group)
        if spans:
            label = (
                _DAY_ABBR[days[0]]
                if len(days) == 1
                else f"{_DAY_ABBR[days[0]]}-{_DAY_ABBR[days[-1]]}"
            )
            rules.append(f"{label} {spans}")
    return "; ".join(rules) or "off"


def _dataset(slug: str, rows: Sequence[dict[str, Any]]) -> OpenDataset:
    """Metadata from `texts.DATASETS`, rows ordered like its columns."""
    spec = next(d for d in texts.DATASETS if d["slug"] == slug)
    columns = tuple(DatasetColumn(*c) for c in spec["columns"])
    return OpenDataset(
        slug=slug,
        title=spec["title"],
        description=spec["description"],
        keywords=spec["keywords"],
        license_id=spec["license_id"],
        theme=spec["theme"],
        frequency=spec["frequency"],
        publisher_office_slug=spec["publisher"],
        columns=columns,
        rows=tuple(tuple(row[c.name] for c in columns) for row in rows),
    )


def _tree_rows(
    rng: random.Random, year: int, districts: Sequence[District], geo: _Geo
) -> list[dict[str, Any]]:
    """About 28 trees per km2, more where it is green; a third with no known planting year."""
    species_weights = [w for _, _, w in texts.TREE_SPECIES]
    rows = []
    for n, d in enumerate(districts):
        cells = geo.district_cells[n]
        cum = list(itertools.accumulate(geo.cell_green[c] for c in cells))
        for _ in range(round(d.area_km2 * 28)):
            cell = cells[bisect.bisect(cum, rng.random() * cum[-1])]
            a, b = rng.uniform(0.06, 0.94), rng.uniform(0.06, 0.94)
            lon, lat = _lonlat(*geo.blocks[cell].point(a, b))
            common, scientific, _ = rng.choices(texts.TREE_SPECIES, weights=species_weights)[0]
            planted = rng.randint(1955, year - 1) if rng.random() < 0.7 else None
            age = (year - planted) if planted else rng.randint(10, 70)
            rows.append(
                {
                    "address": _address(geo, cell, a, b, rng.random() < 0.5)[0],
                    "species_common": common,
                    "species_scientific": scientific,
                    "dbh_cm": int(min(120, max(3, age * rng.uniform(0.6, 1.3)))),
                    "planted_year": planted,
                    "condition": rng.choices(("good", "fair", "poor", "dead"), (60, 28, 9, 3))[0],
                    "district_code": d.code,
                    "lat": lat,
                    "lon": lon,
                }
            )
    rows.sort(key=lambda r: (r["district_code"], r["address"]))
    for n, row in enumerate(rows):
        row["tree_id"] = f"T{n + 1:05d}"
    return rows


def _toilet_rows(
    rng: random.Random,
    districts: Sequence[District],
    offices: Sequence[Office],
    hours: Sequence[OpeningHours],
    geo: _Geo,
) -> list[dict[str, Any]]:
    """Restrooms in public offices, a library and a park or two per district, the station."""
    rows = [
        {
            "name": f"{o.name} restrooms",
            "location_type": "office",
            "address": o.address,
            "district_code": o.district_code,
            "lat": o.lat,
            "lon": o.lon,
            "wheelchair_accessible": True,
            "baby_changing": True,
            "opening_hours": opening_hours_osm([h for h in hours if h.office_slug == o.slug]),
            "fee_cents": 0,
        }
        for o in offices
        if o.kind in ("city_hall", "service_center")
    ]
    for n, d in enumerate(districts):
        places = [(f"{d.name} Branch Library", "library", "Tu-Sa 10:00-18:00", 0)]
        places += [(f"{d.name} Park", "park", "Apr-Oct: Mo-Su 07:00-20:00", 0)] * rng.randint(1, 2)
        if n == 0:
            places.append((f"{texts.CITY_NAME} Station", "transit", "Mo-Su 05:30-23:30", 25))
        for name, kind, opening, fee in places:
            cell = rng.choice(geo.district_cells[n])
            a, b = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
            lon, lat = _lonlat(*geo.blocks[cell].point(a, b))
            rows.append(
                {
                    "name": name,
                    "location_type": kind,
                    "address": _address(geo, cell, a, b, True)[0],
                    "district_code": d.code,
                    "lat": lat,
                    "lon": lon,
                    "wheelchair_accessible": rng.random() < 0.8,
                    "baby_changing": rng.random() < 0.5,
                    "opening_hours": opening,
                    "fee_cents": fee,
                }
            )
    for n, row in enumerate(rows):
        row["toilet_id"] = f"WC{n + 1:03d}"
    return rows


def _build_datasets(
    seed: int,
    end: datetime,
    districts: Sequence[District],
    offices: Sequence[Office],
    hours: Sequence[OpeningHours],
    geo: _Geo,
) -> list[OpenDataset]:
    rng = _stream(seed, "datasets")
    local_end = end.astimezone(_TZ)
    population = [
        {
            "district_code": d.code,
            "district_name": d.name,
            "year": local_end.year - 1,
            "population": d.population,
            "households": d.households,
            "area_km2": d.area_km2,
            "density_per_km2": round(d.population / d.area_km2, 1),
            "median_household_income": d.median_household_income,
        }
        for d in districts
    ]
    trees = _tree_rows(rng, local_end.year, districts, geo)
    toilets = _toilet_rows(rng, districts, offices, hours, geo)
    budget = []
    fy_last = local_end.year + 1 if local_end.month > 6 else local_end.year  # FY ends June 30
    for fiscal_year in (fy_last - 1, fy_last):
        growth = 1.0 if fiscal_year < fy_last else 1.031
        for d in districts:
            for category, per_head, per_km2 in texts.BUDGET_LINES:
                amount = (per_head * d.population + per_km2 * d.area_km2) * growth
                budget.append(
                    {
                        "fiscal_year": f"FY{fiscal_year}",
                        "district_code": d.code,
                        "district_name": d.name,
                        "category": category,
                        "amount_usd": int(round(amount * rng.uniform(0.85, 1.15), -2)),
                    }
                )
    locations = [
        {
            "office_slug": o.slug,
            "opening_hours": opening_hours_osm([h for h in hours if h.office_slug == o.slug]),
            **{
                f: getattr(o, f)
                for f in (
                    "name",
                    "kind",
                    "address",
                    "postal_code",
                    "district_code",
                    "lat",
                    "lon",
                    "phone",
                    "email",
                    "wheelchair_accessible",
                )
            },
        }
        for o in offices
    ]
    return [
        _dataset("district-population", population),
        _dataset("street-trees", trees),
        _dataset("public-toilets", toilets),
        _dataset("budget-by-district", budget),
        _dataset("office-locations", locations),
    ]


# --- entry points --------------------------------------------------------------------------------


def generate_city(
    seed: int = 2026,
    *,
    request_count: int = DEFAULT_REQUEST_COUNT,
    end: datetime = DEFAULT_END,
) -> DemoCity:
    """Build the demo city. Pure and deterministic: equal arguments give equal cities.

    `end` is the city's "now": requests cover the `HISTORY_DAYS` before it, and the ones still
    being worked on at `end` are open. Raises ValueError for a naive `end` or a negative count.
    """
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    if request_count < 0:
        raise ValueError("request_count must not be negative")
    end = end.astimezone(UTC)
    districts, geo = _build_districts(seed)
    offices, hours = _build_offices(seed, districts, geo)
    services = _build_services(offices)
    staff = _build_staff(seed, offices)
    requests = _build_requests(seed, request_count, end, districts, services, staff, geo)
    datasets = _build_datasets(seed, end, districts, offices, hours, geo)
    return DemoCity(
        seed=seed,
        name=texts.CITY_NAME,
        state=texts.STATE,
        domain=texts.CITY_DOMAIN,
        timezone=TIMEZONE,
        centre_lat=CENTRE_LAT,
        centre_lon=CENTRE_LON,
        start=end - timedelta(days=HISTORY_DAYS),
        end=end,
        districts=tuple(districts),
        offices=tuple(offices),
        opening_hours=tuple(hours),
        services=tuple(services),
        staff=tuple(staff),
        service_requests=tuple(requests),
        datasets=tuple(datasets),
    )


def districts_geojson(city: DemoCity) -> dict[str, Any]:
    """District boundaries as a GeoJSON FeatureCollection (public properties only)."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": d.code,
                "geometry": d.geometry(),
                "properties": {
                    "code": d.code,
                    "name": d.name,
                    "population": d.population,
                    "households": d.households,
                    "area_km2": d.area_km2,
                    "median_household_income": d.median_household_income,
                    "postal_code": d.postal_code,
                },
            }
            for d in city.districts
        ],
    }
