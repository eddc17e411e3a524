"""Where compression time goes: each phase of ``safe-svd`` beside ``svd-llm``'s in the same run, and
beside its physical limit, the passes and decompositions it cannot avoid, measured with plain torch.

    python -m benchmarks.phase_profile            # writes docs/results/profile.md
    python -m benchmarks.phase_profile --quick    # one repeat, fewer items: checks the script

Subjects (ratio 0.4, one thread):

- ``reference, pairs``: the reference model on the zoo's calibration batches, both recipes on the same
  batches;
- ``reference, trajectories``: safe-svd on 32 trajectories × 5 steps (rollout calibration) against
  svd-llm on their 160 teacher-forced pairs;
- ``poseidon-t``: the ScOT stand-in at Poseidon-T's shapes (128², random weights) on 4
  compressible-Euler pairs in batches of 2 (family ``euler-compressible`` for safe-svd);
- ``swin (aurora-small)``: Microsoft Aurora's ``AuroraSmall`` (3-D Swin blocks, 113 M parameters,
  random weights; :mod:`.swin_subject`) on 32 random weather pairs at 32 × 64, ``block_names`` its
  ``Swin3DTransformerBlock``s, both recipes on the same pairs, one run each (minutes a run). Where
  ``aurora`` does not import (it needs timm, hence torchvision: run this in CI's ``.venv-full``)
  the page says so.

The limits, each the best of the repeats:

- *forward*: one forward pass over the items, no hooks (svd-llm's clean pass needs it);
- *forward + backward*: one forward and one backward pass of the loss (a Fisher needs it);
- *SVD*: one float64 ``torch.linalg.svd`` of a matrix of each factored layer's shape (the solve
  needs one per layer; the allocation can reuse the solve's spectra).

A phase's limit: clean, forward + backward for safe-svd (forward for svd-llm); stages, one forward of
the items per stage pass (a stage pass runs the compressed prefix over the data) plus the SVDs (the
layers' solves); allocate, the SVDs (spectra). For trajectories the forward is a rollout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from safesvd_core import compress
from safesvd_core.plugin import make_adapter, one_step_batches, tensor_leaves

from .report import header

RATIO = 0.4
REPEATS = 3


@attrs.frozen
class Case:
    """One profile: the model, the items each recipe gets, the recipes' options, the adapter."""

    name: str
    model: nn.Module
    ours: list[Any]
    theirs: list[Any]
    options: dict[str, Any]
    family: str | None
    adapter: Any
    repeats: int | None = None  # None: the run's


def _reference_cases(quick: bool) -> list[Case]:
    from safesvd_zoo import reference

    model = reference.load()
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    adapter = make_adapter("generic", options)
    pairs = reference.batches("calibration")
    trajectories = reference.trajectory_batches(8 if quick else 32, 5)
    return [
        Case(
            "reference, pairs",
            model,
            pairs,
            pairs,
            {"adapter_options": options},
            "ns-incompressible",
            adapter,
        ),
        Case(
            "reference, trajectories",
            model,
            trajectories,
            one_step_batches(adapter, trajectories),
            {"adapter_options": options},
            "ns-incompressible",
            adapter,
        ),
    ]


def _poseidon_case(quick: bool) -> Case:
    from .refine_subjects import SUBJECTS, poseidon_adapter
    from .scale import calibration_batches

    model = SUBJECTS["poseidon-t"].build()
    batches = calibration_batches(2 if quick else 4, 2, seed=1, size=model.config.image_size)
    adapter = poseidon_adapter()
    return Case("poseidon-t", model, batches, batches, {"adapter": adapter}, "euler-compressible", adapter)


def _swin_case(quick: bool) -> Case | None:
    from . import swin_subject

    if not swin_subject.available():
        return None
    model = swin_subject.build()
    items = swin_subject.items(model, 2 if quick else 32)
    options = {"block_names": swin_subject.block_names(model)}
    adapter = make_adapter("generic", options)
    return Case("swin (aurora-small)", model, items, items, {"adapter_options": options}, None, adapter, 1)


def _best(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - start)
    return best, value


def _forward(case: Case, backward: bool) -> None:
    """One pass over ``case.ours`` (a rollout for trajectory items), with the loss's backward pass."""
    from safesvd_core.plugin import PairSource, RolloutSource, trajectory_length

    steps = trajectory_length(case.adapter, case.ours)
    source = PairSource() if steps is None else RolloutSource(steps=steps)
    with torch.enable_grad() if backward else torch.no_grad():
        for item in case.ours:
            calls = source.run(case.adapter, case.model, item)
            if backward:
                sum(
                    torch.mean(leaf**2)
                    for prediction, _ in calls
                    for _, leaf in tensor_leaves(prediction)
                    if leaf.requires_grad
                ).backward()
    case.model.zero_grad(set_to_none=True)


def _svd_seconds(result: Any, repeats: int) -> float:
    """One float64 SVD of a random matrix of each factored layer's shape."""
    shapes = [
        tuple(result.model.get_submodule(name).weight.shape) for name, rank in result.ranks.items() if rank
    ]
    generator = torch.Generator().manual_seed(0)
    matrices = [torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in shapes]
    return _best(lambda: [torch.linalg.svd(matrix, full_matrices=False) for matrix in matrices], repeats)[0]


def profile(case: Case, repeats: int) -> dict[str, Any]:
    """Both recipes' phases and the limits for ``case``; plain numbers."""
    repeats = case.repeats or repeats
    runs = {}
    for recipe, items, extra in (
        ("safe-svd", case.ours, {"family": case.family}),
        ("svd-llm", case.theirs, {}),
    ):
        seconds, result = _best(
            lambda items=items, recipe=recipe, extra=extra: compress(
                case.model, items, ratio=RATIO, recipe=recipe, **case.options, **extra
            ),
            repeats,
        )
        runs[recipe] = {
            "seconds": seconds,
            "timings": {key: value for key, value in result.timings.items() if key != "total"},
            "passes": dict(result.passes),
        }
    forward = _best(lambda: _forward(case, False), repeats)[0]
    both = _best(lambda: _forward(case, True), repeats)[0]
    return {
        "case": case.name,
        "repeats": repeats,
        "runs": runs,
        "forward": forward,
        "forward_backward": both,
        "svd": _svd_seconds(result, repeats),
    }


def _limit(row: dict[str, Any], recipe: str, phase: str) -> float | None:
    passes = row["runs"][recipe]["passes"]
    if phase == "clean":
        return row["forward_backward"] if recipe == "safe-svd" else row["forward"]
    if phase == "stages":  # the stage passes over the items, and the layers' solves
        return passes.get("stages", 0) * row["forward"] + row["svd"]
    if phase == "allocate":
        return row["svd"]
    return None


#: The targets (issue: compression speed on real architectures): case → the most safe-svd may take
#: against svd-llm in the same run, and for trajectories against its own limit.
TARGETS = {
    "reference, pairs": 2.0,
    "reference, trajectories": 6.0,
    "swin (aurora-small)": 2.0,
    "poseidon-t": 1.5,
}
#: safe-svd on trajectories against its own limit (the clean pass plus one rollout per stage).
OWN_LIMIT_TARGET = 1.5


def own_limit(row: dict[str, Any]) -> float:
    """safe-svd's own limit: one forward and backward pass, plus one forward pass per stage pass."""
    return row["forward_backward"] + row["runs"]["safe-svd"]["passes"].get("stages", 0) * row["forward"]


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Targets\n", "| case | safe-svd ÷ svd-llm | target | verdict |", "|---|---|---|---|"]
    for row in rows:
        target = TARGETS.get(row["case"])
        ratio = row["runs"]["safe-svd"]["seconds"] / row["runs"]["svd-llm"]["seconds"]
        if target is not None:
            lines.append(
                f"| {row['case']} | {ratio:.2f} | ≤ {target:g} | {'met' if ratio <= target else 'missed'} |"
            )
        if "trajectories" in row["case"]:
            own = row["runs"]["safe-svd"]["seconds"] / own_limit(row)
            verdict = "met" if own <= OWN_LIMIT_TARGET else "missed"
            lines.append(
                f"| {row['case']}: ÷ its own limit | {own:.2f} | ≤ {OWN_LIMIT_TARGET:g} | {verdict} |"
            )
    return lines


def _shown(passes: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in passes.items()) or "none"


def render(rows: list[dict[str, Any]], quick: bool) -> str:
    lines = [
        header(
            "Where compression time goes: phases against their limits", "python -m benchmarks.phase_profile"
        )
    ]
    lines.append(
        f"Ratio {RATIO}, one thread, the best of {1 if quick else REPEATS} runs of each (unless a section "
        "says otherwise). Seconds by phase "
        "(the result's `timings`; a recipe without stage passes solves its layers in `stages`), the passes "
        "(`passes`), and each phase's limit: clean, one forward and backward pass (safe-svd's Fisher) or "
        "one forward pass (svd-llm's); stages, one forward pass of the items per stage pass plus one "
        "float64 SVD per factored layer (the solves); allocate, one SVD per factored layer (the spectra; "
        "the solve's could serve). For trajectories a forward pass is a rollout. A stage pass over one-step "
        "items runs the compressed prefix up to its stage, not the whole model, so the stage limit, counted "
        "in whole forward passes, is an upper bound there (below 1× is possible).\n"
    )
    for row in rows:
        ours, theirs = row["runs"]["safe-svd"], row["runs"]["svd-llm"]
        lines.append(f"## {row['case']}\n")
        runs = "one run" if row.get("repeats") == 1 else f"best of {row.get('repeats', REPEATS)}"
        lines.append(
            f"safe-svd {ours['seconds']:.2f} s, svd-llm {theirs['seconds']:.2f} s ({runs}): "
            f"**{ours['seconds'] / theirs['seconds']:.2f}×**. Limits: forward {row['forward']:.3f} s, "
            f"forward + backward {row['forward_backward']:.3f} s, the SVDs {row['svd']:.3f} s.\n"
        )
        if "trajectories" in row["case"]:
            lines.append(
                "safe-svd's own limit, the clean pass plus one rollout per stage pass: "
                f"{own_limit(row):.2f} s; safe-svd takes **{ours['seconds'] / own_limit(row):.2f}×** it.\n"
            )
        lines.append("| phase | safe-svd s | its limit s | × limit | svd-llm s | its limit s |")
        lines.append("|---|---|---|---|---|---|")
        phases = list(dict.fromkeys([*ours["timings"], *theirs["timings"]]))
        for phase in phases:
            cells = []
            for recipe, run in (("safe-svd", ours), ("svd-llm", theirs)):
                seconds = run["timings"].get(phase)
                limit = _limit(row, recipe, phase)
                cells.append("—" if seconds is None else f"{seconds:.3f}")
                cells.append("—" if limit is None else f"{limit:.3f}")
                if recipe == "safe-svd":
                    cells.append("—" if not limit or seconds is None else f"{seconds / limit:.1f}")
            lines.append(f"| {phase} | " + " | ".join(cells) + " |")
        lines.append(f"\nPasses: safe-svd {_shown(ours['passes'])}; svd-llm {_shown(theirs['passes'])}.\n")
    if not any(row["case"].startswith("swin") for row in rows):
        lines.append(
            "## swin (aurora-small)\n\nNot measured: `aurora` does not import here (run in `.venv-full`).\n"
        )
    lines.extend(_verdicts(rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer items: checks the script")
    parser.add_argument("--out", type=Path, default=Path("docs/results/profile.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 1 if args.quick else REPEATS
    cases = [*_reference_cases(args.quick), _poseidon_case(args.quick), _swin_case(args.quick)]
    rows = []
    for case in [case for case in cases if case is not None]:
        rows.append(profile(case, repeats))
        print(rows[-1], flush=True)
    text = render(rows, args.quick)
    if not args.quick:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
