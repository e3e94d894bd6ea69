"""A seeded, deterministic demo city ("Riverton") as plain data.

Demos, screenshots, benchmarks and tests all need the same believable city: districts with
boundaries, offices with opening hours, a service catalogue, staff, two years of service
requests and a few open datasets. `townhall.demo.city.generate_city` builds it without touching
a database, so the seeding code (and anything else) can decide how to store it.
"""
