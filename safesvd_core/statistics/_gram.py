"""The Gram route of the whitened solve: the top components of the whitened weight
``M = S W T' L⁻ᵀ`` (METHOD.md, eqs. 4–9) from one symmetric eigendecomposition of ``M Mᵀ`` or
``Mᵀ M``, whichever is smaller, instead of an SVD of ``M``.

For the clean objective alone (``α = 0``, or no shifted statistics) ``T' = L Lᵀ`` and the output
side needs no root of the input covariance at all: ``M Mᵀ = S W C̃ Wᵀ Sᵀ`` with ``C̃ = C + εI``
(one eigendecomposition per layer, as in Swift-SVD). Squaring the whitened weight squares its
condition: the eigensolver's error is about ``size · ε₆₄ · λ₁``, so a kept component must stand
clear of it. :data:`GRAM_FLOOR` is the check: when the smallest kept eigenvalue is below
``GRAM_FLOOR · λ₁`` (kept singular values below ``√GRAM_FLOOR ≈ 3·10⁻⁵`` of the largest, where the
eigenvectors lose digits) the caller takes the full SVD instead and records the fallback.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..linalg._linalg import Root

#: Least ratio ``λ_k / λ₁`` of the smallest kept eigenvalue of the Gram matrix to its largest.
GRAM_FLOOR = 1e-9


class GramFactors(NamedTuple):
    """``W' = second @ first`` (not yet balanced), and the ratio ``λ_k / λ₁`` the check read."""

    first: Tensor
    second: Tensor
    floor_ratio: float


def top_eigen(gram: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """The ``rank`` largest eigenvalues of the symmetric ``gram`` (descending) and their eigenvectors."""
    values, vectors = torch.linalg.eigh(0.5 * (gram + gram.mT))
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
        gram = weighted @ covariance @ weighted.mT
    else:
        whitened = input_root.solve(weighted.mT).mT  # M = S W T' L⁻ᵀ
        gram = whitened @ whitened.mT
    values, vectors = top_eigen(gram, rank)
    if input_root is None:
        first = vectors.mT @ weighted
    else:
        first = input_root.solve_transposed(whitened.mT @ vectors).mT
    second = vectors if sens is None else sens.solve_transposed(vectors)
    return GramFactors(first, second, floor_ratio(values))


def gram_input_side(target_weight: Tensor, rank: int, fisher: Tensor | None, input_root: Root) -> GramFactors:
    """Factors from ``Mᵀ M`` (``n × n``), for ``m > n``: ``target_weight`` is ``W T'``,
    ``K = W T' L⁻ᵀ``, ``Mᵀ M = Kᵀ F̃ K`` with ``fisher = F̃ = Sᵀ S`` (no root of it is needed) and
    ``W' = K V_k V_kᵀ L⁻¹``."""
    unweighted = input_root.solve(target_weight.mT).mT  # K
    gram = unweighted.mT @ (unweighted if fisher is None else fisher @ unweighted)
    values, vectors = top_eigen(gram, rank)
    first = input_root.solve_transposed(vectors).mT
    second = unweighted @ vectors
    return GramFactors(first, second, floor_ratio(values))


def gram_values(matrix: Tensor, covariance: Tensor | None = None) -> Tensor:
    """Singular values (descending) of ``matrix`` (``m × n``) times ``L`` with ``L Lᵀ = covariance``
    (default ``I``), from the eigenvalues of the ``m × m`` Gram matrix ``matrix · covariance · matrixᵀ``
    (clamped at 0)."""
    gram = matrix @ matrix.mT if covariance is None else matrix @ covariance @ matrix.mT
    values = torch.linalg.eigvalsh(0.5 * (gram + gram.mT))
    return values.flip(0).clamp_min(0.0).sqrt()
