"""Privacy-safe publication of operational data as open datasets."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    return None
