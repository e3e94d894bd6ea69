"""Integrity: the Ed25519 signing key, signed audit checkpoints, signed dataset version
manifests, and `townhall verify` over all of them (docs/integrity.md)."""

from __future__ import annotations

from fastapi import FastAPI


def register(app: FastAPI) -> None:
    from townhall.integrity import api

    app.include_router(api.router)
