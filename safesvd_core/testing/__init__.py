"""Shipped test helpers: hypothesis strategies and conformance suites that plugins subclass.

Import the submodules directly (e.g. :mod:`safesvd_core.testing.physics`); they need the ``test``
extra (pytest, hypothesis).
"""
