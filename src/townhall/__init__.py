"""Townhall: open data infrastructure for public offices."""

__version__ = "0.1.0"
