"""PDE datasets: readers of the PDEBench and The Well HDF5 layouts, and seeded data generators.

Readers (h5py, the ``data`` extra) and generators both give a :class:`PairSet`: ``(input,
target)`` tensors ``(samples, channels, *grid)`` in float32, their :class:`FieldDescription` and
a domain label; :class:`MultiDomainLoader` interleaves several as ``(input, target, domain)``
batches. For rollout calibration both also give a :class:`RolloutSet` (``read_rollouts(steps)``,
``rollouts(steps)``): ``(input, trajectory)`` items. See docs/data.md.
"""

from . import checks
from .burgers import BurgersGenerator
from .calibration import GENERATORS, default_calibration_set
from .diffusion_reaction import GrayScottGenerator
from .euler import EulerGenerator
from .loader import MultiDomainLoader
from .navier_stokes import NavierStokes2D, NavierStokesGenerator
from .pairs import PairSet, relative_l2
from .pdebench import PDEBenchCFD, PDEBenchDiffusionReaction, PDEBenchIncompressibleNS, PDEBenchShallowWater
from .rollouts import RolloutSet
from .shallow_water import ShallowWaterGenerator
from .the_well import TheWell
from .wave import WaveGenerator

__all__ = [
    "GENERATORS",
    "BurgersGenerator",
    "EulerGenerator",
    "GrayScottGenerator",
    "MultiDomainLoader",
    "NavierStokes2D",
    "NavierStokesGenerator",
    "PDEBenchCFD",
    "PDEBenchDiffusionReaction",
    "PDEBenchIncompressibleNS",
    "PDEBenchShallowWater",
    "PairSet",
    "RolloutSet",
    "ShallowWaterGenerator",
    "TheWell",
    "WaveGenerator",
    "checks",
    "default_calibration_set",
    "relative_l2",
]
