"""Dobi-SVD's weight update: project ``W`` onto the top-``k`` principal directions of its output.

For ``y = W x`` the output second moment is ``E[y yᵀ] = W Σ Wᵀ = V Λ Vᵀ``; truncating the
activations to their top-``k`` directions and mapping back to weights gives ``W' = V_k V_kᵀ W``
(Dobi-SVD's IPCA step, here exact from ``Σ`` instead of incremental, and uncentred, like the
activation SVD it stands for). With a full-rank ``Σ`` this is the same matrix as SVD-LLM's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import torch
from torch import Tensor

from safesvd_core.plugin import ConfigError, Factorization, NumericalError, Solver, SolveRecord, check_rank


@attrs.frozen
class OutputBasis:
    """Eigenvalues (descending, clamped at 0) and eigenvectors (``m × r``, ``r = min(m, n)``) of
    ``W Σ Wᵀ``."""

    values: Tensor
    vectors: Tensor


def output_basis(weight: Tensor, sigma: Tensor) -> OutputBasis:
    """The principal output directions of ``weight`` under inputs with second moment ``sigma`` (float64)."""
    w = weight.detach().to(torch.float64)
    s = sigma.to(w.device, torch.float64)
    if s.shape != (w.shape[1], w.shape[1]):
        raise ConfigError(f"sigma must have shape ({w.shape[1]}, {w.shape[1]}), got {tuple(s.shape)}")
    if not (torch.isfinite(w).all() and torch.isfinite(s).all()):
        raise NumericalError("weight or sigma contains NaN or Inf")
    covariance = w @ (0.5 * (s + s.mT)) @ w.mT
    values, vectors = torch.linalg.eigh(0.5 * (covariance + covariance.mT))
    order = torch.argsort(values, descending=True)[: min(w.shape)]
    return OutputBasis(values[order].clamp_min(0.0), vectors[:, order])


@attrs.frozen(kw_only=True)
class OutputProjection(Solver):
    """``W' = V_k V_kᵀ W``: factors ``second = V_k`` (``A``, orthonormal columns) and
    ``first = V_kᵀ W`` (``B``)."""

    name: ClassVar[str] = "output-projection"
    requires: ClassVar[frozenset[str]] = frozenset({"sigma"})

    def solve(self, weight: Tensor, rank: int, statistics: Mapping[str, Tensor]) -> Factorization:
        basis = output_basis(weight, statistics["sigma"])
        m, n = weight.shape
        check_rank(rank, m, n)
        second = basis.vectors[:, :rank]  # A
        first = second.mT @ weight.detach().to(torch.float64)  # B
        record = SolveRecord(paths={"output": "projection"}, jitters={"output": 0.0})
        return Factorization.of(first, second, record, weight.dtype)

    def spectrum(self, weight: Tensor, statistics: Mapping[str, Tensor]) -> Tensor:
        """``√λ`` of ``W Σ Wᵀ``: the singular values of ``W L`` (SVD-LLM's spectrum)."""
        return output_basis(weight, statistics["sigma"]).values.sqrt()
