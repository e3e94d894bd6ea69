"""Dataset tables: the DuckLake lake, ingest, queries and exports."""
