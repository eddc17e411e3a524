"""Running moments: a moment of rows against themselves takes the symmetric rank-k update (one
triangle, filled in when read) and equals the plain float64 sum of outer products; paired rows, a
mixture of both, merging, reducing and a state round trip read the whole sum."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesvd_core.plugin import NumericalError, RunningMoment


def _rows(seed: int, count: int, width: int) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return torch.allclose(got, expected, rtol=1e-12, atol=1e-12 * float(expected.abs().max()))


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 40),
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_a_symmetric_moment_equals_the_sum_of_outer_products(width, counts, seed):
    moment, expected = RunningMoment(width, width), torch.zeros(width, width, dtype=torch.float64)
    for offset, count in enumerate(counts):
        rows = _rows(seed + offset, count, width)
        moment.add(rows)
        expected += rows.double().mT @ rows.double()
        assert _close(moment.total, expected)  # read between updates: both triangles, every time
    assert torch.equal(moment.total, moment.total.mT)
    assert moment.count == sum(counts)
    assert _close(moment.mean(), expected / sum(counts))


@settings(max_examples=30, deadline=None)
@given(width=st.integers(1, 20), seed=st.integers(0, 2**16), symmetric_first=st.booleans())
def test_paired_rows_after_or_before_symmetric_ones_give_the_whole_sum(width, seed, symmetric_first):
    left, right, more = (_rows(seed + k, 7, width) for k in range(3))
    moment = RunningMoment(width, width)
    updates = [(more, None), (left, right)] if symmetric_first else [(left, right), (more, None)]
    for first, second in updates:
        moment.add(first, second)
    expected = more.double().mT @ more.double() + left.double().mT @ right.double()
    assert _close(moment.total, expected)


@settings(max_examples=20, deadline=None)
@given(width=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_merge_reduce_and_state_round_trip_read_the_whole_sum(width, seed):
    first, second = RunningMoment(width, width), RunningMoment(width, width)
    rows_a, rows_b = _rows(seed, 9, width), _rows(seed + 1, 5, width)
    first.add(rows_a)
    second.add(rows_b)
    first.merge(second)
    expected = rows_a.double().mT @ rows_a.double() + rows_b.double().mT @ rows_b.double()
    assert _close(first.total, expected) and first.count == 14

    summed = RunningMoment(width, width)
    summed.add(rows_a)
    summed.reduce(lambda tensor: tensor.mul_(2))  # two processes holding the same rows
    assert _close(summed.total, 2 * rows_a.double().mT @ rows_a.double()) and summed.count == 18

    restored = RunningMoment(width, width)
    restored.load_state_dict(first.state_dict())
    restored.add(rows_b)
    assert _close(restored.total, expected + rows_b.double().mT @ rows_b.double())


def test_non_finite_rows_are_refused_on_the_symmetric_path():
    moment = RunningMoment(3, 3)
    rows = torch.ones(4, 3)
    rows[2, 1] = float("nan")
    with pytest.raises(NumericalError, match="non-finite"):
        moment.add(rows)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_symmetric_update_runs_on_one_torch_thread_only(threads):
    """With several torch threads, scipy's BLAS threads would contend with torch's: the full product."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        moment, rows = RunningMoment(6, 6), _rows(0, 10, 6)
        moment.add(rows)
        assert moment._upper_only == (threads == 1)
        assert _close(moment.total, rows.double().mT @ rows.double())
    finally:
        torch.set_num_threads(previous)
