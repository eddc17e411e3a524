"""Every built-in estimator, solver, allocator, model adapter, physics loss and recipe runs its
conformance suite, and so does every built-in phase, run hook, batch source and statistics reducer.

A conformance subclass says which plugin it covers with ``plugin_name`` (physics-loss subclasses:
the name of the loss their ``make_loss`` returns); a seam's subclass names its class with
``implementation``. Third-party plugins (the example ``enstrophy``) run the suites in their own tests
and are not counted here.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

from safesvd_core import available
from safesvd_core.plugin import BatchSource, Phase, RunHook, StatisticsReducer, plugin_manager
from safesvd_core.testing.adapters import ModelAdapterConformance
from safesvd_core.testing.allocators import AllocatorConformance
from safesvd_core.testing.estimators import EstimatorConformance
from safesvd_core.testing.hooks import RunHookConformance
from safesvd_core.testing.phases import PhaseConformance
from safesvd_core.testing.physics import PhysicsLossConformance
from safesvd_core.testing.recipes import RecipeConformance
from safesvd_core.testing.reducers import StatisticsReducerConformance
from safesvd_core.testing.solvers import SolverConformance
from safesvd_core.testing.sources import BatchSourceConformance

TESTS = Path(__file__).resolve().parent
#: kind → (suite, the test module of its built-in subclasses, relative to tests/)
SUITES = {
    "estimator": (EstimatorConformance, "test_conformance_estimators"),
    "solver": (SolverConformance, "test_conformance_solvers"),
    "allocator": (AllocatorConformance, "test_conformance_allocators"),
    "model_adapter": (ModelAdapterConformance, "adapters/test_conformance_adapters"),
    "physics_loss": (PhysicsLossConformance, "pde/test_physics_conformance"),
    "recipe": (RecipeConformance, "test_conformance_recipes"),
}
#: seam → (its base class, the suite, the test module of its built-in subclasses, relative to tests/)
SEAMS = {
    "phase": (Phase, PhaseConformance, "test_conformance_phases"),
    "run hook": (RunHook, RunHookConformance, "test_conformance_seams"),
    "batch source": (BatchSource, BatchSourceConformance, "test_conformance_seams"),
    "statistics reducer": (StatisticsReducer, StatisticsReducerConformance, "test_conformance_seams"),
}
#: Where built-in classes live: the core (its test helpers apart) and the plugin packages of this repository.
BUILT_IN = (
    "safesvd_core.",
    "safesvd_methods.",
    "safesvd_adapters.",
    "safesvd_pde.",
    "safesvd_zoo.",
    "safesvd_data.",
    "safesvd_cli.",
)


def _import(relative: str) -> None:
    """Import a test module under the name pytest gives it (its basename; its folder on sys.path)."""
    folder, _, name = relative.rpartition("/")
    path = str(TESTS / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    importlib.import_module(name)


def _test_classes(suite: type) -> list[type]:
    found, todo = [], list(suite.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__name__.startswith("Test"):
            found.append(cls)
    return found


def _covered(kind: str) -> dict[str, list[str]]:
    """Plugin name → the test classes that run ``kind``'s suite on it."""
    suite, module = SUITES[kind]
    _import(module)
    covered: dict[str, list[str]] = {}
    for cls in _test_classes(suite):
        if issubclass(cls, PhysicsLossConformance) and not hasattr(cls, "plugin_name"):
            name = type(cls().make_loss()).name
        else:
            assert hasattr(cls, "plugin_name"), (
                f"{cls.__qualname__} must declare the plugin it covers (plugin_name)"
            )
            name = cls.plugin_name
        covered.setdefault(name, []).append(cls.__qualname__)
    return covered


def _built_in(kind: str) -> set[str]:
    """The names the safesvd distribution itself registers for ``kind``."""
    registry = plugin_manager().registry(kind)
    return {
        name for name in available(kind) if registry.registration(name).distribution.split()[0] == "safesvd"
    }


@pytest.mark.parametrize("kind", sorted(SUITES))
def test_every_built_in_plugin_has_a_conformance_subclass(kind):
    built_in = _built_in(kind)
    assert built_in, f"no built-in {kind} is registered"
    missing = sorted(built_in - set(_covered(kind)))
    suite, module = SUITES[kind]
    assert not missing, (
        f"built-in {kind}(s) {missing} have no {suite.__name__} subclass; add one to tests/{module}.py"
    )


@pytest.mark.parametrize("kind", sorted(SUITES))
def test_conformance_subclasses_name_registered_plugins(kind):
    unknown = sorted(set(_covered(kind)) - set(available(kind)))
    assert not unknown, f"conformance subclasses name {kind}(s) {unknown}, which are not registered"


def _built_in_implementations(base: type) -> set[type]:
    """The concrete subclasses of ``base`` that the core and the built-in plugins define (every plugin
    loaded)."""
    for kind in SUITES:
        available(kind)  # imports every plugin module
    found, todo = set(), list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if (
            not inspect.isabstract(cls)
            and cls.__module__.startswith(BUILT_IN)
            and not cls.__module__.startswith("safesvd_core.testing")
            and getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls
        ):  # not attrs' pre-slots copy
            found.add(cls)
    return found


@pytest.mark.parametrize("seam", sorted(SEAMS))
def test_every_built_in_seam_implementation_has_a_conformance_subclass(seam):
    base, suite, module = SEAMS[seam]
    _import(module)
    built_in = _built_in_implementations(base)
    assert built_in, f"no built-in {seam} found"
    covered = set()
    for cls in _test_classes(suite):
        assert hasattr(cls, "implementation"), (
            f"{cls.__qualname__} must declare the class it covers (implementation)"
        )
        covered.add(cls.implementation)
    missing = sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in built_in - covered)
    assert not missing, (
        f"built-in {seam}(s) {missing} have no {suite.__name__} subclass; add one to tests/{module}.py"
    )
