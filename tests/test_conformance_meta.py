"""Every built-in estimator, solver, allocator, model adapter and physics loss runs its conformance suite.

A conformance subclass says which plugin it covers with ``plugin_name`` (physics-loss subclasses:
the name of the loss their ``make_loss`` returns). Third-party plugins (the example ``enstrophy``)
run the suites in their own tests and are not counted here.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from safesvd_core import available
from safesvd_core.plugin import plugin_manager
from safesvd_core.testing.adapters import ModelAdapterConformance
from safesvd_core.testing.allocators import AllocatorConformance
from safesvd_core.testing.estimators import EstimatorConformance
from safesvd_core.testing.physics import PhysicsLossConformance
from safesvd_core.testing.solvers import SolverConformance

TESTS = Path(__file__).resolve().parent
#: kind → (suite, the test module of its built-in subclasses, relative to tests/)
SUITES = {
    "estimator": (EstimatorConformance, "test_conformance_estimators"),
    "solver": (SolverConformance, "test_conformance_solvers"),
    "allocator": (AllocatorConformance, "test_conformance_allocators"),
    "model_adapter": (ModelAdapterConformance, "adapters/test_conformance_adapters"),
    "physics_loss": (PhysicsLossConformance, "pde/test_physics_conformance"),
}


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
            assert hasattr(cls, "plugin_name"), f"{cls.__qualname__} must declare the plugin it covers (plugin_name)"
            name = cls.plugin_name
        covered.setdefault(name, []).append(cls.__qualname__)
    return covered


def _built_in(kind: str) -> set[str]:
    """The names the safesvd distribution itself registers for ``kind``."""
    registry = plugin_manager().registry(kind)
    return {name for name in available(kind) if registry.registration(name).distribution.split()[0] == "safesvd"}


@pytest.mark.parametrize("kind", sorted(SUITES))
def test_every_built_in_plugin_has_a_conformance_subclass(kind):
    built_in = _built_in(kind)
    assert built_in, f"no built-in {kind} is registered"
    missing = sorted(built_in - set(_covered(kind)))
    suite, module = SUITES[kind]
    assert not missing, f"built-in {kind}(s) {missing} have no {suite.__name__} subclass; add one to tests/{module}.py"


@pytest.mark.parametrize("kind", sorted(SUITES))
def test_conformance_subclasses_name_registered_plugins(kind):
    unknown = sorted(set(_covered(kind)) - set(available(kind)))
    assert not unknown, f"conformance subclasses name {kind}(s) {unknown}, which are not registered"

