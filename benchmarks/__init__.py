"""Benchmarks of safesvd: run with ``python -m benchmarks.run`` (see its ``--help``)."""
