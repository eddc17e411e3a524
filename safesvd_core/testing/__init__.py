"""Shipped test helpers: hypothesis strategies and conformance suites that plugins subclass.

One suite per plugin kind: :mod:`~safesvd_core.testing.estimators`, :mod:`~safesvd_core.testing.solvers`,
:mod:`~safesvd_core.testing.allocators`, :mod:`~safesvd_core.testing.adapters` and
:mod:`~safesvd_core.testing.physics`; :mod:`~safesvd_core.testing.strategies` has the strategies and
:mod:`~safesvd_core.testing.reduction` a two-process reduction in threads, :mod:`~safesvd_core.testing.loopback` real processes in one gloo group on this machine. Import the submodules
directly; they need the ``test`` extra (pytest, hypothesis).
"""
