"""``[compress] phases``: a recipe written in the config as its list of phases by name, with options."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from safesvd_cli.config import RunConfig
from safesvd_cli.phases_spec import phase_list
from safesvd_core import ConfigError, available, config_from_dict, named_phases, read_manifest, recipe_phases
from safesvd_core.__main__ import main
from safesvd_core.plugin import Phase, PhaseList, registry

pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")

HEAD = """
[model]
zoo = "ns2d-transformer"

[data]
generator = "navier_stokes"
options = { samples = 16, size = 32, seed = 5 }
batch_size = 8

[adapter]
options = { include = ["blocks.*"], block_names = ["blocks.0", "blocks.1", "blocks.2", "blocks.3"] }

[evaluate]
figures = false
"""

RECIPE = """
[compress]
ratio = 0.5
family = "ns-incompressible"
recipe = "safe-svd"
options = { alpha = 0.7, lam = 0.05, allocator = "uniform" }
"""

PHASES = """
[compress]
ratio = 0.5
family = "ns-incompressible"
phases = [
  { name = "probe" },
  { name = "lambda", lam = 0.05 },
  { name = "clean" },
  { name = "allocate", allocator = "uniform" },
  { name = "stages", alpha = 0.7 },
]
"""


def _weights(folder):
    return {
        key: value for path in sorted(folder.glob("*.safetensors")) for key, value in load_file(path).items()
    }


def test_a_config_listing_phases_compresses_as_the_recipe_with_those_options(tmp_path):
    for name, table in (("recipe", RECIPE), ("phases", PHASES)):
        (tmp_path / f"{name}.toml").write_text(HEAD + table)
        assert main(["compress", str(tmp_path / f"{name}.toml"), "--out", str(tmp_path / name)]) == 0
    by_recipe, by_phases = (_weights(tmp_path / name) for name in ("recipe", "phases"))
    assert by_recipe.keys() == by_phases.keys() and by_recipe
    for key, value in by_recipe.items():
        assert torch.equal(by_phases[key], value), key
    recorded = read_manifest(tmp_path / "phases")["recipe"]
    assert recorded["name"] == "phases"
    assert [entry["name"] for entry in recorded["options"]["entries"]] == [
        "probe",
        "lambda",
        "clean",
        "allocate",
        "stages",
    ]
    assert config_from_dict(recorded) == PhaseList(
        phase_list(tomllib.loads(PHASES)["compress"]["phases"], "ns-incompressible")
    )


def test_the_listed_phases_are_the_named_recipes_own():
    raw = tomllib.loads(HEAD + PHASES)
    config = RunConfig.from_dict(raw, base=Path("."))
    listed = phase_list(config.phases, config.family)
    wanted = recipe_phases("safe-svd", alpha=0.7, lam=0.05, allocator="uniform", family="ns-incompressible")
    assert listed == wanted
    assert RunConfig.from_dict(config.to_dict(), base=Path(".")) == config


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('phases = [{ name = "stages" }]\nrecipe = "safe-svd"', "give it without recipe"),
        ('phases = "safe-svd"', "expected a list of tables"),
        ('phases = [{ name = "stages", alpha = 2 }]', r"phases\[0\] \(stages\): stages alpha must be"),
        (
            'phases = [{ name = "clean" }, { name = "stages", bogus = 1 }]',
            r"phases\[1\] \(stages\): .* no option",
        ),
        ("phases = [{ alpha = 0.5 }]", r"phases\[0\] names no phase"),
        ("phases = []", "a non-empty list"),
    ],
)
def test_bad_phase_lists_are_refused_when_the_config_is_read(table, message):
    raw = tomllib.loads(HEAD + "\n[compress]\nratio = 0.5\n" + table + "\n")
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(raw, base=Path("."))


def test_the_tuning_phase_holds_the_phases_after_it():
    phases = named_phases(
        [
            {"name": "tuning", "held_out": 0.5},
            {"name": "probe"},
            {"name": "lambda"},
            {"name": "clean"},
            {"name": "allocate"},
            {"name": "stages", "alpha": "auto"},
        ]
    )
    assert phases[0].phases == tuple(phases[1:]) and phases[0].held_out == 0.5
    assert phases == recipe_phases("safe-svd", alpha="auto", held_out=0.5)


def test_every_registered_phase_is_a_phase_created_with_its_defaults():
    assert {"probe", "lambda", "clean", "allocate", "stages", "tuning"} <= set(available("phase"))
    for name in available("phase"):
        cls = registry("phase").get(name)
        assert issubclass(cls, Phase) and cls.name == name
