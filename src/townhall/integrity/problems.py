"""What a verification found wrong, named so an operator knows where to look."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding. `area` is `audit`, `checkpoint`, `manifest`, `data_file` or `download`;
    `subject` names the thing (`audit entry seq 12`, `parks version 3 (resource 4)`, a file);
    `message` says what is wrong with it, in a sentence."""

    area: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"
