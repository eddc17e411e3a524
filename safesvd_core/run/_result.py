"""What :func:`safesvd_core.compress` returns."""

from __future__ import annotations

from typing import Any

import attrs
from torch import Tensor, nn

from ..kinds._interfaces import SolveRecord
from ..statistics._statistics import CalibrationStatistics


@attrs.define(kw_only=True)
class CompressionResult:
    """The compressed model and everything needed to judge and reproduce it.

    ``ranks`` maps each compressible layer to its kept rank, or ``None`` where it stays dense.
    ``records`` says per solved layer which factorisation path each matrix took; ``fallbacks``
    keeps the ones that left the Cholesky path. ``objective`` describes the calibration loss
    (physics terms, λ mode, family). ``passes`` counts passes over the calibration
    set by phase; ``timings`` are wall seconds by phase.
    """

    model: nn.Module
    recipe: str
    options: dict[str, Any]
    ratio: float
    ranks: dict[str, int | None]
    params_before: int
    params_after: int
    budget: int
    records: dict[str, SolveRecord] = attrs.field(factory=dict)
    timings: dict[str, float] = attrs.field(factory=dict)
    passes: dict[str, int] = attrs.field(factory=dict)
    lam: float | None = None
    objective: dict[str, Any] = attrs.field(factory=dict)
    layer_order: list[str] = attrs.field(factory=list)
    stages: list[list[str]] = attrs.field(factory=list)
    statistics: CalibrationStatistics | None = None
    notes: list[str] = attrs.field(factory=list)
    #: Options chosen on a held-out split (``"auto"``), with every candidate's score: the report of the
    #: run's ``tuning`` phase; empty otherwise.
    tuning: dict[str, Any] = attrs.field(factory=dict)
    #: sha256 of the original weights, the calibration data and the config (set by ``compress``).
    fingerprints: dict[str, str] = attrs.field(factory=dict)
    #: Layer → the proxy spectrum the allocator ranked by (float64, descending): for ``safe-svd`` the
    #: singular values of the whitened, sensitivity-weighted weight. Empty for recipes that allocate
    #: themselves.
    spectra: dict[str, Tensor] = attrs.field(factory=dict)
    #: ``{"recipe": ..., "adapter": ...}`` as :func:`~safesvd_core.config_to_dict` gives them (``None`` for an
    #: object with no dict form, e.g. an adapter given a loss function), set by ``compress``.
    configs: dict[str, Any] = attrs.field(factory=dict)
    #: Phase name → what an optional phase reports (JSON-ready), e.g. ``"merge-slow"``: the layers
    #: merged back to dense with their measured times.
    reports: dict[str, Any] = attrs.field(factory=dict)

    @property
    def fallbacks(self) -> dict[str, SolveRecord]:
        """The layers whose solve left the Cholesky path (eigen or identity roots)."""
        return {name: record for name, record in self.records.items() if record.fell_back}

    def kept_energy(self, name: str) -> float | None:
        """The share ``Σ_{i<k} s_i² / Σ s_i²`` of layer ``name``'s spectrum that its rank ``k`` keeps
        (1 for a dense layer; ``None`` without a spectrum)."""
        rank, spectrum = self.ranks.get(name), self.spectra.get(name)
        if rank is None:
            return 1.0
        if spectrum is None or not float(spectrum.pow(2).sum()) > 0.0:
            return None
        energy = spectrum.double().pow(2)
        return float(energy[:rank].sum() / energy.sum())

    @property
    def kept_ratio(self) -> float:
        """``params_after / params_before``."""
        return self.params_after / self.params_before

    @property
    def met_budget(self) -> bool:
        """Whether ``params_after ≤ ratio × params_before``."""
        return self.params_after <= self.budget

    def summary(self) -> str:
        """A short markdown table: one row per compressible layer, then totals."""
        lines = ["| layer | rank | path |", "|---|---|---|"]
        for name in self.layer_order or list(self.ranks):
            rank = self.ranks.get(name)
            record = self.records.get(name)
            path = ", ".join(f"{k}:{v}" for k, v in record.paths.items()) if record else "dense"
            lines.append(f"| {name} | {'dense' if rank is None else rank} | {path} |")
        lines.append("")
        lines.append(
            f"recipe {self.recipe}, ratio {self.ratio}: {self.params_after:,} of {self.params_before:,} "
            f"parameters kept ({self.kept_ratio:.4f}; budget {self.budget:,}, "
            f"{'met' if self.met_budget else 'MISSED'})"
        )
        return "\n".join(lines)
