"""Hook specifications of the ``safesvd`` plugin system.

Every hook takes no argument and returns a list of classes of one kind. Each class carries a
``name`` class attribute: the name users pass to ``compress``/the CLI. A plugin module implements
any subset of these hooks with :data:`hookimpl` and is declared in the ``safesvd`` entry-point group.

The return types name their base class in words, not by import: this module stays a leaf of the
core's import graph, so that every kind may use the registries without an import cycle.
"""

from __future__ import annotations

import pluggy

PROJECT = "safesvd"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def safesvd_estimators() -> list[type]:
    """Return ``Estimator`` subclasses: streaming layer statistics (covariances, Fisher, ...)."""
    raise NotImplementedError


@hookspec
def safesvd_solvers() -> list[type]:
    """Return ``Solver`` subclasses: turn a weight plus statistics into two low-rank factors."""
    raise NotImplementedError


@hookspec
def safesvd_allocators() -> list[type]:
    """Return ``Allocator`` subclasses: choose a rank per layer under a parameter budget."""
    raise NotImplementedError


@hookspec
def safesvd_physics_losses() -> list[type]:
    """Return ``PhysicsLoss`` subclasses: callables ``(prediction, reference, field) -> scalar``."""
    raise NotImplementedError


@hookspec
def safesvd_model_adapters() -> list[type]:
    """Return ``ModelAdapter`` subclasses: how to run, score and slice a model family."""
    raise NotImplementedError


@hookspec
def safesvd_recipes() -> list[type]:
    """Return ``Recipe`` subclasses: named compositions of the other kinds plus options."""
    raise NotImplementedError


@hookspec
def safesvd_pde_families() -> list[type]:
    """Return ``PDEFamily`` subclasses: a default physics-loss composition, metrics and channel roles."""
    raise NotImplementedError


@hookspec
def safesvd_phases() -> list[type]:
    """Return ``Phase`` subclasses that configure themselves: phases a recipe list names (the CLI's
    ``[compress] phases``, :func:`~safesvd_core.named_phases`)."""
    raise NotImplementedError


@hookspec
def safesvd_cli_commands() -> list[type]:
    """Return ``CliCommand`` subclasses: subcommands of the ``safesvd`` command line."""
    raise NotImplementedError
