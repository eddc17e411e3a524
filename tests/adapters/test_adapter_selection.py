"""What every adapter shares: registration without frameworks, missing extras, skip rules, coverage,
losses."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from torch import nn

import safesvd_core
from safesvd_adapters.base_losses import BASE_LOSSES, grouped_relative
from safesvd_adapters.framework import MissingExtraError, require
from safesvd_adapters.selection import TIME_CONDITIONING, SkipRule, coverage, select
from safesvd_core import ConfigError, registry

ADAPTERS = {"generic", "transformers", "timm", "the_well", "neuraloperator", "torch-harmonics"}
#: adapter → (the module it imports, the pip extra that installs it; pyproject's spelling)
EXTRAS = {
    "transformers": ("transformers", "transformers"),
    "timm": ("timm", "timm"),
    "the_well": ("the_well.benchmark.models.avit", "the-well"),
    "neuraloperator": ("neuralop.layers.spectral_convolution", "neuraloperator"),
    "torch-harmonics": ("torch_harmonics.examples.models._layers", "torch-harmonics"),
}


def test_every_adapter_is_registered_and_listing_imports_no_framework():
    assert set(safesvd_core.available("model_adapter")) >= ADAPTERS
    code = (
        "import sys, safesvd_core\n"
        "names = safesvd_core.available('model_adapter')\n"
        "frameworks = ('transformers', 'timm', 'the_well', 'neuralop', 'torch_harmonics', 'torchvision')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in frameworks))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_an_adapter_whose_package_is_missing_names_the_extra(name, monkeypatch):
    module_name, extra = EXTRAS[name]
    for module in {module_name, module_name.split(".")[0]}:
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=rf"pip install 'safesvd\[{extra}\]'") as info:
        registry("model_adapter").create(name)
    assert isinstance(info.value, ImportError) and isinstance(info.value, ConfigError)
    declared = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert extra in declared["project"]["optional-dependencies"]


def test_require_returns_the_module():
    assert require("math", adapter="x", extra="x").sqrt(4.0) == 2.0


def test_rules_reasons_and_user_globs():
    model = nn.Sequential()
    model.add_module("cond", nn.Linear(1, 8))
    model.add_module("body", nn.Linear(8, 8))
    model.add_module("wide", nn.Conv2d(8, 8, 3))
    model.add_module("point", nn.Conv2d(8, 8, 1))
    model.add_module("head", nn.Linear(8, 2))
    rule = SkipRule(reason="the head", patterns=("head",))
    chosen = select(model, (TIME_CONDITIONING, rule), exclude=["point"])
    assert chosen.compressible == ("body",)
    assert chosen.skipped["cond"] == TIME_CONDITIONING.reason and chosen.skipped["head"] == "the head"
    assert (
        "kernel size (3, 3)" in chosen.skipped["wide"]
        and chosen.skipped["point"] == "excluded by pattern 'point'"
    )
    assert select(model, (), include=["p*"]).compressible == ("point",)
    with pytest.raises(ConfigError, match="glob patterns"):
        SkipRule(reason="x", patterns="head")


def test_coverage_counts_the_floor_of_each_layer():
    model = nn.Sequential(nn.Linear(16, 16, bias=False), nn.Linear(16, 2, bias=False), nn.LayerNorm(2))
    cover = coverage(model, ["0", "1"])
    assert (cover.total_params, cover.compressible_params) == (256 + 32 + 4, 288)
    assert (
        cover.min_params == 4 + 32 + 18
    )  # kept norm + rank 1 of the 16×16 (32) + rank 1 of the 2×16 (18 < 32)
    assert cover.fraction == pytest.approx(288 / 292) and cover.min_ratio == pytest.approx(54 / 292)


def test_channel_options_are_validated():
    with pytest.raises(ConfigError, match="roles"):
        registry("model_adapter").create("neuraloperator", channels=["u", "v"], roles=["velocity_x"])
    with pytest.raises(ConfigError, match="masked"):
        registry("model_adapter").create("neuraloperator", channels=["u"], masked=["p"])
    with pytest.raises(ConfigError, match="need channels"):
        registry("model_adapter").create("neuraloperator", masked=["p"])


def test_base_losses_by_name():
    target = torch.randn(3, 2, 4, 4)
    assert float(BASE_LOSSES["nmse"](target, target)) == 0.0
    torch.testing.assert_close(
        BASE_LOSSES["nmse"](2 * target, target),
        (target**2).mean((2, 3)).div((target**2).mean((2, 3)) + 1e-7).mean(),
    )
    torch.testing.assert_close(
        grouped_relative(2 * target, target, [[0], [1]]), torch.tensor(1.0), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(ConfigError, match="p must be 1 or 2"):
        grouped_relative(target, target, [[0]], p=3)


def test_relative_h1_weighs_a_mode_by_one_plus_its_squared_wavenumber():
    grid = torch.arange(16, dtype=torch.float64) * 2 * torch.pi / 16
    target = torch.cos(grid)[None, None, :, None].expand(1, 1, 16, 16)  # k = (1, 0): weight 2
    low = 0.1 * torch.ones(1, 1, 16, 16, dtype=torch.float64)  # k = 0: weight 1
    high = 0.1 * torch.cos(3 * grid)[None, None, :, None].expand(1, 1, 16, 16)  # k = (3, 0): weight 10
    loss = BASE_LOSSES["relative-h1"]
    assert float(loss(target, target)) == 0.0
    # ‖e‖²_H¹ / ‖t‖²_H¹ with Parseval: a constant of 0.1 has energy 0.01·256, cos(kx) of amplitude a: a²·128
    torch.testing.assert_close(
        loss(target + low, target), torch.tensor((0.01 * 256 / (2 * 128)) ** 0.5, dtype=torch.float64)
    )
    torch.testing.assert_close(
        loss(target + high, target), torch.tensor((10 * 0.01 * 128 / (2 * 128)) ** 0.5, dtype=torch.float64)
    )
    with pytest.raises(ConfigError, match="needs fields"):
        loss(torch.ones(3), torch.ones(3))
