"""One vocabulary (issue 21, item 4): ``first``/``second`` factors, the ``LayerSignals`` names, one
Fisher mode, ``rollout_steps`` vs ``trajectory_steps``, the shared defaults, and ``Plan.lam_mode``
checked; every old spelling still works, with a warning."""

from __future__ import annotations

import ast
import inspect
import re
import warnings
from pathlib import Path

import attrs
import pytest
import torch

import safesvd_core.plugin as plugin_tier
from safesvd_core import ConfigError, Factors, LowRankLinear, registry, solve_factors, solve_layer
from safesvd_core.plugin import (
    DEFAULTS,
    FISHER_MODES,
    LAM_MODES,
    CalibrationObjective,
    Estimator,
    LayerSignals,
    Plan,
    median_seconds,
    psd_root,
)
from safesvd_core.testing.strategies import second_moment

ROOT = Path(__file__).resolve().parents[1]


def _plan(**options) -> Plan:
    solver = registry("solver").create("whitened", alpha=0.0, sensitivity=False)
    allocator = registry("allocator").create("greedy")
    return Plan(clean_estimators=("clean-covariance",), solver=solver, allocator=allocator, **options)


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(6, 5, dtype=torch.float64, generator=generator)
    return weight, second_moment(torch.randn(40, 5, dtype=torch.float64, generator=generator))


# -- Plan.lam_mode: a typo used to give λ = 0 without a word --------------------------------------


@pytest.mark.parametrize("typo", ["globl", "Global", "per_order", "", None])
def test_a_lam_mode_typo_is_refused_naming_the_allowed_values(typo):
    with pytest.raises(
        ConfigError, match=r"lam_mode must be one of 'global', 'per-order', got " + re.escape(repr(typo))
    ):
        _plan(lam_mode=typo)


@pytest.mark.parametrize("mode", LAM_MODES)
def test_every_lam_mode_is_accepted(mode):
    assert _plan(lam_mode=mode).objective.lam_mode == mode


def test_the_objective_refuses_an_unknown_mode_and_fisher_too():
    adapter = registry("model_adapter").create("generic")
    with pytest.raises(ConfigError, match="lam_mode must be one of 'global', 'per-order', got 'globl'"):
        CalibrationObjective(adapter=adapter, lam_mode="globl")
    with pytest.warns(DeprecationWarning, match="lam_mode"):
        assert CalibrationObjective(adapter=adapter, mode="per-order").lam_mode == "per-order"
    with pytest.raises(ConfigError, match="fisher must be one of 'empirical', 'sampled', got 'observed'"):
        CalibrationObjective(adapter=adapter, fisher="observed")


# -- first / second --------------------------------------------------------------------------------


def test_solve_factors_returns_first_then_second_in_the_order_from_factors_takes():
    weight, sigma = _problem()
    factors = solve_factors(weight, 3, sigma)
    assert isinstance(factors, Factors) and factors._fields == ("first", "second")
    first, second = factors
    assert first is factors.first and tuple(first.shape) == (3, 5) and tuple(second.shape) == (6, 3)
    layer = LowRankLinear.from_factors(*factors, None)
    torch.testing.assert_close(layer.weight, second @ first)
    x = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x @ (second @ first).mT)


def test_solve_layer_warns_and_keeps_its_order_for_one_release():
    weight, sigma = _problem(1)
    factors = solve_factors(weight, 2, sigma, alpha=0.0)
    with pytest.warns(
        DeprecationWarning, match=r"solve_layer.*\(A, B\) = \(second, first\).*solve_factors"
    ) as caught:
        a, b = solve_layer(weight, 2, sigma, alpha=0.0)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert torch.equal(a, factors.second) and torch.equal(b, factors.first)


def test_solvers_return_factorizations_whose_first_is_applied_first():
    weight, sigma = _problem(2)
    statistics = {"sigma": sigma, "gram": sigma, "fisher": torch.eye(6, dtype=torch.float64)}
    for name in ("whitened", "output-projection", "eigen-whitened"):
        options = {"alpha": 0.0} if name == "whitened" else {}
        result = registry("solver").create(name, **options).solve(weight, 2, statistics)
        assert tuple(result.first.shape) == (2, 5) and tuple(result.second.shape) == (6, 2), name


# -- one set of signal names -----------------------------------------------------------------------


def test_estimators_require_layer_signals_fields():
    fields = {field.name for field in attrs.fields(LayerSignals)}
    for entry in registry("estimator"):
        assert entry.cls.requires <= fields, (
            f"{entry.name} requires {set(entry.cls.requires)}, not LayerSignals fields"
        )


def test_an_estimator_with_the_old_signal_names_works_with_a_warning():
    expected = r"\['input', 'output_grad'\] in `requires`.*\['inputs', 'output_grads'\]"
    with pytest.warns(DeprecationWarning, match=expected) as caught:

        class OldStyle(Estimator):
            name = "old-style"
            requires = frozenset({"input", "output_grad"})
            provides = frozenset({"rows"})

            def update(self, signals): ...
            def merge(self, other): ...
            def statistics(self):
                return {}

            def state_dict(self):
                return {}

            def load_state_dict(self, state): ...

    assert caught[0].filename == __file__  # where the class is defined
    assert OldStyle.requires == {"inputs", "output_grads"}


def test_the_new_signal_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class NewStyle(Estimator):
            name = "new-style"
            requires = frozenset({"inputs", "shifted_inputs", "output_grads"})
            provides = frozenset({"rows"})

            def update(self, signals): ...
            def merge(self, other): ...
            def statistics(self):
                return {}

            def state_dict(self):
                return {}

            def load_state_dict(self, state): ...

    assert NewStyle.requires == {"inputs", "shifted_inputs", "output_grads"}


# -- one name for the Fisher mode ------------------------------------------------------------------


def test_the_recipe_the_plan_and_the_objective_share_the_fisher_names():
    assert FISHER_MODES == ("empirical", "sampled")
    recipe = registry("recipe").get("safe-svd")
    assert attrs.fields_dict(recipe)["fisher"].default in FISHER_MODES
    for mode in FISHER_MODES:
        assert recipe(fisher=mode).plan().objective.fisher == mode  # passed through, not mapped by index
    plan = _plan(fisher="sampled")
    assert plan.describe()["fisher"] == "sampled" and "residual" not in plan.describe()
    with pytest.raises(ConfigError, match="fisher must be one of 'empirical', 'sampled', got 'model'"):
        _plan(fisher="model")


@pytest.mark.parametrize(("old", "new"), [("observed", "empirical"), ("sampled", "sampled")])
def test_residual_is_the_deprecated_spelling_of_fisher(old, new):
    with pytest.warns(DeprecationWarning, match=rf"Plan\(residual='{old}'\).*fisher='{new}'"):
        plan = _plan(residual=old)
    assert plan.objective.fisher == new
    with pytest.warns(DeprecationWarning, match=r"Plan.residual.*fisher"):
        assert plan.residual == old
    adapter = registry("model_adapter").create("generic")
    with pytest.warns(DeprecationWarning, match=rf"CalibrationObjective\(residual='{old}'\)"):
        assert CalibrationObjective(adapter=adapter, residual=old).fisher == new
    with pytest.raises(ConfigError, match="give fisher= only"):
        _plan(residual=old, fisher=new)


def test_old_plugin_tier_names_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"DEFAULT_JITTER.*DEFAULTS.jitter"):
        jitter = plugin_tier.DEFAULT_JITTER
    assert jitter == DEFAULTS.jitter
    with pytest.warns(DeprecationWarning, match=r"RESIDUALS.*FISHER_MODES"):
        assert plugin_tier.RESIDUALS == ("observed", "sampled")
    with pytest.raises(AttributeError, match="no attribute 'NO_SUCH_NAME'"):
        plugin_tier.NO_SUCH_NAME  # noqa: B018


# -- the shared defaults ---------------------------------------------------------------------------


def _default(function, name):
    return inspect.signature(function).parameters[name].default


def test_every_shared_default_is_read_from_one_place():
    recipe = attrs.fields_dict(registry("recipe").get("safe-svd"))
    plan = _plan()  # every option left to its default
    objective = attrs.fields_dict(CalibrationObjective)
    solver = attrs.fields_dict(registry("solver").get("whitened"))
    assert recipe["lam"].default == plan.objective.lam == DEFAULTS.lam
    assert (
        recipe["lam_ratio"].default
        == plan.objective.lam_ratio
        == objective["lam_ratio"].default
        == DEFAULTS.lam_ratio
    )
    assert (
        recipe["lam_mode"].default
        == plan.objective.lam_mode
        == objective["lam_mode"].default
        == DEFAULTS.lam_mode
    )
    assert (
        recipe["lam_cap"].default
        == plan.objective.lam_cap
        == objective["lam_cap"].default
        == DEFAULTS.lam_cap
    )
    assert plan.objective.fisher == objective["fisher"].default == DEFAULTS.fisher
    assert (
        recipe["alpha"].default
        == solver["alpha"].default
        == _default(solve_factors, "alpha")
        == DEFAULTS.alpha
    )
    assert (
        recipe["jitter"].default
        == recipe["fisher_jitter"].default
        == solver["jitter"].default
        == DEFAULTS.jitter
    )
    assert _default(psd_root, "jitter") == DEFAULTS.jitter
    assert recipe["stage_mode"].default == plan.stage_mode == DEFAULTS.stage_mode
    assert recipe["min_rank"].default == DEFAULTS.min_rank
    assert _default(median_seconds, "repeats") == DEFAULTS.repeats
    for name in ("latency",):
        assert attrs.fields_dict(registry("allocator").get(name))["repeats"].default == DEFAULTS.repeats
    for name in ("svd-llm", "fwsvd", "asvd"):
        assert attrs.fields_dict(registry("recipe").get(name))["jitter"].default == DEFAULTS.jitter, name


#: A shared default written as a literal in these keyword/field positions would drift from DEFAULTS.
_SHARED_LITERALS = {"lam_ratio": 10.0, "lam_cap": 1000.0, "jitter": 1e-6, "fisher_jitter": 1e-6, "repeats": 7}


def _literal_defaults(path: Path, root: Path = ROOT) -> list[str]:
    """A shared default written as a literal in ``path``: ``name = <literal>``, ``name: T = <literal>``,
    ``attrs.field(default=<literal>)`` or ``def f(name=<literal>)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        pairs: list[tuple[str, ast.AST]] = []
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Call):
                value = next((k.value for k in value.keywords if k.arg == "default"), value)
            pairs.append((node.target.id, value))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs += list(
                zip(
                    [a.arg for a in positional[len(positional) - len(arguments.defaults) :]],
                    arguments.defaults,
                )
            )
            pairs += [
                (a.arg, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None
            ]
        for name, value in pairs:
            if (
                name in _SHARED_LITERALS
                and isinstance(value, ast.Constant)
                and value.value == _SHARED_LITERALS[name]
            ):
                found.append(f"{path.relative_to(root)}:{value.lineno} {name} = {value.value!r}")
    return found


def test_no_module_repeats_a_shared_default_as_a_literal():
    files = [
        path
        for folder in ("safesvd_core", "plugins", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "_defaults.py"
    ]
    assert len(files) > 50
    found = [hit for path in files for hit in _literal_defaults(path)]
    assert not found, "read these from DEFAULTS (safesvd_core/_defaults.py):\n" + "\n".join(found)


def test_the_literal_check_finds_a_repeated_default(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "def f(x, repeats=7, *, jitter=1e-6):\n    pass\n\n\nclass C:\n    lam_ratio: float = 10.0\n"
        "    lam_cap: float = attrs.field(default=1000.0)\n    seed: int = 7\n"
    )
    assert _literal_defaults(module, tmp_path) == [
        "module.py:1 repeats = 7",
        "module.py:1 jitter = 1e-06",
        "module.py:6 lam_ratio = 10.0",
        "module.py:7 lam_cap = 1000.0",
    ]
