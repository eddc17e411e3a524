"""Hermitian positive-definite square roots with relative jitter and a recorded eigen fallback.

Real matrices are symmetric; the complex ones (statistics of Fourier-mode layers) Hermitian: every
transpose here is the conjugate transpose ``ᴴ``, which is ``ᵀ`` for real matrices.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from .._defaults import DEFAULTS
from .._errors import NumericalError


@attrs.frozen
class Root:
    """A square root ``M + εI = R Rᴴ`` with ``R`` invertible.

    ``path`` is ``"cholesky"`` (``R`` lower triangular), ``"eigen"`` (``R = Q Λ^{1/2}``, the
    eigenvalues clamped at ``ε``) or ``"identity"`` (``M`` was exactly zero: every direction is
    equally (un)informative, so the root is ``I``).
    """

    factor: Tensor
    path: str
    jitter: float
    _eigvecs: Tensor | None = None
    _sqrt_eigvals: Tensor | None = None

    def solve(self, rhs: Tensor) -> Tensor:
        """``R⁻¹ rhs``."""
        if self.path == "cholesky":
            return torch.linalg.solve_triangular(self.factor, rhs, upper=False)
        if self.path == "eigen":
            return (self._eigvecs.mH @ rhs) / self._sqrt_eigvals[:, None]
        return rhs

    def solve_transposed(self, rhs: Tensor) -> Tensor:
        """``R⁻ᴴ rhs``."""
        if self.path == "cholesky":
            return torch.linalg.solve_triangular(self.factor.mH, rhs, upper=True)
        if self.path == "eigen":
            return self._eigvecs @ (rhs / self._sqrt_eigvals[:, None])
        return rhs


def psd_root(matrix: Tensor, *, jitter: float = DEFAULTS.jitter, what: str = "matrix") -> Root:
    """Factor a Hermitian PSD ``matrix`` (cast to float64, or complex128) as ``R Rᴴ`` after a relative jitter.

    Cholesky first; if it fails, eigen-decomposition with eigenvalues clamped at the jitter.
    """
    m, eps = jittered(matrix, jitter=jitter, what=what)
    if eps == 0.0:
        return Root(torch.eye(m.shape[0], dtype=m.dtype, device=m.device), "identity", 0.0)
    shifted = with_ridge(m, eps)
    factor, info = torch.linalg.cholesky_ex(shifted)
    if int(info) == 0 and torch.isfinite(factor).all():
        return Root(factor, "cholesky", eps)
    eigvals, eigvecs = torch.linalg.eigh(m)
    sqrt_eigvals = eigvals.clamp_min(eps).sqrt()
    return Root(eigvecs * sqrt_eigvals, "eigen", eps, eigvecs, sqrt_eigvals)


def jittered(
    matrix: Tensor, *, jitter: float = DEFAULTS.jitter, what: str = "matrix"
) -> tuple[Tensor, float]:
    """``matrix`` in float64 (complex128 when complex), made Hermitian, and its relative jitter
    ``ε = jitter · mean(diag)``.

    ``ε = 0`` marks an all-zero matrix (its root is the identity); a non-finite or non-square
    matrix, or one with a non-positive mean diagonal, is refused.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise NumericalError(f"{what} must be square, got shape {tuple(matrix.shape)}")
    m = matrix.to(precise_dtype(matrix))
    if not torch.isfinite(m).all():
        raise NumericalError(f"{what} contains NaN or Inf; refusing to factor it")
    m = symmetrised(m)
    scale = float(torch.diagonal(m).real.mean())
    if scale <= 0.0:
        if float(m.abs().max()) == 0.0:
            return m, 0.0
        raise NumericalError(f"{what} has a non-positive mean diagonal ({scale:.3e}); it is not PSD")
    return m, jitter * scale


def symmetrised(matrix: Tensor) -> Tensor:
    """``(M + Mᴴ) / 2`` as a new tensor, with one temporary."""
    total = matrix + matrix.mH
    return total.mul_(0.5)


def with_ridge(matrix: Tensor, eps: float) -> Tensor:
    """``matrix + εI`` as a new tensor (the diagonal shifted; no identity matrix is built)."""
    shifted = matrix.clone()
    shifted.diagonal().add_(eps)
    return shifted


def thin_svd(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``U, S, Vᴴ`` of ``matrix`` (thin), computed on its tall orientation.

    LAPACK on CPU is several times slower on a wide matrix than on its transpose (measured on
    1536 × 6144 float64: 8.6 s against 2.9 s); the factors are swapped back.
    """
    if matrix.shape[-2] >= matrix.shape[-1]:
        return torch.linalg.svd(matrix, full_matrices=False)
    u, s, vh = torch.linalg.svd(matrix.mH, full_matrices=False)
    return vh.mH, s, u.mH


def singular_values(matrix: Tensor) -> Tensor:
    """Singular values of ``matrix`` (descending), computed on its tall orientation (see :func:`thin_svd`)."""
    return torch.linalg.svdvals(matrix if matrix.shape[-2] >= matrix.shape[-1] else matrix.mH)


def precise_dtype(tensor: Tensor) -> torch.dtype:
    """The dtype statistics and solves use for ``tensor``: complex128 for a complex one, else float64."""
    return torch.complex128 if tensor.is_complex() else torch.float64
