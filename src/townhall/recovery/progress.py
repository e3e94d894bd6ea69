"""How long operations report progress, without tying them to Rich: the CLI passes a
`Steps` backed by a Rich progress bar, jobs and tests pass nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Advance = Callable[[int], None]


class Steps(Protocol):
    def step(self, description: str, total: int | None = None) -> Advance:
        """Start a step (a bar of `total` units, or an open-ended one); returns `advance(n)`."""
        ...


class NoSteps:
    def step(self, description: str, total: int | None = None) -> Advance:
        return lambda _n: None


class RichSteps:
    """One Rich task per step; byte totals show as such."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def step(self, description: str, total: int | None = None) -> Advance:
        task = self._progress.add_task(description, total=total)
        if total == 0:
            self._progress.update(task, total=1, completed=1)

        def advance(n: int) -> None:
            self._progress.update(task, advance=n)

        return advance
