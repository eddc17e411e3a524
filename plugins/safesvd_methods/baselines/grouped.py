"""SVD-LLM V2's heterogeneous allocation (BASELINES.md), with the budget fixed afterwards.

1. The uniform target: the largest common parameter fraction ``r`` whose ranks fit the budget.
2. Per layer, ``L_min = ‖σ_{>k}‖`` at its uniform rank ``k`` (the theoretical truncation loss: with
   the eigen solver's spectrum, of ``D = W Q Λ^{1/2}``, ``H`` the Gram sum).
3. Layers are grouped by type (the last part of their name: query, key, …, output_dense). Within
   a group of size ``|G|``, the reduction ``R = 1 − r`` is redistributed as
   ``R_l = |G| · R · w_l / Σ_G w``, ``w_l = 1 / log(L_min)`` (``1 / log1p(L_min)`` where
   ``L_min ≤ 1``, where ``log`` would be ≤ 0): more loss, less reduction. ``R_l`` is clipped to
   ``[0, 1]`` and each layer keeps the fraction ``1 − R_l``.
4. That alone can miss the budget (clipping, rounding; the paper measured 353M against 126M). With
   ``fix_budget`` (default) all kept fractions are scaled by one common factor, the largest that
   fits (bisection), so the relative allocation is kept and the budget is met (and used). Without
   it the ranks of step 3 are returned as they are, and the recipe reports the miss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch

from safesvd_core.plugin import (
    Allocator,
    LayerCandidate,
    UniformAllocator,
    largest_fitting,
    minimum_ranks,
    rank_at_fraction,
    total_cost,
)


def layer_type(name: str) -> str:
    """The group of a layer: the last component of its qualified name."""
    return name.rsplit(".", 1)[-1]


def tail_energy(spectrum: torch.Tensor, rank: int) -> float:
    """``‖σ_{>rank}‖₂``."""
    return float(spectrum.to(torch.float64)[rank:].norm())


def _weight(loss: float) -> float:
    """``1 / log L`` (``1 / log1p L`` for ``L ≤ 1``); an exactly zero loss takes all the reduction it can."""
    denominator = math.log(loss) if loss > 1.0 else math.log1p(loss)
    return math.inf if denominator == 0.0 else 1.0 / denominator


@attrs.frozen(kw_only=True)
class GroupedAllocator(Allocator):
    """SVD-LLM V2: per-type groups, reduction ∝ ``1 / log L_min`` within a group, then the budget fix."""

    name: ClassVar[str] = "grouped"
    fix_budget: bool = True

    def kept_fractions(self, layers: Sequence[LayerCandidate], fraction: float) -> dict[str, float]:
        """Each layer's kept parameter fraction ``1 − R_l`` around the uniform ``fraction``."""
        groups: dict[str, list[LayerCandidate]] = {}
        for layer in layers:
            groups.setdefault(layer_type(layer.name), []).append(layer)
        kept: dict[str, float] = {}
        for members in groups.values():
            losses = [
                tail_energy(layer.spectrum, int(fraction * layer.dense_params / layer.params_per_rank))
                for layer in members
            ]
            weights = [_weight(loss) for loss in losses]
            infinite = [math.isinf(w) for w in weights]
            if any(infinite):  # zero truncation loss: those layers share the group's reduction
                weights = [1.0 if flag else 0.0 for flag in infinite]
            total = sum(weights)
            for layer, weight in zip(members, weights, strict=True):
                reduction = len(members) * (1.0 - fraction) * weight / total if total > 0 else 1.0 - fraction
                kept[layer.name] = min(1.0, max(0.0, 1.0 - reduction))
        return kept

    def _ranks(
        self, layers: Sequence[LayerCandidate], kept: dict[str, float], scale: float
    ) -> dict[str, int | None]:
        return {
            layer.name: rank_at_fraction(layer, min(1.0, scale * kept[layer.name]), self.min_rank)
            for layer in layers
        }

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        fraction = UniformAllocator(min_rank=self.min_rank).fraction(layers, budget)
        kept = self.kept_fractions(layers, fraction)
        if not self.fix_budget:
            return self._ranks(layers, kept, 1.0)
        minimum_ranks(layers, self.min_rank, budget)
        positive = [value for value in kept.values() if value > 0.0]
        high = 1.0 / min(positive) if positive else 1.0  # at this scale every layer with kept > 0 is dense
        scale = largest_fitting(lambda c: total_cost(layers, self._ranks(layers, kept, c)) <= budget, high)
        return self._ranks(layers, kept, scale)
