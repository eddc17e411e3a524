"""Shipped test helpers: hypothesis strategies and conformance suites that plugins subclass.

One suite per plugin kind: :mod:`~safesvd_core.testing.estimators`, :mod:`~safesvd_core.testing.solvers`,
:mod:`~safesvd_core.testing.allocators`, :mod:`~safesvd_core.testing.adapters`,
:mod:`~safesvd_core.testing.physics` and :mod:`~safesvd_core.testing.recipes`; one per seam of the
engine: :mod:`~safesvd_core.testing.phases`, :mod:`~safesvd_core.testing.hooks`,
:mod:`~safesvd_core.testing.sources` and :mod:`~safesvd_core.testing.reducers`.
:mod:`~safesvd_core.testing.plugins` gives a test a plugin manager of its own (the pytest fixture
``fresh_plugin_manager``), :mod:`~safesvd_core.testing.strategies` has the strategies,
:mod:`~safesvd_core.testing.reduction` a two-process reduction in threads and
:mod:`~safesvd_core.testing.loopback` real processes in one gloo group on this machine. Import the
submodules directly; they need the ``test`` extra (pytest, hypothesis).
"""
