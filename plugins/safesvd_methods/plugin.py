"""Entry point of the built-in methods: estimators, solver, allocators and recipes."""

from __future__ import annotations

from safesvd_core._hookspecs import hookimpl

from .allocators import GreedyAllocator, UniformAllocator
from .estimators import CleanCovariance, EnergyBalanced, OutputFisher, ShiftedCovariance
from .recipes import SafeSVD, SafeSVDBalanced
from .solvers import WhitenedSolver


@hookimpl
def safesvd_estimators():
    return [CleanCovariance, ShiftedCovariance, OutputFisher, EnergyBalanced]


@hookimpl
def safesvd_solvers():
    return [WhitenedSolver]


@hookimpl
def safesvd_allocators():
    return [GreedyAllocator, UniformAllocator]


@hookimpl
def safesvd_recipes():
    return [SafeSVD, SafeSVDBalanced]
