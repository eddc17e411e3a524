"""The rows of the paper's Table 1 run from plain dict configs alone."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import compress, config_from_dict, config_to_dict
from safesvd_methods.ablations import TABLE1
from safesvd_zoo import reference
from safesvd_zoo.operator import FieldTransformer, OperatorConfig


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = FieldTransformer(OperatorConfig(channels=2, size=8, patch=2, width=32, depth=2, heads=2)).eval()
    generator = torch.Generator().manual_seed(1)
    data = [
        (torch.randn(4, 2, 8, 8, generator=generator), torch.randn(4, 2, 8, 8, generator=generator))
        for _ in range(2)
    ]
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    return model, data, options


def test_table_one_has_its_ten_rows():
    assert len(TABLE1) == 10
    sobolev = [(row.get("sobolev_p"), row.get("sobolev_order"), row["alpha"]) for row in TABLE1.values()]
    assert sobolev[2:] == [
        (2, 0, 0.5),
        (2, 1, 0.5),
        (2, 2, 0.5),
        (1, 0, 0.5),
        (1, 1, 0.5),
        (1, 2, 0.5),
        (1, 2, 0.3),
        (1, 2, 0.7),
    ]


@pytest.mark.parametrize("row", list(TABLE1))
def test_each_ablation_row_runs_from_a_plain_dict(setup, row):
    model, data, adapter_options = setup
    config = {"kind": "recipe", "name": "safe-svd", "version": 1, "options": dict(TABLE1[row])}
    recipe = config_from_dict(config)
    assert config_to_dict(recipe)["options"].items() >= TABLE1[row].items()
    result = compress(model, data, ratio=0.5, recipe=recipe, adapter_options=adapter_options)
    assert result.met_budget and torch.isfinite(result.model(data[0][0])).all()
    options = TABLE1[row]
    assert result.options["allocator"] == options["allocator"] and result.options["alpha"] == options["alpha"]
    stats = result.statistics.layer("blocks.0.query")
    assert ("fisher" in stats) == options["sensitivity"]  # SE off: S = I, no Fisher gathered
    if "sobolev_order" in options:
        (loss,) = result.objective["physics"]
        assert f"Sobolev(order={options['sobolev_order']}, p={options['sobolev_p']}" in loss
    else:
        assert result.objective["physics"] == []
