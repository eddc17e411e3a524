"""ASVD's loss search, Dobi-SVD's training and the held-out tuning run as phases of the engine: placed
by name in their recipes' phases, seen by the run hooks, and the result is the run's log as the last
phase left it (nothing is added to it after the run)."""

from __future__ import annotations

import copy

import pytest
import torch

from safesvd_core import ConfigError, compress, registry
from safesvd_core.plugin import DEFAULT_PHASES, Phase, RunHook, RunLog, RunState
from safesvd_core.testing.recipes import TwoProcesses
from safesvd_zoo import reference

from test_baseline_recipes import small_data, small_transformer

DEFAULT_NAMES = [phase.name for phase in DEFAULT_PHASES]


def trajectories(items=4, steps=2):
    """``items`` trajectory items ``(input, (4, steps, 2, 8, 8))``."""
    generator = torch.Generator().manual_seed(2)
    return [
        (torch.randn(4, 2, 8, 8, generator=generator), torch.randn(4, steps, 2, 8, 8, generator=generator))
        for _ in range(items)
    ]


class LastLog(RunHook):
    """A copy of the run's log and its plan when each phase is done, the phases seen, and the ranks
    each phase left."""

    def __init__(self) -> None:
        self.log: RunLog | None = None
        self.plan = None
        self.phases: list[str] = []
        self.ranks: dict[str, dict[str, int | None]] = {}

    def phase_done(self, state: RunState, phase: Phase) -> None:
        self.log, self.plan = copy.deepcopy(state.log), state.plan
        self.phases.append(phase.name)
        if state.allocation is not None:
            self.ranks[phase.name] = dict(state.allocation.ranks)


def _options(model, **more):
    return {"block_names": model.block_names(), "include": ["blocks.*"], **more}


def _names(recipe: str, **options) -> list[str]:
    return [phase.name for phase in registry("recipe").create(recipe, **options).phases()]


def test_each_search_is_a_phase_placed_by_name_in_its_recipe():
    assert _names("asvd") == DEFAULT_NAMES  # the stable-rank proxy needs no phase of its own
    assert _names("asvd", sensitivity="calibration-loss") == [
        *DEFAULT_NAMES[:4],
        "asvd-sensitivity",
        "stages",
    ]
    assert _names("dobi-svd") == [*DEFAULT_NAMES[:4], "dobi-training", "stages"]
    assert _names("safe-svd") == DEFAULT_NAMES
    for option in ("alpha", "lam_ratio", "rollout_steps"):
        assert _names("safe-svd", **{option: "auto"}) == ["tuning", *DEFAULT_NAMES]
    assert _names("safe-svd", alpha="auto", merge_slow=True)[:1] == ["tuning"]


@pytest.mark.parametrize(
    ("recipe", "options", "phase", "passes"),
    [
        (
            "asvd",
            {"sensitivity": "calibration-loss", "sensitivity_batches": 1, "ratios": (0.2, 0.5)},
            "asvd-sensitivity",
            12 * 2 + 1,
        ),
        ("dobi-svd", {"epochs": 2}, "dobi-training", 2),
    ],
)
def test_the_result_is_the_log_the_phases_left(recipe, options, phase, passes):
    model = small_transformer()
    hook = LastLog()
    result = compress(
        model,
        small_data(),
        ratio=0.5,
        recipe=recipe,
        adapter_options=_options(model),
        hooks=[hook],
        **options,
    )
    assert hook.phases == _names(recipe, **options)
    assert result.passes == hook.log.passes and result.passes[phase] == passes and result.passes["clean"] == 1
    assert result.notes == hook.log.notes and len(result.notes) == 1
    assert set(result.timings) == {*hook.log.timings, "total"} and phase in result.timings
    assert result.timings["total"] >= sum(hook.log.timings.values())
    assert result.met_budget and result.ranks == hook.ranks[phase] == hook.ranks["stages"]
    assert hook.ranks[phase] != hook.ranks["allocate"]  # the phase allocated again; the stages solved that


def test_the_loss_search_refuses_a_sharded_run_before_any_pass():
    model = small_transformer()
    calls = []
    model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    with pytest.raises(ConfigError, match="not sharded"):
        compress(
            model,
            small_data(4),
            ratio=0.5,
            recipe="asvd",
            sensitivity="calibration-loss",
            adapter_options=_options(model),
            distributed=TwoProcesses(),
        )
    assert calls == []
    compress(
        model,
        small_data(4),
        ratio=0.5,
        recipe="asvd",
        adapter_options=_options(model),
        distributed=TwoProcesses(),
    )
    assert calls  # the stable-rank proxy shards


def test_the_tuning_phase_runs_the_chosen_plan_and_records_the_choice_in_the_log():
    """``rollout_steps="auto"`` and ``lam_ratio="auto"``: the plan stands at K steps and λ ratio 10 until the
    tuning phase, the first, chooses; the rest of the run uses the chosen plan, and nothing is added to
    the result after the run."""
    model = small_transformer()
    hook = LastLog()
    options = _options(model, field_description=reference.FIELD)
    result = compress(
        model,
        trajectories(),
        ratio=0.5,
        rollout_steps="auto",
        lam_ratio="auto",
        physics=["sobolev"],
        adapter_options=options,
        hooks=[hook],
    )
    assert hook.phases == ["tuning", *DEFAULT_NAMES]
    tuning = hook.log.reports["tuning"]
    assert [(row["lam_ratio"], row["steps"]) for row in tuning["candidates"]] == [
        (ratio, steps) for ratio in (1.0, 10.0, 100.0) for steps in (1, 2)
    ]
    chosen = tuning["chosen"]
    best = min(tuning["candidates"], key=lambda row: row["score"])
    assert (
        chosen == {"lam_ratio": best["lam_ratio"], "steps": best["steps"]} and tuning["held_out_items"] == 1
    )
    assert hook.plan.objective.lam_ratio == chosen["lam_ratio"]
    assert f"RolloutSource(steps={chosen['steps']}," in result.objective["source"]
    assert result.passes == hook.log.passes and result.passes["tuning"] > len(tuning["candidates"])
    assert result.notes == hook.log.notes and "held-out choice" in result.notes[0]
    assert result.tuning == tuning and result.reports == hook.log.reports
    plain = compress(
        model,
        trajectories(),
        ratio=0.5,
        rollout_steps=chosen["steps"],
        lam_ratio=chosen["lam_ratio"],
        physics=["sobolev"],
        adapter_options=options,
    )
    assert result.ranks == plain.ranks and all(
        torch.equal(value, plain.model.state_dict()[key]) for key, value in result.model.state_dict().items()
    )
