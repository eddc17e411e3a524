"""Diagonally scaled truncated SVD (ASVD, FWSVD) and the plain truncated SVD.

``W' = [W D]_k D⁻¹`` with ``D = diag(s_j^a)`` minimises ``‖(W − W')D‖_F``: SVD-LLM's whitening with
the diagonal second moment ``D²``. Both solve through :func:`whitened_factorization` (``α = 0``,
``S = I``), so the relative jitter, the √σ split into both factors and the NaN checks are the
whitened solver's.
"""

from __future__ import annotations

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
    one_of,
    positive,
    precise_dtype,
    singular_values,
    whitened_factorization,
    whitened_spectrum,
)


def _weight_spectrum(weight: Tensor) -> Tensor:
    """Singular values of the raw ``weight`` (float64, complex128 for a Fourier mode); a non-finite
    weight is a :class:`NumericalError`."""
    w = weight.detach().to(precise_dtype(weight))
    if not torch.isfinite(w).all():
        raise NumericalError("weight contains NaN or Inf")
    return singular_values(w)


def _nonnegative(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{attribute.name} must be a number ≥ 0, got {value!r}")


@attrs.frozen(kw_only=True)
class ScaledSolver(Solver):
    """``W' = [W D]_k D⁻¹``, ``D = diag(s^exponent)`` with ``s`` the per-input-channel ``statistic``.

    ASVD: ``statistic="input_abs_mean"``, ``exponent=0.5``. FWSVD: ``statistic="weight_fisher"``,
    ``exponent=0.5`` (``D = diag(√I_j)``). ``proxy`` is the spectrum the allocator ranks: of
    ``W D`` (``"scaled"``) or of the raw ``W`` (``"weight"``).
    """

    name: ClassVar[str] = "scaled"

    statistic: str
    exponent: float = attrs.field(default=0.5, validator=_nonnegative)
    proxy: str = attrs.field(default="scaled", validator=one_of(("scaled", "weight")))
    jitter: float = attrs.field(default=DEFAULTS.jitter, validator=positive)

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.statistic})

    def _second_moment(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        """``D² = diag(s^{2a})`` in float64."""
        if self.statistic not in statistics:
            raise ConfigError(
                f"solver 'scaled' needs the statistic {self.statistic!r}; the plan's estimators gave "
                f"{sorted(statistics)}"
            )
        scale = statistics[self.statistic].to(weight.device, torch.float64).reshape(-1)
        if scale.shape[0] != weight.shape[1]:
            raise ConfigError(
                f"{self.statistic!r} has {scale.shape[0]} entries for a weight with {weight.shape[1]} inputs"
            )
        if not torch.isfinite(scale).all() or bool((scale < 0).any()):
            raise NumericalError(f"{self.statistic!r} must be finite and non-negative")
        return torch.diag(scale ** (2.0 * self.exponent))

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        return whitened_factorization(
            weight, rank, self._second_moment(weight, statistics), alpha=0.0, jitter=self.jitter
        )

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        if self.proxy == "weight":
            return _weight_spectrum(weight)
        return whitened_spectrum(weight, self._second_moment(weight, statistics), jitter=self.jitter)


@attrs.frozen(kw_only=True)
class TruncatedSVD(Solver):
    """The plain truncated SVD ``U_k Σ_k V_kᵀ`` of ``W`` (Eckart–Young in ``‖·‖_F``), √Σ in both factors."""

    name: ClassVar[str] = "svd"
    requires: ClassVar[frozenset[str]] = frozenset()

    def _identity(self, weight: Tensor) -> Tensor:
        return torch.eye(weight.shape[1], dtype=torch.float64, device=weight.device)

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        return whitened_factorization(weight, rank, self._identity(weight), alpha=0.0)

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        return _weight_spectrum(weight)
