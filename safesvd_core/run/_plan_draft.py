"""What a list of configured phases is assembling: the plan's parts, set by the phase owning each."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from .._errors import ConfigError
from ..kinds._validators import AUTO


class Named(Protocol):
    """A phase, as the draft sees it: its name."""

    name: str


@attrs.define
class PlanDraft:
    """The plan a list of phases is assembling: the job it is for, the plan's keywords set so far
    (``parts``), the phase that set each, and the options left ``"auto"`` for a tuning phase."""

    #: The :class:`~safesvd_core.plugin.CompressionJob` the plan is for; ``None`` for a plan drafted
    #: with no data (the rollout length is then the phase's own ``rollout_steps``).
    job: Any
    parts: dict[str, Any] = attrs.field(factory=dict)
    owners: dict[str, str] = attrs.field(factory=dict)
    autos: list[str] = attrs.field(factory=list)
    tuned: bool = False

    def set(self, phase: Named, **parts: Any) -> None:
        """Set plan keywords (``Plan``'s fields, the objective's flat) on behalf of ``phase``; a part
        another phase already set is refused, naming both."""
        for key, value in parts.items():
            if key in self.owners and self.owners[key] != phase.name:
                raise ConfigError(
                    f"phases {self.owners[key]!r} and {phase.name!r} both set the plan's {key!r}; "
                    "keep one of them in the list"
                )
            self.parts[key] = value
            self.owners[key] = phase.name

    def auto(self, phase: Named, option: str, value: Any, stand_in: Any) -> Any:
        """``value``, or ``stand_in`` when it is ``"auto"`` (recorded: a tuning phase chooses it)."""
        if value != AUTO:
            return value
        self.autos.append(f"{phase.name}.{option}")
        return stand_in
