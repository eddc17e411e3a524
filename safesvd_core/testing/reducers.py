"""The contract every :class:`~safesvd_core.plugin.StatisticsReducer` must meet, seen from one
process, as a pytest suite to subclass.

::

    class TestMyReducer(StatisticsReducerConformance):
        implementation = MyReducer

        def make_reducer(self):
            return MyReducer()

In a one-process world a reducer must change nothing: ``compress(..., distributed=it)`` gives the weights
of ``compress(..., distributed=False)`` bit for bit. Its shard, owners and shared work follow the
schedule ``compress`` relies on. (Several processes: ``safesvd_core.testing.loopback`` runs real ones.)
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from .. import compress
from ..plugin import Shared, StatisticsReducer
from ._runs import ADAPTER_OPTIONS, assert_same_weights, tiny_items, tiny_model


class StatisticsReducerConformance:
    """A rank within its world, the shard ``compress`` takes, a deterministic owner per work item,
    collectives that return every process's part, ``share`` giving every index, and, alone, the
    local result."""

    #: The class under test (``make_reducer`` must return exactly one of these).
    implementation: ClassVar[type[StatisticsReducer]]

    def make_reducer(self) -> StatisticsReducer:
        """The reducer under test, in this process."""
        raise NotImplementedError("subclasses return the reducer under test")

    # -- the contract -------------------------------------------------------------------------

    def test_is_the_declared_reducer_with_a_rank_in_its_world(self) -> None:
        reducer = self.make_reducer()
        assert isinstance(reducer, StatisticsReducer) and type(reducer) is self.implementation, (
            f"make_reducer gave a {type(reducer).__name__}, the suite covers {self.implementation.__name__}"
        )
        rank, world = reducer.rank, reducer.world
        assert isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world, (
            rank,
            world,
        )

    def test_global_index_is_the_shard_compress_takes(self) -> None:
        """``compress`` gives process ``r`` the items ``r, r + world, r + 2 world, …``."""
        reducer = self.make_reducer()
        for local in range(6):
            expected = reducer.rank + local * reducer.world
            assert reducer.global_index(local) == expected, (
                f"global_index({local}) is {reducer.global_index(local)}, the shard has item {expected}"
            )

    def test_each_work_item_has_one_deterministic_owner(self) -> None:
        reducer = self.make_reducer()
        owners = [reducer.owner(index) for index in range(12)]
        assert all(isinstance(owner, int) and 0 <= owner < reducer.world for owner in owners), owners
        assert owners == [reducer.owner(index) for index in range(12)], "owner() changed between two calls"

    def test_collectives_return_every_process_part(self) -> None:
        reducer = self.make_reducer()
        texts = reducer.texts("from this process")
        assert (
            isinstance(texts, list)
            and len(texts) == reducer.world
            and texts[reducer.rank] == "from this process"
        ), texts
        union = reducer.union(["b", "a", "b"])
        assert union == sorted(set(union)) and {"a", "b"} <= set(union), f"union gave {union}"
        sums = reducer.sum_values([1.5, 2.0])
        assert len(sums) == 2 and all(isinstance(value, float) for value in sums), sums
        value: Any = {"layers": ["a", "b"], "seconds": 0.25}
        agreed = reducer.agreed(value)
        if reducer.world == 1:
            assert sums == [1.5, 2.0] and union == ["a", "b"] and agreed == value, (sums, union, agreed)
        gradients = [torch.full((3,), 0.5), torch.arange(4, dtype=torch.float64).reshape(2, 2)]
        reducer.sum_tensors(gradients)  # distributed refinement's gradient sum, in place
        scale = reducer.world  # every process holds the same tensors here: the sum is world × them
        assert torch.equal(gradients[0], torch.full((3,), 0.5 * scale)), gradients[0]
        assert torch.equal(gradients[1], scale * torch.arange(4, dtype=torch.float64).reshape(2, 2))

    def test_share_gives_every_index_its_owner_computed(self) -> None:
        reducer = self.make_reducer()
        computed: list[int] = []

        def compute(index: int) -> Shared:
            computed.append(index)
            return Shared(
                tensors={"value": torch.full((2,), float(index), dtype=torch.float64)}, meta={"index": index}
            )

        shared = reducer.share([0, 1, 2, 3], compute)
        assert sorted(shared) == [0, 1, 2, 3], f"share returned the indices {sorted(shared)}"
        assert sorted(computed) == [index for index in range(4) if reducer.owner(index) == reducer.rank], (
            f"this process computed {sorted(computed)}; it owns the others' results, not their work"
        )
        for index, result in shared.items():
            assert isinstance(result, Shared) and result.meta == {"index": index}, result
            assert torch.equal(
                result.tensors["value"].cpu(), torch.full((2,), float(index), dtype=torch.float64)
            )

    def test_alone_it_gives_the_local_result_bit_for_bit(self) -> None:
        reducer = self.make_reducer()
        if reducer.world != 1:
            pytest.skip("a process of a larger world cannot compress alone")
        model, items = tiny_model(), tiny_items()
        options = {"ratio": 0.5, "adapter_options": dict(ADAPTER_OPTIONS)}
        reduced = compress(model, items, distributed=reducer, **options)
        local = compress(model, items, distributed=False, **options)
        assert reduced.ranks == local.ranks, f"ranks {reduced.ranks}, locally {local.ranks}"
        assert_same_weights(
            reduced.model, local.model, "compress(..., distributed=reducer) alone against distributed=False"
        )
