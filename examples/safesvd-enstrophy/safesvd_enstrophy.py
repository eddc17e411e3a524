"""A third-party safesvd plugin: ``enstrophy``, the mean change of local enstrophy ``½|ω|²``."""

from typing import ClassVar

import attrs

from safesvd_core.plugin import PhysicsLoss, hookimpl
from safesvd_pde.finite_difference import vorticity
from safesvd_core.plugin import check_pair, finite


@attrs.frozen(kw_only=True)
class Enstrophy(PhysicsLoss):
    """``mean |½|ω_pred|² − ½|ω_ref|²|`` (2-D or 3-D velocity)."""

    name: ClassVar[str] = "enstrophy"

    def __call__(self, prediction, reference, field):
        check_pair(prediction, reference, field)
        pred, ref = (0.5 * vorticity(u, field).square().sum(1) for u in (prediction, reference))
        return finite((pred - ref).abs().mean(), self.name)


@hookimpl
def safesvd_physics_losses():
    return [Enstrophy]
