"""Rows that several layers read in one item (siblings: query, key and value) have their moments'
products computed once: the sums equal unshared ones within rounding, a changed-in-place tensor is
not taken for the rows it was, and a compression gives the model of a run without sharing."""

from __future__ import annotations

import contextlib

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import safesvd_core.statistics._statistics as statistics_module
from safesvd_core import compress
from safesvd_core.plugin import RunningMoment
from safesvd_core.statistics._shared_products import SharedProducts, shared_products

from test_compress import small_data, small_transformer
from test_refine import options


def _rows(seed: int, count: int, width: int) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return torch.allclose(got, expected, rtol=1e-12, atol=1e-12 * float(expected.abs().max()))


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(1, 24),
    readers=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    threads=st.sampled_from([1, 2]),
)
def test_readers_of_one_tensor_get_the_sums_of_unshared_moments(width, readers, seed, threads):
    rows, paired, before = _rows(seed, 11, width), _rows(seed + 1, 11, width), _rows(seed + 2, 5, width)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        shared = [(RunningMoment(width, width), RunningMoment(width, width)) for _ in range(readers)]
        for symmetric, cross in shared:  # an earlier item, added directly: the scope adds onto it
            symmetric.add(before)
            cross.add(before, before)
        with shared_products([rows, paired] * readers) as scope:
            for symmetric, cross in shared:
                symmetric.add(rows)
                cross.add(paired, rows)
    finally:
        torch.set_num_threads(previous)
    assert scope.reused == 2 * (readers - 1)  # each product computed once, taken by the others
    for symmetric, cross in shared:
        assert _close(
            symmetric.total, before.double().mT @ before.double() + rows.double().mT @ rows.double()
        )
        assert _close(cross.total, before.double().mT @ before.double() + paired.double().mT @ rows.double())
        assert symmetric.count == cross.count == 16


def test_rows_changed_in_place_between_two_reads_are_not_taken_for_the_old_ones():
    rows = _rows(0, 6, 3)
    first, second = RunningMoment(3, 3), RunningMoment(3, 3)
    with shared_products([rows, rows]) as scope:
        first.add(rows)
        rows.mul_(2.0)  # the same storage, new contents: a new version
        second.add(rows)
    assert scope.reused == 0
    assert _close(second.total, rows.double().mT @ rows.double())
    assert _close(first.total, second.total / 4)


def test_rows_read_once_are_added_directly():
    rows, other = _rows(0, 6, 3), _rows(1, 6, 3)
    with shared_products([rows, other]) as scope:
        assert scope.repeated == frozenset()
        moment = RunningMoment(3, 3)
        moment.add(rows)
    assert scope.reused == 0 and _close(moment.total, rows.double().mT @ rows.double())


def test_siblings_share_products_and_give_the_model_of_a_run_without_sharing(monkeypatch):
    model, data = small_transformer(), small_data()
    scopes: list[SharedProducts] = []

    @contextlib.contextmanager
    def counted(rows):
        with shared_products(rows) as scope:
            scopes.append(scope)
            yield scope

    monkeypatch.setattr(statistics_module, "shared_products", counted)
    shared = compress(model, data, ratio=0.4, adapter_options=options(model))
    assert sum(scope.reused for scope in scopes) > 0  # query, key and value read one input

    monkeypatch.setattr(statistics_module, "shared_products", lambda rows: shared_products([]))
    unshared = compress(model, data, ratio=0.4, adapter_options=options(model))
    assert shared.ranks == unshared.ranks
    # rounding apart (a product added to a sum, not accumulated into it), the same compressed model
    for inputs, _ in data:
        with torch.no_grad():
            ours, theirs = shared.model(inputs), unshared.model(inputs)
        assert float((ours - theirs).norm() / theirs.norm()) < 1e-5
