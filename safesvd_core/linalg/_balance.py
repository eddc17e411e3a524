"""Balanced low-rank factors: the same product ``A @ B``, split so that training and half precision
see well-scaled numbers.

A closed-form solve puts the Fisher and whitening scales into the factors (one can hold entries
~1e3, the other ~1e-3), although only the product matters. :func:`balanced` re-splits the product
as ``A = U √S``, ``B = √S Vᵀ`` from its thin SVD (computed from QR factors of ``A`` and ``Bᵀ`` in
float64, ``O((m + n) k²)``): every rank component then has ``‖aᵢ‖ = ‖bᵢ‖ = √sᵢ`` and the columns
of ``A`` (rows of ``B``) are orthogonal. The product is unchanged to the dtype's precision. Each
component's sign is fixed (the largest entry of its column of ``A`` is positive), so the split is a
continuous function of the product wherever its singular values are distinct.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._linalg import precise_dtype

#: Relative tolerance of :func:`is_balanced` on float32 factors (column against row norms).
BALANCE_RTOL = 1e-3


def balanced(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """``(first, second)`` = ``(B, A)`` (``k × n``, ``m × k``) re-split as ``(√S Vᵀ, U √S)`` of ``A @ B``,
    in the factors' dtype and device."""
    if first.ndim != 2 or second.ndim != 2 or second.shape[1] != first.shape[0]:
        raise ValueError(
            f"factor shapes do not chain: first (B) {tuple(first.shape)}, second (A) {tuple(second.shape)}"
        )
    if first.shape[0] == 0:  # rank 0: nothing to split
        return first.detach().clone(), second.detach().clone()
    a, b = second.detach().to(precise_dtype(second)), first.detach().to(precise_dtype(first))
    q_a, r_a = torch.linalg.qr(a)  # m × k, k × k
    q_b, r_b = torch.linalg.qr(b.mH)  # n × k, k × k
    u, s, vh = torch.linalg.svd(r_a @ r_b.mH)
    left = q_a @ u
    # singular vectors have a sign (complex: a phase) of their own: fix it (each column of A's largest
    # entry real and positive), so that factors equal to rounding give factors equal to rounding
    largest = left.gather(0, left.abs().argmax(dim=0, keepdim=True)).squeeze(0)
    if left.is_complex():
        phases = torch.where(largest == 0, torch.ones_like(largest), largest / largest.abs())
        left, vh = left * phases.conj(), vh * phases[:, None]
    else:
        signs = torch.where(largest < 0, -1.0, 1.0).to(left.dtype)
        left, vh = left * signs, vh * signs[:, None]
    root = s.sqrt().to(left.dtype)
    new_second = left * root
    new_first = root[:, None] * (vh @ q_b.mH)
    return new_first.to(first.dtype), new_second.to(second.dtype)


def component_norms(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """The norms of each rank component: ``(‖rows of B‖, ‖columns of A‖)``, in float64."""
    first, second = first.detach(), second.detach()
    return first.to(precise_dtype(first)).norm(dim=1), second.to(precise_dtype(second)).norm(dim=0)


def is_balanced(first: Tensor, second: Tensor, *, rtol: float = BALANCE_RTOL) -> bool:
    """Whether every rank component has ``‖aᵢ‖ = ‖bᵢ‖`` within ``rtol`` (relative to the largest norm)."""
    rows, columns = component_norms(first, second)
    scale = torch.maximum(rows.max(), columns.max()).clamp_min(torch.finfo(torch.float64).tiny)
    return bool(((rows - columns).abs() <= rtol * scale).all())
