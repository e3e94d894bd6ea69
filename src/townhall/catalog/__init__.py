"""Organizations' datasets, resources and versions; search; metadata formats."""
