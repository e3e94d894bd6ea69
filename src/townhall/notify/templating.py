"""Placeholders in templates, GOV.UK Notify style: `((name))`.

Double parentheses, not braces, so a template can hold JSON, CSS or a brace in prose without
escaping, and a missing value is easy to spot in a sent message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\(\(\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\)")


def placeholders(text: str) -> list[str]:
    """The placeholder names a template uses, in order of first appearance."""
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill `((name))` from `values`. A name without a value is left as it is, so a missing
    value shows in review instead of silently vanishing."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        return match.group(0) if value is None else str(value)

    return PLACEHOLDER.sub(fill, text)
