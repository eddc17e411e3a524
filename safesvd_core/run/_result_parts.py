"""The groups of a :class:`~safesvd_core.CompressionResult`'s fields: what was asked, the parameter
counts, the ranks chosen (the run's log is the engine's :class:`RunLog`)."""

from __future__ import annotations

from typing import Any

import attrs
from torch import Tensor

from ._outputs import RunLog


@attrs.frozen(kw_only=True)
class RunSetting:
    """What was asked: the ``recipe``'s name and ``options``, the ``ratio``, the calibration
    ``objective`` (physics terms, λ mode, family, solver), the recipe's and adapter's ``configs``
    (as :func:`~safesvd_core.config_to_dict` gives them; ``None`` for an object with no dict form) and the
    sha256 ``fingerprints`` of the original weights, the calibration data and the config."""

    recipe: str
    options: dict[str, Any] = attrs.field(factory=dict)
    ratio: float
    objective: dict[str, Any] = attrs.field(factory=dict)
    configs: dict[str, Any] = attrs.field(factory=dict)
    fingerprints: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ParameterCount:
    """Parameters ``params_before`` and ``params_after`` the compression, and the ``budget``."""

    params_before: int
    params_after: int
    budget: int


@attrs.frozen(kw_only=True)
class RankChoice:
    """``ranks``: each compressible layer's kept rank, ``None`` where it stays dense; ``spectra``:
    layer → the proxy spectrum the allocator ranked by (float64, descending; for ``safe-svd`` the
    singular values of the whitened, sensitivity-weighted weight; empty for recipes that allocate
    themselves); the forward ``layer_order``, the ``stages`` solved in turn and the physics weight ``lam``."""

    ranks: dict[str, int | None] = attrs.field(factory=dict)
    spectra: dict[str, Tensor] = attrs.field(factory=dict)
    layer_order: list[str] = attrs.field(factory=list)
    stages: list[list[str]] = attrs.field(factory=list)
    lam: float | None = None


#: The result's groups: field name → type (each group's fields are also read and given flat).
GROUPS: dict[str, type] = {
    "setting": RunSetting,
    "parameters": ParameterCount,
    "choice": RankChoice,
    "log": RunLog,
}
