"""Shared fixtures: a hypothesis profile for CI and a plugin manager of each test's own."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from safesvd_core.testing.plugins import fresh_plugin_manager, using_plugin_manager  # noqa: F401 (a fixture)

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# One intra-op thread: on a loaded 2-core machine OpenMP contention slowed stages ~50x.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _own_plugin_manager():
    """Every test starts from a newly loaded plugin manager (created on first use) and leaves none behind;
    a test that registers plugins of its own takes ``fresh_plugin_manager`` (safesvd_core.testing.plugins)."""
    with using_plugin_manager():
        yield
