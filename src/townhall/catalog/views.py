"""Catalog pages: search, the dataset page (metadata, freshness, versions, preview, chart, map,
downloads, API examples, validation report) and the publisher's forms (create, edit, upload,
publish) and late-datasets list.

Every page is complete without JavaScript: facets are checkboxes in a GET form, the preview is
sorted, filtered and paged through query parameters, the chart is SVG drawn here. Scripts only
add what needs them: the Leaflet map, copy buttons, and an upload progress bar (the form posts
normally without them).

Dataset-page query parameters mirror the data API's (`q`, `sort`, `resource`, `version` and
filters written `col__op=value`), so the page's address and the API example it shows say the
same thing; the page's own parameters start with `_` (`_page`, `_chart`, `_kind`), which the
API's filter parser skips.

As the datastore's routes do, the SQL database's transaction is ended before DuckDB works: on
SQLite every transaction holds the write lock, and a query may run up to the time limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session
from sqlglot import exp
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from townhall.accounts import queries as account_queries
from townhall.accounts.auth import PublicActor, requires
from townhall.accounts.security import csrf_matches
from townhall.actor import Actor
from townhall.catalog import STATIC_PREFIX, actions, queries
from townhall.catalog.api import readable_dataset
from townhall.catalog.models import Dataset, DatasetVersion, Resource
from townhall.catalog.schemas import SLUG_PATTERN, DatasetCreate, DatasetUpdate
from townhall.catalog.vocabularies import FREQUENCIES, LICENSES, THEMES
from townhall.datastore import query
from townhall.datastore.api import upload_publisher
from townhall.datastore.coltypes import is_geometry, is_numeric, logical_type
from townhall.datastore.engine import QueryEngine, query_engine
from townhall.datastore.ingest import ingest_file
from townhall.datastore.upload import receive_upload
from townhall.db import unit_of_work, utcnow
from townhall.deps import DbSession
from townhall.directory import STATIC_PREFIX as DIRECTORY_ASSETS
from townhall.errors import NotFoundError, PermissionDenied, TownhallError
from townhall.feeds import schemaorg_script
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)
Publisher = Annotated[Actor, Depends(requires("datasets:publish"))]
Uploader = Annotated[Actor, Depends(upload_publisher)]

ASSETS = STATIC_PREFIX
LEAFLET = f"{DIRECTORY_ASSETS}/leaflet"
SEARCH_PAGE_SIZE = 20
PREVIEW_ROWS = 25
MAP_FEATURES = 2000
CHART_BARS = 15
HISTOGRAM_BINS = 20
CELL_CHARS = 120
DOWNLOAD_FORMATS = ("csv", "ndjson", "json", "parquet")
UPLOAD_ACCEPT = ".csv,.tsv,.tab,.txt,.json,.ndjson,.jsonl,.xlsx,.parquet,.geojson"
FACET_LABELS = {
    "organization": "Organization",
    "theme": "Theme",
    "keyword": "Keyword",
    "format": "Format",
    "license": "Licence",
    "freshness": "Freshness",
}
SORT_LABELS = {"relevance": "Best match", "updated": "Recently updated", "name": "Name (A–Z)"}
FILTER_OPERATORS = {
    "eq": "is",
    "ne": "is not",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is more than",
    "gte": "is at least",
    "like": "matches (% is any text)",
    "in": "is one of (comma-separated)",
    "isnull": "is empty (true or false)",
}
CHART_KINDS = {
    "auto": "Automatic",
    "bar": "Bar: most common values",
    "line": "Line: rows over time",
    "histogram": "Histogram: spread of numbers",
}
_LAT = frozenset({"lat", "latitude"})
_LON = frozenset({"lon", "lng", "long", "longitude"})
_LABEL_HINTS = ("name", "title", "label", "type", "category")
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


# Small helpers ---------------------------------------------------------------------------------


def markdown(text: str | None) -> Markup:
    """Markdown to HTML; raw HTML in the text is escaped and `javascript:` links refused."""
    return Markup(_markdown.render(text or ""))  # noqa: S704  # markdown-it escapes, html=False


def plain_excerpt(text: str | None, limit: int = 240) -> str:
    flat = re.sub(r"[#*_`>|\[\]]+", "", text or "")
    flat = re.sub(r"\(https?://[^)]*\)", "", flat)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def fmt_date(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def fmt_day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d")


def fmt_count(value: int | float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:,}"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value} bytes"


def relative_days(moment: datetime | None, now: datetime) -> str:
    """'in 3 days', '5 days ago', 'today'."""
    if moment is None:
        return ""
    days = (moment - now).total_seconds() / 86400
    if abs(days) < 1:
        hours = round(abs(days) * 24)
        if hours < 1:
            return "now"
        return f"in {hours} h" if days > 0 else f"{hours} h ago"
    whole = round(abs(days))
    unit = "day" if whole == 1 else "days"
    return f"in {whole} {unit}" if days > 0 else f"{whole} {unit} ago"


def json_for_script(value: Any) -> Markup:
    """JSON to embed in `<script type="application/json">`: `<` escaped so no value ends it."""
    text = json.dumps(value, separators=(",", ":"), default=str)
    return Markup(text.replace("<", "\\u003c"))  # noqa: S704  # escaped above


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:100].strip("-")


def _split_list(raw: str, pattern: str = r"[,\n]") -> list[str]:
    return [part.strip() for part in re.split(pattern, raw or "") if part.strip()]


def _formatters() -> dict[str, Callable[..., Any]]:
    return {
        "fmt_date": fmt_date,
        "fmt_day": fmt_day,
        "fmt_count": fmt_count,
        "fmt_bytes": fmt_bytes,
        "markdown": markdown,
        "excerpt": plain_excerpt,
        "theme_label": lambda code: THEMES.get(code, code),
        "frequency_label": lambda code: FREQUENCIES.get(code or "", (code or "—", None))[0],
        "license_of": LICENSES.get,
    }


@dataclass
class PageQuery:
    """The page's query string as ordered pairs, and addresses that change a few of them."""

    path: str
    items: list[tuple[str, str]]

    def url(self, changes: dict[str, Any] | None = None, drop: Iterable[str] = ()) -> str:
        changes = changes or {}
        dropped = set(drop) | set(changes)
        items = [(k, v) for k, v in self.items if k not in dropped]
        items += [(k, str(v)) for k, v in changes.items() if v not in (None, "")]
        return self.path + ("?" + urlencode(items) if items else "")

    def without_pair(self, key: str, value: str, drop: Iterable[str] = ()) -> str:
        dropped = set(drop)
        items = [(k, v) for k, v in self.items if (k, v) != (key, value) and k not in dropped]
        return self.path + ("?" + urlencode(items) if items else "")

    def hidden(self, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
        """Pairs to carry as hidden inputs in a GET form that sets the others."""
        dropped = set(drop)
        return [(k, v) for k, v in self.items if k not in dropped]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.items if k == key), None)


# Search ---------------------------------------------------------------------------------------


@router.get("/datasets", response_class=HTMLResponse)
def search_page(
    request: Request,
    db: DbSession,
    actor: PublicActor,
    q: Annotated[str, Query(max_length=500)] = "",
    organization: Annotated[list[str] | None, Query(max_length=20)] = None,
    theme: Annotated[list[str] | None, Query(max_length=20)] = None,
    keyword: Annotated[list[str] | None, Query(max_length=20)] = None,
    format: Annotated[list[str] | None, Query(max_length=20)] = None,
    license: Annotated[list[str] | None, Query(max_length=20)] = None,
    freshness: Annotated[list[str] | None, Query(max_length=3)] = None,
    sort: Annotated[str, Query(pattern="^(relevance|updated|name)$")] = "relevance",
    page: Annotated[int, Query(ge=1, le=5000)] = 1,
) -> HTMLResponse:
    """The catalog: ranked full-text search, facet checkboxes, sorting and pages."""
    selected = {
        "organization": organization or [],
        "theme": theme or [],
        "keyword": keyword or [],
        "format": format or [],
        "license": license or [],
        "freshness": freshness or [],
    }
    outcome = queries.search_datasets(
        db,
        actor,
        q=q,
        filters=selected,
        sort=sort,
        limit=SEARCH_PAGE_SIZE,
        offset=(page - 1) * SEARCH_PAGE_SIZE,
    )
    organizations = {o.slug: o.name for o in account_queries.list_organizations(db)}
    now = utcnow()

    def label(facet: str, value: str) -> str:
        if facet == "organization":
            return organizations.get(value, value)
        if facet == "theme":
            return THEMES.get(value, value)
        if facet == "license":
            lic = LICENSES.get(value)
            return lic.title if lic else value
        if facet == "freshness":
            return value.capitalize()
        return value

    facets = []
    for name in queries.FACET_FIELDS:
        counted = outcome.facets.get(name, [])
        values = [(value, label(name, value), count) for value, count in counted]
        present = {value.lower() for value, _, _ in values}
        # A value chosen in the address but matching nothing still shows, checked, to uncheck.
        values += [(v, label(name, v), 0) for v in selected[name] if v.lower() not in present]
        if values:
            chosen = {v.lower() for v in selected[name]}
            facets.append(
                {
                    "name": name,
                    "label": FACET_LABELS[name],
                    "values": [
                        {"value": v, "label": lab, "count": c, "checked": v.lower() in chosen}
                        for v, lab, c in values
                    ],
                }
            )
    results = [
        {
            "dataset": d,
            "late": queries.is_late(d, now),
            "formats": sorted({r.format.upper() for r in d.resources if r.format}),
        }
        for d in outcome.items
    ]
    page_query = PageQuery("/datasets", list(request.query_params.multi_items()))
    pages = max(1, math.ceil(outcome.total / SEARCH_PAGE_SIZE))
    active = [
        {"facet": FACET_LABELS[n], "label": label(n, v), "url": page_query.without_pair(n, v)}
        for n in queries.FACET_FIELDS
        for v in selected[n]
    ]
    return render(
        request,
        "catalog/search.html",
        {
            "q": q,
            "sort": sort,
            "sort_labels": SORT_LABELS,
            "facets": facets,
            "active_filters": active,
            "results": results,
            "total": outcome.total,
            "page": page,
            "pages": pages,
            "page_query": page_query,
            "assets": ASSETS,
            **_formatters(),
        },
        actor=actor,
    )


# The dataset page -------------------------------------------------------------------------------


@dataclass
class TableView:
    """What the dataset page shows of one table: the preview page and its controls."""

    table: query.PublishedTable
    columns: list[dict[str, Any]]
    filters: list[query.Filter]
    q: str
    sort: list[tuple[str, bool]]
    page: int
    rows: list[list[dict[str, Any]]] = field(default_factory=list)
    total: int | None = None
    total_estimated: bool = False
    has_more: bool = False
    error: str | None = None
    elapsed_ms: float | None = None
    chips: list[dict[str, str]] = field(default_factory=list)

    @property
    def first_row(self) -> int:
        return (self.page - 1) * PREVIEW_ROWS + 1

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1

    @property
    def pages(self) -> int | None:
        if self.total is None or self.total_estimated:
            return None
        return max(1, math.ceil(self.total / PREVIEW_ROWS))


def _cell(value: Any, column: dict[str, Any]) -> dict[str, Any]:
    """A preview cell: its text (shortened), the full text when shortened, and a CSS class."""
    if value is None:
        return {"text": "", "full": None, "kind": "null"}
    if is_geometry(str(column.get("db_type") or "")) and isinstance(value, dict):
        kind = str(value.get("type", "geometry"))
        coords = value.get("coordinates")
        if kind == "Point" and isinstance(coords, list) and len(coords) >= 2:
            return {"text": f"Point ({coords[0]:.5f}, {coords[1]:.5f})", "full": None, "kind": ""}
        return {"text": kind, "full": None, "kind": ""}
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if len(text) > CELL_CHARS:
        return {"text": text[: CELL_CHARS - 1] + "…", "full": text, "kind": ""}
    return {"text": text, "full": None, "kind": "num" if numeric else ""}


def _run(engine: QueryEngine, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Run a chart or map query; a value that does not fit its column is the user's 422."""
    try:
        return engine.run(lambda cursor: cursor.execute(sql, values or None).fetchall())
    except (
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.BinderException,
    ) as error:
        raise query.invalid_filter(str(error).splitlines()[0][:300]) from error


def _ref(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name, quoted=True))


def _select_where(
    table: query.PublishedTable,
    view: TableView,
    binder: query.Binder,
    *extra: exp.Expression,
) -> exp.Expression | None:
    where = query.where_clause(table, view.filters, view.q, binder)
    conditions = [c for c in (where, *extra) if c is not None]
    if not conditions:
        return None
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


def _not_null(name: str) -> exp.Expression:
    return exp.Not(this=exp.Is(this=_ref(name), expression=exp.Null()))


def load_preview(engine: QueryEngine, view: TableView) -> None:
    request = query.RowsRequest(
        filters=view.filters,
        q=view.q,
        sort=view.sort,
        limit=PREVIEW_ROWS,
        offset=(view.page - 1) * PREVIEW_ROWS,
    )
    result = query.query_rows(engine, view.table, request)
    view.rows = [
        [_cell(row.get(c["name"]), c) for c in view.columns]
        for row in (json.loads(text) for text in result.rows_json)
    ]
    view.total = result.total
    view.total_estimated = result.total_estimated
    view.has_more = result.next_cursor is not None
    view.elapsed_ms = result.elapsed_ms


# Charts ----------------------------------------------------------------------------------------

CHART_WIDTH = 880


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` into about `count`."""
    if span <= 0:
        return 1.0
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def fmt_number(value: float, step: float = 1.0) -> str:
    if step >= 1 and float(value).is_integer():
        return f"{int(value):,}"
    decimals = max(0, min(6, -math.floor(math.log10(step)) if step > 0 else 2))
    return f"{value:,.{decimals}f}"


def _count_ticks(maximum: int, count: int = 5) -> tuple[int, list[int]]:
    step = max(1, int(nice_step(maximum, count)))
    top = max(step, math.ceil(maximum / step) * step)
    return top, list(range(0, top + 1, step))


@dataclass
class Chart:
    kind: str
    column: str
    title: str
    summary: str
    width: int = CHART_WIDTH
    height: int = 300
    shapes: list[dict[str, Any]] = field(default_factory=list)
    x_ticks: list[dict[str, Any]] = field(default_factory=list)
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    line: str = ""
    area: str = ""
    plot: dict[str, float] = field(default_factory=dict)
    table: list[tuple[str, str]] = field(default_factory=list)
    table_headers: tuple[str, str] = ("Value", "Rows")
    note: str | None = None
    all_distinct: bool = False
    """A bar chart of values that are all different (identifiers, measurements as text)."""


def chart_kind_for(column: dict[str, Any]) -> str | None:
    db_type = str(column.get("db_type") or "")
    kind = logical_type(db_type) if db_type else str(column.get("type") or "")
    if kind in ("date", "datetime"):
        return "line"
    if kind in ("integer", "number"):
        return "histogram"
    if kind in ("string", "boolean"):
        return "bar"
    return None


def chartable(columns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in columns if chart_kind_for(c) is not None]


def chart_candidates(columns: Sequence[dict[str, Any]]) -> list[str]:
    """Columns worth drawing, best first: dates (a line over time says most), then text that
    is not free prose, then numbers that are not identifiers, then anything drawable."""
    candidates = chartable(columns)
    ordered: list[str] = []
    for wanted in ("line", "bar", "histogram"):
        for column in candidates:
            name = str(column["name"]).lower()
            if chart_kind_for(column) != wanted:
                continue
            if wanted != "line" and (name in ("id", "key") or name.endswith(("id", " key"))):
                continue
            if wanted == "bar" and any(w in name for w in ("description", "address", "comment")):
                continue
            ordered.append(str(column["name"]))
    ordered += [str(c["name"]) for c in candidates if str(c["name"]) not in ordered]
    return ordered


def default_chart_column(columns: Sequence[dict[str, Any]]) -> str | None:
    candidates = chart_candidates(columns)
    return candidates[0] if candidates else None


def bar_chart(engine: QueryEngine, view: TableView, name: str) -> Chart:
    table = view.table
    binder = query.Binder()
    where = _select_where(table, view, binder, _not_null(name))
    label = exp.Cast(this=_ref(name), to=exp.DataType.build("VARCHAR"))
    select = (
        exp.select(exp.alias_(label, "label", quoted=True), exp.Count(this=exp.Star()))
        .from_(table.ref())
        .group_by(_ref(name))
        .order_by(
            exp.Ordered(this=exp.Count(this=exp.Star()), desc=True),
            exp.Ordered(this=exp.column("label", quoted=True)),
        )
        .limit(CHART_BARS)
    )
    if where is not None:
        select = select.where(where)
    top = [(str(r[0]), int(r[1])) for r in _run(engine, query.render(select), binder.values)]
    totals_binder = query.Binder()
    totals_where = _select_where(table, view, totals_binder)
    totals = exp.select(
        exp.Count(this=_ref(name)),
        exp.Count(this=exp.Star()),
        exp.Count(this=exp.Distinct(expressions=[_ref(name)])),
    ).from_(table.ref())
    if totals_where is not None:
        totals = totals.where(totals_where)
    non_null, all_rows, distinct = _run(engine, query.render(totals), totals_binder.values)[0]
    other = int(non_null) - sum(count for _, count in top)
    nulls = int(all_rows) - int(non_null)
    items = list(top)
    if other > 0:
        items.append((f"Other ({int(distinct) - len(top):,} values)", other))
    chart = Chart(
        kind="bar",
        column=name,
        title=f"Most common values of {name}",
        summary=f"{int(distinct):,} distinct values in {int(non_null):,} rows"
        + (f"; {nulls:,} rows have no value" if nulls else ""),
    )
    chart.table = [(lab, fmt_count(count)) for lab, count in items]
    chart.all_distinct = int(non_null) > CHART_BARS and int(distinct) == int(non_null)
    if not items:
        chart.note = "No values to draw."
        return chart
    left, right, top_margin, bar_height, gap = 200, 70, 8, 22, 8
    bottom = 28
    plot_width = chart.width - left - right
    maximum, ticks = _count_ticks(max(count for _, count in items))
    chart.height = top_margin + len(items) * (bar_height + gap) + bottom
    for i, (lab, count) in enumerate(items):
        y = top_margin + i * (bar_height + gap)
        width = plot_width * count / maximum
        chart.shapes.append(
            {
                "x": left,
                "y": y,
                "w": max(width, 1),
                "h": bar_height,
                "label": lab if len(lab) <= 28 else lab[:27] + "…",
                "full": lab,
                "value": fmt_count(count),
                "other": other > 0 and i == len(items) - 1,
            }
        )
    axis_y = top_margin + len(items) * (bar_height + gap)
    chart.plot = {"left": left, "right": left + plot_width, "top": top_margin, "bottom": axis_y}
    chart.x_ticks = [{"x": left + plot_width * t / maximum, "label": fmt_count(t)} for t in ticks]
    return chart


def _truncate_to(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    if unit == "year":
        return day.replace(month=1, day=1)
    return day


def _next_period(day: date, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "week":
        return day + timedelta(days=7)
    if unit == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def line_chart(engine: QueryEngine, view: TableView, name: str) -> Chart:
    table = view.table
    binder = query.Binder()
    where = _select_where(table, view, binder, _not_null(name))
    bounds = exp.select(
        exp.Min(this=_ref(name)), exp.Max(this=_ref(name)), exp.Count(this=exp.Star())
    ).from_(table.ref())
    if where is not None:
        bounds = bounds.where(where)
    low, high, rows = _run(engine, query.render(bounds), binder.values)[0]
    chart = Chart(kind="line", column=name, title=f"Rows by {name}", summary="")
    chart.table_headers = ("Period", "Rows")
    if low is None or high is None:
        chart.note = "No dates to draw."
        chart.summary = "No rows have a value in this column."
        return chart
    first, last = _as_date(low), _as_date(high)
    span = (last - first).days
    unit = "day" if span <= 120 else "week" if span <= 730 else "month" if span <= 7300 else "year"
    binder = query.Binder()
    where = _select_where(table, view, binder, _not_null(name))
    period = exp.Cast(
        this=exp.Anonymous(this="date_trunc", expressions=[exp.Literal.string(unit), _ref(name)]),
        to=exp.DataType.build("DATE"),
    )
    select = (
        exp.select(exp.alias_(period, "period", quoted=True), exp.Count(this=exp.Star()))
        .from_(table.ref())
        .group_by(exp.column("period", quoted=True))
    )
    if where is not None:
        select = select.where(where)
    counts = {_as_date(r[0]): int(r[1]) for r in _run(engine, query.render(select), binder.values)}
    series: list[tuple[date, int]] = []
    day = _truncate_to(first, unit)
    while day <= last:
        series.append((day, counts.get(day, 0)))
        day = _next_period(day, unit)
    label_format = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}[unit]
    chart.summary = (
        f"{int(rows):,} rows from {first.isoformat()} to {last.isoformat()}, counted per {unit}"
    )
    chart.title = f"Rows per {unit} by {name}"
    chart.table_headers = (f"{unit.title()} starting" if unit != "year" else "Year", "Rows")
    chart.table = [(d.strftime(label_format), fmt_count(c)) for d, c in series]
    left, right, top, bottom = 64, 20, 14, 44
    plot_width = chart.width - left - right
    plot_height = chart.height - top - bottom
    maximum, ticks = _count_ticks(max(c for _, c in series) or 1)
    chart.plot = {
        "left": left,
        "right": left + plot_width,
        "top": top,
        "bottom": top + plot_height,
    }

    def x_of(i: int) -> float:
        return left + (plot_width / 2 if len(series) == 1 else plot_width * i / (len(series) - 1))

    def y_of(count: int) -> float:
        return top + plot_height * (1 - count / maximum)

    points = [(x_of(i), y_of(c)) for i, (_, c) in enumerate(series)]
    chart.line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    base = top + plot_height
    chart.area = f"{points[0][0]:.1f},{base:.1f} " + chart.line + f" {points[-1][0]:.1f},{base:.1f}"
    if len(series) <= 150:
        chart.shapes = [
            {"x": x, "y": y, "label": d.strftime(label_format), "value": fmt_count(c)}
            for (x, y), (d, c) in zip(points, series, strict=True)
        ]
    every = max(1, math.ceil(len(series) / 7))
    chart.x_ticks = [
        {"x": x_of(i), "label": d.strftime(label_format)}
        for i, (d, _) in enumerate(series)
        if i % every == 0
    ]
    chart.y_ticks = [{"y": y_of(t), "label": fmt_count(t)} for t in ticks]
    return chart


def histogram_chart(engine: QueryEngine, view: TableView, name: str) -> Chart:
    table = view.table
    as_double = exp.Cast(this=_ref(name), to=exp.DataType.build("DOUBLE"))
    finite = exp.Anonymous(this="isfinite", expressions=[as_double.copy()])
    binder = query.Binder()
    where = _select_where(table, view, binder, _not_null(name), finite)
    bounds = exp.select(
        exp.Min(this=as_double.copy()), exp.Max(this=as_double.copy()), exp.Count(this=exp.Star())
    ).from_(table.ref())
    if where is not None:
        bounds = bounds.where(where)
    low, high, rows = _run(engine, query.render(bounds), binder.values)[0]
    chart = Chart(kind="histogram", column=name, title=f"Spread of {name}", summary="")
    chart.table_headers = ("Range", "Rows")
    if low is None or high is None:
        chart.note = "No numbers to draw."
        chart.summary = "No rows have a number in this column."
        return chart
    integer = logical_type(str(view.table.column(name).get("db_type") or "")) == "integer"
    step = nice_step(high - low, HISTOGRAM_BINS) if high > low else 1.0
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(low / step) * step
    bins = max(1, min(HISTOGRAM_BINS * 3, math.floor((high - start) / step) + 1))
    binder = query.Binder()
    where = _select_where(table, view, binder, _not_null(name), finite)
    index = exp.Anonymous(
        this="least",
        expressions=[
            exp.Cast(
                this=exp.Floor(
                    this=exp.Div(
                        this=exp.Paren(
                            this=exp.Sub(this=as_double.copy(), expression=binder.bind(start))
                        ),
                        expression=binder.bind(step),
                    )
                ),
                to=exp.DataType.build("BIGINT"),
            ),
            exp.Literal.number(bins - 1),
        ],
    )
    select = (
        exp.select(exp.alias_(index, "bin", quoted=True), exp.Count(this=exp.Star()))
        .from_(table.ref())
        .group_by(exp.column("bin", quoted=True))
    )
    if where is not None:
        select = select.where(where)
    counts = {int(r[0]): int(r[1]) for r in _run(engine, query.render(select), binder.values)}
    edges = [start + i * step for i in range(bins + 1)]
    chart.summary = (
        f"{int(rows):,} rows from {fmt_number(low, step if integer else step / 10)} to "
        f"{fmt_number(high, step if integer else step / 10)}, in bins of {fmt_number(step, step)}"
    )

    def range_label(i: int) -> str:
        lo, hi = edges[i], edges[i + 1]
        if integer and step == 1:
            return fmt_number(lo)
        return f"{fmt_number(lo, step)} to under {fmt_number(hi, step)}"

    chart.table = [(range_label(i), fmt_count(counts.get(i, 0))) for i in range(bins)]
    left, right, top, bottom = 64, 20, 14, 44
    plot_width = chart.width - left - right
    plot_height = chart.height - top - bottom
    maximum, ticks = _count_ticks(max(counts.values(), default=0) or 1)
    chart.plot = {
        "left": left,
        "right": left + plot_width,
        "top": top,
        "bottom": top + plot_height,
    }
    bar_width = plot_width / bins
    for i in range(bins):
        count = counts.get(i, 0)
        height = plot_height * count / maximum
        chart.shapes.append(
            {
                "x": left + i * bar_width,
                "y": top + plot_height - height,
                "w": max(bar_width - 1, 1),
                "h": height,
                "label": range_label(i),
                "value": fmt_count(count),
            }
        )
    every = max(1, math.ceil(bins / 8))
    chart.x_ticks = [
        {"x": left + i * bar_width, "label": fmt_number(edges[i], step)}
        for i in range(0, bins + 1, every)
    ]
    chart.y_ticks = [
        {"y": top + plot_height * (1 - t / maximum), "label": fmt_count(t)} for t in ticks
    ]
    return chart


def draw_chart(engine: QueryEngine, view: TableView, name: str, kind: str) -> Chart:
    """The chart of column `name` over the filtered rows; `kind` auto picks by type.

    Raises TownhallError invalid_filter for a column or kind that cannot be drawn.
    """
    column = view.table.column(name)
    natural = chart_kind_for(column)
    if natural is None:
        raise query.invalid_filter(f"Column {name!r} cannot be drawn as a chart.", name)
    kind = natural if kind == "auto" else kind
    if kind == "line" and natural != "line":
        raise query.invalid_filter(f"A line chart needs a date column; {name!r} is not.", name)
    if kind == "histogram" and not is_numeric(str(column.get("db_type") or "")):
        raise query.invalid_filter(f"A histogram needs a number column; {name!r} is not.", name)
    if kind == "line":
        return line_chart(engine, view, name)
    if kind == "histogram":
        return histogram_chart(engine, view, name)
    return bar_chart(engine, view, name)


def _default_chart(engine: QueryEngine, view: TableView, tries: int = 4) -> Chart | None:
    """The first candidate column whose chart says something: a bar per value of a column
    whose values are all different (a code, an area written as text) is passed over."""
    first: Chart | None = None
    for name in chart_candidates(view.columns)[:tries]:
        drawn = draw_chart(engine, view, name, "auto")
        if not drawn.all_distinct:
            return drawn
        first = first or drawn
    return first


# Maps ------------------------------------------------------------------------------------------


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def map_columns(columns: Sequence[dict[str, Any]]) -> dict[str, str] | None:
    """`{"geometry": col}` or `{"lat": col, "lon": col}` when the table can be mapped."""
    for column in columns:
        if is_geometry(str(column.get("db_type") or "")):
            return {"geometry": str(column["name"])}
    numeric = [c for c in columns if is_numeric(str(c.get("db_type") or ""))]
    lat = next((c["name"] for c in numeric if _words(c["name"]) & _LAT), None)
    lon = next((c["name"] for c in numeric if _words(c["name"]) & _LON), None)
    if lat and lon:
        return {"lat": str(lat), "lon": str(lon)}
    return None


def label_column(columns: Sequence[dict[str, Any]]) -> str | None:
    texts = [str(c["name"]) for c in columns if str(c.get("db_type") or "").upper() == "VARCHAR"]
    for hint in _LABEL_HINTS:
        for name in texts:
            if hint in name.lower():
                return name
    return texts[0] if texts else None


def map_features(engine: QueryEngine, view: TableView, where_columns: dict[str, str]) -> dict:
    """The filtered rows as a GeoJSON FeatureCollection (at most MAP_FEATURES), shapes
    simplified to what a page-sized map can show."""
    table = view.table
    label = label_column(view.columns)
    label_expr: exp.Expression = (
        exp.Cast(this=_ref(label), to=exp.DataType.build("VARCHAR")) if label else exp.Null()
    )
    features: list[dict[str, Any]] = []
    if "geometry" in where_columns:
        name = where_columns["geometry"]
        binder = query.Binder()
        where = _select_where(table, view, binder, _not_null(name))
        extent = exp.select(
            exp.Sub(
                this=exp.Max(this=exp.Anonymous(this="ST_XMax", expressions=[_ref(name)])),
                expression=exp.Min(this=exp.Anonymous(this="ST_XMin", expressions=[_ref(name)])),
            ),
            exp.Sub(
                this=exp.Max(this=exp.Anonymous(this="ST_YMax", expressions=[_ref(name)])),
                expression=exp.Min(this=exp.Anonymous(this="ST_YMin", expressions=[_ref(name)])),
            ),
        ).from_(table.ref())
        if where is not None:
            extent = extent.where(where)
        width, height = _run(engine, query.render(extent), binder.values)[0]
        tolerance = max(float(width or 0), float(height or 0)) / 1500
        binder = query.Binder()
        where = _select_where(table, view, binder, _not_null(name))
        shape = exp.Anonymous(
            this="ST_SimplifyPreserveTopology", expressions=[_ref(name), binder.bind(tolerance)]
        )
        select = exp.select(
            exp.Cast(
                this=exp.Anonymous(this="ST_AsGeoJSON", expressions=[shape]),
                to=exp.DataType.build("VARCHAR"),
            ),
            label_expr,
        ).from_(table.ref())
        if where is not None:
            select = select.where(where)
        select = select.limit(MAP_FEATURES + 1)
        for geometry, text in _run(engine, query.render(select), binder.values):
            features.append(
                {
                    "type": "Feature",
                    "geometry": json.loads(geometry),
                    "properties": {"label": text},
                }
            )
    else:
        lat, lon = where_columns["lat"], where_columns["lon"]
        binder = query.Binder()
        lat_d = exp.Cast(this=_ref(lat), to=exp.DataType.build("DOUBLE"))
        lon_d = exp.Cast(this=_ref(lon), to=exp.DataType.build("DOUBLE"))
        in_range = exp.and_(
            exp.Between(
                this=lat_d.copy(), low=exp.Literal.number(-90), high=exp.Literal.number(90)
            ),
            exp.Between(
                this=lon_d.copy(), low=exp.Literal.number(-180), high=exp.Literal.number(180)
            ),
        )
        where = _select_where(table, view, binder, _not_null(lat), _not_null(lon), in_range)
        select = exp.select(lat_d, lon_d, label_expr).from_(table.ref())
        if where is not None:
            select = select.where(where)
        select = select.limit(MAP_FEATURES + 1)
        for y, x, text in _run(engine, query.render(select), binder.values):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]},
                    "properties": {"label": text},
                }
            )
    return {"type": "FeatureCollection", "features": features}


# API examples ----------------------------------------------------------------------------------


def api_examples(
    base_url: str,
    slug: str,
    view: TableView | None,
    resources: int,
    *,
    restricted: bool,
    pinned_version: bool = False,
) -> list[dict[str, str]]:
    """curl, Python and R snippets for the rows the page shows (its table, version when one
    was chosen, filters and sort). `restricted` adds the API token they then need."""
    base = base_url.rstrip("/")
    params: list[tuple[str, str]] = []
    if view is not None:
        if resources > 1:
            params.append(("resource", str(view.table.resource_id)))
        if pinned_version:
            params.append(("version", str(view.table.version)))
        params += [(f"{f.column}__{f.op}", f.value) for f in view.filters]
        if view.q:
            params.append(("q", view.q))
        if view.sort:
            params.append(("sort", ",".join(("-" if d else "") + n for n, d in view.sort)))
    params.append(("limit", "100"))
    rows_url = f"{base}/api/v1/datasets/{slug}/rows?{urlencode(params)}"
    resource_part = (
        f"?resource={view.table.resource_id}" if view is not None and resources > 1 else ""
    )
    csv_url = f"{base}/api/v1/datasets/{slug}/download.csv{resource_part}"
    sql = f'SELECT * FROM "{slug}" LIMIT 10'
    auth_curl = ' -H "Authorization: Bearer $TOWNHALL_TOKEN"' if restricted else ""
    auth_py = ', headers={"Authorization": f"Bearer {token}"}' if restricted else ""
    py_params = "".join(f"        {json.dumps(k)}: {json.dumps(v)},\n" for k, v in params)
    py_token = 'token = os.environ["TOWNHALL_TOKEN"]\n' if restricted else ""
    r_auth = (
        'token <- Sys.getenv("TOWNHALL_TOKEN")\n'
        "page <- httr2::request(rows_url) |>\n"
        '  httr2::req_headers(Authorization = paste("Bearer", token)) |>\n'
        "  httr2::req_perform() |> httr2::resp_body_json(simplifyVector = TRUE)\n"
        if restricted
        else "page <- jsonlite::fromJSON(rows_url)\n"
    )
    return [
        {
            "id": "curl",
            "label": "curl",
            "code": (
                f'curl{auth_curl} "{rows_url}"\n\n'
                f"# The whole table as CSV\n"
                f'curl{auth_curl} -o {slug}.csv "{csv_url}"\n\n'
                f"# One read-only SQL query\n"
                f"curl{auth_curl} -G \"{base}/api/v1/sql\" --data-urlencode 'sql={sql}'"
            ),
        },
        {
            "id": "python",
            "label": "Python",
            "code": (
                ("import os\n" if restricted else "")
                + "import httpx\nimport pandas as pd\n\n"
                + py_token
                + "page = httpx.get(\n"
                f'    "{base}/api/v1/datasets/{slug}/rows",\n'
                f"    params={{\n{py_params}    }}{auth_py},\n"
                ").json()\n"
                'rows = pd.DataFrame(page["rows"])\n\n'
                "# The whole table\n"
                + (
                    f'table = pd.read_csv("{csv_url}")'
                    if not restricted
                    else f'table = pd.read_csv("{csv_url}", storage_options='
                    '{"Authorization": f"Bearer {token}"})'
                )
            ),
        },
        {
            "id": "r",
            "label": "R",
            "code": (
                f'rows_url <- "{rows_url}"\n'
                + r_auth
                + "rows <- page$rows\n\n"
                + "# The whole table\n"
                + (
                    f'table <- read.csv("{csv_url}")'
                    if not restricted
                    else f'table <- read.csv(httr2::request("{csv_url}") |>\n'
                    '  httr2::req_headers(Authorization = paste("Bearer", token)) |>\n'
                    "  httr2::req_perform() |> httr2::resp_body_string() |> textConnection())"
                )
            ),
        },
    ]


# The dataset page route --------------------------------------------------------------------------


def _version_rows(
    versions: list[DatasetVersion], resources: dict[int, Resource], publisher: str | None
) -> list[dict[str, Any]]:
    """Versions with their schema changes described. `publisher` replaces the person who
    published (an account's email) with the office's name, for readers who are not the
    dataset's editors: staff addresses are personal data, the office is what they need."""
    rows = []
    for v in versions:
        changes = v.schema_changes or {}
        described = []
        if v.number == 1:
            described.append(f"first version, {len(v.columns or [])} columns")
        else:
            if changes.get("added"):
                described.append("added " + ", ".join(changes["added"]))
            if changes.get("removed"):
                described.append("removed " + ", ".join(changes["removed"]))
            for column, (old, new) in (changes.get("retyped") or {}).items():
                described.append(f"{column}: {old} → {new}")
        rows.append(
            {
                "version": v,
                "resource": resources.get(v.resource_id),
                "changes": "; ".join(described) or "no schema change",
                "by": publisher or (v.published_by or "").removeprefix("user:") or "—",
            }
        )
    return rows


def _report_summary(version: DatasetVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    report = version.validation_report or {}
    task = (report.get("tasks") or [{}])[0]
    stats = task.get("stats") or {}
    detected = report.get("townhall") or {}
    errors = list(task.get("errors") or []) + list(report.get("errors") or [])
    return {
        "valid": bool(report.get("valid", True)),
        "warnings": list(report.get("warnings") or task.get("warnings") or []),
        "errors": errors,
        "rows": stats.get("rows", version.row_count),
        "fields": stats.get("fields", len(version.columns or [])),
        "bytes": stats.get("bytes", version.source_bytes),
        "seconds": stats.get("seconds"),
        "sha256": stats.get("sha256", version.source_sha256),
        "format": detected.get("format"),
        "encoding": detected.get("encoding"),
        "source": version.source_name,
        "columns": version.columns or [],
        "version": version,
    }


def _filter_redirect(request: Request) -> RedirectResponse | None:
    """The add-a-filter form sends `_fcol`, `_fop`, `_fval`; they become `col__op=value`."""
    params = request.query_params
    if "_fcol" not in params and "_fop" not in params and "_fval" not in params:
        return None
    items = [
        (k, v) for k, v in params.multi_items() if k not in ("_fcol", "_fop", "_fval", "_page")
    ]
    column = params.get("_fcol", "").strip()
    op = params.get("_fop", "eq")
    value = params.get("_fval", "")
    if op == "isnull" and not value.strip():
        value = "true"
    if column and op in query.OPERATORS and (value != "" or op == "isnull"):
        items.append((f"{column}__{op}", value))
    target = request.url.path + ("?" + urlencode(items) if items else "")
    return RedirectResponse(target, status_code=303)


@router.get("/datasets/new", response_class=HTMLResponse)
def new_dataset_form(request: Request, db: DbSession, actor: Publisher) -> HTMLResponse:
    organizations = _organizations_for(db, actor)
    return _dataset_form(
        request,
        actor,
        organizations,
        values={
            "organization": organizations[0].slug if len(organizations) == 1 else "",
            "visibility": "public",
            "license_id": "CC-BY-4.0",
            "frequency": "",
            "themes": [],
        },
    )


async def _form_data(request: Request) -> FormData:
    """The posted form, parsed on the event loop (so the route itself can stay synchronous and
    share the request's database session with the actor's dependency)."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(_form_data)]


@router.post("/datasets/new", response_class=HTMLResponse)
def create_dataset_submit(
    request: Request, db: DbSession, actor: Publisher, form: PostedForm
) -> Response:
    values = _form_values(form)
    if not values.get("slug") and values.get("title"):
        values["slug"] = slugify(str(values["title"]))
    organizations = _organizations_for(db, actor)
    try:
        body = DatasetCreate(**_model_input(values, DatasetCreate))
    except ValidationError as error:
        return _dataset_form(
            request, actor, organizations, values, errors=_form_errors(error), status=422
        )
    try:
        actions.create_dataset(
            db,
            actor=actor,
            organization_slug=body.organization,
            slug=body.slug,
            title=body.title,
            bus=request.app.state.runtime.events,
            **body.model_dump(exclude={"slug", "title", "organization"}, exclude_none=True),
        )
    except TownhallError as error:
        if error.status not in (403, 404, 409, 422):
            raise
        db.rollback()
        field_name = {409: "slug", 422: "temporal_start"}.get(error.status, "organization")
        return _dataset_form(
            request,
            actor,
            organizations,
            values,
            errors={field_name: error.message},
            status=error.status,
        )
    return RedirectResponse(f"/datasets/{body.slug}/upload?created=1", status_code=303)


@router.get("/datasets/late", response_class=HTMLResponse)
def late_page(request: Request, db: DbSession, actor: Publisher) -> HTMLResponse:
    """Datasets past their next update, most overdue first (what the actor may read)."""
    now = utcnow()
    late = [
        {
            "dataset": d,
            "overdue": relative_days(d.next_update_due, now).removesuffix(" ago"),
            "editable": queries.can_edit(actor, d),
        }
        for d in queries.late_datasets(db)
        if queries.can_read(actor, d)
    ]
    return render(
        request,
        "catalog/late.html",
        {"late": late, "now": now, "assets": ASSETS, **_formatters()},
        actor=actor,
    )


@router.get("/datasets/{slug}", response_class=HTMLResponse)
def dataset_page(
    request: Request,
    slug: str,
    db: DbSession,
    actor: PublicActor,
    resource: Annotated[str | None, Query(max_length=300)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    q: Annotated[str, Query(max_length=500)] = "",
    sort: Annotated[str | None, Query(max_length=2000)] = None,
    page: Annotated[int, Query(alias="_page", ge=1, le=10_000_000)] = 1,
    chart: Annotated[str | None, Query(alias="_chart", max_length=300)] = None,
    kind: Annotated[str, Query(alias="_kind", pattern="^(auto|bar|line|histogram)$")] = "auto",
    published: Annotated[bool, Query(alias="_published")] = False,
) -> Response:
    """One dataset: metadata, freshness, versions, and a look at its table."""
    redirect = _filter_redirect(request)
    if redirect is not None:
        return redirect
    dataset = readable_dataset(db, actor, slug)
    settings = request.app.state.settings
    now = utcnow()
    all_versions = queries.versions(db, dataset.id)
    resources = {r.id: r for r in dataset.resources}
    published_map = queries.published_version_map(db, dataset.resources)
    table_resources = [r for r in dataset.resources if r.published_version_id]
    editable = queries.can_edit(actor, dataset)
    table: query.PublishedTable | None = None
    if table_resources or resource is not None or version is not None:
        # An unknown resource or version is a 404 page; a dataset with no table is not.
        table = query.published_table(db, actor, slug, resource=resource, version=version)
    shown_version = None
    if table is not None:
        shown_version = next(
            (
                v
                for v in all_versions
                if v.resource_id == table.resource_id and v.number == table.version
            ),
            None,
        )
    jsonld = None
    if dataset.state == "published" and dataset.visibility == "public":
        jsonld = Markup(  # noqa: S704  # schemaorg_script escapes <, > and & itself
            schemaorg_script(
                dataset,
                base_url=settings.base_url,
                site_name=settings.site_name,
                versions=published_map,
            )
        )
    context: dict[str, Any] = {
        "dataset": dataset,
        "editable": editable,
        "late": queries.is_late(dataset, now),
        "due_text": relative_days(dataset.next_update_due, now),
        "license": LICENSES.get(dataset.license_id or ""),
        "versions": _version_rows(
            all_versions, resources, None if editable else dataset.organization.name
        ),
        "table_resources": table_resources,
        "published_map": published_map,
        "report": _report_summary(shown_version),
        "jsonld": jsonld,
        "published_notice": published,
        "assets": ASSETS,
        "leaflet": LEAFLET,
        "operators": FILTER_OPERATORS,
        "chart_kinds": CHART_KINDS,
        **_formatters(),
    }
    page_query = PageQuery(f"/datasets/{slug}", list(request.query_params.multi_items()))
    context["page_query"] = page_query
    # Everything from the SQL database is loaded; end its transaction before DuckDB works.
    db.commit()
    view = None
    if table is not None:
        view = _table_view(page_query, table, q, sort, page)
        engine = query_engine(request.app.state.runtime)
        _fill_table_view(engine, view, chart, kind, context)
        context["downloads"] = _downloads(slug, table, view, len(table_resources) > 1)
    context["view"] = view
    context["examples"] = api_examples(
        settings.base_url,
        slug,
        view,
        len(table_resources),
        restricted=dataset.visibility != "public" or dataset.state != "published",
        pinned_version=version is not None,
    )
    return render(request, "catalog/dataset.html", context, actor=actor)


def _table_view(
    page_query: PageQuery, table: query.PublishedTable, q: str, sort: str | None, page: int
) -> TableView:
    view = TableView(
        table=table,
        columns=[dict(c) for c in table.columns],
        filters=[],
        q=q,
        sort=[],
        page=page,
    )
    try:
        for key, value in page_query.items:
            parsed = query.parse_filters([(key, value)])
            if not parsed:
                continue
            item = parsed[0]
            view.filters.append(item)
            operator = FILTER_OPERATORS.get(item.op, item.op).split(" (")[0]
            view.chips.append(
                {
                    "label": f"{item.column} {operator} {value}",
                    "url": page_query.without_pair(key, value, drop=["_page"]),
                }
            )
        for item in view.filters:
            table.column(item.column)
        view.sort = query.parse_sort(sort, table)
    except TownhallError as error:
        view.error = error.message
    return view


def _fill_table_view(
    engine: QueryEngine,
    view: TableView,
    chart: str | None,
    kind: str,
    context: dict[str, Any],
) -> None:
    """Preview rows, chart and map; a bad filter or a slow query becomes a message on the page
    (the rest of the page still shows), not an error page."""
    context["chart"] = None
    context["chart_error"] = None
    context["chart_column"] = chart or default_chart_column(view.columns)
    context["chart_kind"] = kind
    context["chart_columns"] = chartable(view.columns)
    context["map"] = None
    context["map_error"] = None
    if view.error is None:
        try:
            load_preview(engine, view)
        except TownhallError as error:
            view.error = error.message
    if view.error is not None:
        return
    if chart:
        try:
            context["chart"] = draw_chart(engine, view, chart, kind)
        except TownhallError as error:
            context["chart_error"] = error.message
    else:
        try:
            context["chart"] = _default_chart(engine, view)
        except TownhallError as error:
            context["chart_error"] = error.message
        if context["chart"] is not None:
            context["chart_column"] = context["chart"].column
    mappable = map_columns(view.columns)
    if mappable and "geometry" in mappable:
        engine.allowed_functions  # noqa: B018  # opens the engine, which tells if spatial loaded
        if not engine.spatial:
            mappable = None
    if mappable:
        try:
            collection = map_features(engine, view, mappable)
        except TownhallError as error:
            context["map_error"] = error.message
        else:
            shown = collection["features"][:MAP_FEATURES]
            context["map"] = {
                "columns": mappable,
                "count": len(shown),
                "more": len(collection["features"]) > MAP_FEATURES,
                "data": json_for_script({"type": "FeatureCollection", "features": shown}),
            }


def _downloads(
    slug: str, table: query.PublishedTable, view: TableView, many: bool
) -> dict[str, Any]:
    base = f"/api/v1/datasets/{slug}/download"
    whole: list[tuple[str, str]] = []
    if many:
        whole.append(("resource", str(table.resource_id)))
    formats = list(DOWNLOAD_FORMATS)
    if any(is_geometry(str(c.get("db_type") or "")) for c in table.columns):
        formats.append("geojson")
    filtered = [*whole, *((f"{f.column}__{f.op}", f.value) for f in view.filters)]
    if view.q:
        filtered.append(("q", view.q))
    if view.sort:
        filtered.append(("sort", ",".join(("-" if d else "") + n for n, d in view.sort)))
    version_pair = [("version", str(table.version))]
    return {
        "formats": [
            {"format": fmt, "url": f"{base}.{fmt}" + ("?" + urlencode(whole) if whole else "")}
            for fmt in formats
        ],
        "filtered": (
            [
                {"format": fmt, "url": f"{base}.{fmt}?" + urlencode(filtered + version_pair)}
                for fmt in formats
            ]
            if view.filters or view.q
            else []
        ),
        "version": table.version,
    }


# Publisher forms -------------------------------------------------------------------------------

_LIST_FIELDS = {"keywords": r"[,\n]", "languages": r"[,\s]+", "conforms_to": r"\s+"}
_FORM_FIELDS = (
    "slug",
    "title",
    "organization",
    "description",
    "keywords",
    "themes",
    "license_id",
    "contact_name",
    "contact_email",
    "temporal_start",
    "temporal_end",
    "spatial",
    "frequency",
    "languages",
    "landing_page",
    "conforms_to",
    "visibility",
)


def _organizations_for(db: Session, actor: Actor) -> list[Any]:
    organizations = account_queries.list_organizations(db)
    if actor.can("system:admin"):
        return organizations
    return [o for o in organizations if o.id in actor.organization_ids]


def _form_values(form: Any) -> dict[str, Any]:
    """The form's fields as strings (themes as a list), as typed, to show back on errors."""
    values: dict[str, Any] = {}
    for name in _FORM_FIELDS:
        if name == "themes":
            values[name] = [str(v) for v in form.getlist("themes")]
        else:
            raw = form.get(name)
            values[name] = raw.strip() if isinstance(raw, str) else ""
    return values


def _model_input(values: dict[str, Any], model: type[Any]) -> dict[str, Any]:
    """Form strings to the API model's input: empty means not given, lists split."""
    data: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in model.model_fields:
            continue
        if name == "themes":
            data[name] = list(raw)
        elif name in _LIST_FIELDS:
            data[name] = _split_list(raw, _LIST_FIELDS[name]) if raw else []
        elif raw != "":
            data[name] = raw
    return data


def _form_errors(error: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ())]
        name = loc[0] if loc else "form"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") == "string_pattern_mismatch":
            message = {
                "slug": "Use 2 to 100 lowercase letters, digits and hyphens, starting with a "
                "letter or digit.",
                "contact_email": "Enter an email address such as data@city.example.",
                "landing_page": "Enter an address starting with http:// or https://.",
            }.get(name, message)
        if item.get("type") == "missing":
            message = "This is required."
        found.setdefault(name, message)
    return found


def _dataset_form(
    request: Request,
    actor: Actor,
    organizations: list[Any],
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    dataset: Dataset | None = None,
) -> HTMLResponse:
    return render(
        request,
        "catalog/form.html",
        {
            "values": values,
            "errors": errors or {},
            "organizations": organizations,
            "licenses": LICENSES,
            "themes": THEMES,
            "frequencies": {c: label for c, (label, _) in FREQUENCIES.items()},
            "slug_pattern": SLUG_PATTERN.strip("^$"),
            "dataset": dataset,
            "assets": ASSETS,
        },
        status_code=status,
        actor=actor,
    )


def _editable_dataset(db: Session, actor: Actor, slug: str) -> Dataset:
    dataset = readable_dataset(db, actor, slug)
    if not queries.can_edit(actor, dataset):
        raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")
    return dataset


def _values_of(dataset: Dataset) -> dict[str, Any]:
    return {
        "slug": dataset.slug,
        "title": dataset.title,
        "organization": dataset.organization.slug,
        "description": dataset.description or "",
        "keywords": ", ".join(dataset.keywords or []),
        "themes": list(dataset.themes or []),
        "license_id": dataset.license_id or "",
        "contact_name": dataset.contact_name or "",
        "contact_email": dataset.contact_email or "",
        "temporal_start": dataset.temporal_start.isoformat() if dataset.temporal_start else "",
        "temporal_end": dataset.temporal_end.isoformat() if dataset.temporal_end else "",
        "spatial": dataset.spatial or "",
        "frequency": dataset.frequency or "",
        "languages": ", ".join(dataset.languages or []),
        "landing_page": dataset.landing_page or "",
        "conforms_to": "\n".join(dataset.conforms_to or []),
        "visibility": dataset.visibility,
    }


@router.get("/datasets/{slug}/edit", response_class=HTMLResponse)
def edit_dataset_form(request: Request, slug: str, db: DbSession, actor: Publisher) -> HTMLResponse:
    dataset = _editable_dataset(db, actor, slug)
    return _dataset_form(
        request, actor, _organizations_for(db, actor), _values_of(dataset), dataset=dataset
    )


@router.post("/datasets/{slug}/edit", response_class=HTMLResponse)
def edit_dataset_submit(
    request: Request, slug: str, db: DbSession, actor: Publisher, form: PostedForm
) -> Response:
    values = _form_values(form)
    dataset = _editable_dataset(db, actor, slug)
    values["slug"], values["organization"] = dataset.slug, dataset.organization.slug
    organizations = _organizations_for(db, actor)
    data = _model_input(values, DatasetUpdate)
    # Optional text fields left empty clear the value (the API's PATCH ignores None).
    for name in ("contact_name", "spatial", "description"):
        data.setdefault(name, "")
    try:
        body = DatasetUpdate(**data)
    except ValidationError as error:
        return _dataset_form(
            request,
            actor,
            organizations,
            values,
            errors=_form_errors(error),
            status=422,
            dataset=dataset,
        )
    try:
        actions.update_dataset(
            db,
            actor=actor,
            slug=slug,
            bus=request.app.state.runtime.events,
            **body.model_dump(exclude_unset=True),
        )
    except TownhallError as error:
        if error.status != 422:
            raise
        db.rollback()
        return _dataset_form(
            request,
            actor,
            organizations,
            values,
            errors={"temporal_start": error.message},
            status=422,
            dataset=_editable_dataset(db, actor, slug),
        )
    return RedirectResponse(f"/datasets/{slug}", status_code=303)


@router.post("/datasets/{slug}/publish")
def publish_submit(request: Request, slug: str, db: DbSession, actor: Publisher) -> Response:
    """Make the dataset's record public (its tables are already loaded). When the publication
    workflow refuses (a review is required, a column looks personal, no steward), the upload
    page says why, with each blocker, instead of an error page."""
    _editable_dataset(db, actor, slug)
    try:
        actions.set_dataset_state(db, actor=actor, slug=slug, state="published")
    except TownhallError as error:
        if error.status not in (403, 409):
            raise
        db.rollback()
        context = _upload_context(db, actor, slug, None, None)
        context["publish_refused"] = {
            "message": error.message,
            "errors": [e.get("message", "") for e in error.errors if e.get("message")],
        }
        return render(
            request, "catalog/upload.html", context, status_code=error.status, actor=actor
        )
    return RedirectResponse(f"/datasets/{slug}?_published=1", status_code=303)


# Upload ----------------------------------------------------------------------------------------


def _upload_context(
    db: Session,
    actor: Actor,
    slug: str,
    resource_id: int | None,
    version_number: int | None,
) -> dict[str, Any]:
    dataset = _editable_dataset(db, actor, slug)
    published_map = queries.published_version_map(db, dataset.resources)
    result = None
    if resource_id is not None and version_number is not None:
        chosen = next((r for r in dataset.resources if r.id == resource_id), None)
        if chosen is None:
            raise NotFoundError("resource", f"{resource_id} in {slug}")
        loaded = queries.version_of(db, chosen, version_number)
        if loaded is None:
            raise NotFoundError("version", f"{version_number} of {slug}")
        result = {"resource": chosen, "report": _report_summary(loaded)}
    # Preselect the resource just loaded, else the first one with no table yet.
    selected = resource_id
    if selected is None:
        empty = next((r for r in dataset.resources if not r.published_version_id), None)
        selected = empty.id if empty else None
    return {
        "dataset": dataset,
        "resources": dataset.resources,
        "published_map": published_map,
        "selected_resource": selected,
        "result": result,
        "accept": UPLOAD_ACCEPT,
        "assets": ASSETS,
        **_formatters(),
    }


@router.get("/datasets/{slug}/upload", response_class=HTMLResponse)
def upload_page(
    request: Request,
    slug: str,
    db: DbSession,
    actor: Publisher,
    resource: Annotated[int | None, Query(ge=1)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    created: bool = False,
) -> HTMLResponse:
    """The upload form; with `resource` and `version`, the report of that upload above it."""
    context = _upload_context(db, actor, slug, resource, version)
    context["created"] = created
    return render(request, "catalog/upload.html", context, actor=actor)


def _check_form_csrf(request: Request, actor: Actor, token: str | None) -> None:
    if actor.via != "session":
        return
    given = request.headers.get("x-csrf-token") or token
    secret = request.app.state.settings.secret_key.get_secret_value()
    if not csrf_matches(secret, actor.csrf_binding or "", given):
        raise TownhallError(
            403, "csrf_failed", "The form's CSRF token is missing or stale; reload the page."
        )


def _resource_for_upload(
    request: Request, actor: Actor, slug: str, fields: dict[str, str], filename: str
) -> int:
    """The resource the form named, or a new one (named by the form or after the file)."""
    choice = fields.get("resource", "new").strip()
    with unit_of_work(request.app.state.session_factory) as db:
        dataset = _editable_dataset(db, actor, slug)
        if choice != "new":
            chosen = next((r for r in dataset.resources if str(r.id) == choice), None)
            if chosen is None:
                raise NotFoundError("resource", f"{choice} in {slug}")
            return chosen.id
        stem, _, extension = filename.rpartition(".")
        name = fields.get("new_resource_name", "").strip()[:300] or stem or filename
        created = actions.create_resource(
            db,
            actor=actor,
            slug=slug,
            name=name,
            format=extension.upper() if stem else "",
        )
        return created.id


@router.post("/datasets/{slug}/upload", response_class=HTMLResponse)
async def upload_submit(request: Request, slug: str, actor: Uploader) -> Response:
    """The upload form posted without JavaScript: stream the file in, load it as the chosen
    resource's next version, then show its report (or the refusal, naming rows and columns)."""
    runtime = request.app.state.runtime
    # Checked before a byte is stored: a stranger's upload is not written to disk.
    await run_in_threadpool(_upload_check, request, actor, slug)
    received = await receive_upload(
        request, runtime.settings.data_dir.resolve() / "tmp" / "uploads"
    )
    try:
        _check_form_csrf(request, actor, received.fields.get("csrf_token"))
        resource_id = await run_in_threadpool(
            _resource_for_upload, request, actor, slug, received.fields, received.filename
        )
        try:
            version = await run_in_threadpool(
                lambda: ingest_file(
                    runtime,
                    actor=actor,
                    resource_id=resource_id,
                    path=received.path,
                    source_name=received.filename,
                    table_schema=received.fields.get("schema") or None,
                    source_sha256=received.sha256,
                    source_bytes=received.size,
                )
            )
        except TownhallError as error:
            if error.code not in ("ingest_failed", "invalid_table_schema"):
                raise
            return await run_in_threadpool(
                _upload_refused, request, actor, slug, resource_id, received.filename, error
            )
    finally:
        received.discard()
    return RedirectResponse(
        f"/datasets/{slug}/upload?resource={resource_id}&version={version.number}",
        status_code=303,
    )


def _upload_check(request: Request, actor: Actor, slug: str) -> None:
    with unit_of_work(request.app.state.session_factory) as db:
        _editable_dataset(db, actor, slug)


def _upload_refused(
    request: Request,
    actor: Actor,
    slug: str,
    resource_id: int,
    filename: str,
    error: TownhallError,
) -> HTMLResponse:
    with unit_of_work(request.app.state.session_factory) as db:
        context = _upload_context(db, actor, slug, resource_id, None)
        context["refused"] = {"file": filename, "message": error.message, "errors": error.errors}
        context["created"] = False
        return render(request, "catalog/upload.html", context, status_code=422, actor=actor)
