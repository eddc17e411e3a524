"""Baseline statistics: input magnitudes (ASVD), per-input-channel weight Fisher (FWSVD), the Gram
sum (SVD-LLM V2)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from safesvd_core.plugin import CleanCovariance, LayerSignals, MomentEstimator, RunningMoment


class _VectorMean(MomentEstimator):
    """A per-input-channel mean, kept as a ``1 × n`` :class:`RunningMoment` against a constant 1."""

    key: ClassVar[str]

    def _create(self) -> dict[str, RunningMoment]:
        return {self.key: RunningMoment(1, self.in_features)}

    def _add(self, values: Tensor) -> None:
        """Add rows of ``values`` (``(r, n)``): the mean is taken over all rows added."""
        self.moments[self.key].add(
            torch.ones(values.shape[0], 1, dtype=values.dtype, device=values.device), values
        )

    def statistics(self) -> dict[str, Tensor]:
        return {self.key: self.moments[self.key].mean().reshape(-1)}


class InputAbsMean(_VectorMean):
    """``input_abs_mean = E|x_j|`` over rows: ASVD's activation magnitude per input channel."""

    name: ClassVar[str] = "input-abs-mean"
    requires: ClassVar[frozenset[str]] = frozenset({"inputs"})
    provides: ClassVar[frozenset[str]] = frozenset({"input_abs_mean"})
    key: ClassVar[str] = "input_abs_mean"

    def update(self, signals: LayerSignals) -> None:
        self._add(self._signal(signals, "inputs").abs())


class WeightFisher(_VectorMean):
    """``weight_fisher = I_j = Σ_i E[(∂L/∂W_ij)²]``: FWSVD's Fisher, summed over outputs, per input channel.

    One update is one call of the layer on one batch: ``∂L/∂W = gᵀ x`` over that call's rows, squared,
    summed over the outputs, averaged over calls. (A layer called several times per forward pass
    gets one term per call, not the square of the summed gradient.)
    """

    name: ClassVar[str] = "weight-fisher"
    requires: ClassVar[frozenset[str]] = frozenset({"inputs", "output_grads"})
    provides: ClassVar[frozenset[str]] = frozenset({"weight_fisher"})
    key: ClassVar[str] = "weight_fisher"

    def update(self, signals: LayerSignals) -> None:
        inputs = self._signal(signals, "inputs").to(torch.float64)
        grads = self._signal(signals, "output_grads").to(inputs.device, torch.float64)
        gradient = grads.mT @ inputs  # ∂L/∂W, m × n
        self._add((gradient**2).sum(0, keepdim=True))


class CleanGram(CleanCovariance):
    """``gram = H = Σ x xᵀ``, the clean input Gram *sum* (not the mean): SVD-LLM V2 defines its
    truncation loss on it, and its ``1/log`` allocation is not scale-free."""

    name: ClassVar[str] = "clean-gram"
    provides: ClassVar[frozenset[str]] = frozenset({"gram"})

    def statistics(self) -> dict[str, Tensor]:
        moment = self.moments["sigma"]
        return {"gram": moment.mean() * moment.count}
