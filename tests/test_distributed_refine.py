"""Distributed refinement: two gloo processes on loopback, each given the same data, refine as one
process does on the same global batches (items 2t and 2t+1 merged), and resume after an interruption.

In float64 the two agree to ~4e-12 (the same arithmetic in another order). In float32 the closed
forms agree to 1e-7, and Adam's first steps, which scale each gradient by its own magnitude, turn
the rounding of the gradients (summed in another order) into ~2e-5 on the test output."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from safesvd_core import ConfigError, Refinement, compress
from safesvd_core.testing.loopback import run_on_loopback

from test_compress import small_transformer
from test_refine import interrupting, options
from test_rollout import trajectories

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

SETTINGS = {"eval_every": 3, "lr": 1e-3, "warmup": 1}
STEPS = 6


#: dtype → the bound on the relative difference of the test output, one process against two.
BOUNDS = {torch.float64: 1e-9, torch.float32: 1e-4}


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return small_transformer().to(dtype)


def _typed(items, dtype):
    return [tuple(tensor.to(dtype) for tensor in item) for item in items]


def _calibration(dtype=torch.float32):
    return _typed(trajectories(samples=16, steps=2, seed=0, batch=4), dtype)


def _fresh(dtype=torch.float32):
    return _typed(trajectories(samples=64, steps=2, seed=7, batch=8), dtype)  # 8 items: 4 global batches


def _merged(items):
    """One process's global batches: items 2t and 2t+1 side by side."""
    return [
        tuple(torch.cat([a, b]) for a, b in zip(items[index], items[index + 1]))
        for index in range(0, len(items), 2)
    ]


def _test_output(model) -> torch.Tensor:
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model(trajectories(samples=8, steps=1, seed=99, batch=8)[0][0].to(dtype))


def _refined(model, checkpoint=None, *, merged=False):
    dtype = next(model.parameters()).dtype
    fresh = _merged(_fresh(dtype)) if merged else _fresh(dtype)
    return compress(
        model,
        _calibration(dtype),
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh, steps=STEPS, **SETTINGS),
        checkpoint_dir=checkpoint,
    )


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    import safesvd_core.refinement._refine as loop

    for dtype in BOUNDS:
        whole = _refined(_model(dtype))
        name = str(dtype).removeprefix("torch.")
        save_file(
            {"output": _test_output(whole.model).contiguous()}, str(Path(out) / f"{name}-{rank}.safetensors")
        )
        (Path(out) / f"history-{name}-{rank}.json").write_text(json.dumps(whole.reports["refine"]["history"]))
        (Path(out) / f"exchange-{name}-{rank}.json").write_text(
            json.dumps(whole.reports["refine"]["exchange_seconds"])
        )
    model = _model()
    real = loop.Distiller.loss
    loop.Distiller.loss = interrupting(5)  # both processes at the same step: neither waits on the other
    with contextlib.suppress(KeyboardInterrupt):
        _refined(model, Path(out) / "checkpoint")
    loop.Distiller.loss = real
    resumed = _refined(model, Path(out) / "checkpoint")
    save_file(
        {"output": _test_output(resumed.model).contiguous()}, str(Path(out) / f"resumed-{rank}.safetensors")
    )


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("refine-distributed")
    run_on_loopback(_worker, 2, str(out))
    return out


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected))


@pytest.mark.parametrize("dtype", list(BOUNDS), ids=str)
def test_two_processes_refine_as_one_on_the_merged_global_batches(two_processes, dtype):
    torch.set_num_threads(1)
    alone = _refined(_model(dtype), merged=True)
    expected, history = _test_output(alone.model), alone.reports["refine"]["history"]
    name = str(dtype).removeprefix("torch.")
    assert alone.reports["refine"]["exchange_seconds"] == 0.0  # one process exchanges nothing
    for rank in (0, 1):
        assert json.loads((two_processes / f"exchange-{name}-{rank}.json").read_text()) > 0.0
        got = load_file(str(two_processes / f"{name}-{rank}.safetensors"))["output"]
        error = _relative(got, expected)
        assert error <= BOUNDS[dtype], f"process {rank}: {error:.1e}"
        seen = json.loads((two_processes / f"history-{name}-{rank}.json").read_text())
        assert [row["step"] for row in seen] == [row["step"] for row in history]
        for row, alone_row in zip(seen, history):  # the scores of the global batches, not of a shard
            assert row["held_out"] == pytest.approx(alone_row["held_out"], rel=BOUNDS[dtype])
            assert row["train"] == pytest.approx(alone_row["train"], rel=BOUNDS[dtype])


def test_an_interrupted_distributed_refinement_resumes_to_the_uninterrupted_one(two_processes):
    for rank in (0, 1):
        whole = load_file(str(two_processes / f"float32-{rank}.safetensors"))["output"]
        resumed = load_file(str(two_processes / f"resumed-{rank}.safetensors"))["output"]
        assert torch.equal(whole, resumed), f"process {rank}: {_relative(resumed, whole):.1e}"
    assert (two_processes / "checkpoint" / "refine.safetensors").is_file()


def _odd_worker(rank: int, world: int, out: str) -> None:
    model = _model()
    try:
        compress(
            model,
            _calibration(),
            ratio=0.4,
            adapter_options=options(model),
            refine=Refinement(_fresh()[:7], steps=2),
        )
    except ConfigError as error:
        (Path(out) / f"error-{rank}.txt").write_text(str(error))


def test_an_item_count_the_processes_cannot_split_is_refused_before_any_pass(tmp_path):
    run_on_loopback(_odd_worker, 2, str(tmp_path))
    for rank in (0, 1):
        assert "give a multiple of 2 refinement items, got 7" in (tmp_path / f"error-{rank}.txt").read_text()
