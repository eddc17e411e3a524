"""The ``safesvd`` command line's application layer: ``compress`` a model a TOML config names,
then ``evaluate``, ``inspect`` and ``export`` its output folder (docs/cli.md). It sits on the
public API of :mod:`safesvd_core`; the core never imports it."""
