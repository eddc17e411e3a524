"""Balanced factors: every recipe returns, stores and loads rank components with ‖aᵢ‖ = ‖bᵢ‖ and
the product unchanged; half precision stays close to float32; a stored model fine-tunes."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from safesvd_core import (
    LowRankLinear,
    available,
    balanced,
    compress,
    is_balanced,
    load_compressed,
    save_compressed,
)
from safesvd_zoo import reference

from test_compress import small_data, small_transformer

#: Relative output error of the compressed reference model in half precision against float32,
#: at most this many times the dense original's own half-precision error (measured: about 1×).
HALF_PRECISION_FACTOR = 3.0


def low_rank_layers(model: torch.nn.Module) -> list[LowRankLinear]:
    return [module for module in model.modules() if isinstance(module, LowRankLinear)]


@settings(deadline=None, max_examples=40)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(-4, 4),
)
def test_balanced_keeps_the_product_and_equalises_every_component(m, n, data, seed, scale):
    rank = data.draw(st.integers(1, min(m, n)), label="rank")
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(rank, n, generator=generator, dtype=torch.float64) * 10.0**scale
    second = torch.randn(m, rank, generator=generator, dtype=torch.float64) * 10.0**-scale
    new_first, new_second = balanced(first, second)
    product = second @ first
    torch.testing.assert_close(
        new_second @ new_first, product, rtol=1e-10, atol=1e-12 * float(product.abs().max())
    )
    assert is_balanced(new_first, new_second, rtol=1e-9)
    gram = new_second.mT @ new_second  # orthogonal columns: AᵀA = BBᵀ = diag(s)
    torch.testing.assert_close(
        gram, new_first @ new_first.mT, rtol=1e-8, atol=1e-10 * float(gram.abs().max())
    )


def test_from_factors_balances_unless_told_not_to():
    generator = torch.Generator().manual_seed(0)
    first, second = (
        1e3 * torch.randn(3, 7, generator=generator),
        1e-3 * torch.randn(5, 3, generator=generator),
    )
    raw = LowRankLinear.from_factors(first, second, None, balance=False)
    assert not is_balanced(raw.first.weight, raw.second.weight)
    layer = LowRankLinear.from_factors(first, second, None)
    assert is_balanced(layer.first.weight, layer.second.weight)
    torch.testing.assert_close(layer.weight, raw.weight, rtol=1e-5, atol=1e-6)
    before = raw.weight.detach().clone()
    raw.balance_()
    assert is_balanced(raw.first.weight, raw.second.weight)
    torch.testing.assert_close(raw.weight, before, rtol=1e-5, atol=1e-6)


#: Options that keep the learned-rank baselines quick on the small model.
QUICK = {"dobi-svd": {"epochs": 2}, "asvd": {}}


@pytest.mark.parametrize("recipe", [name for name in available("recipe") if name != "safe-svd-balanced"])
def test_every_recipe_returns_balanced_factors(recipe):
    model = small_transformer()
    result = compress(
        model,
        small_data(),
        ratio=0.5,
        recipe=recipe,
        adapter_options={"block_names": model.block_names()},
        **QUICK.get(recipe, {}),
    )
    layers = low_rank_layers(result.model)
    assert layers, f"{recipe} factored no layer"
    for layer in layers:
        assert is_balanced(layer.first.weight, layer.second.weight), (
            f"{recipe}: a layer's factors are unbalanced"
        )


def test_the_multi_domain_recipe_returns_balanced_factors():
    model = small_transformer()
    items = [{"input": x, "target": y, "domain": name} for (x, y), name in zip(small_data(), ("a", "b"))]
    result = compress(
        model,
        items,
        ratio=0.5,
        recipe="safe-svd-balanced",
        adapter="generic",
        adapter_options={"block_names": model.block_names()},
    )
    assert all(
        is_balanced(layer.first.weight, layer.second.weight) for layer in low_rank_layers(result.model)
    )


def test_an_unbalanced_file_of_an_earlier_safesvd_is_balanced_on_load(tmp_path):
    model, data = small_transformer(), small_data()
    result = compress(model, data, ratio=0.5)
    path = save_compressed(result, tmp_path / "model.safetensors")
    with safe_open(str(path), framework="pt") as handle:  # as an earlier safesvd wrote it: unbalanced factors
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open: no `in`
    for key in tensors:
        if key.endswith("first.weight"):
            tensors[key] = tensors[key] * 1e3
        elif key.endswith("second.weight"):
            tensors[key] = tensors[key] * 1e-3
    header = json.loads(metadata["safesvd"])
    assert header.pop("factors") == "as-saved" and header["ranks"] == result.ranks
    save_file(tensors, str(path), metadata={"safesvd": json.dumps(header)})
    loaded = load_compressed(small_transformer(), path)
    for layer in low_rank_layers(loaded):
        assert is_balanced(layer.first.weight, layer.second.weight)
    x = data[0][0]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), result.model(x), rtol=1e-4, atol=1e-5)


def test_factors_as_training_left_them_load_bit_for_bit(tmp_path):
    model, data = small_transformer(), small_data()
    result = compress(model, data, ratio=0.5)
    with torch.no_grad():  # what a fine-tuning step may leave: the split drifts away from balanced
        for layer in low_rank_layers(result.model):
            layer.first.weight.mul_(4.0)
            layer.second.weight.add_(0.01)
    assert not all(
        is_balanced(layer.first.weight, layer.second.weight) for layer in low_rank_layers(result.model)
    )
    loaded = load_compressed(small_transformer(), save_compressed(result, tmp_path / "tuned"))
    for key, value in result.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.fixture(scope="module")
def reference_at_04():
    model = reference.load()
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    result = compress(
        model,
        reference.trajectory_batches(16, 3),
        ratio=0.4,
        family="ns-incompressible",
        adapter_options=options,
    )
    return model, result


def _relative(half: torch.Tensor, full: torch.Tensor) -> float:
    return float((half.float() - full).norm() / full.norm())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_close_to_float32(reference_at_04, dtype):
    """The compressed model in fp16/bf16 is within HALF_PRECISION_FACTOR × the dense original's own
    half-precision error of its float32 output (and finite)."""
    original, result = reference_at_04
    x = reference.batches("test", batch_size=32)[0][0]
    errors = {}
    for name, model in (("original", original), ("compressed", result.model)):
        with torch.no_grad():
            full = model(x)
            half = copy.deepcopy(model).to(dtype)(x.to(dtype))
        assert torch.isfinite(half).all(), f"{name} in {dtype} gives NaN/Inf"
        errors[name] = _relative(half, full)
    assert errors["compressed"] <= HALF_PRECISION_FACTOR * errors["original"], errors


def _fine_tune(model: torch.nn.Module, original: torch.nn.Module, steps: int = 100) -> list[float]:
    """Adam, lr 1e-4, batches of 32 train inputs, on the original's outputs; the loss per step."""
    inputs = reference.split("train")[0][:256]
    with torch.no_grad():
        targets = original(inputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        index = torch.randint(0, len(inputs), (32,), generator=generator)
        loss = torch.mean((model(inputs[index]) - targets[index]) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_a_stored_compressed_model_fine_tunes(reference_at_04, tmp_path):
    """Adam, lr 1e-4, 100 steps on the original's outputs: the training loss falls. The same
    product split unbalanced (as compress stored it before) rises instead."""
    original, result = reference_at_04
    save_compressed(result, tmp_path / "out")
    losses = _fine_tune(load_compressed(reference.load(), tmp_path / "out").train(), original)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert all(map(math.isfinite, losses)) and last < 0.9 * first, (first, last)

    unbalanced = copy.deepcopy(result.model).train()
    with torch.no_grad():
        for layer in low_rank_layers(unbalanced):
            layer.first.weight.mul_(1e-2)
            layer.second.weight.mul_(1e2)
    wrecked = _fine_tune(unbalanced, original)
    assert sum(wrecked[-10:]) / 10 > last, "the unbalanced split should train worse"
