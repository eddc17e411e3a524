# examples/architecture/phase.py
"""A phase of your own in a recipe built on safe-svd: one class, and one line that inserts it by name."""

import sys
from typing import ClassVar

import attrs

from safesvd_core import compress, registry
from safesvd_core.plugin import Phase, RunState, hookimpl, insert_phase, plugin_manager
from safesvd_zoo import reference


class RankReport(Phase):
    """Writes the ranks the stages will use into the result's notes."""

    name: ClassVar[str] = "rank-report"
    reads: ClassVar[tuple[str, ...]] = ("allocation",)  # checked before the run: it must follow an allocation

    def run(self, state: RunState) -> None:
        ranks = state.allocation.ranks
        dense = sum(rank is None for rank in ranks.values())
        state.log.notes.append(f"{dense} of {len(ranks)} layers stay dense")


@attrs.frozen(kw_only=True)
class SafeSVDWithReport(registry("recipe").get("safe-svd")):
    name: ClassVar[str] = "safe-svd-report"

    def phases(self):                                    # every option of safe-svd keeps working
        return insert_phase(super().phases(), RankReport(), before="stages")


@hookimpl
def safesvd_recipes():
    return [SafeSVDWithReport]


plugin_manager().register(sys.modules[__name__])         # a plugin package declares an entry point instead
model = reference.load()
result = compress(model, reference.batches("calibration"), ratio=0.5, recipe="safe-svd-report",
                  adapter_options={"include": ["blocks.*"], "block_names": reference.block_names(model)})
print(result.notes)                                      # ['0 of 24 layers stay dense']
