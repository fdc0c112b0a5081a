"""Benchmark harness for docko-worker against pgqueuer and procrastinate.

Run it through ``benchmarks/run.sh`` (or ``make bench``), which builds ``benchmarks/.venv``
first; ``python -m harness --help`` lists the options.
"""
