"""The benchmark harness on a tiny table, so it keeps working between full runs (`make bench`).

Seconds here mean nothing; what is checked is that every stage runs end to end against real
servers, that every system gives the same answers, and that the report is written.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
from bench.generate import generate_csv
from bench.report import BEGIN, END, Results, write_markdown
from bench.run import main

ROWS = 5_000


def _run(tmp_path, *extra: str) -> tuple[str, dict]:
    output = tmp_path / "performance.md"
    raw = tmp_path / "results.json"
    code = main(
        [
            "--rows",
            str(ROWS),
            "--runs",
            "1",
            "--budget",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--output",
            str(output),
            "--json",
            str(raw),
            *extra,
        ]
    )
    results = json.loads(raw.read_text())
    assert code == 0, results["problems"]
    return output.read_text(), results


def test_generator_is_deterministic_and_a_prefix_is_the_same_data(tmp_path):
    whole = generate_csv(tmp_path / "a.csv", 1_000).path.read_text().splitlines()
    again = generate_csv(tmp_path / "b.csv", 1_000).path.read_text().splitlines()
    head = generate_csv(tmp_path / "c.csv", 1_000, limit=100).path.read_text().splitlines()
    assert whole == again
    assert head == whole[:101]
    assert whole[0].split(",")[:4] == ["request_id", "created_at", "closed_at", "category"]


def test_harness_runs_townhall_against_raw_duckdb(tmp_path):
    text, results = _run(tmp_path, "--skip-peers")
    assert BEGIN in text
    assert END in text
    assert "### Targets (issue 3)" in text
    assert {r["system"] for r in results["ingest"]} == {"Townhall", "raw DuckDB"}
    assert set(results["queries"]) == {"first_page", "year_count", "median", "keyword", "deep_page"}
    for timings in results["queries"].values():
        assert all(t["error"] is None and t["samples"] for t in timings.values())
    assert results["problems"] == []
    assert results["order_notes"] == []
    export = next(e for e in results["exports"] if e["system"] == "Townhall")
    assert export["bytes"] > ROWS * 100
    assert export["peak_bytes"] > 0


def test_rewriting_keeps_the_text_around_the_generated_block(tmp_path):
    output = tmp_path / "performance.md"
    output.write_text(f"# Kept\n\n{BEGIN}\nold numbers\n{END}\n\nKept too.\n")
    empty = Results(
        command="python -m bench --rows 50",
        started="today",
        rows=50,
        csv_bytes=10_000,
        generate_seconds=None,
        machine={"nproc": "2"},
        versions={},
    )
    write_markdown(output, empty)
    rewritten = output.read_text()
    assert rewritten.startswith("# Kept")
    assert rewritten.rstrip().endswith("Kept too.")
    assert "old numbers" not in rewritten
    assert "50 generated" in rewritten


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("datasette", "sqlite_utils")),
    reason="the bench extra (datasette, sqlite-utils) is not installed: pip install -e .[bench]",
)
def test_harness_runs_the_peers(tmp_path):
    from bench.ingest import postgres_available

    text, results = _run(tmp_path, "--sqlite-utils-rows", "500")
    systems = {r["system"]: r for r in results["ingest"]}
    assert systems["sqlite-utils"]["extrapolated_from"] == 500
    if postgres_available():
        assert systems["PostgreSQL"]["seconds"] > 0
    assert all("datasette" in timings for timings in results["queries"].values())
    assert {e["system"] for e in results["exports"]} == {"Townhall", "Datasette", "raw DuckDB"}
    assert "Townhall/Datasette" in text
