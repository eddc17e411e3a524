"""Inference speed: the factored layer's outputs under eager, ``torch.compile`` and trace; the
latency profile's cache; the latency-aware allocator; the merge-slow rule. Every cost model here
is injected: no unit test times anything (the timings live in ``benchmarks/latency.py``)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from safesvd_core import BudgetError, compress
from safesvd_core.plugin import LatencyProfile, LayerCandidate, LowRankLinear, registry
from safesvd_core.testing.allocators import allocation_cost, dense_cost, minimum_cost
from safesvd_core.testing.strategies import layer_candidates

from test_conformance_allocators import time_proportional_to_parameters


def _factored(
    rows: int, out: int, rank: int, bias: bool, channel_dim: int, seed: int
) -> tuple[LowRankLinear, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    first, second = torch.randn(rank, rows, generator=generator), torch.randn(out, rank, generator=generator)
    return LowRankLinear.from_factors(
        first, second, torch.randn(out, generator=generator) if bias else None, channel_dim=channel_dim
    ), second @ first


def _dense(layer: LowRankLinear, product: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(A @ B) x + b`` on the layer's axis, through one dense ``linear``."""
    moved = x.movedim(layer.channel_dim, -1)
    return torch.nn.functional.linear(moved, product, layer.bias).movedim(-1, layer.channel_dim)


# -- the factored layer -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.integers(1, 12),
    out=st.integers(1, 12),
    data=st.data(),
    bias=st.booleans(),
    shape=st.sampled_from([(), (3,), (2, 3)]),
    channel_dim=st.sampled_from([-1, 1]),
    seed=st.integers(0, 2**16),
)
def test_the_factored_layer_is_the_dense_product_on_any_input_shape(
    inputs, out, data, bias, shape, channel_dim, seed
):
    rank = data.draw(st.integers(1, min(inputs, out)))
    layer, product = _factored(inputs, out, rank, bias, channel_dim, seed)
    x = torch.randn(
        (2, *shape, inputs) if channel_dim == -1 else (2, inputs, *shape),
        generator=torch.Generator().manual_seed(seed),
    )
    y = layer(x)
    assert y.shape == _dense(layer, product, x).shape
    torch.testing.assert_close(y, _dense(layer, product, x), rtol=1e-5, atol=1e-5)


def test_the_factors_are_contiguous_and_the_channel_path_copies_no_input():
    layer, _ = _factored(16, 8, 4, True, 1, 0)
    assert layer.first.weight.is_contiguous() and layer.second.weight.is_contiguous()
    x = torch.randn(2, 16, 5, 5)
    assert x.flatten(2).data_ptr() == x.data_ptr()  # the grid is flattened as a view


CASES = {  # name → (in, out, rank, channel_dim, input shape)
    "tokens": (24, 16, 5, -1, (3, 7, 24)),
    "rows": (24, 16, 5, -1, (9, 24)),
    "channels-first": (24, 16, 5, 1, (2, 24, 4, 4)),
}


def _case(name: str) -> tuple[LowRankLinear, torch.Tensor, torch.Tensor]:
    inputs, out, rank, channel_dim, shape = CASES[name]
    layer, product = _factored(inputs, out, rank, True, channel_dim, 7)
    return layer, product, torch.randn(shape, generator=torch.Generator().manual_seed(8))


def _has_cpp_compiler() -> bool:
    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_the_factored_layer_compiles_to_the_same_outputs(name, backend):
    if backend == "inductor" and not _has_cpp_compiler():
        pytest.skip("torch.compile's inductor backend needs a C++ compiler on CPU; none is installed")
    torch._dynamo.reset()
    layer, product, x = _case(name)
    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), _dense(layer, product, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_factored_layer_traces_to_the_same_outputs(name):
    layer, product, x = _case(name)
    with torch.no_grad():
        traced = torch.jit.trace(layer, (x,))
        torch.testing.assert_close(traced(x), _dense(layer, product, x), rtol=1e-5, atol=1e-5)
        other = torch.randn((5, *x.shape[1:]))  # another batch size through the same trace
        torch.testing.assert_close(traced(other), _dense(layer, product, other), rtol=1e-5, atol=1e-5)


# -- the latency profile ------------------------------------------------------------------------


def test_a_profile_measures_once_per_shape_and_reads_the_cache_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    measured = []
    monkeypatch.setattr(
        "safesvd_core.model._latency.median_seconds", lambda call, repeats, device: measured.append(1) or 1e-3
    )
    profile = LatencyProfile("cpu")
    assert profile(8, 4, 3, None) == 1e-3 and profile(8, 4, 3, None) == 1e-3
    assert len(measured) == 1
    cache = tmp_path / "safesvd" / "latency-cpu.json"
    assert json.loads(cache.read_text()) == {"float32:8x4:rows=3:rank=dense": 1e-3}
    assert (
        LatencyProfile("cpu")(8, 4, 3, None) == 1e-3 and len(measured) == 1
    )  # a new profile reads the cache
    cache.write_text("{not json")
    assert (
        LatencyProfile("cpu")(8, 4, 3, None) == 1e-3 and len(measured) == 2
    )  # a corrupt cache is measured again


def test_a_profile_interpolates_linearly_between_powers_of_two(monkeypatch):
    profile = LatencyProfile("cpu", cache=False)
    monkeypatch.setattr(profile, "measure", lambda out, inputs, rows, rank: float(rank))
    assert profile(64, 64, 10, 4) == 4.0 and profile(64, 64, 10, 6) == 6.0 and profile(64, 64, 10, 7) == 7.0


def test_a_real_measurement_is_a_positive_time():
    assert LatencyProfile("cpu", repeats=1, cache=False).measure(16, 8, 4, 2) > 0.0


# -- the latency-aware allocator ----------------------------------------------------------------

_BUDGET = st.floats(0.0, 1.1)


def _budget(layers, min_rank: int, fraction: float) -> int:
    low = minimum_cost(layers, min_rank)
    return low + int(fraction * (dense_cost(layers) - low))


@settings(max_examples=80, deadline=None)
@given(layers=layer_candidates(), min_rank=st.integers(1, 3), fraction=_BUDGET)
def test_with_time_proportional_to_parameters_the_latency_allocator_is_the_greedy(layers, min_rank, fraction):
    budget = _budget(layers, min_rank, fraction)
    greedy = registry("allocator").create("greedy", min_rank=min_rank).allocate(layers, budget)
    latency = registry("allocator").create(
        "latency", min_rank=min_rank, timing=time_proportional_to_parameters
    )
    assert latency.allocate(layers, budget) == greedy


def _with_rows(layers):
    """The same layers seen with a few rows per call each, as the probe records them."""
    return [
        LayerCandidate(
            name=layer.name,
            out_features=layer.out_features,
            in_features=layer.in_features,
            spectrum=layer.spectrum,
            order=layer.order,
            rows=1 + index % 3,
            calls=1 + index % 2,
        )
        for index, layer in enumerate(layers)
    ]


def _launch_heavy(out: int, inputs: int, rows: int, rank: int | None) -> float:
    """A device where every call costs a fixed launch time: factored layers pay it twice."""
    work = out * inputs if rank is None else rank * (out + inputs)
    return 20.0 * (1 if rank is None else 2) + rows * work


@settings(max_examples=80, deadline=None)
@given(
    layers=layer_candidates(), min_rank=st.integers(1, 2), fraction=_BUDGET, latency_ratio=st.floats(0.3, 1.2)
)
def test_under_a_latency_budget_both_budgets_hold_or_the_latency_one_is_refused(
    layers, min_rank, fraction, latency_ratio
):
    layers = _with_rows(layers)
    budget = _budget(layers, min_rank, fraction)
    allocator = registry("allocator").create(
        "latency", min_rank=min_rank, timing=_launch_heavy, latency_ratio=latency_ratio
    )
    dense = sum(allocator.seconds(_launch_heavy, layer, None) for layer in layers)
    try:
        ranks = allocator.allocate(layers, budget)
    except BudgetError as error:
        assert "latency_ratio" in str(error)
        floor = {layer.name: None if layer.break_even_rank <= min_rank else min_rank for layer in layers}
        assert (
            sum(allocator.seconds(_launch_heavy, layer, floor[layer.name]) for layer in layers)
            > latency_ratio * dense
        )
        return
    assert allocation_cost(layers, ranks) <= budget
    spent = sum(allocator.seconds(_launch_heavy, layer, ranks[layer.name]) for layer in layers)
    assert spent <= latency_ratio * dense * (1 + 1e-12)


def _rows_times_parameters(out: int, inputs: int, rows: int, rank: int | None) -> float:
    return float(rows * (out * inputs if rank is None else rank * (out + inputs)))


def _busy_and_cheap() -> list[LayerCandidate]:
    """Two layers of the same shape and spectrum; the first runs on 64 rows per call, the second on one."""
    spectrum = torch.linspace(10.0, 1.0, 32, dtype=torch.float64)
    return [
        LayerCandidate(name=name, out_features=32, in_features=32, spectrum=spectrum, order=index, rows=rows)
        for index, (name, rows) in enumerate([("busy", 64), ("cheap", 1)])
    ]


def test_under_the_parameter_budget_latency_breaks_the_ties():
    """Per row the two layers' gains tie (per input the busy one's 64 rows would win them)."""
    layers = _busy_and_cheap()
    assert registry("allocator").create("greedy", gains="per-row").allocate(layers, 600) == {
        "busy": 5,
        "cheap": 4,
    }  # by layer order
    latency = registry("allocator").create("latency", timing=_rows_times_parameters, gains="per-row")
    assert latency.allocate(layers, 600) == {"busy": 4, "cheap": 5}  # the faster layer first


def test_under_a_latency_budget_the_slow_layer_gives_up_its_components():
    layers = _busy_and_cheap()
    latency = registry("allocator").create(
        "latency", timing=_rows_times_parameters, latency_ratio=0.2, gains="per-row"
    )
    ranks = latency.allocate(layers, 600)
    assert ranks == {"busy": 1, "cheap": 8}
    spent = sum(latency.seconds(_rows_times_parameters, layer, ranks[layer.name]) for layer in layers)
    assert spent <= 0.2 * sum(latency.seconds(_rows_times_parameters, layer, None) for layer in layers)


@settings(max_examples=40, deadline=None)
@given(layers=layer_candidates(), min_rank=st.integers(1, 3), fraction=_BUDGET)
def test_a_latency_budget_that_never_binds_leaves_the_greedy_allocation(layers, min_rank, fraction):
    budget = _budget(layers, min_rank, fraction)
    greedy = registry("allocator").create("greedy", min_rank=min_rank).allocate(layers, budget)
    latency = registry("allocator").create(
        "latency", min_rank=min_rank, timing=time_proportional_to_parameters, latency_ratio=1.0
    )
    assert latency.allocate(layers, budget) == greedy


# -- the merge-slow rule ------------------------------------------------------------------------


def _mlp_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 16))
    return model, [(torch.randn(32, 16), torch.randn(32, 16)) for _ in range(3)]


def _slow_layer(shape: tuple[int, int]):
    """A device on which the layer of ``(out, in)`` ``shape`` is slower factored than dense, at any rank."""

    def measure(self, out, inputs, rows, rank):
        work = out * inputs if rank is None else rank * (out + inputs)
        return 10.0 * out * inputs if (out, inputs) == shape and rank is not None else float(work)

    return measure


def test_merge_slow_keeps_a_layer_that_is_slow_by_construction_dense_within_the_budget(monkeypatch):
    monkeypatch.setattr(LatencyProfile, "measure", _slow_layer((64, 16)))
    model, data = _mlp_and_data()
    plain = compress(model, data, ratio=0.4)
    merged = compress(model, data, ratio=0.4, merge_slow=True)
    assert plain.ranks["0"] is not None
    assert merged.ranks["0"] is None and isinstance(merged.model[0], nn.Linear)
    torch.testing.assert_close(merged.model[0].weight, model[0].weight, rtol=0, atol=0)
    assert merged.met_budget and merged.params_after <= merged.budget
    report = merged.reports["merge-slow"]
    assert list(report["merged"]) == ["0"] and report["kept_for_budget"] == {}
    assert report["merged"]["0"]["factored_seconds"] >= report["merged"]["0"]["dense_seconds"]
    assert report["merged"]["0"]["rank"] == plain.ranks["0"]
    assert any(note.startswith("merge-slow: 1 layer(s) kept dense") for note in merged.notes)
    assert all(merged.ranks[name] is not None for name in ("2", "4"))  # the others paid for it


def test_merge_slow_leaves_a_slow_layer_factored_when_its_dense_form_does_not_fit(monkeypatch):
    monkeypatch.setattr(
        LatencyProfile, "measure", _slow_layer((64, 64))
    )  # 4 096 weights; the budget holds ~2 400
    model, data = _mlp_and_data()
    result = compress(model, data, ratio=0.4, merge_slow=True)
    assert result.ranks["2"] is not None and result.met_budget
    assert list(result.reports["merge-slow"]["kept_for_budget"]) == ["2"]
    assert any("stay factored, the budget cannot hold them dense" in note for note in result.notes)


def test_without_slow_layers_merge_slow_changes_nothing(monkeypatch):
    monkeypatch.setattr(
        LatencyProfile,
        "measure",
        lambda self, out, inputs, rows, rank: float(out * inputs if rank is None else rank * (out + inputs)),
    )
    model, data = _mlp_and_data()
    plain, merged = compress(model, data, ratio=0.4), compress(model, data, ratio=0.4, merge_slow=True)
    assert merged.ranks == plain.ranks
    assert merged.reports["merge-slow"] == {"merged": {}, "kept_for_budget": {}}
