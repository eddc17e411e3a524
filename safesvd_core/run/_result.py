"""What :func:`safesvd_core.compress` returns."""

from __future__ import annotations

from typing import Any

import attrs
from torch import nn

from .._grouped import flat_property, fold_flat
from ..kinds._interfaces import SolveRecord
from ..statistics._statistics import CalibrationStatistics
from ._outputs import RunLog
from ._result_parts import GROUPS, ParameterCount, RankChoice, RunSetting


@attrs.frozen(kw_only=True, init=False)
class CompressionResult:
    """The compressed model and everything needed to judge and reproduce it; frozen once built.

    Grouped: ``setting`` (:class:`RunSetting`: recipe, options, ratio, objective, configs,
    fingerprints), ``parameters`` (:class:`ParameterCount`), ``choice`` (:class:`RankChoice`: ranks,
    spectra, layer order, stages, λ), ``log`` (timings and passes by phase, notes, each phase's
    ``reports``), ``records`` (per solved layer, which factorisation path each matrix took;
    ``fallbacks`` keeps the ones that left the Cholesky path) and the clean ``statistics``. Every
    grouped field is also read flat (``result.ranks``) and may be given flat to the constructor.
    """

    model: nn.Module
    setting: RunSetting
    parameters: ParameterCount
    choice: RankChoice = attrs.field(factory=RankChoice)
    log: RunLog = attrs.field(factory=RunLog)
    records: dict[str, SolveRecord] = attrs.field(factory=dict)
    statistics: CalibrationStatistics | None = None

    def __init__(self, **fields: Any) -> None:
        """The fields as keywords; every grouped field may be given flat (overriding its group's)."""
        self.__attrs_init__(**fold_flat(fields, GROUPS))

    @property
    def tuning(self) -> dict[str, Any]:
        """Options chosen on a held-out split (``"auto"``), with every candidate's score: the report of
        the run's ``tuning`` phase; empty otherwise."""
        return self.log.reports.get("tuning", {})

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


for _group, _kind in GROUPS.items():  # every grouped field, read flat: result.ranks, result.timings, ...
    for _name in attrs.fields_dict(_kind):
        setattr(CompressionResult, _name, flat_property(_group, _name))
