"""Benchmarks: where the repository's performance figures come from.

One module per chapter package, named after it (`bench/ch11_slo.py`),
with a `run()` that returns a flat mapping of named figures. `make bench`
runs them all and writes `bench/results/<package>.json`.
"""
