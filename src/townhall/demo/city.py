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
    """Split the city into k edge-connected districts: a weighted Voronoi of seed blocks
    (uneven sizes, curved borders along streets), then stray pieces merged into neighbours."""
    ordered = sorted(city)
    seeds = [min(ordered, key=lambda c: math.hypot(blocks[c].cx, blocks[c].cy))]
    while len(seeds) < k:  # best-candidate sampling spreads seeds evenly but not on a grid
        candidates = rng.sample(ordered, 24)
        seeds.append(
            max(
                candidates,
                key=lambda c: min(
                    math.hypot(blocks[c].cx - blocks[s].cx, blocks[c].cy - blocks[s].cy)
                    for s in seeds
                ),
            )
        )
    weights = [0.4] + [rng.uniform(-0.3, 0.5) for _ in seeds[1:]]
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

    return (ring(geom.exterior.coords, True),) + tuple(
        ring(h.coords, False) for h in geom.interiors
    )


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
    "weekend": (4, 2, 1, 1, 1, 2, 4, 9, 18, 28, 34, 36, 35, 33, 31, 29, 26, 22, 18, 15, 12, 9, 7, 5),
    "night": (30, 24, 14, 6, 3, 2, 3, 4, 6, 7, 8, 8, 8, 8, 8, 9, 10, 12, 15, 19, 24, 32, 38, 36),
    "evening": (6, 3, 2, 1, 1, 3, 8, 12, 14, 14, 13, 12, 11, 11, 11, 12, 14, 20, 30, 38, 36, 28, 18, 10),
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
    "SNOW_ICE": _RequestModel(6, _bell(20, 40, 0.0), _WEEK_STEADY, "early", "flat", "people",
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
        ("permit-center", "Permit & Licensing Center", "permit_office", central,
         central_cells[1], 4),
        ("public-works-yard", "Public Works Yard", "depot", depot_district, None, 2),
        ("parks-forestry", "Parks & Forestry Office", "parks", parks_district, None, 1),
    ] + [
        (f"{d.slug}-service-center", f"{d.name} Service Center", "service_center", d, None, 3)
        for d in centres
    ]  # fmt: skip
    offices, hours = [], []
    for n, (slug, name, kind, district, cell, counters) in enumerate(plan):
        cells = geo.district_cells[district.id - 1]
        if cell is None:
            cell = max(cells, key=lambda c: geo.cell_people[c] * rng.uniform(0.5, 1.5))
        lon, lat = _lonlat(*geo.blocks[cell].point(0.5, 0.5))
        address, _ = _address(geo, cell, 0.5, 0.3, on_row=rng.random() < 0.5)
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


def _next_working_time(
    moment: datetime, holidays: set[date], rng: random.Random, start_hour: int = 7
) -> datetime:
    """Work happens on working days between 07:00 and 17:00 local time."""
    local = moment.astimezone(_TZ)
    if local.weekday() < 5 and local.date() not in holidays and start_hour <= local.hour < 17:
        return moment
    day = local.date() + timedelta(days=1) if local.hour >= start_hour else local.date()
    while day.weekday() >= 5 or day in holidays:
        day += timedelta(days=1)
    begin = datetime.combine(day, time(start_hour), tzinfo=_TZ).astimezone(UTC)
    return begin + timedelta(seconds=rng.randrange(3 * 3600))


def _build_requests(
    seed: int,
    count: int,
    end: datetime,
    districts: Sequence[District],
    services: Sequence[PublicService],
    staff: Sequence[StaffMember],
    geo: _Geo,
) -> list[ServiceRequest]:
    """Sample `count` requests from a day x service x district intensity, then live each one's
    lifecycle up to `end`."""
    rng = _stream(seed, f"requests:{count}:{end.isoformat()}")
    start = end - timedelta(days=HISTORY_DAYS)
    first_day = start.astimezone(_TZ).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(_TZ).date()
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    holidays = _holidays(range(first_day.year, last_day.year + 1))
    weather = _weather(_stream(seed, f"weather:{first_day}"), days)
    kinds = [s for s in services if s.accepts_requests]
    models = [_MODELS[s.code] for s in kinds]

    def day_fraction(day: date) -> float:
        lo = max(start, datetime.combine(day, time(), tzinfo=_TZ))
        hi = min(end, datetime.combine(day + timedelta(days=1), time(), tzinfo=_TZ))
        return max(0.0, (hi - lo).total_seconds() / 86400)

    fractions = [day_fraction(d) for d in days]
    # Intensity per (service, day): season + storms, weekly rhythm, holidays, slow growth.
    day_factor: list[list[float]] = []
    for s, model in enumerate(models):
        series = []
        for d, day in enumerate(days):
            doy = day.timetuple().tm_yday
            f = model.season(doy) + sum(w * x for w, x in zip(model.weather, weather[d], strict=True))
            f *= model.weekly[day.weekday()]
            if day in holidays:
                f *= 1.0 if model.around_the_clock else 0.55
            if kinds[s].code == "MISSED_COLLECTION" and day - timedelta(days=1) in holidays:
                f *= 1.8  # collection slips a day after a holiday and some streets are missed
            series.append(f * (1 + 0.08 * d / 365) * fractions[d])
        mean = sum(series) / len(series)
        day_factor.append([model.share * f / mean for f in series])

    mean_density = sum(d.population for d in districts) / sum(d.area_km2 for d in districts)
    mean_income = sum(d.median_household_income for d in districts) / len(districts)
    place_rng = _stream(seed, "places")
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
            noise = place_rng.lognormvariate(0, 0.15)
            row.append(d.population * d.reporting_propensity * affinity * noise)
            cells = geo.district_cells[n]
            source = geo.cell_people if model.location == "people" else geo.cell_green
            weights = [source[c] for c in cells]
            if model.hotspots:
                for c in place_rng.sample(range(len(cells)), min(2, len(cells))):
                    weights[c] += 0.15 * sum(weights)
            cums.append(list(itertools.accumulate(weights)))
        district_factor.append(row)
        cell_cum.append(cums)

    n_d, n_s = len(districts), len(models)
    cum = list(
        itertools.accumulate(
            day_factor[s][d] * district_factor[s][k]
            for d in range(len(days))
            for s in range(n_s)
            for k in range(n_d)
        )
    )
    picks = sorted(rng.choices(range(len(cum)), cum_weights=cum, k=count)) if count else []

    hour_cum = {key: list(itertools.accumulate(v)) for key, v in _HOURS.items()}
    templates = {
        s.code: [(t, _slots(t)) for t in texts.TEMPLATES[s.code]] for s in kinds
    }
    workers: dict[str, list[int]] = {}
    for member in staff:
        if member.role in ("staff", "partner") and member.office_slug:
            workers.setdefault(member.office_slug, []).append(member.id)
    one_second = timedelta(seconds=1)
    drafts: list[dict[str, Any]] = []
    for pick in picks:
        d, rest = divmod(pick, n_s * n_d)
        s, k = divmod(rest, n_d)
        day, model, service, district = days[d], models[s], kinds[s], districts[k]

        # -- when: an hour from the service's daily rhythm, inside [start, end)
        profile = "weekend" if model.hours == "day" and day.weekday() >= 5 else model.hours
        for _ in range(30):
            hour = bisect.bisect(hour_cum[profile], rng.random() * hour_cum[profile][-1])
            local = datetime.combine(
                day, time(hour, rng.randrange(60), rng.randrange(60)), tzinfo=_TZ
            )
            requested = local.astimezone(UTC)
            if start <= requested < end:
                break
        else:
            requested = min(max(requested, start), end - one_second)
        local_hour = requested.astimezone(_TZ).hour

        # -- where: a block weighted by people (or greenery), a point inside it, its address
        cums = cell_cum[s][k]
        cell = geo.district_cells[k][bisect.bisect(cums, rng.random() * cums[-1])]
        a = rng.uniform(_EDGE_MARGIN, 1 - _EDGE_MARGIN)
        b = rng.uniform(_EDGE_MARGIN, 1 - _EDGE_MARGIN)
        lon, lat = _lonlat(*geo.blocks[cell].point(a, b))
        address, cross = _address(geo, cell, a, b, on_row=rng.random() < 0.5)
        street = address.split(" ", 1)[1]

        # -- who and how
        progress = d / len(days)
        channel = rng.choices(
            ("web", "app", "phone", "walk_in", "email"),
            weights=(0.36 - 0.08 * progress, 0.18 + 0.16 * progress, 0.34 - 0.08 * progress,
                     0.05, 0.07),
        )[0]  # fmt: skip
        business = day.weekday() < 5 and day not in holidays and 8 <= local_hour < 17
        if channel in ("phone", "walk_in") and not business:
            channel = "app" if rng.random() < 0.5 else "web"
        resident_name = resident_email = None
        if rng.random() < 0.4:
            first, last = rng.choice(texts.FIRST_NAMES), rng.choice(texts.LAST_NAMES)
            resident_name = f"{first} {last}"
            if rng.random() < 0.85:
                resident_email = _fake_email(rng, first, last)

        # -- what they wrote
        template, needed = rng.choice(templates[service.code])
        values = {"addr": address, "street": street, "cross": cross}
        service_slots = texts.SLOT_VALUES.get(service.code, {})
        for slot in needed:
            if slot not in values:
                values[slot] = rng.choice(service_slots.get(slot) or texts.COMMON_SLOTS[slot])
        text = rng.choice(texts.OPENERS) + template.format(**values)
        pii: tuple[str, ...] = ()
        if service.code == "ABANDONED_VEHICLE" and rng.random() < 0.45:
            text += rng.choice(texts.PLATE_SNIPPETS).format(plate=_fake_plate(rng))
            pii = ("plate",)
        if rng.random() < 0.08:
            snippet, kinds_found = rng.choice(texts.PII_SNIPPETS)
            if resident_name and rng.random() < 0.6:
                first, last = resident_name.split(" ", 1)
            else:
                first, last = rng.choice(texts.FIRST_NAMES), rng.choice(texts.LAST_NAMES)
            text += snippet.format(
                first=first,
                last=last,
                phone=_fake_phone(rng),
                email=_fake_email(rng, first, last),
            )
            pii = (*pii, *kinds_found)
        text = " ".join(text.split())
        if rng.random() < 0.1:
            text = text.lower()
        elif rng.random() < 0.02 and not pii:
            text = ""  # Open311 descriptions are optional and some residents leave them out

        # -- lifecycle, as planned; `end` decides how much of it has happened yet
        target = timedelta(days=service.target_days or 5)
        roll = rng.random()
        resolution = (
            "duplicate" if roll < 0.05
            else "no_action_needed" if roll < 0.11
            else "referred" if roll < 0.14
            else "resolved"
        )  # fmt: skip
        urgent = model.around_the_clock
        ack_hours = rng.lognormvariate(math.log(0.5 if urgent else 3.0), 1.0)
        acknowledged = requested + timedelta(seconds=int(ack_hours * 3600))
        if not urgent:
            acknowledged = _next_working_time(acknowledged, holidays, rng, start_hour=8)
        if resolution == "duplicate":
            duration = timedelta(hours=rng.lognormvariate(math.log(6), 0.8))
        else:
            stuck = 6.0 if rng.random() < 0.02 else 1.0  # the long tail every backlog has
            scale = 0.6 * district.response_factor * stuck * rng.lognormvariate(0, 0.7)
            duration = timedelta(seconds=int(target.total_seconds() * scale))
        closed = max(acknowledged + timedelta(minutes=10), requested + duration)
        if not urgent:
            closed = _next_working_time(closed, holidays, rng)
        started = None
        if resolution != "duplicate":
            started = acknowledged + (closed - acknowledged) * rng.uniform(0.2, 0.8)
            started = started.replace(microsecond=0)
            closed = max(closed, started + timedelta(minutes=5))
        closed = closed.replace(microsecond=0)

        assigned = None
        if acknowledged > end:
            status, acknowledged, started, closed = "received", None, None, None
            notes = ""
        elif started is None or started > end:
            if closed <= end:
                status, started, notes = "closed", None, rng.choice(texts.STATUS_NOTES[resolution])
            else:
                status, started, closed, notes = "acknowledged", None, None, "Received and queued."
        elif closed > end:
            status, closed, notes = "in_progress", None, "Assigned to a crew."
        else:
            status, notes = "closed", rng.choice(texts.STATUS_NOTES[resolution])
        if started is not None:
            pool = workers.get(service.office_slug) or [m.id for m in staff if m.role == "staff"]
            assigned = rng.choice(pool)
        if status != "closed":
            resolution = None
        drafts.append(
            {
                "service_code": service.code,
                "district_code": district.code,
                "office_slug": service.office_slug,
                "channel": channel,
                "requested_at": requested,
                "acknowledged_at": acknowledged,
                "started_at": started,
                "closed_at": closed,
                "updated_at": closed or started or acknowledged or requested,
                "expected_at": requested + target,
                "status": status,
                "resolution": resolution,
                "status_notes": notes,
                "address": address,
                "postal_code": district.postal_code,
                "lat": lat,
                "lon": lon,
                "description": text,
                "description_pii": pii,
                "resident_name": resident_name,
                "resident_email": resident_email,
                "assigned_staff_id": assigned,
            }
        )

    drafts.sort(key=lambda r: r["requested_at"])  # stable: ties keep their sampled order
    code_rng = _stream(seed, f"tracking:{count}:{end.isoformat()}")
    used: set[str] = set()
    requests = []
    for n, draft in enumerate(drafts):
        code = ""
        while not code or code in used:
            code = "RVT-" + "".join(code_rng.choices(_TRACKING_ALPHABET, k=8))
        used.add(code)
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
            label = _DAY_ABBR[days[0]] if len(days) == 1 else f"{_DAY_ABBR[days[0]]}-{_DAY_ABBR[days[-1]]}"
            rules.append(f"{label} {spans}")
    return "; ".join(rules) or "off"


def _col(name: str, kind: str, description: str) -> DatasetColumn:
    return DatasetColumn(name, kind, description)


def _build_datasets(
    seed: int,
    end: datetime,
    districts: Sequence[District],
    offices: Sequence[Office],
    hours: Sequence[OpeningHours],
    geo: _Geo,
) -> list[OpenDataset]:
    rng = _stream(seed, "datasets")
    year = end.astimezone(_TZ).year

    population = OpenDataset(
        slug="district-population",
        title="Population by district",
        description="Residents, households, land area and median household income of each "
        f"of Riverton's {len(districts)} districts, from the annual city census.",
        keywords=("population", "census", "districts", "households", "income"),
        license_id="CC-BY-4.0",
        theme="SOCI",
        frequency="annual",
        publisher_office_slug="city-hall",
        columns=(
            _col("district_code", "string", "District code, as in the boundaries file"),
            _col("district_name", "string", "District name"),
            _col("year", "integer", "Census year"),
            _col("population", "integer", "Residents"),
            _col("households", "integer", "Households"),
            _col("area_km2", "number", "Land area in square kilometres"),
            _col("density_per_km2", "number", "Residents per square kilometre"),
            _col("median_household_income", "integer", "Median household income, USD"),
        ),
        rows=tuple(
            (d.code, d.name, year - 1, d.population, d.households, d.area_km2,
             round(d.population / d.area_km2, 1), d.median_household_income)
            for d in districts
        ),  # fmt: skip
    )

    species_weights = [w for _, _, w in texts.TREE_SPECIES]
    tree_rows = []
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
            dbh = round(min(120, max(3, age * rng.uniform(0.6, 1.3))), 0)
            condition = rng.choices(("good", "fair", "poor", "dead"), weights=(60, 28, 9, 3))[0]
            address = _address(geo, cell, a, b, rng.random() < 0.5)[0]
            tree_rows.append(
                (address, common, scientific, int(dbh), planted, condition, d.code, lat, lon)
            )
    tree_rows.sort(key=lambda r: (r[5], r[0]))
    trees = OpenDataset(
        slug="street-trees",
        title="Street tree inventory",
        description="Every tree the city maintains along streets: species, trunk diameter, "
        "planting year where known and last assessed condition.",
        keywords=("trees", "urban forest", "environment", "canopy", "parks"),
        license_id="CC0-1.0",
        theme="ENVI",
        frequency="monthly",
        publisher_office_slug="parks-forestry",
        columns=(
            _col("tree_id", "string", "Inventory number"),
            _col("address", "string", "Nearest street address"),
            _col("species_common", "string", "Common name"),
            _col("species_scientific", "string", "Scientific name"),
            _col("dbh_cm", "integer", "Trunk diameter at breast height, cm"),
            _col("planted_year", "integer", "Year planted; empty when unknown"),
            _col("condition", "string", "good | fair | poor | dead"),
            _col("district_code", "string", "District code"),
            _col("lat", "number", "Latitude (WGS 84)"),
            _col("lon", "number", "Longitude (WGS 84)"),
        ),
        rows=tuple((f"T{n + 1:05d}", *row) for n, row in enumerate(tree_rows)),
    )

    toilet_rows = []
    by_slug = {o.slug: o for o in offices}
    for o in offices:
        if o.kind in ("city_hall", "service_center"):
            toilet_rows.append(
                (f"{o.name} restrooms", "office", o.address, o.district_code, o.lat, o.lon,
                 True, True, opening_hours_osm([h for h in hours if h.office_slug == o.slug]), 0)
            )  # fmt: skip
    for n, d in enumerate(districts):
        cells = geo.district_cells[n]
        places = [("Branch Library", "library", "Tu-Sa 10:00-18:00", 0)]
        places += [("Park", "park", "Apr-Oct: Mo-Su 07:00-20:00", 0)] * rng.randint(1, 2)
        if n == 0:
            places.append(("Riverton Station", "transit", "Mo-Su 05:30-23:30", 25))
        for kind_name, kind, opening, fee in places:
            cell = rng.choice(cells)
            a, b = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
            lon, lat = _lonlat(*geo.blocks[cell].point(a, b))
            title = kind_name if kind == "transit" else f"{d.name} {kind_name}"
            toilet_rows.append(
                (title, kind, _address(geo, cell, a, b, True)[0], d.code, lat, lon,
                 rng.random() < 0.8, rng.random() < 0.5, opening, fee)
            )  # fmt: skip
    toilets = OpenDataset(
        slug="public-toilets",
        title="Public toilets",
        description="Toilets open to the public in city buildings, libraries, parks and the "
        "train station, with accessibility and opening hours.",
        keywords=("toilets", "restrooms", "accessibility", "amenities", "parks"),
        license_id="ODbL-1.0",
        theme="HEAL",
        frequency="irregular",
        publisher_office_slug="parks-forestry",
        columns=(
            _col("toilet_id", "string", "Identifier"),
            _col("name", "string", "Name"),
            _col("location_type", "string", "office | library | park | transit"),
            _col("address", "string", "Street address"),
            _col("district_code", "string", "District code"),
            _col("lat", "number", "Latitude (WGS 84)"),
            _col("lon", "number", "Longitude (WGS 84)"),
            _col("wheelchair_accessible", "boolean", "Step-free with an accessible cubicle"),
            _col("baby_changing", "boolean", "Baby changing table"),
            _col("opening_hours", "string", "OpenStreetMap opening_hours syntax"),
            _col("fee_cents", "integer", "Charge per use in US cents"),
        ),
        rows=tuple((f"WC{n + 1:03d}", *row) for n, row in enumerate(toilet_rows)),
    )

    budget_rows = []
    lines = (  # (category, USD per resident, USD per km2)
        ("Roads & sidewalks", 95, 420_000),
        ("Parks & trees", 38, 160_000),
        ("Waste collection", 120, 0),
        ("Street lighting", 14, 90_000),
        ("Libraries & community centers", 42, 0),
        ("Code enforcement", 18, 0),
    )
    fy_end = year if end.astimezone(_TZ).month > 6 else year - 1  # fiscal years end June 30
    for fiscal_year in (fy_end - 1, fy_end):
        growth = 1.0 if fiscal_year < fy_end else 1.031
        for d in districts:
            for category, per_head, per_km2 in lines:
                amount = (per_head * d.population + per_km2 * d.area_km2) * growth
                amount *= rng.uniform(0.85, 1.15)
                budget_rows.append((f"FY{fiscal_year}", d.code, d.name, category,
                                    int(round(amount, -2))))  # fmt: skip
    budget = OpenDataset(
        slug="budget-by-district",
        title="Operating budget by district",
        description="Adopted operating budget for district-level services, by fiscal year "
        "(July to June) and category, in US dollars.",
        keywords=("budget", "finance", "spending", "districts", "fiscal year"),
        license_id="CC-BY-4.0",
        theme="ECON",
        frequency="annual",
        publisher_office_slug="city-hall",
        columns=(
            _col("fiscal_year", "string", "Fiscal year, named after the June it ends in"),
            _col("district_code", "string", "District code"),
            _col("district_name", "string", "District name"),
            _col("category", "string", "Budget category"),
            _col("amount_usd", "integer", "Adopted amount, USD"),
        ),
        rows=tuple(budget_rows),
    )

    locations = OpenDataset(
        slug="office-locations",
        title="City office locations and opening hours",
        description="Where to find city offices that serve the public, and when they are open.",
        keywords=("offices", "opening hours", "city hall", "locations", "services"),
        license_id="CC0-1.0",
        theme="GOVE",
        frequency="irregular",
        publisher_office_slug="city-hall",
        columns=(
            _col("office_slug", "string", "Identifier"),
            _col("name", "string", "Name"),
            _col("kind", "string", "city_hall | service_center | permit_office | depot | parks"),
            _col("address", "string", "Street address"),
            _col("postal_code", "string", "ZIP code"),
            _col("district_code", "string", "District code"),
            _col("lat", "number", "Latitude (WGS 84)"),
            _col("lon", "number", "Longitude (WGS 84)"),
            _col("phone", "string", "Phone"),
            _col("email", "string", "Email"),
            _col("opening_hours", "string", "OpenStreetMap opening_hours syntax"),
            _col("wheelchair_accessible", "boolean", "Step-free access"),
        ),
        rows=tuple(
            (o.slug, o.name, o.kind, o.address, o.postal_code, o.district_code, o.lat, o.lon,
             o.phone, o.email, opening_hours_osm([h for h in hours if h.office_slug == o.slug]),
             o.wheelchair_accessible)
            for o in by_slug.values()
        ),  # fmt: skip
    )
    return [population, trees, toilets, budget, locations]


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
