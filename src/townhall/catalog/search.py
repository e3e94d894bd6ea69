"""Full-text search over the catalog: SQLite FTS5 embedded, PostgreSQL full-text in production.

No separate search server. Titles weigh more than descriptions, keywords and column names.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.orm import Session

from townhall.catalog.models import Dataset

_WORD = re.compile(r"\w+", re.UNICODE)


def search_body(dataset: Dataset, column_names: list[str]) -> str:
    parts = [
        dataset.description or "",
        " ".join(dataset.keywords or []),
        " ".join(column_names),
        dataset.organization.name if dataset.organization else "",
    ]
    return "\n".join(parts)


def index_dataset(session: Session, dataset: Dataset, column_names: list[str]) -> None:
    """Refresh one dataset's search entry (idempotent)."""
    dataset.search_text = search_body(dataset, column_names)
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM dataset_search WHERE rowid = :id"), {"id": dataset.id})
        session.execute(
            text("INSERT INTO dataset_search (rowid, title, body) VALUES (:id, :title, :body)"),
            {"id": dataset.id, "title": dataset.title, "body": dataset.search_text},
        )


def unindex_dataset(session: Session, dataset_id: int) -> None:
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM dataset_search WHERE rowid = :id"), {"id": dataset_id})


def ranked_ids(session: Session, query: str) -> list[int]:
    """Dataset ids matching every word of `query` (prefix match), best first."""
    words = _WORD.findall(query.lower())[:20]
    if not words:
        return []
    if session.get_bind().dialect.name == "sqlite":
        # Each word quoted (no FTS5 syntax from users) and prefix-matched.
        match = " AND ".join(f'"{w}"*' for w in words)
        rows = session.execute(
            text(
                "SELECT rowid FROM dataset_search WHERE dataset_search MATCH :match "
                "ORDER BY bm25(dataset_search, 10.0, 1.0) LIMIT 10000"
            ),
            {"match": match},
        )
        return [row[0] for row in rows]
    tsquery = " & ".join(f"{w}:*" for w in words)
    rows = session.execute(
        text(
            "SELECT id FROM datasets, to_tsquery('simple', :q) query "
            "WHERE (setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('simple', coalesce(search_text, '')), 'B')) @@ query "
            "ORDER BY ts_rank(setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
            "setweight(to_tsvector('simple', coalesce(search_text, '')), 'B'), query) DESC "
            "LIMIT 10000"
        ),
        {"q": tsquery},
    )
    return [row[0] for row in rows]
