"""SAES-SVD: shift-aware target with ACES's choice of ``β`` (BASELINES.md).

``min ‖W'X̃ − W(X̃ + β(X − X̃))‖²`` in mean form: ``H̃ = Σ̃ = L Lᵀ``, ``Δ = Σ× − Σ̃`` (``Σ× = E[x x̃ᵀ]``),
``G(β) = W(H̃ + βΔ)L⁻ᵀ``, ``W' = [G(β)]_k L⁻¹``. That is :func:`whitened_factorization` at ``α = 1``
with the cross moment replaced by ``Σ̃ + βΔ`` (same relative jitter, used as a ridge on both).

ACES picks ``β`` minimising the tail-energy fraction ``‖R(G(β))‖² / ‖G(β)‖²``,
``R(M) = (I − U_kU_kᵀ) M (I − V_kV_kᵀ)`` with the top-``k`` subspaces of ``G(0)``: both are quadratics
in ``β``, so the minimiser is a stationary point (a root of a quadratic) or a bound of ``beta_range``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import (
    DEFAULTS,
    ConfigError,
    Factorization,
    NumericalError,
    Solver,
    positive,
    psd_root,
    thin_svd,
    whitened_factorization,
    whitened_spectrum,
)

#: The paper's α ∈ [0.25, 0.75] mapped by β = α / (1 + α) (App. F.3).
BETA_RANGE = (0.2, 0.75 / 1.75)


def _beta(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{attribute.name} must be None (ACES) or a number in [0, 1], got {value!r}")


def _beta_range(instance: object, attribute: attrs.Attribute, value: object) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0.0 <= value[0] <= value[1] <= 1.0
    )
    if not ok:
        raise ConfigError(
            f"{attribute.name} must be a pair (low, high) with 0 ≤ low ≤ high ≤ 1, got {value!r}"
        )


def aces_beta(g0: Tensor, g1: Tensor, rank: int, low: float, high: float) -> float:
    """The ``β ∈ [low, high]`` minimising ``‖R(g0 + β g1)‖² / ‖g0 + β g1‖²`` (ties: the smaller ``β``)."""
    u, _, vh = thin_svd(g0)
    left, right = u[:, :rank], vh[:rank].mT

    def tail(matrix: Tensor) -> Tensor:
        matrix = matrix - left @ (left.mT @ matrix)
        return matrix - (matrix @ right) @ right.mT

    r0, r1 = tail(g0), tail(g1)
    a0, a1, a2 = float((r0 * r0).sum()), float((r0 * r1).sum()), float((r1 * r1).sum())
    b0, b1, b2 = float((g0 * g0).sum()), float((g0 * g1).sum()), float((g1 * g1).sum())

    def fraction(beta: float) -> float:
        denominator = b0 + 2 * b1 * beta + b2 * beta**2
        return (a0 + 2 * a1 * beta + a2 * beta**2) / denominator if denominator > 0 else math.inf

    # d/dβ of the ratio vanishes where (a2 b1 − a1 b2) β² + (a2 b0 − a0 b2) β + (a1 b0 − a0 b1) = 0
    c2, c1, c0 = a2 * b1 - a1 * b2, a2 * b0 - a0 * b2, a1 * b0 - a0 * b1
    candidates = [low, high]
    if abs(c2) > 0.0:
        discriminant = c1 * c1 - 4 * c2 * c0
        if discriminant >= 0.0:
            root = math.sqrt(discriminant)
            candidates += [(-c1 + root) / (2 * c2), (-c1 - root) / (2 * c2)]
    elif abs(c1) > 0.0:
        candidates.append(-c0 / c1)
    inside = sorted(beta for beta in candidates if low <= beta <= high)
    values = [fraction(beta) for beta in inside]
    best = min(values)
    return next(
        beta for beta, value in zip(inside, values, strict=True) if value <= best + 1e-12 * (1.0 + best)
    )


@attrs.frozen(kw_only=True)
class ACESSolver(Solver):
    """SAES-SVD's layer solution; ``beta=None`` chooses ``β`` per layer by ACES within ``beta_range``."""

    name: ClassVar[str] = "aces"
    requires: ClassVar[frozenset[str]] = frozenset({"sigma", "sigma_shift", "sigma_cross"})

    beta: float | None = attrs.field(default=None, validator=_beta)
    beta_range: tuple[float, float] = attrs.field(default=BETA_RANGE, converter=tuple, validator=_beta_range)
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)

    def _shifted(self, statistics: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        missing = {"sigma_shift", "sigma_cross"} - set(statistics)
        if missing:
            raise ConfigError(
                f"solver 'aces' needs {sorted(missing)} "
                "(the shifted-covariance estimator in a sequential plan)"
            )
        return statistics["sigma_shift"].to(torch.float64), statistics["sigma_cross"].to(torch.float64)

    def choose_beta(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> float:
        """``beta`` if fixed, else the ACES minimiser for this layer."""
        if self.beta is not None:
            return float(self.beta)
        shift, cross = self._shifted(statistics)
        w = weight.detach().to(torch.float64)
        if not torch.isfinite(w).all():
            raise NumericalError("weight contains NaN or Inf")
        shift, cross = shift.to(w.device), cross.to(w.device)
        root = psd_root(shift, jitter=self.jitter, what="shifted covariance H̃")
        eye = torch.eye(shift.shape[0], dtype=torch.float64, device=w.device)
        g0 = root.solve((w @ (shift + root.jitter * eye)).mT).mT  # W (H̃ + εI) L⁻ᵀ = W L
        g1 = root.solve((w @ (cross - shift)).mT).mT  # W Δ L⁻ᵀ
        return aces_beta(g0, g1, rank, *self.beta_range)

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        beta = self.choose_beta(weight, rank, statistics)
        shift, cross = self._shifted(statistics)
        target = shift + beta * (cross - shift)
        result = whitened_factorization(
            weight, rank, shift, sigma_shift=shift, sigma_cross=target, alpha=1.0, jitter=self.jitter
        )
        record = attrs.evolve(
            result.record, note=f"beta={beta:.4f}" + ("" if self.beta is not None else " (ACES)")
        )
        return attrs.evolve(result, record=record)

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        """The clean whitened spectrum (SVD-LLM's): allocation runs before any shifted statistic exists."""
        return whitened_spectrum(weight, statistics["sigma"], jitter=self.jitter)
