"""The default multi-domain calibration set: every generator, small grids, one loader."""

from __future__ import annotations

from collections.abc import Mapping

from ._generator import Generator
from .burgers import BurgersGenerator
from .diffusion_reaction import GrayScottGenerator
from .euler import EulerGenerator
from .loader import MultiDomainLoader
from .navier_stokes import NavierStokesGenerator
from .shallow_water import ShallowWaterGenerator
from .wave import WaveGenerator

#: Generator name (its domain label) → class.
GENERATORS: Mapping[str, type[Generator]] = {
    cls.name: cls
    for cls in (
        NavierStokesGenerator,
        EulerGenerator,
        ShallowWaterGenerator,
        WaveGenerator,
        GrayScottGenerator,
        BurgersGenerator,
    )
}


def default_calibration_set(
    *, samples: int = 16, size: int = 32, seed: int = 0, batch_size: int = 8
) -> MultiDomainLoader:
    """``samples`` pairs of every family in :data:`GENERATORS` on a ``size``² grid, with default settings.

    Family ``i`` uses seed ``seed + 1000 i``, so families never share random draws. Batches are
    ``(input, target, domain)``, one family per batch, families in turn.
    """
    sets = [
        cls(samples=samples, size=size, seed=seed + 1000 * index).generate()
        for index, cls in enumerate(GENERATORS.values())
    ]
    return MultiDomainLoader(sets=sets, batch_size=batch_size)


__all__ = ["GENERATORS", "default_calibration_set"]
