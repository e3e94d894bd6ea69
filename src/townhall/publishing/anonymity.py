"""k-anonymity by global generalisation and local suppression.

Each quasi-identifier (what an outsider may know about a person: where, when, what kind of
request) has a hierarchy of levels, finest first (an H3 cell, its parent, the district, the
whole city). `k_anonymise` tries every combination of levels, keeps those that leave at most
`max_suppression` of the rows in groups smaller than `k`, and picks the one that loses the
least detail (the smallest sum of normalised heights, then the fewest suppressed rows). The
rows left in groups smaller than `k` are then suppressed (dropped), so every combination of
quasi-identifier values in the output is shared by at least `k` rows. This is the
"full-domain generalisation plus suppression" of Samarati and Sweeney, searched exhaustively:
the lattices here have a few dozen nodes.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QuasiIdentifier:
    column: str
    levels: tuple[str, ...]
    """Level names, finest first; the last usually generalises to one value ("*")."""
    generalise: Callable[[Any, int], str]
    """(raw value, level index) -> the published value at that level."""


@dataclass
class KAnonymity:
    rows: list[dict[str, Any]]
    levels: dict[str, str]
    suppressed: int
    classes: int
    smallest_class: int
    k: int
    candidates_tried: int

    def report(self, total: int, max_suppression: float) -> dict[str, Any]:
        return {
            "k": self.k,
            "quasi_identifiers": list(self.levels),
            "levels_applied": self.levels,
            "rows_in": total,
            "rows_out": len(self.rows),
            "suppressed": self.suppressed,
            "suppressed_fraction": round(self.suppressed / total, 4) if total else 0.0,
            "max_suppression": max_suppression,
            "equivalence_classes": self.classes,
            "smallest_class": self.smallest_class,
            "generalisations_tried": self.candidates_tried,
        }


def k_anonymise(
    rows: Sequence[dict[str, Any]],
    quasi_identifiers: Sequence[QuasiIdentifier],
    *,
    k: int,
    max_suppression: float,
) -> KAnonymity:
    """Generalise and suppress `rows` (each holding the raw value of every quasi-identifier
    under its column) until every group of equal quasi-identifiers has at least `k` rows.

    Returns new row dicts with the quasi-identifier columns replaced by published values.
    When no combination keeps suppression under `max_suppression`, the coarsest one is used
    and whatever is still too small is suppressed (possibly every row: nothing unsafe is ever
    returned). Raises ValueError for k < 2.
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    n = len(rows)
    # Every row's value at every level of every quasi-identifier, computed once.
    columns = [
        [[qi.generalise(row[qi.column], level) for row in rows] for level in range(len(qi.levels))]
        for qi in quasi_identifiers
    ]
    best: tuple[float, int, tuple[int, ...], Counter[tuple[str, ...]]] | None = None
    tried = 0
    combinations = list(itertools.product(*(range(len(qi.levels)) for qi in quasi_identifiers)))
    for combo in combinations:
        tried += 1
        keys = list(zip(*(columns[i][level] for i, level in enumerate(combo)), strict=True))
        counts = Counter(keys)
        suppressed = sum(c for c in counts.values() if c < k)
        if n and suppressed > max_suppression * n:
            continue
        loss = sum(
            level / max(1, len(qi.levels) - 1)
            for level, qi in zip(combo, quasi_identifiers, strict=True)
        )
        if best is None or (loss, suppressed) < (best[0], best[1]):
            best = (loss, suppressed, combo, counts)
    if best is None:
        combo = combinations[-1]
        keys = list(zip(*(columns[i][level] for i, level in enumerate(combo)), strict=True))
        best = (0.0, 0, combo, Counter(keys))
    _, _, combo, counts = best
    out: list[dict[str, Any]] = []
    suppressed = 0
    for index, row in enumerate(rows):
        key = tuple(columns[i][level][index] for i, level in enumerate(combo))
        if counts[key] < k:
            suppressed += 1
            continue
        published = dict(row)
        for qi, value in zip(quasi_identifiers, key, strict=True):
            published[qi.column] = value
        out.append(published)
    kept = [c for c in counts.values() if c >= k]
    return KAnonymity(
        rows=out,
        levels={
            qi.column: qi.levels[level] for qi, level in zip(quasi_identifiers, combo, strict=True)
        },
        suppressed=suppressed,
        classes=len(kept),
        smallest_class=min(kept) if kept else 0,
        k=k,
        candidates_tried=tried,
    )
