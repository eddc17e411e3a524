"""Shared fixtures: a hypothesis profile for CI and a fresh plugin manager per test."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# One intra-op thread: on a loaded 2-core machine OpenMP contention slowed stages ~50x.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test starts from a newly loaded plugin manager and leaves none behind."""
    from safesvd_core import _plugins

    _plugins.set_plugin_manager(None)
    yield
    _plugins.set_plugin_manager(None)
