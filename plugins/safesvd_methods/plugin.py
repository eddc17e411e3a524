"""Entry point of the built-in methods: the default algorithm's estimators, solver, allocators
and phases (defined in the core, registered here as a third-party plugin would), the baselines, the
recipes and the phases a recipe list names."""

from __future__ import annotations

from safesvd_core.plugin import (
    AllocationPhase,
    CleanCovariance,
    CleanStatisticsPhase,
    EnergyBalanced,
    GreedyAllocator,
    LambdaPhase,
    OutputFisher,
    PhaseList,
    ProbePhase,
    ShiftedCovariance,
    StagesPhase,
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
from .block_correction import BlockCorrectionPhase
from .latency import LatencyAllocator
from .merge import MergeSlowPhase
from .recipes import SafeSVD, SafeSVDBalanced
from .tuning import TuningPhase


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
    return [SafeSVD, SafeSVDBalanced, PhaseList, PlainSVD, ASVD, FWSVD, SVDLLM, SVDLLMV2, SAESSVD, DobiSVD]


@hookimpl
def safesvd_phases():
    return [
        ProbePhase,
        LambdaPhase,
        CleanStatisticsPhase,
        AllocationPhase,
        StagesPhase,
        MergeSlowPhase,
        BlockCorrectionPhase,
        TuningPhase,
    ]
