"""Every built-in solver runs the shipped conformance suite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from safesvd_core.testing.solvers import SolverConformance


class TestWhitened(SolverConformance):
    plugin_name: ClassVar[str] = "whitened"
    #: With α > 0 and shifted inputs the optimum is W (Σ_target + εI)(C + εI)⁻¹, not W (method.md, eq. 9).
    exact_at_full_rank: ClassVar[bool] = False


class TestWhitenedCleanOnly(SolverConformance):
    """α = 0 with the Fisher factor: S⁻¹ [S W L]_k L⁻¹ is W at full rank."""

    plugin_name: ClassVar[str] = "whitened"
    options: ClassVar[Mapping[str, Any]] = {"alpha": 0.0}


class TestWhitenedWithoutSensitivity(SolverConformance):
    plugin_name: ClassVar[str] = "whitened"
    options: ClassVar[Mapping[str, Any]] = {"sensitivity": False}
    exact_at_full_rank: ClassVar[bool] = False  # α = 0.5 with a shift, as in TestWhitened


class TestTruncatedSVD(SolverConformance):
    plugin_name: ClassVar[str] = "svd"


class TestScaledByActivations(SolverConformance):
    """ASVD's solver, allocating on the raw weight's spectrum."""

    plugin_name: ClassVar[str] = "scaled"
    options: ClassVar[Mapping[str, Any]] = {"statistic": "input_abs_mean", "proxy": "weight"}


class TestScaledByWeightFisher(SolverConformance):
    """FWSVD's solver."""

    plugin_name: ClassVar[str] = "scaled"
    options: ClassVar[Mapping[str, Any]] = {"statistic": "weight_fisher"}


class TestEigenWhitened(SolverConformance):
    """Exact at full rank on a full-rank Gram (the default statistics); on a rank-deficient one the
    pseudo-inverse leaves the unseen directions at zero, by design."""

    plugin_name: ClassVar[str] = "eigen-whitened"


class TestACES(SolverConformance):
    plugin_name: ClassVar[str] = "aces"
    #: The shift-aware target W (H̃ + βΔ + εI)(H̃ + εI)⁻¹ with β ∈ [0.2, 0.43] is not W where Δ = Σ× − H̃ ≠ 0.
    exact_at_full_rank: ClassVar[bool] = False


class TestACESAtBetaZero(SolverConformance):
    """β = 0 is SVD-LLM on the shifted inputs: exact at full rank."""

    plugin_name: ClassVar[str] = "aces"
    options: ClassVar[Mapping[str, Any]] = {"beta": 0.0}


class TestOutputProjection(SolverConformance):
    """V_k V_kᵀ W is W at full rank when Σ is full rank (the default statistics): V spans W's range."""

    plugin_name: ClassVar[str] = "output-projection"
