"""The shared defaults: every value that more than one module (the engine, the built-in plugins, the
benchmarks) defaults to, in one place. Read them as ``DEFAULTS.<name>``
(``safesvd_core.plugin.DEFAULTS``); a literal copy elsewhere would drift."""

from __future__ import annotations

import attrs


@attrs.frozen
class Defaults:
    """The shared defaults (docs/method.md names the paper's sections)."""

    #: λ, the physics weight: ``"auto"`` balances it on the calibration set (§E.2), or a number.
    lam: float | str = "auto"
    #: ``λ = lam_ratio · mean L_base / mean L_phys`` (``"auto"``); per-order weights use it too.
    lam_ratio: float = 10.0
    #: How physics terms are weighted: ``"global"`` (one λ) or ``"per-order"`` (see ``LAM_MODES``).
    lam_mode: str = "global"
    #: The cap of a per-order weight.
    lam_cap: float = 1000.0
    #: The engine's Fisher mode (a :class:`~safesvd_core.plugin.Plan`'s given by hand): ``"empirical"``,
    #: the paper's (see ``FISHER_MODES``).
    fisher: str = "empirical"
    #: The Fisher mode of the clean-statistics phase, hence of ``safe-svd``: ``"sampled"``, the model
    #: Fisher (docs/method.md, "Sampled Fisher", says why it is the default).
    phase_fisher: str = "sampled"
    #: The clean/shifted balance ``α`` of the layer solve (the ablation's balanced setting).
    alpha: float = 0.5
    #: Relative jitter of a positive-definite root: ``ε = jitter · mean(diag(M))`` (App. E.3).
    jitter: float = 1e-6
    #: How the whitened weight is decomposed by the safe-svd solver: ``"gram"`` (one eigendecomposition
    #: of its smaller Gram matrix, checked, with a full-SVD fallback) or ``"svd"``; the baselines
    #: and the bare ``whitened_factorization`` use ``"svd"``, as SVD-LLM publishes it.
    decomposition: str = "gram"
    #: How layers are grouped into stages: ``"auto"`` (see ``STAGE_MODES``).
    stage_mode: str = "auto"
    #: The least rank a factored layer keeps (every allocator's ``min_rank``).
    min_rank: int = 1
    #: Timed calls per latency measurement (their median is kept).
    repeats: int = 7
    #: Adam's peak learning rate of refinement (``RefineOptions.lr``, the recipes' ``refine_lr``).
    refine_lr: float = 3e-4


#: The one instance: ``DEFAULTS.lam_ratio``, ``DEFAULTS.jitter``, ...
DEFAULTS = Defaults()
