"""The contract every :class:`~safesvd_core.plugin.BatchSource` must meet, as a pytest suite to subclass.

::

    class TestMySource(BatchSourceConformance):
        implementation = MySource

        def make_source(self):
            return MySource(steps=2)

        def make_items(self):          # items of the form the source takes (default: one-step pairs)
            return my_trajectories()

The model is a tiny residual one (two blocks of two linear layers) with the generic adapter, unless
:meth:`~BatchSourceConformance.make_model` and :meth:`~BatchSourceConformance.make_adapter` say otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from ..plugin import BatchSource, ModelAdapter, Plan, registry, run_plan
from ._runs import CountingSource, job_of, tiny_adapter, tiny_items, tiny_model


def _mse(prediction: Tensor, batch: Any, adapter: ModelAdapter) -> Tensor:
    return torch.mean((prediction - adapter.reference(batch)) ** 2)


class BatchSourceConformance:
    """Yields reference-shaped finite predictions in a stable order, groups valid call indices, has a
    differentiable finite loss per group, a one-step first batch and a stable repr, and compresses
    through the engine with every pass running its items."""

    #: The class under test (``make_source`` must return exactly one of these).
    implementation: ClassVar[type[BatchSource]]
    ratio: ClassVar[float] = 0.6

    # -- hooks --------------------------------------------------------------------------------

    def make_source(self) -> BatchSource:
        """The source under test."""
        raise NotImplementedError("subclasses return the source under test")

    def make_model(self) -> nn.Module:
        return tiny_model()

    def make_adapter(self) -> ModelAdapter:
        return tiny_adapter()

    def make_items(self) -> list[Any]:
        """At least two calibration items of the form the source takes (default: one-step pairs)."""
        return tiny_items()

    def make_plan(self) -> Plan:
        """The plan the end-to-end run uses (its ``source`` replaced by the one under test)."""
        return registry("recipe").create("safe-svd").plan()

    # -- helpers ------------------------------------------------------------------------------

    def _setup(self) -> tuple[BatchSource, ModelAdapter, nn.Module, list[Any]]:
        model = self.make_model()
        return self.make_source(), self.make_adapter().for_model(model), model, self.make_items()

    # -- the contract -------------------------------------------------------------------------

    def test_is_the_declared_batch_source(self) -> None:
        source = self.make_source()
        assert isinstance(source, BatchSource) and type(source) is self.implementation, (
            f"make_source gave a {type(source).__name__}, the suite covers {self.implementation.__name__}"
        )

    def test_predictions_are_reference_shaped_finite_and_repeatable(self) -> None:
        source, adapter, model, items = self._setup()
        for index, item in enumerate(items):
            with torch.no_grad():
                calls = list(source.predictions(adapter, model, item))
                again = source.run(adapter, model, item)
            assert calls, f"item {index}: no model call"
            assert len(again) == len(calls), f"item {index}: {len(calls)} calls, then {len(again)} from run()"
            for step, ((prediction, batch), (repeated, _)) in enumerate(zip(calls, again)):
                assert isinstance(prediction, Tensor), (
                    f"item {index}, call {step}: a {type(prediction).__name__}"
                )
                reference = adapter.reference(batch)
                assert prediction.shape == reference.shape, (
                    f"item {index}, call {step}: prediction {tuple(prediction.shape)}, "
                    f"reference {tuple(reference.shape)}"
                )
                assert torch.isfinite(prediction).all(), (
                    f"item {index}, call {step}: NaN/Inf in the prediction"
                )
                assert torch.equal(prediction, repeated), (
                    f"item {index}, call {step}: another prediction the second time"
                )

    def test_groups_name_valid_calls_and_each_has_a_differentiable_loss(self) -> None:
        source, adapter, model, items = self._setup()
        calls = source.run(adapter, model, items[0])
        groups = source.groups(len(calls))
        assert isinstance(groups, Mapping) and groups, (
            f"groups({len(calls)}) must be a non-empty mapping, got {groups!r}"
        )
        for group, indices in groups.items():
            assert group is None or (isinstance(group, str) and group), (
                f"group label {group!r}: None or a non-empty str"
            )
            indices = list(indices)
            assert indices and len(set(indices)) == len(indices), f"group {group!r}: indices {indices}"
            assert all(isinstance(i, int) and 0 <= i < len(calls) for i in indices), (
                f"group {group!r}: indices {indices} outside the {len(calls)} calls"
            )
            model.zero_grad()
            loss = source.loss(lambda prediction, batch: _mse(prediction, batch, adapter), calls, group)
            assert isinstance(loss, Tensor) and loss.shape == (), (
                f"group {group!r}: the loss must be a scalar tensor"
            )
            value = float(loss.detach())
            assert math.isfinite(value) and value >= 0.0, f"group {group!r}: loss {value} of a mean square"
            loss.backward(retain_graph=True)
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert grads and any(bool(g.abs().sum() > 0) for g in grads), (
                f"group {group!r}: no gradient reaches the model"
            )
            assert all(torch.isfinite(g).all() for g in grads), f"group {group!r}: NaN/Inf gradients"

    def test_first_batch_is_a_one_step_batch_of_the_item(self) -> None:
        source, adapter, model, items = self._setup()
        for index, item in enumerate(items):
            batch = source.first_batch(adapter, item)
            assert adapter.trajectory_steps(batch) is None, f"item {index}: first_batch is a trajectory"
            with torch.no_grad():
                prediction = adapter.predict(model, batch)
            assert prediction.shape == adapter.reference(batch).shape, (
                f"item {index}: first_batch predicts another shape"
            )
            adapter.field(batch), adapter.domain(batch)  # the engine reads both from it

    def test_repr_is_stable(self) -> None:
        """It is written into the result (``objective["source"]``): no memory address, the same for
        equal sources."""
        shown = repr(self.make_source())
        assert shown == repr(self.make_source()) and " at 0x" not in shown, f"repr {shown!r} is not stable"

    def test_compresses_through_the_engine_every_pass_running_its_items(self) -> None:
        source, adapter, model, items = self._setup()
        counting = CountingSource(source)
        job = job_of(model, items, adapter, ratio=self.ratio)
        result = run_plan(job, attrs.evolve(self.make_plan(), source=counting))
        assert result.params_after <= result.budget, (
            f"{result.params_after} parameters kept, budget {result.budget}"
        )
        assert counting.items > 2 * len(items), f"only {counting.items} items ran through the source"
