"""Hook specifications of the ``safesvd`` plugin system.

Every hook takes no argument and returns a list of classes. Each class carries a ``name``
class attribute: the name users pass to ``compress``/the CLI. A plugin module implements any
subset of these hooks with :data:`hookimpl` and is declared in the ``safesvd`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._family import PDEFamily
    from ._interfaces import Allocator, Estimator, ModelAdapter, PhysicsLoss, Recipe, Solver

PROJECT = "safesvd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def safesvd_estimators() -> list[type[Estimator]]:
    """Return :class:`Estimator` classes: streaming layer statistics (covariances, Fisher, ...)."""
    raise NotImplementedError


@hookspec
def safesvd_solvers() -> list[type[Solver]]:
    """Return :class:`Solver` classes: turn a weight plus statistics into two low-rank factors."""
    raise NotImplementedError


@hookspec
def safesvd_allocators() -> list[type[Allocator]]:
    """Return :class:`Allocator` classes: choose a rank per layer under a parameter budget."""
    raise NotImplementedError


@hookspec
def safesvd_physics_losses() -> list[type[PhysicsLoss]]:
    """Return :class:`PhysicsLoss` classes: callables ``(prediction, reference, field) -> scalar``."""
    raise NotImplementedError


@hookspec
def safesvd_model_adapters() -> list[type[ModelAdapter]]:
    """Return :class:`ModelAdapter` classes: how to run, score and slice a model family."""
    raise NotImplementedError


@hookspec
def safesvd_recipes() -> list[type[Recipe]]:
    """Return :class:`Recipe` classes: named compositions of the other kinds plus options."""
    raise NotImplementedError


@hookspec
def safesvd_pde_families() -> list[type[PDEFamily]]:
    """Return PDE-family classes: a default physics-loss composition, metrics and channel roles."""
    raise NotImplementedError
