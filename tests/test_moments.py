"""Running moments: a moment of rows against themselves is accumulated one triangle at a time
(filled in when read: BLAS's symmetric rank-k update on one torch thread, block rows on more) and
equals the plain float64 sum of outer products; paired rows, a mixture of both, merging, reducing
and a state round trip read the whole sum."""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from safesvd_core.plugin import NumericalError, RunningMoment
from safesvd_core.statistics import _moments


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


@contextlib.contextmanager
def _torch_threads(threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2])
def test_dsyrk_serves_one_torch_thread_and_block_rows_several(threads, monkeypatch):
    """With several torch threads, scipy's BLAS threads would contend with torch's: block rows."""
    calls = []
    real = _moments.blas.dsyrk
    monkeypatch.setattr(_moments.blas, "dsyrk", lambda *a, **k: calls.append(1) or real(*a, **k))
    with _torch_threads(threads):
        moment, rows = RunningMoment(6, 6), _rows(0, 10, 6)
        moment.add(rows)
        assert moment._upper_only  # one triangle either way
        assert len(calls) == (threads == 1)
        assert _close(moment.total, rows.double().mT @ rows.double())


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(1, 3 * _moments.SYMMETRIC_BLOCK_WIDTH + 5),
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
    first_threads=st.sampled_from([1, 2]),
)
def test_block_rows_and_dsyrk_mixed_give_the_sum_of_outer_products(width, counts, seed, first_threads):
    """Updates alternating between the two routes (a thread count changed mid-run) stay exact."""
    moment, expected = RunningMoment(width, width), torch.zeros(width, width, dtype=torch.float64)
    for offset, count in enumerate(counts):
        rows = _rows(seed + offset, count, width)
        with _torch_threads(first_threads if offset % 2 == 0 else 3 - first_threads):
            moment.add(rows)
        expected += rows.double().mT @ rows.double()
    assert _close(moment.total, expected)
    assert torch.equal(moment.total, moment.total.mT)
