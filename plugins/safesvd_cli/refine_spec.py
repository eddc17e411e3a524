"""The ``[refine]`` table of a ``compress`` config: refinement data from the same sources as
``[data]`` (a reader, a generator or ``module:function``), and the refinement's options
(``safesvd_core.RefineOptions``). Checked when the config is read, before any model or data."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from safesvd_core import Refinement, RefineOptions
from safesvd_core.plugin import ConfigError

from .data_source import DataSpec, trajectory_steps

#: The keys of ``[refine]`` that are refinement options (the rest describe the data).
OPTION_KEYS = (
    "steps",
    "lr",
    "warmup",
    "held_out",
    "eval_every",
    "rollout_weight",
    "parameters",
    "seed",
    "teacher_cache_bytes",
    "symmetries",
    "autocast",
)


@attrs.frozen(kw_only=True)
class RefineSpec:
    """Where the refinement inputs come from, as trajectories of how many steps (``trajectory_steps``;
    0: one-step pairs), and the options of :class:`~safesvd_core.RefineOptions`."""

    data: DataSpec
    trajectory_steps: int = 0
    options: RefineOptions

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base: Path) -> RefineSpec:
        table = dict(table)
        steps = trajectory_steps(table, "[refine]")
        given = {key: table.pop(key) for key in OPTION_KEYS if key in table}
        if "steps" not in given:
            raise ConfigError(
                "[refine] steps: missing; say how many optimiser steps to take (e.g. steps = 1500)"
            )
        try:
            options = RefineOptions(**given)
        except ConfigError as error:
            raise ConfigError(f"[refine]: {error}") from None
        return cls(
            data=DataSpec.from_dict(table, base=base, name="refine"), trajectory_steps=steps, options=options
        )

    def to_dict(self) -> dict[str, Any]:
        options = attrs.asdict(self.options)
        return {
            **self.data.to_dict(),
            "trajectory_steps": self.trajectory_steps,
            **{key: options[key] for key in OPTION_KEYS},
        }

    def load(self, share: tuple[float, float] = (0.0, 1.0)) -> list[Any]:
        """The refinement items of the fractions ``share`` of the source: one-step batches, or
        trajectories of ``trajectory_steps`` steps."""
        return self.data.load(self.trajectory_steps or None, share).items

    def compress_arguments(self, items: list[Any]) -> dict[str, Any]:
        """The keywords of ``compress`` that ask for this refinement on ``items``."""
        return {"refine": Refinement(items, self.options)}
