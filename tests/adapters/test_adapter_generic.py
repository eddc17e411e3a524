"""Generic adapter: nn.MultiheadAttention / nn.TransformerEncoder rewritten output-identically,
then compressed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from safesvd_adapters.attention import ExplicitMultiheadAttention, rewrite_attention, transformer_layer_names
from safesvd_core import ConfigError, LowRankLinear, compress, registry

from adapter_helpers import assert_compressed, fields

pytestmark = pytest.mark.filterwarnings(
    "ignore:enable_nested_tensor is True:UserWarning", "ignore:The PyTorch API of nested tensors:UserWarning"
)


def encoder(batch_first: bool, heads: int = 2, width: int = 24, depth: int = 2) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=batch_first)
    return nn.TransformerEncoder(layer, depth).eval()  # torch default: nested-tensor fast path on


class Vicon(nn.Module):
    """VICON-like: tokens → nn.TransformerEncoder → tokens."""

    def __init__(self, width: int = 24, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.encoder = encoder(True, width=width, depth=depth)
        self.out = nn.Linear(width, 8)

    def forward(self, x):
        return self.out(self.encoder(self.embed(x)))


def masks(batch_first: bool):
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[0, 3:] = True
    return [
        {},
        {"mask": causal},
        {"mask": torch.zeros(5, 5).masked_fill(causal, -1e4)},
        {"src_key_padding_mask": padding},
    ]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("heads", [2, 3])  # even heads: torch's fused fast path is on for the original
def test_encoder_rewrite_is_output_identical(batch_first, heads):
    original = encoder(batch_first, heads=heads)
    rewritten = rewrite_attention(copy.deepcopy(original))
    assert all(isinstance(layer.self_attn, ExplicitMultiheadAttention) for layer in rewritten.layers)
    assert sum(p.numel() for p in rewritten.parameters()) == sum(p.numel() for p in original.parameters())
    x = torch.randn(3, 5, 24) if batch_first else torch.randn(5, 3, 24)
    for kwargs in masks(batch_first):
        with torch.no_grad():
            expected, got = original(x, **kwargs), rewritten(x, **kwargs)
        if "src_key_padding_mask" in kwargs:  # padded positions carry no defined output
            keep = ~kwargs["src_key_padding_mask"]
            if not batch_first:
                expected, got = expected.transpose(0, 1), got.transpose(0, 1)
            expected, got = expected[keep], got[keep]
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_rewrite_matches_every_call_form(batch_first):
    torch.manual_seed(0)
    original = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    rewritten = ExplicitMultiheadAttention.from_torch(original)
    shape = (lambda n: (2, n, 16)) if batch_first else (lambda n: (n, 2, 16))
    q, k, v = torch.randn(shape(3)), torch.randn(shape(4)), torch.randn(shape(4))
    padding = torch.tensor([[False, False, False, True], [False] * 4])
    for args in ((q, q, q), (q, k, k), (q, k, v)):
        source = args[1].shape[1 if batch_first else 0]
        for kwargs in (
            {},
            {"need_weights": False},
            {"average_attn_weights": False},
            {"attn_mask": torch.randn(8, args[0].shape[1 if batch_first else 0], source)},
            {"key_padding_mask": padding[:, :source], "need_weights": False},
        ):
            with torch.no_grad():
                (out, weights), (out2, weights2) = original(*args, **kwargs), rewritten(*args, **kwargs)
            torch.testing.assert_close(out2, out, rtol=1e-5, atol=1e-6)
            assert (weights is None) == (weights2 is None)
            if weights is not None:
                torch.testing.assert_close(weights2, weights, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # unbatched
        torch.testing.assert_close(
            rewritten(q[0], k[0], v[0])[0], original(q[0], k[0], v[0])[0], rtol=1e-5, atol=1e-6
        )


def test_transformer_encoder_compresses_at_half_with_block_stages():
    model = Vicon().eval()
    data = fields((3, 5, 8))
    layers = transformer_layer_names(model)
    assert layers == ["encoder.layers.0", "encoder.layers.1"]
    result = compress(model, data, ratio=0.5, adapter_options={"block_names": layers})
    assert_compressed(result, result.model(data[0][0]), (3, 5, 8))
    assert {"encoder.layers.0.self_attn.in_proj", "encoder.layers.0.self_attn.out_proj"} <= set(result.ranks)
    assert any(len(stage) > 1 for stage in result.stages)  # a block stage
    assert isinstance(
        model.encoder.layers[0].self_attn, nn.MultiheadAttention
    )  # the caller's model is untouched
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())


def test_unrewritable_attention_is_skipped_with_a_reason():
    model = nn.Sequential(nn.Linear(8, 16))
    model.add_module("attn", nn.MultiheadAttention(16, 2, kdim=8, vdim=8))
    adapter = registry("model_adapter").create("generic")
    skipped = adapter.skipped_layers(model)
    assert "attn.out_proj" in skipped and "kdim" in skipped["attn.out_proj"]
    assert adapter.compressible_layers(model) == ["0"]
    plain = registry("model_adapter").create("generic", rewrite_attention=False, rewrite_spectral=False)
    assert not plain.rewrites_modules and "self_attn.out_proj" in plain.skipped_layers(
        nn.TransformerEncoderLayer(16, 2)
    )


def test_coverage_and_reasons_of_the_generic_adapter():
    model = Vicon()
    adapter = registry("model_adapter").create("generic", exclude=["out"])
    cover = adapter.coverage(model)
    assert cover.total_params == sum(p.numel() for p in model.parameters())
    assert 0.5 < cover.fraction < 1 and cover.min_ratio < 0.5
    assert adapter.skipped_layers(model) == {"out": "excluded by pattern 'out'"}
    assert "encoder.layers.1.self_attn.in_proj" in adapter.compressible_layers(
        adapter.prepare(copy.deepcopy(model))
    )


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="sequence of strings"):
        registry("model_adapter").create("generic", include="blocks.*")
    with pytest.raises(ConfigError, match="is_causal needs attn_mask"):
        ExplicitMultiheadAttention.from_torch(nn.MultiheadAttention(8, 2))(
            *(torch.randn(3, 1, 8),) * 3, is_causal=True
        )
