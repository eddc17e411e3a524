# examples/plugins/my_allocator.py
"""A plugin module with one allocator: the same rank for every layer, the largest that fits the budget."""

from typing import ClassVar

import attrs

from safesvd_core.plugin import Allocator, BudgetError, hookimpl


@attrs.frozen(kw_only=True)
class MyAllocator(Allocator):
    name: ClassVar[str] = "my-allocator"

    def allocate(self, layers, budget):
        def cost(rank):  # a layer at or above its break-even rank stays dense
            return sum(rank * layer.params_per_rank if rank < layer.break_even_rank else layer.dense_params
                       for layer in layers)

        if cost(self.min_rank) > budget:
            raise BudgetError(f"rank {self.min_rank} everywhere keeps {cost(self.min_rank):,} weights, over {budget:,}")
        rank = self.min_rank
        while rank < max((layer.break_even_rank for layer in layers), default=0) and cost(rank + 1) <= budget:
            rank += 1
        return {layer.name: rank if rank < layer.break_even_rank else None for layer in layers}


@hookimpl
def safesvd_allocators():
    return [MyAllocator]
