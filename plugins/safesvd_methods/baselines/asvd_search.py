"""ASVD's rank search (BASELINES.md, App. F.1): per-(layer, ratio) sensitivity, then a binary search.

Every (layer, ratio) triple gets a sensitivity (higher = more damaging). The triples are sorted
most damaging first; a suffix of that list is a set of allowed compressions, each layer taking the
smallest ratio it has in the set (a layer with none stays dense). The search returns the *shortest*
suffix (the least compression) whose exact parameter cost fits the budget. The official code keeps
the last probed midpoint instead, which can miss the budget by one triple; we keep the last one
that fits.

Sensitivity: a table of calibration losses (layer compressed alone at each ratio), or by default
the official ``stable-rank`` proxy, ``−sr · r^0.1`` with ``sr = ‖σ‖₂ / σ_max`` of the candidate's
spectrum. With that sign, high-stable-rank layers count as the least sensitive and are compressed
first — reproduced as the official code has it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import attrs
import torch

from safesvd_core.plugin import (
    Allocator,
    BudgetError,
    ConfigError,
    LayerCandidate,
    rank_at_fraction,
    total_cost,
)

#: ASVD's candidate parameter ratios.
ASVD_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _ratios(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not value or not all(
        isinstance(r, (int, float)) and not isinstance(r, bool) and 0.0 < r < 1.0 for r in value
    ):
        raise ConfigError(
            f"{attribute.name} must be a non-empty sequence of numbers in (0, 1), got {value!r}"
        )


def stable_rank(spectrum: torch.Tensor) -> float:
    """``‖σ‖₂ / σ_max`` (the square root of the stable rank); 0 for a zero matrix."""
    values = spectrum.to(torch.float64)
    top = float(values.max()) if values.numel() else 0.0
    return float(values.norm()) / top if top > 0.0 else 0.0


@attrs.frozen(kw_only=True)
class ASVDAllocator(Allocator):
    """ASVD's sensitivity-sorted binary search over parameter ratios ``ratios``.

    ``losses`` (layer → ratio → calibration loss) makes it the calibration-loss search; without it
    the stable-rank proxy of each candidate's spectrum is used.
    """

    name: ClassVar[str] = "asvd"
    ratios: tuple[float, ...] = attrs.field(
        default=ASVD_RATIOS, converter=lambda v: tuple(sorted(v)), validator=_ratios
    )
    losses: Mapping[str, Mapping[float, float]] | None = None

    def sensitivities(self, layers: Sequence[LayerCandidate]) -> list[tuple[str, float, float]]:
        """``(layer, ratio, sensitivity)`` in layer order, ratios ascending."""
        triples = []
        for layer in layers:
            if self.losses is None:
                rank = stable_rank(layer.spectrum)
                triples += [(layer.name, ratio, -rank * ratio**0.1) for ratio in self.ratios]
                continue
            table = self.losses.get(layer.name)
            if table is None or any(ratio not in table for ratio in self.ratios):
                raise ConfigError(
                    f"the ASVD loss table lacks layer {layer.name!r} at some of the ratios {self.ratios}"
                )
            triples += [(layer.name, ratio, float(table[ratio])) for ratio in self.ratios]
        return triples

    def allocate(self, layers: Sequence[LayerCandidate], budget: int) -> dict[str, int | None]:
        ordered = sorted(self.sensitivities(layers), key=lambda triple: -triple[2])  # stable: ties keep order

        def ranks_from(start: int) -> dict[str, int | None]:
            smallest: dict[str, float] = {}
            for name, ratio, _ in ordered[start:]:
                smallest[name] = min(smallest.get(name, 1.0), ratio)
            return {
                layer.name: rank_at_fraction(layer, smallest[layer.name], self.min_rank)
                if layer.name in smallest
                else None
                for layer in layers
            }

        def fits(start: int) -> bool:
            return total_cost(layers, ranks_from(start)) <= budget

        if not fits(0):
            raise BudgetError(
                f"even every layer at ASVD's smallest ratio {self.ratios[0]} keeps "
                f"{total_cost(layers, ranks_from(0)):,} "
                f"weights, over the budget of {budget:,}; add a smaller ratio or raise the budget"
            )
        low, high = 0, len(ordered)  # cost grows with the start index: find the largest start that fits
        while low < high:
            middle = (low + high + 1) // 2
            if fits(middle):
                low = middle
            else:
                high = middle - 1
        return ranks_from(low)
