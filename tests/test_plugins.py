"""The plugin system: entry points, registries, errors, environment switches, CLI."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

import safesvd_core
from safesvd_core import DuplicatePluginError, UnknownPluginError
from safesvd_core.kinds import _hookspecs, _plugins
from safesvd_core.plugin import PluginManager, hookimpl

ROOT = Path(__file__).resolve().parents[1]


def fake_class(kind: str, name: str) -> type:
    return type(f"Fake_{kind}", (), {"name": name})


def fake_plugin(hook: str, classes: list[type]) -> types.ModuleType:
    module = types.ModuleType(f"fake_{hook}")

    def implementation():
        return classes

    implementation.__name__ = hook
    setattr(module, hook, hookimpl(implementation))
    return module


def test_every_kind_is_available():
    expected = {
        "estimator": {"clean-covariance", "shifted-covariance", "output-fisher", "energy-balanced"},
        "solver": {"whitened"},
        "allocator": {"greedy", "uniform"},
        "model_adapter": {"generic"},
        "recipe": {"safe-svd", "safe-svd-balanced"},
    }
    for kind, names in expected.items():
        assert names <= set(safesvd_core.available(kind)), kind
    assert safesvd_core.available("recipe") == sorted(safesvd_core.available("recipe"))


@pytest.mark.parametrize("kind", sorted(_plugins.KINDS))
def test_each_hook_registers_a_third_party_class(kind):
    manager = PluginManager(autoload=False)
    cls = fake_class(kind, f"my-{kind}")
    manager.register(fake_plugin(_plugins.KINDS[kind], [cls]), name="mine", distribution="my-dist 1.0")
    registration = manager.registry(kind).registration(f"my-{kind}")
    assert registration.cls is cls
    assert (registration.plugin, registration.distribution) == ("mine", "my-dist 1.0")
    assert manager.registry(kind).get(f"my-{kind}") is cls


def test_unknown_name_lists_alternatives_and_closest_match():
    with pytest.raises(UnknownPluginError) as info:
        safesvd_core.registry("allocator").get("greedyy")
    message = str(info.value)
    assert "Did you mean 'greedy'?" in message
    assert "Choose one of: asvd, greedy, grouped, latency, uniform" in message
    assert "plugin may not be installed" in message


def test_unknown_kind_is_an_error():
    with pytest.raises(UnknownPluginError, match="Choose one of: .*estimator"):
        safesvd_core.available("estimators")


def test_duplicate_name_names_both_providers():
    manager = PluginManager(autoload=False)
    manager.register(
        fake_plugin("safesvd_allocators", [fake_class("a", "greedy")]), name="first", distribution="one 1.0"
    )
    manager.register(
        fake_plugin("safesvd_allocators", [fake_class("b", "greedy")]), name="second", distribution="two 2.0"
    )
    with pytest.raises(DuplicatePluginError, match=r"'first' \(one 1.0\) and by 'second' \(two 2.0\)"):
        manager.registry("allocator")


def test_builtin_and_third_party_collide_loudly(monkeypatch):
    fake_dist = FakeDistribution("evil-plugin", {"evil": "fake_evil_module"})
    module = fake_plugin("safesvd_recipes", [fake_class("r", "safe-svd")])
    monkeypatch.setitem(sys.modules, "fake_evil_module", module)
    monkeypatch.setattr(_plugins.importlib.metadata, "distributions", with_fake(fake_dist))
    with pytest.raises(DuplicatePluginError, match="safe-svd"):
        PluginManager().registry("recipe")


def test_class_without_name_is_rejected():
    manager = PluginManager(autoload=False)
    manager.register(fake_plugin("safesvd_solvers", [type("Nameless", (), {})]), name="bad")
    with pytest.raises(safesvd_core.SafeSVDError, match="no non-empty string 'name'"):
        manager.registry("solver")


class FakeDistribution:
    """A stand-in for an installed third-party distribution with ``safesvd`` entry points."""

    def __init__(self, name: str, entry_points: dict[str, str]) -> None:
        self.metadata = {"Name": name}
        self.version = "9.9"
        self.entry_points = [importlib.metadata.EntryPoint(n, v, "safesvd") for n, v in entry_points.items()]


def with_fake(*fakes):
    real = importlib.metadata.distributions

    def distributions():
        return [*real(), *fakes]

    return distributions


@pytest.fixture
def third_party(monkeypatch):
    module = fake_plugin("safesvd_allocators", [fake_class("a", "third-party-allocator")])
    monkeypatch.setitem(sys.modules, "fake_third_party_module", module)
    fake_dist = FakeDistribution("third-party", {"third": "fake_third_party_module"})
    monkeypatch.setattr(_plugins.importlib.metadata, "distributions", with_fake(fake_dist))


def test_third_party_entry_points_load_like_builtins(third_party):
    registration = PluginManager().registry("allocator").registration("third-party-allocator")
    assert registration.distribution == "third-party 9.9"


def test_autoload_switch_keeps_only_builtins(third_party, monkeypatch):
    monkeypatch.setenv("SAFESVD_DISABLE_PLUGIN_AUTOLOAD", "1")
    names = PluginManager().registry("allocator").names()
    assert "third-party-allocator" not in names
    assert {"greedy", "uniform"} <= set(names)


def test_allowlist_loads_only_named_entry_points(third_party, monkeypatch):
    monkeypatch.setenv("SAFESVD_PLUGINS", "third")
    assert PluginManager().registry("allocator").names() == ["third-party-allocator"]


def test_hooks_are_documented_and_mapped_to_kinds():
    hooks = {
        name for name, _ in inspect.getmembers(_hookspecs, inspect.isfunction) if name.startswith("safesvd_")
    }
    assert hooks == set(_plugins.KINDS.values())
    docs = (ROOT / "docs" / "plugins.md").read_text()
    for hook in hooks:
        assert inspect.getdoc(getattr(_hookspecs, hook)), hook
        assert hook in docs, f"{hook} is not documented in docs/plugins.md"


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )


def test_import_loads_no_plugin_and_touches_no_gpu():
    out = run_python(
        "import sys, torch, safesvd_core\n"
        "from safesvd_core.kinds import _plugins\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('safesvd_methods', "
        "'safesvd_adapters', 'safesvd_pde', 'safesvd_zoo'))\n"
        "print(loaded, _plugins._default is None, torch.cuda.is_initialized())\n"
    )
    assert out.stdout.strip() == "[] True False"


def test_cli_lists_plugins_with_kind_and_distribution():
    out = subprocess.run(
        [sys.executable, "-m", "safesvd_core", "plugins"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "distribution"]
    rows = {tuple(line.split()[:2]): line for line in lines[1:]}
    assert ("recipe", "safe-svd") in rows and "safesvd" in rows[("recipe", "safe-svd")]
    assert ("allocator", "greedy") in rows
