"""Entry point of the built-in methods: the default algorithm's estimators, solver and allocators
(defined in the core, registered here as a third-party plugin would), the baselines and the recipes."""

from __future__ import annotations

from safesvd_core.plugin import (
    CleanCovariance,
    EnergyBalanced,
    GreedyAllocator,
    OutputFisher,
    ShiftedCovariance,
    UniformAllocator,
    WhitenedSolver,
    hookimpl,
)

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
from .latency import LatencyAllocator
from .recipes import SafeSVD, SafeSVDBalanced


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
