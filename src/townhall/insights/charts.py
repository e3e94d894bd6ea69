"""Server-side SVG charts: horizontal bars, a line with a forecast band, a weekday x hour heatmap.

Each builder lays out shapes in plain numbers; the shared macro `web/templates/_charts.html`
draws them as inline SVG (no script), with the same numbers as a table for screen readers and
for anyone who wants them. The same macro draws the catalog's chart (`catalog.views`: DuckDB
queries on one dataset column, one chart per page, so fixed element ids); these take plain
series and carry their own id, so a dashboard can hold several.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH = 720


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


@dataclass
class Chart:
    id: str
    kind: str  # bar | line | heatmap
    title: str
    summary: str
    width: int = WIDTH
    height: int = 300
    plot: dict[str, float] = field(default_factory=dict)
    shapes: list[dict[str, Any]] = field(default_factory=list)
    x_ticks: list[dict[str, Any]] = field(default_factory=list)
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    line: str = ""
    forecast_line: str = ""
    band: str = ""
    table_headers: tuple[str, ...] = ()
    table: list[tuple[str, ...]] = field(default_factory=list)
    note: str | None = None


def bar_chart(
    chart_id: str,
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    value_label: str,
    highlight: Sequence[float] | None = None,
    highlight_label: str | None = None,
) -> Chart:
    """Horizontal bars, longest first as given. `highlight` draws a darker part of each bar
    (e.g. the breached share of each service's backlog)."""
    chart = Chart(id=chart_id, kind="bar", title=title, summary="")
    headers = ["", value_label] + ([highlight_label] if highlight_label else [])
    chart.table_headers = tuple(headers)
    if not items:
        chart.note = "Nothing to show yet."
        return chart
    bar, gap, top, left, right = 18, 8, 10, 220, 70
    chart.height = top + len(items) * (bar + gap) + 30
    plot_width = chart.width - left - right
    maximum = nice_ceiling(max(v for _, v in items))
    for i, (label, value) in enumerate(items):
        y = top + i * (bar + gap)
        part = highlight[i] if highlight else 0
        chart.shapes.append(
            {
                "x": left,
                "y": y,
                "w": max(plot_width * value / maximum, 1),
                "h": bar,
                "hw": plot_width * part / maximum if part else 0,
                "label": label if len(label) <= 32 else label[:31] + "…",
                "full": label,
                "value": fmt(value),
                "part": fmt(part) if highlight else None,
            }
        )
        row = [label, fmt(value)] + ([fmt(part)] if highlight_label else [])
        chart.table.append(tuple(row))
    bottom = top + len(items) * (bar + gap)
    chart.plot = {"left": left, "right": left + plot_width, "top": top, "bottom": bottom}
    chart.x_ticks = [
        {"x": left + plot_width * t / 4, "label": fmt(maximum * t / 4)} for t in range(5)
    ]
    chart.summary = f"{len(items)} bars; largest {fmt(max(v for _, v in items))} {value_label}"
    return chart


def line_chart(
    chart_id: str,
    title: str,
    history: Sequence[tuple[str, float]],
    forecast: Sequence[tuple[str, float, float, float]] = (),
    *,
    value_label: str,
) -> Chart:
    """Observed values as a line, then the forecast as a dashed line inside its interval."""
    chart = Chart(id=chart_id, kind="line", title=title, summary="")
    chart.table_headers = ("Period", value_label, "Forecast", "Lower bound", "Upper bound")
    if not history and not forecast:
        chart.note = "Nothing to show yet."
        return chart
    left, right, top, bottom = 56, 20, 14, 40
    plot_width, plot_height = chart.width - left - right, chart.height - top - bottom
    count = len(history) + len(forecast)
    maximum = nice_ceiling(max([v for _, v in history] + [hi for *_, hi in forecast] + [1]))

    def x_of(i: int) -> float:
        return left + (plot_width / 2 if count == 1 else plot_width * i / (count - 1))

    def y_of(value: float) -> float:
        return top + plot_height * (1 - value / maximum)

    chart.plot = {"left": left, "right": left + plot_width, "top": top, "bottom": top + plot_height}
    chart.line = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, (_, v) in enumerate(history))
    offset = len(history)
    if forecast:
        joined = ([(offset - 1, history[-1][1])] if history else []) + [
            (offset + i, v) for i, (_, v, _, _) in enumerate(forecast)
        ]
        chart.forecast_line = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in joined)
        upper = [f"{x_of(offset + i):.1f},{y_of(hi):.1f}" for i, (*_, hi) in enumerate(forecast)]
        lower = [
            f"{x_of(offset + i):.1f},{y_of(lo):.1f}" for i, (_, _, lo, _) in enumerate(forecast)
        ]
        chart.band = " ".join(upper + lower[::-1])
    labels = [p for p, _ in history] + [p for p, *_ in forecast]
    every = max(1, math.ceil(count / 7))
    chart.x_ticks = [
        {"x": x_of(i), "label": label} for i, label in enumerate(labels) if i % every == 0
    ]
    chart.y_ticks = [{"y": y_of(maximum * t / 4), "label": fmt(maximum * t / 4)} for t in range(5)]
    for period, value in history:
        chart.table.append((period, fmt(value), "", "", ""))
    for period, value, low, high in forecast:
        chart.table.append(
            (period, "", fmt(round(value, 1)), fmt(round(low, 1)), fmt(round(high, 1)))
        )
    chart.summary = f"{len(history)} observed periods" + (
        f" and a {len(forecast)}-period forecast with its interval" if forecast else ""
    )
    return chart


def heatmap(
    chart_id: str,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float]],
    *,
    value_label: str,
) -> Chart:
    """A grid of cells shaded by value (rows x columns), e.g. weekdays x hours."""
    chart = Chart(id=chart_id, kind="heatmap", title=title, summary="")
    chart.table_headers = ("", *columns)
    maximum = max((v for row in values for v in row), default=0)
    if not maximum:
        chart.note = "Nothing to show yet."
        return chart
    left, top, cell_w, cell_h = 90, 24, (WIDTH - 100) / max(len(columns), 1), 22
    chart.height = top + cell_h * len(rows) + 10
    for r, (name, row) in enumerate(zip(rows, values, strict=True)):
        for c, value in enumerate(row):
            chart.shapes.append(
                {
                    "x": left + c * cell_w,
                    "y": top + r * cell_h,
                    "w": cell_w - 1,
                    "h": cell_h - 1,
                    # Five shades (classes heat-0..heat-4); 0 only for empty cells.
                    "level": 0 if not value else 1 + min(3, int(4 * value / (maximum + 1e-9))),
                    "label": f"{name} {columns[c]}",
                    "value": fmt(value),
                }
            )
        chart.table.append((name, *(fmt(v) if v else "" for v in row)))
    chart.y_ticks = [
        {"y": top + r * cell_h + cell_h / 2 + 4, "label": n} for r, n in enumerate(rows)
    ]
    chart.x_ticks = [
        {"x": left + c * cell_w + cell_w / 2, "label": name}
        for c, name in enumerate(columns)
        if c % 2 == 0
    ]
    chart.plot = {"left": left, "top": top}
    chart.summary = f"{value_label}; darkest cell {fmt(maximum)}"
    return chart
