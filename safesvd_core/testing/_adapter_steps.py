"""The block-chaining and rollout part of :class:`~safesvd_core.testing.ModelAdapterConformance`
(``next_block_input``, ``trajectory_steps``, ``rollout_step``), a mixin of that suite: it uses the
suite's ``_setup``, ``_prepared`` and ``make_trajectories``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from .._errors import ConfigError
from ..run._rollout import RolloutSource, one_step_batches


def _tensors(value: Any) -> list[Tensor]:
    """The tensors in a block's output: itself, or inside tuples, lists and mappings (HF outputs)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _tensors(item)]
    return []


class BlockAndRolloutChecks:
    """Checks of how an adapter chains blocks and rolls a model out."""

    # -- block chaining and rollouts ------------------------------------------------------------

    def test_next_block_input_is_what_the_next_block_receives(self) -> None:
        """Where a block's output feeds the next block as is, ``next_block_input`` picks that tensor
        (the engine carries block inputs from block to block with it)."""
        adapter, model, batches = self._setup()
        prepared = self._prepared(adapter, model)
        blocks = adapter.blocks(prepared)
        if not blocks or len(blocks) < 2:
            pytest.skip("fewer than two blocks: no block feeds another")
        outputs: dict[str, Any] = {}

        def record(module: nn.Module, args: tuple[Any, ...], output: Any, block: str) -> None:
            outputs.setdefault(block, (args, output))

        handles = [
            prepared.get_submodule(block).register_forward_hook(
                lambda module, args, output, block=block: record(module, args, output, block)
            )
            for block in blocks
        ]
        try:
            with torch.no_grad():
                adapter.predict(prepared, batches[0])
        finally:
            for handle in handles:
                handle.remove()
        inputs = {block: args[0] if args else None for block, (args, _) in outputs.items()}
        chained = 0
        for block, following in itertools.pairwise(blocks):
            if block not in outputs or following not in outputs:
                continue
            output, received = outputs[block][1], inputs[following]
            picked = adapter.next_block_input(output)
            assert isinstance(picked, Tensor), (
                f"next_block_input of {block!r}'s output gave a {type(picked).__name__}"
            )
            if any(tensor is received for tensor in _tensors(output)):
                chained += 1
                assert picked is received or torch.equal(picked, received), (
                    f"{following!r} receives a tensor of {block!r}'s output, next_block_input picks another"
                )
        if not chained:
            pytest.skip("no block's output feeds the next block as is")

    def test_one_step_batches_are_not_trajectories_and_cannot_roll_out_alone(self) -> None:
        adapter, _, batches = self._setup()
        for index, batch in enumerate(batches):
            assert adapter.trajectory_steps(batch) is None, (
                f"batch {index} (one step) is taken for a trajectory"
            )
        if self.make_trajectories() is None:
            with pytest.raises(ConfigError):
                adapter.rollout_step(batches[0], None, 1)

    def test_rollout_steps_target_the_true_states_from_the_given_state(self) -> None:
        items = self.make_trajectories()
        if items is None:
            pytest.skip("the adapter does not roll models out (make_trajectories is None)")
        adapter, model, _ = self._setup()
        for index, item in enumerate(items):
            steps = adapter.trajectory_steps(item)
            assert isinstance(steps, int) and steps >= 2, (
                f"trajectory {index}: trajectory_steps is {steps!r}, expected K ≥ 2"
            )
            for bad in (0, steps + 1):
                with pytest.raises(ConfigError):
                    adapter.rollout_step(item, None, bad)
            state = None
            for step in range(1, steps + 1):
                batch = adapter.rollout_step(item, state, step)
                assert adapter.trajectory_steps(batch) is None, (
                    f"trajectory {index}, step {step}: a trajectory again"
                )
                with torch.no_grad():
                    prediction = adapter.predict(model, batch)
                target = adapter.reference(batch)
                assert prediction.shape == target.shape, (
                    f"trajectory {index}, step {step}: prediction {tuple(prediction.shape)}, "
                    f"target {tuple(target.shape)}"
                )
                assert torch.equal(adapter.reference(adapter.rollout_step(item, None, step)), target), (
                    f"trajectory {index}, step {step}: the target depends on the state given; it is the true "
                    f"state {step}"
                )
                if state is not None:
                    with torch.no_grad():
                        moved = adapter.predict(model, adapter.rollout_step(item, state + 1.0, step))
                    assert not torch.equal(moved, prediction), (
                        f"trajectory {index}, step {step}: another state gives the same prediction: "
                        "the state is not the input"
                    )
                state = prediction
            forced = one_step_batches(adapter, [item])
            assert len(forced) == steps, (
                f"trajectory {index}: {len(forced)} teacher-forced batches for {steps} steps"
            )
            for step, batch in enumerate(forced, start=1):
                assert torch.equal(
                    adapter.reference(batch), adapter.reference(adapter.rollout_step(item, None, step))
                ), (
                    f"trajectory {index}: teacher-forced batch {step} has another target than rollout step "
                    f"{step}"
                )
            with torch.no_grad():
                calls = RolloutSource(steps=steps).run(adapter, model, item)
            assert len(calls) == steps and all(torch.isfinite(prediction).all() for prediction, _ in calls), (
                f"trajectory {index}: the rollout gave {len(calls)} calls or NaN/Inf predictions"
            )
