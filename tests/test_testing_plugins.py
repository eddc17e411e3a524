"""``safesvd_core.testing.plugins``: a plugin manager of a test's own, and nothing left behind."""

from __future__ import annotations

from typing import ClassVar

import pytest

from safesvd_core import available
from safesvd_core.plugin import PluginManager, plugin_manager
from safesvd_core.testing.plugins import using_plugin_manager

from test_plugins import fake_plugin


class Halves:
    """A stand-in allocator class (the registry only reads ``name``)."""

    name: ClassVar[str] = "halves-for-this-test"


def test_the_fixture_is_a_loaded_manager_of_this_test_alone(fresh_plugin_manager):
    assert isinstance(fresh_plugin_manager, PluginManager) and plugin_manager() is fresh_plugin_manager
    assert "greedy" in available("allocator")  # the entry points are loaded
    fresh_plugin_manager.register(fake_plugin("safesvd_allocators", [Halves]), name="halves")
    assert "halves-for-this-test" in available("allocator")


def test_a_plugin_registered_in_a_block_does_not_outlive_it():
    outside = plugin_manager()
    manager = PluginManager(autoload=False)
    manager.register(fake_plugin("safesvd_allocators", [Halves]), name="halves")
    with using_plugin_manager(manager):
        assert available("allocator") == ["halves-for-this-test"] and plugin_manager() is manager
    assert plugin_manager() is outside and "halves-for-this-test" not in available("allocator")


def test_without_a_manager_the_block_loads_a_fresh_one_on_first_use():
    outside = plugin_manager()
    with using_plugin_manager():
        inside = plugin_manager()
        assert inside is not outside and "greedy" in available("allocator")
    assert plugin_manager() is outside


def test_a_manager_that_is_not_one_is_refused():
    with (
        pytest.raises(TypeError, match="using_plugin_manager takes a PluginManager or None, got str"),
        using_plugin_manager("safesvd"),
    ):
        pass
