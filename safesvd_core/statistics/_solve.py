"""The closed-form SAFE-SVD layer solution (METHOD.md, eqs. 4–9) as pure functions."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._defaults import DEFAULTS
from .._deprecation import renamed
from .._errors import ConfigError, NumericalError
from ..kinds._interfaces import Factorization, SolveRecord
from ..linalg._linalg import Root, psd_root, singular_values, thin_svd


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
) -> Factorization:
    """:func:`solve_factors` plus the record of which factorisation path each matrix took."""
    out_features, in_features = _check_weight(weight)
    check_rank(rank, out_features, in_features)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha!r}")
    _check_square(sigma, in_features, "sigma")
    if (sigma_shift is None) != (sigma_cross is None):
        raise ConfigError("sigma_shift and sigma_cross must be given together (or neither)")
    w = weight.detach().to(torch.float64)
    clean = sigma.to(w.device, torch.float64)
    if sigma_shift is None:
        shift = cross = clean
    else:
        _check_square(sigma_shift, in_features, "sigma_shift")
        _check_square(sigma_cross, in_features, "sigma_cross")
        shift = sigma_shift.to(w.device, torch.float64)
        cross = sigma_cross.to(w.device, torch.float64)
    combined = (1.0 - alpha) * clean + alpha * shift
    target = (1.0 - alpha) * clean + alpha * cross
    input_root = psd_root(combined, jitter=jitter, what="input covariance C")
    target = _ridge_target(target, input_root)
    sens = _sensitivity_root(
        fisher, out_features, w.device, fisher_jitter if fisher_jitter is not None else jitter
    )

    weighted = _apply_sensitivity(sens, w) @ target
    whitened = input_root.solve(weighted.mT).mT  # S W B L⁻ᵀ
    u, s, vh = _svd(whitened)
    root_s = s[:rank].sqrt()
    second = _unapply_sensitivity(sens, u[:, :rank] * root_s)  # A, m × k
    first = input_root.solve_transposed(vh[:rank].mT * root_s).mT  # B, k × n
    if not (torch.isfinite(second).all() and torch.isfinite(first).all()):
        raise NumericalError("the low-rank factors contain NaN or Inf")
    paths = {"input": input_root.path, "fisher": sens.path if sens is not None else "none"}
    jitters = {"input": input_root.jitter, "fisher": sens.jitter if sens is not None else 0.0}
    record = SolveRecord(paths=paths, jitters=jitters)
    return Factorization.of(first, second, record, weight.dtype)


def whitened_spectrum(
    weight: Tensor,
    sigma: Tensor,
    *,
    fisher: Tensor | None = None,
    jitter: float = DEFAULTS.jitter,
    fisher_jitter: float | None = None,
) -> Tensor:
    """Proxy spectrum for allocation: singular values of ``S W L_c`` with ``Σ = L_c L_cᵀ``; all zero when
    the Fisher is (the layer gets no gradient: ``S = 0``, not the identity fallback of a singular ``F``)."""
    out_features, in_features = _check_weight(weight)
    _check_square(sigma, in_features, "sigma")
    w = weight.detach().to(torch.float64)
    if fisher is not None and not bool(
        torch.any(fisher)
    ):  # no gradient reaches the layer: its output does not
        _check_square(fisher, out_features, "fisher")  # move the loss, so no direction of it is worth a rank
        return torch.zeros(min(out_features, in_features), dtype=torch.float64, device=w.device)
    root = psd_root(sigma.to(w.device, torch.float64), jitter=jitter, what="clean covariance")
    sens = _sensitivity_root(
        fisher, out_features, w.device, fisher_jitter if fisher_jitter is not None else jitter
    )
    return singular_values(_apply_sensitivity(sens, w) @ root.factor)


def _ridge_target(target: Tensor, root: Root) -> Tensor:
    """Add to ``B`` the ridge ``εI`` that ``C`` received.

    The jitter acts like ridge rows present identically in the clean and shifted streams, so
    ``Σ``, ``Σ̃`` and ``Σ×`` all gain ``εI``: at ``α = 0`` the result is SVD-LLM's whitening of
    ``H + εI`` exactly, and at full rank the clean-only solution is ``W`` itself. With all-zero
    statistics (identity root) every ``W'`` is equally good; ``B = I`` then gives the plain SVD.
    """
    eye = torch.eye(target.shape[0], dtype=target.dtype, device=target.device)
    if root.path == "identity":
        return eye
    return target + root.jitter * eye


def _sensitivity_root(fisher: Tensor | None, size: int, device: torch.device, jitter: float) -> Root | None:
    if fisher is None:
        return None
    _check_square(fisher, size, "fisher")
    return psd_root(fisher.to(device, torch.float64), jitter=jitter, what="Fisher F")


def _apply_sensitivity(sens: Root | None, matrix: Tensor) -> Tensor:
    """``S @ matrix`` with ``S = Rᵀ``."""
    return matrix if sens is None else sens.factor.mT @ matrix


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


def _check_square(matrix: Tensor, size: int, what: str) -> None:
    if tuple(matrix.shape) != (size, size):
        raise ConfigError(f"{what} must have shape ({size}, {size}), got {tuple(matrix.shape)}")
