"""Coverage names what blocks the budget: every module holding parameters outside the compressible
weights (raw ``Parameter``s, ``ParameterDict``s, embeddings, biases), largest first."""

from __future__ import annotations

import torch
from torch import nn

from safesvd_core import registry


class WithRawParameters(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.filter = nn.Parameter(torch.zeros(4, 8, 8))  # an AFNO-like raw filter
        self.embeddings = nn.ParameterDict(
            {"u": nn.Parameter(torch.zeros(16)), "v": nn.Parameter(torch.zeros(16))}
        )
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + self.embeddings["u"]) + self.filter.sum()


def test_every_kept_parameter_is_named_with_its_share_largest_first():
    model = WithRawParameters()
    cover = registry("model_adapter").create("generic").coverage(model)
    kept = [(item.module, item.kind, item.params) for item in cover.kept]
    assert kept == [
        ("", "WithRawParameters", 256),
        ("embeddings", "ParameterDict", 32),
        ("proj", "Linear", 16),
    ]
    assert cover.total_params == 256 + 32 + 16 + 256
    assert cover.compressible_params == 256  # proj's weight only
    assert cover.min_params == 256 + 32 + 16 + 32  # the kept ones, and proj at rank 1
    lines = cover.kept_lines()
    assert lines[0] == "(model) (WithRawParameters): 256 parameters (45.71 %)"
    assert lines[1].startswith("embeddings (ParameterDict): 32 parameters")
    assert (
        len(cover.kept_lines(limit=1)) == 2
        and "2 more modules, 48 parameters" in cover.kept_lines(limit=1)[1]
    )


class Conditioned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.time_embed = nn.Linear(8, 16)
        self.block = nn.ModuleDict({"adaLN_modulation": nn.Linear(16, 32), "mlp": nn.Linear(16, 16)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block["mlp"](x)


def test_conditioning_layers_are_skipped_with_the_reason_unless_asked():
    model = Conditioned()
    adapter = registry("model_adapter").create("generic")
    assert adapter.compressible_layers(model) == ["block.mlp"]
    skipped = adapter.skipped_layers(model)
    assert set(skipped) == {"time_embed", "block.adaLN_modulation"}
    assert all("conditioning=True compresses it" in reason for reason in skipped.values())
    asked = registry("model_adapter").create("generic", conditioning=True)
    assert asked.compressible_layers(model) == ["time_embed", "block.adaLN_modulation", "block.mlp"]
