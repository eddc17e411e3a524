"""Distributed calibration: two gloo processes on loopback give the one-process statistics and
factors, and only process 0 writes.

The statistics are float64 sums over the same rows in another order: they agree to rounding
(≤ 1e-10 relative, in practice ~1e-16). The factors solve with the relative jitter as the smallest
eigenvalue of the input covariance; where the covariance is singular (LayerNorm outputs have a
null direction), the solution there is set by the jitter, and rounding differences are amplified
by up to 1/jitter: at the default 1e-6 the factors agree to about 5e-10, at 1e-4 to 1e-10.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from safesvd_core import ConfigError, compress
from safesvd_core.testing.loopback import run_on_loopback

from test_compress import small_data, small_transformer

pytestmark = pytest.mark.skipif(
    not dist.is_available(), reason="torch.distributed is not available in this build"
)

OPTIONS = {"adapter_options": {"block_names": ["blocks.0", "blocks.1"], "include": ["blocks.*"]}}
WELL_CONDITIONED = {"jitter": 1e-4, "fisher_jitter": 1e-4}
#: Case → (compress options, the bound on the factors' relative difference).
CASES = {
    "safe-svd, layer stages": ({"recipe": "safe-svd", **WELL_CONDITIONED}, 1e-10),
    "safe-svd-balanced, block stages (solves split across processes)": (
        {"recipe": "safe-svd-balanced", "stage_mode": "block", "domains": True, **WELL_CONDITIONED},
        1e-10,
    ),
    "safe-svd on rollouts": ({"recipe": "safe-svd", "trajectories": True, **WELL_CONDITIONED}, 1e-10),
    "svd-llm": ({"recipe": "svd-llm", "jitter": 1e-4}, 1e-10),
    "safe-svd at the default jitter": ({"recipe": "safe-svd"}, 1e-8),
}


def _model():
    return small_transformer(depth=2).double()  # float64 factors: comparable to 1e-10


def _data(case: dict) -> list:
    data = [(x.double(), y.double()) for x, y in small_data(batches=5)]  # 5 items: the processes hold 3 and 2
    if case.get("trajectories"):
        return [(x, torch.stack([y, 0.5 * (x + y)], dim=1)) for x, y in data]
    if case.get("domains"):
        return [(x, y, "left" if i % 2 else "right") for i, (x, y) in enumerate(data)]
    return data


def _options(case: dict) -> dict:
    return {key: value for key, value in case.items() if key not in ("trajectories", "domains")}


def _outputs(result) -> dict[str, torch.Tensor]:
    """The clean statistics, every tensor of the compressed model, and each factorised layer's weight A B."""
    from safesvd_core import LowRankLinear

    statistics = {f"statistics/{key}": value for key, value in result.statistics.state_dict().items()}
    weights = {
        f"model/{key}": value.detach().contiguous() for key, value in result.model.state_dict().items()
    }
    products = {
        f"product/{name}": module.weight.detach().contiguous()
        for name, module in result.model.named_modules()
        if isinstance(module, LowRankLinear)
    }
    return {**statistics, **weights, **products}


def _worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    from safesvd_core.io import _checkpoint

    writes = []
    original = _checkpoint.atomic_write
    _checkpoint.atomic_write = lambda path, write: (writes.append(str(path)), original(path, write))[1]
    for index, (case, _) in enumerate(CASES.values()):
        checkpoint = Path(out) / f"checkpoint-{index}"
        result = compress(
            _model(), _data(case), ratio=0.5, checkpoint_dir=checkpoint, **OPTIONS, **_options(case)
        )
        save_file(_outputs(result), str(Path(out) / f"rank{rank}-case{index}.safetensors"))
        (Path(out) / f"rank{rank}-case{index}.ranks").write_text(repr(sorted(result.ranks.items())))
    (Path(out) / f"rank{rank}.writes").write_text("\n".join(writes))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    run_on_loopback(_worker, 2, str(out))
    return out


@pytest.mark.parametrize("index", range(len(CASES)), ids=list(CASES))
def test_two_processes_give_the_one_process_statistics_and_factors(two_processes, index):
    case, bound = list(CASES.values())[index]
    alone = compress(_model(), _data(case), ratio=0.5, **OPTIONS, **_options(case))
    expected = _outputs(alone)
    for rank in (0, 1):
        got = load_file(str(two_processes / f"rank{rank}-case{index}.safetensors"))
        assert (two_processes / f"rank{rank}-case{index}.ranks").read_text() == repr(
            sorted(alone.ranks.items())
        )
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if value.dtype.is_floating_point:  # relative to the tensor's norm
                error = float(
                    torch.linalg.vector_norm(got[key] - value)
                    / torch.linalg.vector_norm(value).clamp_min(1e-300)
                )
                limit = 1e-10 if key.startswith("statistics/") else bound
                assert error <= limit, f"rank {rank}, {key}: relative difference {error:.2e} > {limit:.0e}"
            else:
                assert torch.equal(got[key], value), f"rank {rank}, {key}"


def test_only_process_zero_writes(two_processes):
    assert (two_processes / "rank0.writes").read_text().count("checkpoint.json") > len(CASES)
    assert (two_processes / "rank1.writes").read_text() == ""


def test_distributed_without_a_process_group_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs an initialised torch.distributed process group"):
        compress(small_transformer(), small_data(), ratio=0.5, distributed=True)


def _disagreeing_worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    try:
        compress(
            _model(), _data({})[: 5 - 2 * rank], ratio=0.5, **OPTIONS
        )  # process 0: 5 items, process 1: 3
    except ConfigError as error:
        (Path(out) / f"rank{rank}.error").write_text(str(error))


def test_processes_given_different_calibration_sets_are_refused_before_any_statistic(tmp_path):
    run_on_loopback(_disagreeing_worker, 2, str(tmp_path))
    for rank in (0, 1):
        message = (tmp_path / f"rank{rank}.error").read_text()
        assert "the processes were given different calibration sets (process 0: 5 items" in message
        assert "process 1: 3 items" in message and "every process must pass the same items" in message
