"""What the conformance suites share."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings


def across_subclasses(**options: Any) -> settings:
    """Hypothesis settings for a suite's property tests: each subclass runs the inherited test on its
    own instance, which is intended (``differing_executors``); no deadline, as the first call of a
    plugin pays for torch's warm-up. ``options`` override the profile (e.g. ``max_examples``)."""
    return settings(
        deadline=None,
        suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.differing_executors],
        **options,
    )
