"""The whitened truncated-SVD solver (METHOD.md): closed form with α and the Fisher factor S."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
from torch import Tensor

from safesvd_core._interfaces import Factorization, Solver
from safesvd_core._solve import whitened_factorization, whitened_spectrum
from safesvd_core._validators import positive, unit_interval


@attrs.frozen(kw_only=True)
class WhitenedSolver(Solver):
    """Exact minimiser of ``(1−α)E‖S(W−W')x‖² + αE‖S(Wx−W'x̃)‖²`` over rank-k matrices.

    Uses ``fisher`` when ``sensitivity`` is on and the statistic is present, and the shifted
    statistics when present (otherwise the clean-only objective).
    """

    name: ClassVar[str] = "whitened"
    requires: ClassVar[frozenset[str]] = frozenset({"sigma"})

    alpha: float = attrs.field(default=0.5, validator=unit_interval)
    sensitivity: bool = True
    jitter: float = attrs.field(default=1e-6, validator=positive)
    fisher_jitter: float = attrs.field(default=1e-6, validator=positive)

    def _fisher(self, statistics: Mapping[str, Tensor]) -> Tensor | None:
        return statistics.get("fisher") if self.sensitivity else None

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        return whitened_factorization(
            weight, rank, statistics["sigma"],
            sigma_shift=statistics.get("sigma_shift"), sigma_cross=statistics.get("sigma_cross"),
            fisher=self._fisher(statistics), alpha=self.alpha, jitter=self.jitter, fisher_jitter=self.fisher_jitter,
        )

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        return whitened_spectrum(weight, statistics["sigma"], fisher=self._fisher(statistics),
                                 jitter=self.jitter, fisher_jitter=self.fisher_jitter)
