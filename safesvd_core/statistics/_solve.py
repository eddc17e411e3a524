"""The closed-form SAFE-SVD layer solution (docs/method.md, eqs. 4–9) as pure functions.

A complex weight (one Fourier mode of a spectral layer) is solved the same way in complex128, with
Hermitian statistics ``E[x xᴴ]`` and ``E[g gᴴ]``: every ``ᵀ`` below is then ``ᴴ``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._defaults import DEFAULTS
from .._deprecation import renamed
from .._errors import ConfigError, NumericalError
from ..kinds._interfaces import Factorization, SolveRecord
from ..linalg._linalg import (
    Root,
    jittered,
    precise_dtype,
    psd_root,
    singular_values,
    thin_svd,
    with_ridge,
)
from ._gram import gram_input_side, gram_output_side, gram_values


class Factors(NamedTuple):
    """Two low-rank factors named by the order they apply to an input, as in
    :class:`~safesvd_core.LowRankLinear`: ``first`` (``B``, ``k × n``), then ``second`` (``A``, ``m × k``);
    ``W' = second @ first``. Unpacks in that order: ``LowRankLinear.from_factors(*factors, bias)``."""

    first: Tensor
    second: Tensor


def solve_factors(
    weight: Tensor,
    rank: int,
    sigma: Tensor,
    *,
    sigma_shift: Tensor | None = None,
    sigma_cross: Tensor | None = None,
    fisher: Tensor | None = None,
    alpha: float = DEFAULTS.alpha,
) -> Factors:
    """Optimal rank-``rank`` factors ``(first, second)`` of ``weight`` for the SAFE-SVD objective.

    Minimises ``(1−α) E‖S(W−W')x‖² + α E‖S(Wx − W'x̃)‖²`` with ``S = chol(F)ᵀ``
    (``S = I`` when ``fisher`` is None). ``sigma = E[x xᵀ]``, ``sigma_shift = E[x̃ x̃ᵀ]``,
    ``sigma_cross = E[x x̃ᵀ]``; without shifted statistics the clean-only objective is solved.
    Returns :class:`Factors`: ``first`` (``rank × n``) and ``second`` (``m × rank``), balanced, in
    ``weight``'s dtype, ``W' = second @ first``.
    """
    result = whitened_factorization(
        weight, rank, sigma, sigma_shift=sigma_shift, sigma_cross=sigma_cross, fisher=fisher, alpha=alpha
    )
    return Factors(first=result.first, second=result.second)


def solve_layer(
    weight: Tensor,
    rank: int,
    sigma: Tensor,
    *,
    sigma_shift: Tensor | None = None,
    sigma_cross: Tensor | None = None,
    fisher: Tensor | None = None,
    alpha: float = DEFAULTS.alpha,
) -> tuple[Tensor, Tensor]:
    """Deprecated: :func:`solve_factors`, in the opposite order ``(A, B)`` = ``(second, first)``.

    Kept, with a ``DeprecationWarning``, for one release; ``solve_factors`` returns ``(first, second)``,
    the order of :meth:`~safesvd_core.LowRankLinear.from_factors`.
    """
    renamed(
        "solve_layer(...), which returns (A, B) = (second, first),",
        "solve_factors(...), which returns Factors(first, second) in the order "
        "LowRankLinear.from_factors takes",
    )
    first, second = solve_factors(
        weight, rank, sigma, sigma_shift=sigma_shift, sigma_cross=sigma_cross, fisher=fisher, alpha=alpha
    )
    return second, first


def whitened_factorization(
    weight: Tensor,
    rank: int,
    sigma: Tensor,
    *,
    sigma_shift: Tensor | None = None,
    sigma_cross: Tensor | None = None,
    fisher: Tensor | None = None,
    alpha: float = DEFAULTS.alpha,
    jitter: float = DEFAULTS.jitter,
    fisher_jitter: float | None = None,
    decomposition: str = "svd",
) -> Factorization:
    """:func:`solve_factors` plus the record of which factorisation path each matrix took.

    ``decomposition``: ``"svd"`` (the default, the method as published: root of ``C``, full SVD of
    the whitened weight) or ``"gram"``: one symmetric eigendecomposition of the whitened weight's
    Gram matrix on its smaller side, and, for the clean objective, no root of ``C`` at all
    (``statistics._gram``); the same minimiser, 1.5–2× cheaper per layer at Poseidon-L's shapes. Its
    accuracy check (``statistics._gram.gram_floor``) falls back to the full SVD, recorded as the path
    ``"svd-fallback"`` of ``record.paths["decomposition"]``.
    """
    out_features, in_features = _check_weight(weight)
    check_rank(rank, out_features, in_features)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha!r}")
    _check_square(sigma, in_features, "sigma")
    if (sigma_shift is None) != (sigma_cross is None):
        raise ConfigError("sigma_shift and sigma_cross must be given together (or neither)")
    w = weight.detach().to(precise_dtype(weight))
    clean = _statistic(sigma, w)
    if sigma_shift is None:
        shift = cross = clean
    else:
        _check_square(sigma_shift, in_features, "sigma_shift")
        _check_square(sigma_cross, in_features, "sigma_cross")
        shift = _statistic(sigma_shift, w, "sigma_shift")
        cross = _statistic(sigma_cross, w, "sigma_cross")
    check_decomposition(decomposition)
    kept = (1.0 - alpha) * clean  # (1 − α) C, then + α Σ̃ and + α Σ× (new tensors, added in place)
    combined = (alpha * shift).add_(kept)
    target = (alpha * cross).add_(kept)
    fisher_jitter = fisher_jitter if fisher_jitter is not None else jitter
    wide = out_features <= in_features
    # the input side of the Gram route reads F̃ = SᵀS itself: no root of the Fisher
    sens = (
        _sensitivity_root(fisher, out_features, w, fisher_jitter) if wide or decomposition == "svd" else None
    )
    clean_only = sigma_shift is None or alpha == 0.0
    input_root: Root | None = None
    input_path, input_jitter, route = "", 0.0, "svd"
    fisher_tilde: tuple[Tensor | None, float] | None = None  # F̃ and its ε, where read without a root
    if decomposition == "gram":
        if wide and clean_only:
            covariance, input_jitter = _jittered_covariance(combined, jitter)
            input_path = "identity" if input_jitter == 0.0 else "not factored"
            gram = gram_output_side(_apply_sensitivity(sens, w), rank, sens, None, covariance)
        else:
            input_root = psd_root(combined, jitter=jitter, what="input covariance C")
            target_weight = w @ _ridge_target(target, input_root)
            if wide:
                gram = gram_output_side(_apply_sensitivity(sens, target_weight), rank, sens, input_root, None)
            else:
                fisher_tilde = _fisher_matrix(fisher, out_features, w, fisher_jitter)
                gram = gram_input_side(target_weight, rank, fisher_tilde[0], input_root)
        route = "gram" if gram.accurate else "svd-fallback"
    if route == "gram":
        first, second = gram.first, gram.second
    else:
        if sens is None:
            sens = _sensitivity_root(fisher, out_features, w, fisher_jitter)
        input_root = input_root or psd_root(combined, jitter=jitter, what="input covariance C")
        weighted = _apply_sensitivity(sens, w) @ _ridge_target(target, input_root)
        whitened = input_root.solve(weighted.mH).mH  # S W B L⁻ᵀ
        u, s, vh = _svd(whitened)
        root_s = s[:rank].sqrt().to(u.dtype)
        second = _unapply_sensitivity(sens, u[:, :rank] * root_s)  # A, m × k
        first = input_root.solve_transposed(vh[:rank].mH * root_s).mH  # B, k × n
    if input_root is not None:
        input_path, input_jitter = input_root.path, input_root.jitter
    if not (torch.isfinite(second).all() and torch.isfinite(first).all()):
        raise NumericalError("the low-rank factors contain NaN or Inf")
    fisher_path, fisher_eps = _fisher_record(fisher, sens, fisher_tilde)
    paths = {"input": input_path, "fisher": fisher_path, "decomposition": route}
    jitters = {"input": input_jitter, "fisher": fisher_eps}
    note = (
        f"Gram check failed (λ_k/λ₁ = {gram.floor_ratio:.1e} < {gram.floor:.1e}): full SVD"
        if route == "svd-fallback"
        else ""
    )
    record = SolveRecord(paths=paths, jitters=jitters, note=note)
    return Factorization.of(first, second, record, weight.dtype)


def whitened_spectrum(
    weight: Tensor,
    sigma: Tensor,
    *,
    fisher: Tensor | None = None,
    jitter: float = DEFAULTS.jitter,
    fisher_jitter: float | None = None,
    decomposition: str = "svd",
) -> Tensor:
    """Proxy spectrum for allocation: singular values of ``S W L_c`` with ``Σ = L_c L_cᵀ``; all zero when
    the Fisher is (the layer gets no gradient: ``S = 0``, not the identity fallback of a singular ``F``)
    or when ``Σ`` is (no input reaches the layer: ``L_c = 0``, not the identity fallback of a singular
    ``Σ``; e.g. a Fourier mode the calibration inputs do not contain).
    ``decomposition="gram"`` takes them from the eigenvalues of the smaller Gram matrix (for
    ``m ≤ n`` without a root of ``Σ``); values below ``√ε₆₄`` of the largest are then rounding."""
    out_features, in_features = _check_weight(weight)
    _check_square(sigma, in_features, "sigma")
    w = weight.detach().to(precise_dtype(weight))
    if fisher is not None:
        _check_square(fisher, out_features, "fisher")
    idle = fisher is not None and not bool((fisher != 0).any())  # the output does not move the loss
    if idle or not bool((sigma != 0).any()):  # ... or the layer never sees an input
        return torch.zeros(min(out_features, in_features), dtype=torch.float64, device=w.device)
    check_decomposition(decomposition)
    fisher_jitter = fisher_jitter if fisher_jitter is not None else jitter
    clean = _statistic(sigma, w)
    if decomposition == "gram" and out_features <= in_features:  # S W C̃ Wᵀ Sᵀ, m × m
        sens = _sensitivity_root(fisher, out_features, w, fisher_jitter)
        return gram_values(_apply_sensitivity(sens, w), _jittered_covariance(clean, jitter)[0])
    root = psd_root(clean, jitter=jitter, what="clean covariance")
    if decomposition == "gram":  # L_cᵀ Wᵀ F̃ W L_c, n × n
        return gram_values((w @ root.factor).mH, _fisher_matrix(fisher, out_features, w, fisher_jitter)[0])
    sens = _sensitivity_root(fisher, out_features, w, fisher_jitter)
    return singular_values(_apply_sensitivity(sens, w) @ root.factor)


#: The ways a layer's whitened weight is decomposed (``whitened_factorization``'s ``decomposition``).
DECOMPOSITIONS = ("svd", "gram")


def check_decomposition(decomposition: str) -> None:
    """Refuse a ``decomposition`` that is not one of :data:`DECOMPOSITIONS`."""
    if decomposition not in DECOMPOSITIONS:
        raise ConfigError(f"decomposition must be one of {DECOMPOSITIONS}, got {decomposition!r}")


def _jittered_covariance(
    matrix: Tensor, jitter: float, what: str = "input covariance C"
) -> tuple[Tensor, float]:
    """``M + εI`` with the relative jitter a root would take (``I`` for an all-zero ``M``), and ``ε``."""
    symmetric, eps = jittered(matrix, jitter=jitter, what=what)
    if eps == 0.0:
        return torch.eye(symmetric.shape[0], dtype=symmetric.dtype, device=symmetric.device), eps
    symmetric.diagonal().add_(eps)  # a new tensor of jittered's: shifted in place
    return symmetric, eps


def _ridge_target(target: Tensor, root: Root) -> Tensor:
    """Add to ``B`` the ridge ``εI`` that ``C`` received.

    The jitter acts like ridge rows present identically in the clean and shifted streams, so
    ``Σ``, ``Σ̃`` and ``Σ×`` all gain ``εI``: at ``α = 0`` the result is SVD-LLM's whitening of
    ``H + εI`` exactly, and at full rank the clean-only solution is ``W`` itself. With all-zero
    statistics (identity root) every ``W'`` is equally good; ``B = I`` then gives the plain SVD.
    """
    if root.path == "identity":
        return torch.eye(target.shape[0], dtype=target.dtype, device=target.device)
    return with_ridge(target, root.jitter)


def _fisher_matrix(
    fisher: Tensor | None, size: int, like: Tensor, jitter: float
) -> tuple[Tensor | None, float]:
    """``F̃ = F + εI`` (``I`` for an all-zero ``F``, as its root would be) without a root, and ``ε``."""
    if fisher is None:
        return None, 0.0
    _check_square(fisher, size, "fisher")
    return _jittered_covariance(_statistic(fisher, like, "fisher"), jitter, what="Fisher F")


def _fisher_record(
    fisher: Tensor | None, sens: Root | None, tilde: tuple[Tensor | None, float] | None
) -> tuple[str, float]:
    """The Fisher's path and jitter for the record: its root's, or ``"not factored"`` when the
    route read ``F̃`` itself (``tilde``: ``F̃`` and its ``ε``)."""
    if sens is not None:
        return sens.path, sens.jitter
    if fisher is None or tilde is None:
        return "none", 0.0
    return ("identity" if tilde[1] == 0.0 else "not factored"), tilde[1]


def _sensitivity_root(fisher: Tensor | None, size: int, like: Tensor, jitter: float) -> Root | None:
    if fisher is None:
        return None
    _check_square(fisher, size, "fisher")
    return psd_root(_statistic(fisher, like, "fisher"), jitter=jitter, what="Fisher F")


def _apply_sensitivity(sens: Root | None, matrix: Tensor) -> Tensor:
    """``S @ matrix`` with ``S = Rᵀ``."""
    return matrix if sens is None else sens.factor.mH @ matrix


def _unapply_sensitivity(sens: Root | None, matrix: Tensor) -> Tensor:
    """``S⁻¹ @ matrix`` with ``S⁻¹ = R⁻ᵀ``."""
    return matrix if sens is None else sens.solve_transposed(matrix)


def _svd(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    if not torch.isfinite(matrix).all():
        raise NumericalError("the whitened weight contains NaN or Inf")
    return thin_svd(matrix)


def _check_weight(weight: Tensor) -> tuple[int, int]:
    if weight.ndim != 2:
        raise ConfigError(f"weight must be a 2-D (out × in) matrix, got shape {tuple(weight.shape)}")
    if not torch.isfinite(weight).all():
        raise NumericalError("weight contains NaN or Inf")
    return int(weight.shape[0]), int(weight.shape[1])


def check_rank(rank: int, out_features: int, in_features: int) -> None:
    """Refuse a rank that is not an integer in ``[1, min(m, n)]``, naming the weight's shape."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(out_features, in_features):
        raise ConfigError(
            f"rank must be an integer in [1, {min(out_features, in_features)}] for a "
            f"{out_features} × {in_features} weight, got {rank!r}"
        )


def _statistic(matrix: Tensor, like: Tensor, what: str = "sigma") -> Tensor:
    """``matrix`` on ``like``'s device in its precise dtype (complex statistics of a real weight: refused)."""
    if matrix.is_complex() and not like.is_complex():
        raise ConfigError(
            f"{what} is complex but the weight is real: complex statistics belong to complex weights"
        )
    return matrix.to(like.device, like.dtype)


def _check_square(matrix: Tensor, size: int, what: str) -> None:
    if tuple(matrix.shape) != (size, size):
        raise ConfigError(f"{what} must have shape ({size}, {size}), got {tuple(matrix.shape)}")
