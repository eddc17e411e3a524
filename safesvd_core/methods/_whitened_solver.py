"""The whitened truncated-SVD solver (docs/method.md, "The layer solution"): closed form with α and
the Fisher factor S."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
from torch import Tensor

from .._defaults import DEFAULTS
from ..kinds._interfaces import Factorization, Solver
from ..kinds._validators import one_of, positive, unit_interval
from ..statistics._gram import gram_floor
from ..statistics._solve import DECOMPOSITIONS, whitened_factorization, whitened_spectrum


@attrs.frozen(kw_only=True)
class WhitenedSolver(Solver):
    """Exact minimiser of ``(1−α)E‖S(W−W')x‖² + αE‖S(Wx−W'x̃)‖²`` over rank-k matrices.

    Reads ``fisher`` when ``sensitivity`` is on, and the shifted statistics when ``alpha > 0``
    (the plan must provide what :attr:`requires` lists). ``decomposition``: ``"gram"`` (one
    eigendecomposition of the whitened weight's smaller Gram matrix, with its accuracy check and
    full-SVD fallback) or ``"svd"`` (root and full SVD, as SVD-LLM publishes it); see
    ``whitened_factorization``.
    """

    name: ClassVar[str] = "whitened"

    alpha: float = attrs.field(default=DEFAULTS.alpha, validator=unit_interval)
    sensitivity: bool = True
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    fisher_jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)
    decomposition: str = attrs.field(default=DEFAULTS.decomposition, validator=one_of(DECOMPOSITIONS))

    @property
    def requires(self) -> frozenset[str]:
        """``sigma``; ``fisher`` with ``sensitivity``; the shifted pair with ``alpha > 0``."""
        return frozenset(
            {"sigma"}
            | ({"fisher"} if self.sensitivity else set())
            | ({"sigma_shift", "sigma_cross"} if self.alpha > 0 else set())
        )

    def _fisher(self, statistics: Mapping[str, Tensor]) -> Tensor | None:
        return statistics["fisher"] if self.sensitivity else None

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        return whitened_factorization(
            weight,
            rank,
            statistics["sigma"],
            sigma_shift=statistics.get("sigma_shift"),
            sigma_cross=statistics.get("sigma_cross"),
            fisher=self._fisher(statistics),
            alpha=self.alpha,
            jitter=self.jitter,
            fisher_jitter=self.fisher_jitter,
            decomposition=self.decomposition,
        )

    def for_layer(self, rank: int, spectrum: Tensor | None) -> tuple[WhitenedSolver, str]:
        """The full SVD where the Gram route's accuracy check is bound to fail: the allocation's
        proxy spectrum (the clean objective's whitened weight) already puts ``(σ_k/σ₁)²`` below
        the check's floor, so the Gram route would be paid for and then thrown away. Otherwise this
        solver (the check still guards the Gram route)."""
        if self.decomposition != "gram" or spectrum is None or not 0 < rank <= len(spectrum):
            return self, ""
        largest = float(spectrum[0])
        ratio = (float(spectrum[rank - 1]) / largest) ** 2 if largest > 0.0 else 0.0
        floor = gram_floor(len(spectrum))
        if ratio >= floor:
            return self, ""
        note = f"Gram check predicted to fail (proxy (σ_k/σ₁)² = {ratio:.1e} < {floor:.1e}): full SVD"
        return attrs.evolve(self, decomposition="svd"), note

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        return whitened_spectrum(
            weight,
            statistics["sigma"],
            fisher=self._fisher(statistics),
            jitter=self.jitter,
            fisher_jitter=self.fisher_jitter,
            decomposition=self.decomposition,
        )
