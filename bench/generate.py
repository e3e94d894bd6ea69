"""A deterministic 311-style service request table, written as CSV by DuckDB itself.

Every value is a pure function of the row number and the table size (integer mixing, no random
generator): two runs on two machines write the same bytes. `limit` writes only the first rows of
a larger table, so a subset for a slow peer is the same data as the first rows of the full file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

TABLE = "requests"
FILTER_CATEGORY = "Pothole"
KEYWORD = "leak"
YEAR = 2023

# (category, agency, typical resolution in hours). Order sets the skew: earlier is commoner.
CATEGORIES: list[tuple[str, str, int]] = [
    ("Noise - Residential", "Police", 4),
    ("Illegal Parking", "Police", 3),
    ("Blocked Driveway", "Police", 5),
    ("Missed Collection", "Sanitation", 30),
    ("Street Light Condition", "Transportation", 120),
    ("Heat/Hot Water", "Housing", 60),
    ("Pothole", "Transportation", 90),
    ("Water Leak", "Water", 48),
    ("Graffiti", "Sanitation", 240),
    ("Noise - Street/Sidewalk", "Police", 3),
    ("Dirty Condition", "Sanitation", 72),
    ("Traffic Signal Condition", "Transportation", 12),
    ("Sewer Backup", "Water", 20),
    ("Damaged Tree", "Parks", 300),
    ("Abandoned Vehicle", "Police", 96),
    ("Rodent", "Health", 200),
    ("Plumbing", "Housing", 150),
    ("Sidewalk Condition", "Transportation", 500),
    ("Illegal Dumping", "Sanitation", 110),
    ("Homeless Person Assistance", "Social Services", 2),
    ("Broken Parking Meter", "Transportation", 70),
    ("Food Establishment", "Health", 160),
    ("Hydrant Leak", "Water", 36),
    ("Air Quality", "Environment", 220),
    ("Dead Animal", "Sanitation", 26),
    ("Derelict Bicycle", "Sanitation", 400),
    ("Elevator", "Buildings", 180),
    ("Construction Noise", "Buildings", 50),
    ("Snow or Ice", "Sanitation", 16),
    ("Bike Lane Obstruction", "Police", 6),
]
ADJECTIVES = ["large", "small", "persistent", "recurring", "new", "dangerous", "minor", "severe"]
THINGS = [
    "hole in the road",
    "pile of bags",
    "loud music",
    "car blocking the entrance",
    "broken lamp",
    "water leak from the main",
    "cracked slab",
    "overflowing bin",
    "tag on the wall",
    "fallen branch",
    "no heat since yesterday",
    "pipe leak under the sink",
]
DETAILS = [
    "caller asks for an update",
    "third report this month",
    "near the school entrance",
    "photo attached",
    "reported by a passer-by",
    "neighbours also affected",
    "outside the bus stop",
    "access from the back alley",
    "urgent according to caller",
    "no further information",
]
STREETS = [
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Pine",
    "River",
    "Church",
    "Market",
    "Mill",
    "Spring",
    "Bridge",
]
SUFFIXES = ["Street", "Avenue", "Road", "Boulevard", "Lane", "Place"]
CHANNELS = ["Phone", "Online", "Mobile App", "Walk-in", "Email"]
DISTRICTS = 12
START_MICROS = 1_546_300_800_000_000  # 2019-01-01 00:00:00 UTC
SPAN_SECONDS = 6 * 365 * 24 * 3600  # 2019-2024


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _mix(salt: int) -> str:
    """A well-spread non-negative integer from the row number `i` (Knuth multiplicative mixing,
    xor-folded); BIGINT arithmetic stays far from overflow for i < 10^9."""
    return f"xor(((i + {salt}) * 2654435761) % 4294967296, (i * {salt * 40503 + 7}) % 65521)"


def select_sql(rows: int, limit: int | None = None) -> str:
    """The SELECT that makes the table of `rows` rows (its first `limit` rows when given)."""
    made = rows if limit is None else max(0, min(rows, limit))
    categories = _sql_list([c for c, _, _ in CATEGORIES])
    agencies = _sql_list([a for _, a, _ in CATEGORIES])
    hours = "[" + ", ".join(str(h) for _, _, h in CATEGORIES) + "]"
    n = len(CATEGORIES)
    return f"""
WITH base AS (
  SELECT i,
    -- a skewed pick: the square of a uniform number favours the first categories
    1 + CAST(floor(n_cat * pow(({_mix(11)} % 1000000) / 1000000.0, 1.7)) AS BIGINT) AS cat,
    ({_mix(13)} % 1000000) / 1000000.0 AS u1,
    ({_mix(17)} % 1000000) / 1000000.0 AS u2,
    ({_mix(19)} % 1000000) / 1000000.0 AS u3,
    {_mix(23)} AS m1,
    {_mix(29)} AS m2
  FROM (SELECT range AS i, {n} AS n_cat FROM range({int(made)}))
), timed AS (
  SELECT *,
    -- microseconds since the epoch: integer arithmetic is far cheaper than intervals
    {START_MICROS} + CAST(i * ({SPAN_SECONDS}.0 / {max(int(rows), 1)}) AS BIGINT) * 1000000
      + (m1 % 7200) * 1000000 AS created_us,
    -- resolution: the category's typical hours times a long-tailed factor; ~12% still open
    CASE WHEN u3 < 0.12 THEN NULL
         ELSE CAST(60 + {hours}[cat] * 3600 * (0.05 + 3 * u2 * u2 * u2) AS BIGINT) END AS took
  FROM base
)
SELECT
  i + 1 AS request_id,
  make_timestamp(created_us) AS created_at,
  make_timestamp(created_us + took * 1000000) AS closed_at,
  {categories}[cat] AS category,
  {agencies}[cat] AS agency,
  CASE WHEN took IS NOT NULL THEN 'Closed'
       WHEN u2 < 0.5 THEN 'Open' WHEN u2 < 0.8 THEN 'In Progress' ELSE 'Pending' END AS status,
  'District ' || lpad(CAST(1 + m2 % {DISTRICTS} AS VARCHAR), 2, '0') AS district,
  {_sql_list(ADJECTIVES)}[1 + m1 % {len(ADJECTIVES)}] || ' ' ||
    {_sql_list(THINGS)}[1 + (m2 // 7) % {len(THINGS)}] || ' at ' ||
    CAST(1 + m1 % 2400 AS VARCHAR) || ' ' || {_sql_list(STREETS)}[1 + m2 % {len(STREETS)}] ||
    ', ' || {_sql_list(DETAILS)}[1 + (m1 // 13) % {len(DETAILS)}] AS description,
  CAST(1 + m2 % 2400 AS VARCHAR) || ' ' || {_sql_list(STREETS)}[1 + (m1 // 5) % {len(STREETS)}]
    || ' ' || {_sql_list(SUFFIXES)}[1 + (m2 // 11) % {len(SUFFIXES)}] AS address,
  10001 + m1 % 90 AS zip,
  CASE WHEN m2 % 97 = 0 THEN NULL ELSE round(40.55 + 0.35 * u1, 6) END AS latitude,
  CASE WHEN m2 % 97 = 0 THEN NULL ELSE round(-74.15 + 0.40 * u2, 6) END AS longitude,
  {_sql_list(CHANNELS)}[1 + (m1 // 3) % {len(CHANNELS)}] AS channel
FROM timed
"""


@dataclass(frozen=True)
class Generated:
    path: Path
    rows: int
    bytes: int
    seconds: float


def generate_csv(
    path: Path, rows: int, *, limit: int | None = None, threads: int | None = None
) -> Generated:
    """Write the table of `rows` rows (only its first `limit` rows, when given) to `path` as
    CSV with a header, through a temporary name so a killed run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = path.with_name(path.name + ".partial")
    config: dict[str, object] = {}
    if threads:
        config["threads"] = threads
    with duckdb.connect(config=config) as con:
        # Row order is part of the data (request ids grow with time, as in real exports).
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")
        con.execute(
            f"COPY ({select_sql(rows, limit)}) TO '{partial}' "
            "(FORMAT csv, HEADER true, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')"
        )
    partial.replace(path)
    written = rows if limit is None else min(rows, limit)
    return Generated(path, written, path.stat().st_size, time.perf_counter() - started)
