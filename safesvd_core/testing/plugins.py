"""A plugin manager of a test's own, so that plugins registered in one test do not leak into the next.

In a plugin's ``conftest.py``::

    from safesvd_core.testing.plugins import fresh_plugin_manager  # noqa: F401  (a pytest fixture)

    def test_my_allocator_is_registered(fresh_plugin_manager):
        fresh_plugin_manager.register(my_plugin_module)
        assert "my-allocator" in available("allocator")

or, without pytest, ``with using_plugin_manager(manager): ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from ..kinds._plugins import PluginManager, set_plugin_manager


@contextlib.contextmanager
def using_plugin_manager(manager: PluginManager | None = None) -> Iterator[None]:
    """Inside the block, ``registry``, ``available``, ``compress`` and the CLI use ``manager`` (``None``: a
    fresh one, created with the entry points on first use); the manager before the block is back after it."""
    if manager is not None and not isinstance(manager, PluginManager):
        raise TypeError(f"using_plugin_manager takes a PluginManager or None, got {type(manager).__name__}")
    previous = set_plugin_manager(manager)
    try:
        yield
    finally:
        set_plugin_manager(previous)


@pytest.fixture
def fresh_plugin_manager() -> Iterator[PluginManager]:
    """A newly loaded :class:`~safesvd_core.plugin.PluginManager` (the entry points, honouring
    ``SAFESVD_DISABLE_PLUGIN_AUTOLOAD`` and ``SAFESVD_PLUGINS``), process-wide for the test only:
    ``fresh_plugin_manager.register(module)`` adds a plugin that the next test does not see."""
    manager = PluginManager()
    with using_plugin_manager(manager):
        yield manager
