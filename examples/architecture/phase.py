# examples/architecture/phase.py
"""A phase of your own: one class, and one entry in a recipe's list of phases."""

from typing import ClassVar

from safesvd_core import compress, recipe_phases
from safesvd_core.plugin import Phase, RunState
from safesvd_zoo import reference


class RankReport(Phase):
    """Writes the ranks the stages will use into the result's notes."""

    name: ClassVar[str] = "rank-report"
    reads: ClassVar[tuple[str, ...]] = ("allocation",)  # checked before the run: it must follow an allocation

    def run(self, state: RunState) -> None:
        ranks = state.allocation.ranks
        dense = sum(rank is None for rank in ranks.values())
        state.log.notes.append(f"{dense} of {len(ranks)} layers stay dense")


phases = recipe_phases("safe-svd", alpha=0.7)            # the same list recipe="safe-svd", alpha=0.7 runs
phases.insert(-1, RankReport())                          # one entry: right before the stages
model = reference.load()
result = compress(model, reference.batches("calibration"), ratio=0.5, recipe=phases,
                  adapter_options={"include": ["blocks.*"], "block_names": reference.block_names(model)})
print([phase.name for phase in phases])                  # ['probe', 'lambda', 'clean', 'allocate', 'rank-report', 'stages']
print(result.notes)                                      # ['0 of 24 layers stay dense']
