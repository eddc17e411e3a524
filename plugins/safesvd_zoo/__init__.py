"""Reference models and built-in data for demos, tests and benchmarks (no downloads, ever)."""
