# examples/architecture/phase.py
"""A phase of your own between allocation and stages, in a recipe built on safe-svd."""

import sys
from typing import ClassVar

import attrs

from safesvd_core import compress, registry
from safesvd_core.plugin import DEFAULT_PHASES, Phase, RunState, hookimpl, plugin_manager, run_plan
from safesvd_zoo import reference


class RankReport(Phase):
    """Writes the allocation into the result's notes, between allocation and stages."""

    name: ClassVar[str] = "rank-report"

    def run(self, state: RunState) -> None:
        dense = sum(rank is None for rank in state.ranks.values())
        state.notes.append(f"{dense} of {len(state.ranks)} layers stay dense")


PHASES = (*DEFAULT_PHASES[:4], RankReport(), DEFAULT_PHASES[4])


@attrs.frozen(kw_only=True)
class SafeSVDWithReport(registry("recipe").get("safe-svd")):
    name: ClassVar[str] = "safe-svd-report"

    def compress(self, job):                       # in a recipe: run the plan through your phases
        return run_plan(job, self.plan(), PHASES)


@hookimpl
def safesvd_recipes():
    return [SafeSVDWithReport]


plugin_manager().register(sys.modules[__name__])   # a plugin package declares an entry point instead
model = reference.load()
result = compress(model, reference.batches("calibration"), ratio=0.5, recipe="safe-svd-report",
                  adapter_options={"include": ["blocks.*"], "block_names": reference.block_names(model)})
print(result.notes)                                # ['0 of 24 layers stay dense']
