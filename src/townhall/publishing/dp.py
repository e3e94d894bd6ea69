"""Differentially private counts through OpenDP.

`noisy_counts` counts records per (area, category) cell for one week and adds Laplace noise
(OpenDP's discrete Laplace on integers) calibrated so that adding or removing any one record
changes the probability of any output by at most a factor of e^epsilon. The cells are fixed in
advance from public lists (areas, categories), never read off the data, so which cells exist
tells nothing either. Negative noisy counts are shown as 0 (post-processing costs no privacy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# OpenDP's own modules, not `opendp.prelude`: the prelude also loads its scikit-learn and
# pandas extras (2.5 s and about 150 MB in every process that imports the job registry).
from opendp import domains, measurements, metrics, transformations
from opendp.mod import enable_features
from opendp.typing import L1Distance

enable_features("contrib")

OTHER = "other"
SEPARATOR = "\x1f"


def cells(areas: Sequence[str], categories: Sequence[str]) -> list[str]:
    return [f"{a}{SEPARATOR}{c}" for a in (*areas, OTHER) for c in (*categories, OTHER)]


def measurement(keys: Sequence[str], epsilon: float) -> Any:
    """An OpenDP measurement: a dataset of cell keys -> noisy count per key (same order)."""
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    counts = transformations.make_count_by_categories(
        input_domain=domains.vector_domain(domains.atom_domain(T=str)),
        input_metric=metrics.symmetric_distance(),
        categories=list(keys),
        null_category=False,
        MO=L1Distance[int],
        TOA=int,
    )
    # One record moves the counts by 1 in L1, so a scale of 1/epsilon gives epsilon-DP.
    chain = counts >> measurements.then_laplace(scale=1.0 / epsilon)
    spent = chain.map(1)
    if spent > epsilon * (1 + 1e-9):
        raise AssertionError(f"OpenDP says this release costs {spent}, more than {epsilon}")
    return chain


def noisy_counts(
    records: Iterable[tuple[str, str]],
    *,
    areas: Sequence[str],
    categories: Sequence[str],
    epsilon: float,
) -> dict[tuple[str, str], int]:
    """Noisy count of each (area, category) cell, with `OTHER` for values off the lists."""
    area_set, category_set = set(areas), set(categories)
    data = [
        f"{a if a in area_set else OTHER}{SEPARATOR}{c if c in category_set else OTHER}"
        for a, c in records
    ]
    keys = cells(areas, categories)
    released = measurement(keys, epsilon)(data)
    result = {}
    for key, value in zip(keys, released, strict=True):
        area, category = key.split(SEPARATOR)
        result[(area, category)] = max(0, int(value))
    return result


def laplace_scale(epsilon: float) -> float:
    return 1.0 / epsilon
