"""A/B experiments: what a variant changes and who gets which (design.py), the test that
tells a difference from noise (stats.py), both plain logic; and the results that the API and
the worker both compute from storage (results.py)."""
