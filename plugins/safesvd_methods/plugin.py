"""Entry point of the built-in methods: estimators, solvers, allocators and recipes."""

from __future__ import annotations

from safesvd_core.plugin import hookimpl

from .allocators import GreedyAllocator, UniformAllocator
from .baselines.aces import ACESSolver
from .baselines.asvd import ASVD
from .baselines.asvd_search import ASVDAllocator
from .baselines.dobi import DobiSVD
from .baselines.eigen import EigenSolver
from .baselines.estimators import CleanGram, InputAbsMean, WeightFisher
from .baselines.grouped import GroupedAllocator
from .baselines.projection import OutputProjection
from .baselines.recipes import FWSVD, SAESSVD, SVDLLM, SVDLLMV2, PlainSVD
from .baselines.scaled import ScaledSolver, TruncatedSVD
from .estimators import CleanCovariance, EnergyBalanced, OutputFisher, ShiftedCovariance
from .latency import LatencyAllocator
from .recipes import SafeSVD, SafeSVDBalanced
from .solvers import WhitenedSolver


@hookimpl
def safesvd_estimators():
    return [
        CleanCovariance,
        ShiftedCovariance,
        OutputFisher,
        EnergyBalanced,
        InputAbsMean,
        WeightFisher,
        CleanGram,
    ]


@hookimpl
def safesvd_solvers():
    return [WhitenedSolver, TruncatedSVD, ScaledSolver, EigenSolver, ACESSolver, OutputProjection]


@hookimpl
def safesvd_allocators():
    return [GreedyAllocator, UniformAllocator, ASVDAllocator, GroupedAllocator, LatencyAllocator]


@hookimpl
def safesvd_recipes():
    return [SafeSVD, SafeSVDBalanced, PlainSVD, ASVD, FWSVD, SVDLLM, SVDLLMV2, SAESSVD, DobiSVD]
