"""The Gram route of the whitened solve: the top components of the whitened weight
``M = S W T' L⁻ᵀ`` (docs/method.md, "The layer solution"; the paper's eqs. 4–9) from one symmetric
eigendecomposition of ``M Mᵀ`` or ``Mᵀ M``, whichever is smaller, instead of an SVD of ``M``.

For the clean objective alone (``α = 0``, or no shifted statistics) ``T' = L Lᵀ`` and the output
side needs no root of the input covariance at all: ``M Mᵀ = S W C̃ Wᵀ Sᵀ`` with ``C̃ = C + εI``
(one eigendecomposition per layer, as in Swift-SVD). Squaring the whitened weight squares its
condition: the eigensolver's error is about ``size · ε₆₄ · λ₁``, so a kept component must stand
clear of it. The check: the smallest kept eigenvalue must be at least :data:`GRAM_MARGIN` times
that error, ``λ_k ≥ GRAM_MARGIN · size · ε₆₄ · λ₁`` (:func:`gram_floor`: 8.5·10⁻¹² for a 384-wide
Gram matrix, 1.4·10⁻¹⁰ for 6144), so that ``λ_k`` carries at least two correct digits; otherwise
the caller takes the full SVD instead and records the fallback. Complex weights (Fourier modes)
take the same route with Hermitian Gram matrices: every ``ᵀ`` is then ``ᴴ``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..linalg._linalg import Root, symmetrised

#: How many times the eigensolver's error bound ``size · ε₆₄ · λ₁`` the smallest kept eigenvalue must be.
GRAM_MARGIN = 100.0


def gram_floor(size: int) -> float:
    """The least ratio ``λ_k / λ₁`` the Gram route accepts for a ``size × size`` Gram matrix."""
    return GRAM_MARGIN * size * float(torch.finfo(torch.float64).eps)


class GramFactors(NamedTuple):
    """``W' = second @ first`` (not yet balanced), the ratio ``λ_k / λ₁`` and the least one accepted."""

    first: Tensor
    second: Tensor
    floor_ratio: float
    floor: float

    @property
    def accurate(self) -> bool:
        """Whether the kept components stand clear of the eigensolver's error."""
        return self.floor_ratio >= self.floor


def top_eigen(gram: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """The ``rank`` largest eigenvalues of the Hermitian ``gram`` (descending) and their eigenvectors."""
    values, vectors = torch.linalg.eigh(symmetrised(gram))
    return values.flip(0)[:rank], vectors.flip(1)[:, :rank]


def floor_ratio(values: Tensor) -> float:
    """``λ_k / λ₁`` of descending eigenvalues (0 when all are zero)."""
    largest = float(values[0])
    return float(values[-1]) / largest if largest > 0.0 else 0.0


def gram_output_side(
    weighted: Tensor, rank: int, sens: Root | None, input_root: Root | None, covariance: Tensor | None
) -> GramFactors:
    """Factors from ``M Mᵀ`` (``m × m``), for ``m ≤ n``.

    ``weighted`` is ``S W`` with ``covariance = C̃`` (the clean objective: ``M Mᵀ = S W C̃ Wᵀ Sᵀ``,
    ``W' = S⁻¹ U_k U_kᵀ S W``), or ``S W T'`` with the root ``input_root`` of ``C̃``
    (``M = S W T' L⁻ᵀ``, ``W' = S⁻¹ U_k U_kᵀ M L⁻¹``).
    """
    if input_root is None:
        gram = weighted @ covariance @ weighted.mH
    else:
        whitened = input_root.solve(weighted.mH).mH  # M = S W T' L⁻ᵀ
        gram = whitened @ whitened.mH
    values, vectors = top_eigen(gram, rank)
    if input_root is None:
        first = vectors.mH @ weighted
    else:
        first = input_root.solve_transposed(whitened.mH @ vectors).mH
    second = vectors if sens is None else sens.solve_transposed(vectors)
    return GramFactors(first, second, floor_ratio(values), gram_floor(gram.shape[0]))


def gram_input_side(target_weight: Tensor, rank: int, fisher: Tensor | None, input_root: Root) -> GramFactors:
    """Factors from ``Mᵀ M`` (``n × n``), for ``m > n``: ``target_weight`` is ``W T'``,
    ``K = W T' L⁻ᵀ``, ``Mᵀ M = Kᵀ F̃ K`` with ``fisher = F̃ = Sᵀ S`` (no root of it is needed) and
    ``W' = K V_k V_kᵀ L⁻¹``."""
    unweighted = input_root.solve(target_weight.mH).mH  # K
    gram = unweighted.mH @ (unweighted if fisher is None else fisher @ unweighted)
    values, vectors = top_eigen(gram, rank)
    first = input_root.solve_transposed(vectors).mH
    second = unweighted @ vectors
    return GramFactors(first, second, floor_ratio(values), gram_floor(gram.shape[0]))


def gram_values(matrix: Tensor, covariance: Tensor | None = None) -> Tensor:
    """Singular values (descending) of ``matrix`` (``m × n``) times ``L`` with ``L Lᵀ = covariance``
    (default ``I``), from the eigenvalues of the ``m × m`` Gram matrix ``matrix · covariance · matrixᵀ``
    (clamped at 0)."""
    gram = matrix @ matrix.mH if covariance is None else matrix @ covariance @ matrix.mH
    values = torch.linalg.eigvalsh(symmetrised(gram))
    return values.flip(0).clamp_min(0.0).sqrt()
