"""Every built-in estimator runs the shipped conformance suite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from safesvd_core.plugin import LayerSignals
from safesvd_core.testing.estimators import EstimatorConformance


class TestCleanCovariance(EstimatorConformance):
    plugin_name: ClassVar[str] = "clean-covariance"


class TestShiftedCovariance(EstimatorConformance):
    plugin_name: ClassVar[str] = "shifted-covariance"


class TestOutputFisher(EstimatorConformance):
    plugin_name: ClassVar[str] = "output-fisher"


class TestEnergyBalanced(EstimatorConformance):
    plugin_name: ClassVar[str] = "energy-balanced"
    domains: ClassVar[tuple[str, ...]] = ("a", "b")


class TestEnergyBalancedOfSeveralEstimators(EstimatorConformance):
    plugin_name: ClassVar[str] = "energy-balanced"
    options: ClassVar[Mapping[str, Any]] = {
        "inner": ("clean-covariance", "shifted-covariance", "output-fisher")
    }
    domains: ClassVar[tuple[str, ...]] = ("b", "a", "c")


class TestEnergyBalancedByGroup(EstimatorConformance):
    """Balanced over the batch source's statistics groups (e.g. one-step against rollout rows)."""

    plugin_name: ClassVar[str] = "energy-balanced"
    options: ClassVar[Mapping[str, Any]] = {"by": ("group",)}
    domains: ClassVar[tuple[str, ...]] = ("one-step", "rollout")

    def make_signals(
        self, generator: torch.Generator, rows: int, in_features: int, out_features: int, domain: str = "a"
    ) -> LayerSignals:
        """The suite's labels as statistics groups, without a domain."""
        signals = super().make_signals(generator, rows, in_features, out_features, domain)
        return attrs.evolve(signals, domain=None, group=domain)


class TestInputAbsMean(EstimatorConformance):
    plugin_name: ClassVar[str] = "input-abs-mean"


class TestWeightFisher(EstimatorConformance):
    plugin_name: ClassVar[str] = "weight-fisher"
    #: One update is one call of the layer: (Σ_rows g xᵀ)² per call, so splitting a call's rows changes it.
    row_additive: ClassVar[bool] = False


class TestCleanGram(EstimatorConformance):
    plugin_name: ClassVar[str] = "clean-gram"
