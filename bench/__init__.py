"""Benchmarks of Townhall side by side with its peers (issue 3, Performance); see run.py."""
