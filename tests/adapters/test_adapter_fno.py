"""neuraloperator adapter (negative control): FNO's compressible share is reported, 0.5 is refused clearly."""

from __future__ import annotations

import copy

import pytest
import torch

from safesvd_core import BudgetError, compress, registry

from adapter_helpers import assert_compressed, fields, optional

optional("neuralop")
from safesvd_adapters.fno import small_fno  # noqa: E402


@pytest.mark.parametrize("factorization", [None, "tucker"])
def test_fno_reports_its_small_compressible_share_and_refuses_half(factorization):
    from neuralop.models import FNO

    torch.manual_seed(0)
    model, data = small_fno(factorization=factorization), fields((2, 3, 16, 16))
    assert isinstance(model, FNO)
    adapter = registry("model_adapter").create("neuraloperator")
    with torch.no_grad():  # the skip rewrite keeps the output
        torch.testing.assert_close(adapter.prepare(copy.deepcopy(model))(data[0][0]), model(data[0][0]))
    cover = adapter.coverage(model)
    names = adapter.compressible_layers(model)
    assert names and all(".channel_mlp." in n or ".fno_skips." in n for n in names)
    assert cover.fraction == adapter.compressible_fraction(model) < 0.5 < cover.min_ratio
    skipped = adapter.skipped_layers(model)
    assert all("spectral" in skipped[f"fno_blocks.convs.{i}"] for i in range(2))
    assert "embedding" in skipped["lifting.fcs.0"] and "recovery" in skipped["projection.fcs.1"]
    with pytest.raises(BudgetError, match="outside the compressible layers"):
        compress(model, data, ratio=0.5, adapter=adapter)
    ratio = round(1.0 - cover.fraction / 2, 3)  # halve the compressible part: attainable
    result = compress(model, data, ratio=ratio, adapter=adapter)
    assert_compressed(result, result.model(data[0][0]), (2, 3, 16, 16), ratio=ratio)
    assert set(result.ranks) == set(names)
