"""SVD-LLM V2's eigen route: ``H = Q Λ Qᵀ``, ``D = W Q Λ^{1/2}``, ``W' = [D]_k Λ^{+1/2} Qᵀ``, no Cholesky.

The inverse root is the pseudo-inverse: eigen-directions with ``λ ≤ rcond · λ_max`` (never seen in
calibration, or numerically zero) are dropped, so ``W'`` is zero along them. How many were dropped
is written in each layer's :class:`SolveRecord` note; the route itself is recorded as
``"eigen-route"`` (a planned route, not a fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import (
    ConfigError,
    Factorization,
    NumericalError,
    Solver,
    SolveRecord,
    check_rank,
    positive,
    singular_values,
    thin_svd,
)


@attrs.frozen
class EigenRoot:
    """The kept eigen-directions ``Q_+`` (``n × r``) and ``Λ_+^{1/2}`` of a PSD ``H``; ``dropped`` of
    ``n`` were cut."""

    vectors: Tensor
    sqrt_values: Tensor
    dropped: int


def eigen_root(matrix: Tensor, rcond: float | None = None) -> EigenRoot:
    """``H = Q Λ Qᵀ`` (float64, symmetrised) keeping ``λ > rcond · max λ`` (default ``rcond = n · eps``)."""
    h = matrix.to(torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ConfigError(f"the Gram matrix must be square, got shape {tuple(h.shape)}")
    if not torch.isfinite(h).all():
        raise NumericalError("the Gram matrix contains NaN or Inf; refusing to factor it")
    values, vectors = torch.linalg.eigh(0.5 * (h + h.mT))
    size = h.shape[0]
    tolerance = (size * torch.finfo(torch.float64).eps if rcond is None else rcond) * float(
        values.max().clamp_min(0.0)
    )
    keep = values > tolerance
    return EigenRoot(vectors[:, keep], values[keep].sqrt(), int(size - int(keep.sum())))


@attrs.frozen(kw_only=True)
class EigenSolver(Solver):
    """The SVD-LLM V2 solution of ``min ‖(W − W')X‖_F`` over rank-``k`` matrices, by the eigen route."""

    name: ClassVar[str] = "eigen-whitened"

    statistic: str = "gram"
    rcond: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive))

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({self.statistic})

    def _parts(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> tuple[Tensor, EigenRoot]:
        if self.statistic not in statistics:
            raise ConfigError(
                f"solver 'eigen-whitened' needs the statistic {self.statistic!r}; the plan's estimators "
                f"gave {sorted(statistics)}"
            )
        w = weight.detach().to(torch.float64)
        if not torch.isfinite(w).all():
            raise NumericalError("weight contains NaN or Inf")
        root = eigen_root(statistics[self.statistic].to(w.device), self.rcond)
        if root.vectors.shape[0] != w.shape[1]:
            raise ConfigError(
                f"{self.statistic!r} is {root.vectors.shape[0]}-dimensional "
                f"for a weight with {w.shape[1]} inputs"
            )
        return w, root

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        w, root = self._parts(weight, statistics)
        m, n = w.shape
        check_rank(rank, m, n)
        second = w.new_zeros(m, rank)  # A
        first = w.new_zeros(rank, n)  # B
        kept = min(rank, root.sqrt_values.shape[0])
        if kept:
            u, s, vh = thin_svd((w @ root.vectors) * root.sqrt_values)  # D = W Q Λ^{1/2}
            root_s = s[:kept].sqrt()
            second[:, :kept] = u[:, :kept] * root_s
            first[:kept] = ((root_s[:, None] * vh[:kept]) / root.sqrt_values) @ root.vectors.mT  # Λ^{-1/2} Qᵀ
        if not (torch.isfinite(second).all() and torch.isfinite(first).all()):
            raise NumericalError("the low-rank factors contain NaN or Inf")
        note = f"pseudo-inverse root dropped {root.dropped} of {n} eigen-directions" if root.dropped else ""
        if kept < rank:
            note += (
                f"{'; ' if note else ''}H has rank {kept} < {rank}: "
                f"the last {rank - kept} factor columns are zero"
            )
        record = SolveRecord(paths={"input": "eigen-route"}, jitters={"input": 0.0}, note=note)
        return Factorization.of(first, second, record, weight.dtype)

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        """Singular values of ``D = W Q Λ^{1/2}``; ``‖σ_{>k}(D)‖`` is the truncation loss at rank ``k``."""
        w, root = self._parts(weight, statistics)
        values = singular_values((w @ root.vectors) * root.sqrt_values)
        return torch.cat([values, values.new_zeros(min(w.shape) - values.shape[0])])  # unseen directions: 0
