"""The written contracts between the core and plugins: what a plan, a registry, an allocator, a
physics loss, a config and the plugin loader promise, and how each refuses bad input."""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any, ClassVar

import attrs
import pytest
import torch

import safesvd_core
from safesvd_core import (
    ConfigError,
    DuplicatePluginError,
    UnknownPluginError,
    compress,
    config_from_dict,
    config_to_dict,
)
from safesvd_core.__main__ import main
from safesvd_core.kinds import _plugins
from safesvd_core.plugin import (
    Allocator,
    CliCommand,
    LayerCandidate,
    Plan,
    PluginLoadWarning,
    PluginManager,
    Recipe,
    hookimpl,
    registry,
)

from test_plugins import FakeDistribution, fake_plugin, with_fake


def _plan(solver: str, **options: Any) -> Plan:
    return Plan(
        clean_estimators=("clean-covariance",),
        solver=registry("solver").create(solver, **options),
        allocator=registry("allocator").create("greedy"),
    )


def test_a_plan_refuses_a_solver_whose_statistics_no_estimator_provides():
    with pytest.raises(
        ConfigError,
        match=r"solver 'whitened' needs the statistics \['fisher', 'sigma_cross', 'sigma_shift'\]",
    ):
        _plan("whitened")  # sensitivity and α > 0 by default: Fisher and the shifted pair
    with pytest.raises(ConfigError, match=r"needs the statistics \['input_abs_mean'\].*provide \['sigma'\]"):
        _plan("scaled", statistic="input_abs_mean")
    assert _plan("whitened", alpha=0.0, sensitivity=False).solver.requires == {"sigma"}
    balanced = Plan(
        clean_estimators=("energy-balanced",),
        estimator_options={"energy-balanced": {"inner": ("clean-covariance", "output-fisher")}},
        solver=registry("solver").create("whitened", alpha=0.0),
        allocator=registry("allocator").create("uniform"),
    )
    assert balanced.solver.requires == {"sigma", "fisher"}


@pytest.mark.parametrize("kind", sorted(_plugins.KINDS))
def test_registry_create_rejects_unknown_options_and_lists_the_valid_ones(kind):
    name = safesvd_core.available(kind)[0]
    with pytest.raises(
        ConfigError, match=rf"{kind} '{name}' has no option\(s\) \['not_an_option'\]\. Its options: "
    ):
        registry(kind).create(name, not_an_option=1)


def test_create_passes_known_options_through():
    assert registry("allocator").create("uniform", min_rank=3).min_rank == 3
    estimator = registry("estimator").create(
        "energy-balanced", in_features=3, out_features=2, inner=("clean-covariance",)
    )
    assert estimator.in_features == 3


@attrs.frozen(kw_only=True)
class EveryOtherLayer(Allocator):
    """A third-party allocator that declares no ``min_rank`` of its own: the ABC provides it."""

    name: ClassVar[str] = "every-other"

    def allocate(self, layers, budget):
        return {layer.name: (self.min_rank if index % 2 == 0 else None) for index, layer in enumerate(layers)}


def _with_plugin(manager: PluginManager, hook: str, classes: list[type]) -> PluginManager:
    manager.register(fake_plugin(hook, classes), name="test-plugin", distribution="tests 0")
    return manager


def test_allocators_take_the_min_rank_recipes_pass(fresh_plugin_manager):
    _with_plugin(fresh_plugin_manager, "safesvd_allocators", [EveryOtherLayer])
    assert EveryOtherLayer().min_rank == 1
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.GELU(),
        torch.nn.Linear(64, 16),
        torch.nn.GELU(),
        torch.nn.Linear(16, 64),
    )
    data = [(torch.randn(32, 16), torch.randn(32, 64)) for _ in range(2)]
    result = compress(model, data, ratio=0.9, recipe="svd-llm", allocator="every-other", min_rank=3)
    assert result.ranks == {"0": 3, "2": None, "4": 3}
    with pytest.raises(ConfigError, match="min_rank must be an integer ≥ 1"):
        EveryOtherLayer(min_rank=0)


def test_physics_losses_split_into_order_terms_by_default():
    class Whole(safesvd_core.plugin.PhysicsLoss):
        name: ClassVar[str] = "whole"

        def __call__(self, prediction, reference, field):
            return (prediction - reference).abs().mean()

    prediction, reference = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert Whole().order_terms(prediction, reference, None) == {None: torch.tensor(1.0)}


@attrs.frozen(kw_only=True)
class Renamed(Recipe):
    """A recipe at options version 2: version 1 called ``strength`` what is now ``alpha``."""

    name: ClassVar[str] = "renamed"
    config_version: ClassVar[int] = 2
    alpha: float = 0.5

    @classmethod
    def migrate_config(cls, options: dict[str, Any], version: int) -> dict[str, Any]:
        assert version == 1
        return {"alpha": options.pop("strength"), **options}

    def compress(self, job):
        raise NotImplementedError


@attrs.frozen(kw_only=True)
class Unmigratable(Renamed):
    name: ClassVar[str] = "unmigratable"
    migrate_config = None


def test_each_plugin_class_versions_its_own_config(fresh_plugin_manager):
    _with_plugin(fresh_plugin_manager, "safesvd_recipes", [Renamed, Unmigratable])
    assert config_to_dict(Renamed(alpha=0.3))["version"] == 2
    assert config_to_dict(registry("recipe").create("safe-svd"))["version"] == 1  # others keep theirs
    assert (
        config_from_dict(
            {"kind": "recipe", "name": "renamed", "version": 1, "options": {"strength": 0.7}}
        ).alpha
        == 0.7
    )
    assert (
        config_from_dict({"kind": "recipe", "name": "renamed", "version": 2, "options": {"alpha": 0.2}}).alpha
        == 0.2
    )
    with pytest.raises(
        ConfigError, match="'renamed' config version 3 is not supported: this installation reads version 2"
    ):
        config_from_dict({"kind": "recipe", "name": "renamed", "version": 3, "options": {}})
    with pytest.raises(ConfigError, match="older than 2 and the plugin gives no migrate_config"):
        config_from_dict({"kind": "recipe", "name": "unmigratable", "version": 1, "options": {}})
    with pytest.raises(ConfigError, match="config kind 'recipes' is not one of"):
        config_from_dict({"kind": "recipes", "name": "renamed", "version": 1, "options": {}})


def _install(monkeypatch, *distributions: FakeDistribution, modules: dict[str, types.ModuleType]) -> None:
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(_plugins.importlib.metadata, "distributions", with_fake(*distributions))


def _allocator_module(name: str) -> types.ModuleType:
    return fake_plugin("safesvd_allocators", [type(f"A_{name}", (), {"name": name})])


def test_one_entry_point_name_from_two_distributions_names_both(monkeypatch):
    _install(
        monkeypatch,
        FakeDistribution("first-dist", {"shared": "fake_shared_a"}),
        FakeDistribution("second-dist", {"shared": "fake_shared_b"}),
        modules={"fake_shared_a": _allocator_module("a"), "fake_shared_b": _allocator_module("b")},
    )
    with pytest.raises(
        DuplicatePluginError,
        match="'shared' is offered by two distributions: first-dist 9.9 and second-dist 9.9",
    ):
        PluginManager()


def test_a_plugin_that_raises_while_loading_is_named_and_the_others_load(monkeypatch):
    broken = types.ModuleType("fake_broken")
    _install(
        monkeypatch,
        FakeDistribution("broken-dist", {"broken": "fake_broken:missing_attribute"}),
        FakeDistribution("good-dist", {"good": "fake_good"}),
        modules={"fake_broken": broken, "fake_good": _allocator_module("good-one")},
    )
    with pytest.warns(PluginLoadWarning, match="'broken' \\(broken-dist 9.9\\).*failed to load"):
        manager = PluginManager()
    assert [failure.plugin for failure in manager.failures] == ["broken"]
    assert "good-one" in manager.registry("allocator") and "greedy" in manager.registry("allocator")
    with pytest.raises(
        UnknownPluginError,
        match="These plugins failed to load: 'broken' \\(broken-dist 9.9\\): AttributeError",
    ):
        manager.registry("allocator").get("bad-one")


def test_a_hook_that_raises_is_isolated_too():
    manager = PluginManager(autoload=False)
    module = types.ModuleType("raising")

    @hookimpl
    def safesvd_solvers():
        raise RuntimeError("boom")

    module.safesvd_solvers = safesvd_solvers
    manager.register(module, name="raising", distribution="raising 1")
    manager.register(_allocator_module("fine"), name="fine", distribution="fine 1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert manager.registry("solver").names() == []
    assert "RuntimeError: boom" in str(caught[0].message)
    assert manager.registry("allocator").names() == ["fine"]


def test_registering_a_name_twice_names_both_providers():
    manager = PluginManager(autoload=False)
    manager.register(_allocator_module("x"), name="same", distribution="one 1.0")
    with pytest.raises(DuplicatePluginError, match="'same' is registered twice: by one 1.0 and by two 2.0"):
        manager.register(_allocator_module("y"), name="same", distribution="two 2.0")
    module = _allocator_module("z")
    manager.register(module, name="first-name", distribution="one 1.0")
    with pytest.raises(DuplicatePluginError, match="as 'first-name' \\(one 1.0\\) and as 'other-name'"):
        manager.register(module, name="other-name", distribution="one 1.0")


class Hello(CliCommand):
    name: ClassVar[str] = "hello"
    help: ClassVar[str] = "say hello"

    def add_arguments(self, parser):
        parser.add_argument("--to", default="world")

    def run(self, args):
        print(f"hello {args.to}")
        return 7


def test_plugins_add_cli_subcommands_through_the_hook(capsys, fresh_plugin_manager):
    _with_plugin(fresh_plugin_manager, "safesvd_cli_commands", [Hello])
    assert main(["hello", "--to", "plugins"]) == 7
    assert capsys.readouterr().out == "hello plugins\n"
    assert main(["plugins"]) == 0
    assert any(line.split()[:2] == ["cli_command", "hello"] for line in capsys.readouterr().out.splitlines())


def test_the_demo_is_a_cli_command_of_the_application_layer_from_the_hook():
    # safesvd_cli's, above the zoo (which imports no CLI)
    registration = registry("cli_command").registration("demo")
    assert registration.plugin == "cli" and registration.distribution.startswith("safesvd ")


def test_layer_candidates_describe_costs():
    layer = LayerCandidate(name="l", out_features=6, in_features=4, spectrum=torch.ones(4), order=0)
    assert (layer.dense_params, layer.params_per_rank, layer.break_even_rank) == (24, 10, 2)


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bad option"),
        UnknownPluginError("recipe", "x", ["a", "b"], ["'p' (d 1): E"]),
        DuplicatePluginError("twice"),
        safesvd_core.BudgetError("over"),
        safesvd_core.NumericalError("nan"),
    ],
)
def test_errors_cross_process_boundaries(error):
    """A worker's error reaches the parent (multiprocessing pickles it): an error that cannot be
    unpickled hangs a multiprocessing pool instead of failing."""
    import pickle  # security-lint: allow: our own errors, round-tripped in memory as multiprocessing does

    copy = pickle.loads(pickle.dumps(error))  # security-lint: allow: our own errors, never a file
    assert type(copy) is type(error) and str(copy) == str(error)
