"""The contract every :class:`~safesvd_core.plugin.ModelAdapter` must meet, as a pytest suite to subclass.

::

    class TestMyAdapter(ModelAdapterConformance):
        plugin_name = "my-adapter"  # created from the registry, with ``options``

        def make_model(self):
            return tiny_model().eval()

        def make_batches(self):
            return [batch_a, batch_b]

Keep the model tiny: the suite runs it a few dozen times and compresses it once (``recipe`` at
:meth:`~ModelAdapterConformance.compression_ratio`, 0.6 by default; lower it for a model whose
compressible share cannot meet that). An adapter that rolls models out returns trajectory items from
:meth:`~ModelAdapterConformance.make_trajectories` (``trajectory_steps``/``rollout_step`` are then
checked on them; without, ``rollout_step`` must refuse with a ``ConfigError``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

from .._compress import compress
from .._field import FieldDescription
from ..kinds._interfaces import ModelAdapter
from ..kinds._plugins import registry
from ..model._layers import linear_map
from ..run.phases._stages import plan_stages
from ._adapter_steps import BlockAndRolloutChecks


@contextlib.contextmanager
def calls_of(model: nn.Module, names: Sequence[str]) -> Iterator[list[str]]:
    """Record, in order, each call of the submodules ``names`` of ``model`` while the context is open."""
    order: list[str] = []
    handles = [
        model.get_submodule(name).register_forward_pre_hook(
            lambda module, args, name=name: order.append(name)
        )
        for name in names
    ]
    try:
        yield order
    finally:
        for handle in handles:
            handle.remove()


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, Tensor) and isinstance(right, Tensor):
        return torch.equal(left, right)
    return type(left) is type(right) and left == right


class ModelAdapterConformance(BlockAndRolloutChecks):
    """Names linear layers and once-per-pass blocks, predicts the reference's shape, scores with a
    finite non-negative loss, prepares output-identically (and restores the original state dict),
    moves batches, compresses end to end within budget without touching the caller's model, hands
    a block's output on to the next block, and rolls trajectories out from the state given."""

    #: The registered name; the default :meth:`make_adapter` creates it with ``options``.
    plugin_name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    recipe: ClassVar[str] = "svd-llm"
    #: Whether ``base_loss`` vanishes when the prediction is the reference.
    loss_vanishes_on_reference: ClassVar[bool] = True
    #: Tolerances of the same model run twice on equal inputs (prepared copies, other devices).
    rtol: ClassVar[float] = 1e-5
    atol: ClassVar[float] = 1e-5

    # -- hooks --------------------------------------------------------------------------------

    def make_adapter(self) -> ModelAdapter:
        """The adapter under test."""
        return registry("model_adapter").create(self.plugin_name, **self.options)

    def make_model(self) -> nn.Module:
        """A small model of the adapter's family, in eval mode."""
        raise NotImplementedError("subclasses return a small model the adapter handles")

    def make_batches(self) -> list[Any]:
        """At least two calibration batches for :meth:`make_model`."""
        raise NotImplementedError("subclasses return calibration batches")

    def compression_ratio(self, adapter: ModelAdapter, model: nn.Module) -> float:
        """The ratio of the end-to-end compression."""
        return 0.6

    def make_trajectories(self) -> list[Any] | None:
        """Trajectory items (each holding K ≥ 2 future states) for an adapter that rolls models out;
        ``None`` (default) for one that does not."""
        return None

    # -- helpers ------------------------------------------------------------------------------

    def _setup(self) -> tuple[ModelAdapter, nn.Module, list[Any]]:
        """The adapter as ``compress`` uses it (``for_model``), the model and the batches."""
        torch.manual_seed(0)
        adapter, model, batches = self.make_adapter(), self.make_model(), self.make_batches()
        assert len(batches) >= 2, f"make_batches gave {len(batches)} batch(es); the suite needs at least 2"
        return adapter.for_model(model), model, batches

    @staticmethod
    def _prepared(adapter: ModelAdapter, model: nn.Module) -> nn.Module:
        """The model as ``compress`` sees it."""
        return adapter.prepare(copy.deepcopy(model)) if adapter.rewrites_modules else model

    def _assert_close(self, actual: Tensor, expected: Tensor, what: str) -> None:
        torch.testing.assert_close(
            actual, expected, rtol=self.rtol, atol=self.atol, msg=lambda m: f"{what}: {m}"
        )

    # -- the contract -------------------------------------------------------------------------

    def test_has_a_name(self) -> None:
        name = type(self.make_adapter()).name
        assert isinstance(name, str) and name, "a model adapter needs a non-empty string `name`"
        expected = getattr(self, "plugin_name", name)
        assert name == expected, f"the adapter is named {name!r}, registered as {expected!r}"

    def test_for_model_gives_the_same_kind_of_adapter_idempotently(self) -> None:
        adapter, model = self.make_adapter(), self.make_model()
        bound = adapter.for_model(model)
        assert isinstance(bound, ModelAdapter) and type(bound).name == type(adapter).name, (
            f"for_model must return a {type(adapter).name!r} adapter, got {bound!r}"
        )
        assert bound.for_model(model) == bound, "for_model of an adapter it returned must change nothing"

    def test_compressible_layers_are_linear_maps_called_by_predict(self) -> None:
        adapter, model, batches = self._setup()
        prepared = self._prepared(adapter, model)
        names = adapter.compressible_layers(prepared)
        assert names, "compressible_layers is empty"
        assert len(set(names)) == len(names), f"compressible_layers repeats names: {names}"
        for name in names:
            linear_map(prepared, name)  # a ConfigError names what the module is instead
        with torch.no_grad(), calls_of(prepared, names) as order:
            adapter.predict(prepared, batches[0])
        missing = sorted(set(names) - set(order))
        assert not missing, f"these compressible layers are never called by predict: {missing}"

    def test_predicts_the_reference_shape_finitely(self) -> None:
        adapter, model, batches = self._setup()
        for index, batch in enumerate(batches):
            with torch.no_grad():
                prediction = adapter.predict(model, batch)
            reference = adapter.reference(batch)
            assert isinstance(prediction, Tensor), (
                f"batch {index}: predict gave a {type(prediction).__name__}"
            )
            assert prediction.shape == reference.shape, (
                f"batch {index}: prediction {tuple(prediction.shape)}, reference {tuple(reference.shape)}"
            )
            assert torch.isfinite(prediction).all(), f"batch {index}: the prediction has NaN/Inf entries"

    def test_base_loss_is_a_finite_non_negative_differentiable_scalar(self) -> None:
        adapter, model, batches = self._setup()
        with torch.no_grad():
            prediction = adapter.predict(model, batches[0])
        prediction.requires_grad_(True)
        loss = adapter.base_loss(prediction, batches[0])
        assert isinstance(loss, Tensor) and loss.shape == (), (
            f"base_loss must be a scalar tensor, got {loss!r}"
        )
        value = float(loss.detach())
        assert torch.isfinite(loss.detach()) and value >= 0.0, f"base_loss is {value}"
        loss.backward()
        assert prediction.grad is not None and torch.isfinite(prediction.grad).all(), (
            "base_loss has no finite gradient with respect to the prediction"
        )
        if self.loss_vanishes_on_reference:
            exact = adapter.base_loss(adapter.reference(batches[0]).clone(), batches[0])
            assert abs(float(exact)) <= 1e-6, (
                f"base_loss of the reference itself is {float(exact)}, expected 0"
            )

    def test_blocks_run_once_each_and_own_contiguous_layers(self) -> None:
        adapter, model, batches = self._setup()
        prepared = self._prepared(adapter, model)
        blocks = adapter.blocks(prepared)
        if blocks is None:
            pytest.skip("the adapter names no blocks for this model (per-layer stages)")
        assert blocks and len(set(blocks)) == len(blocks), f"blocks must be non-empty and unique: {blocks}"
        for block in blocks:
            assert isinstance(prepared.get_submodule(block), nn.Module)
        layers = adapter.compressible_layers(prepared)
        with (
            torch.no_grad(),
            calls_of(prepared, blocks) as block_calls,
            calls_of(prepared, layers) as layer_calls,
        ):
            adapter.predict(prepared, batches[0])
        counts = {block: block_calls.count(block) for block in blocks}
        assert all(count == 1 for count in counts.values()), (
            f"calls per forward pass: {counts}; blocks run once"
        )
        order = list(dict.fromkeys(layer_calls))  # first calls, as the engine probes them
        owned = {
            layer for stage in plan_stages(order, blocks, "auto") for layer in stage.layers if stage.block
        }
        assert owned, f"no compressible layer lies inside any of the blocks {blocks}"

    def test_prepare_is_output_identical(self) -> None:
        adapter, model, batches = self._setup()
        prepared = adapter.prepare(copy.deepcopy(model))
        assert isinstance(prepared, nn.Module), f"prepare returned a {type(prepared).__name__}"
        for index, batch in enumerate(batches):
            with torch.no_grad():
                self._assert_close(
                    adapter.predict(prepared, batch),
                    adapter.predict(model, batch),
                    f"batch {index}, prepared against original",
                )

    def test_restore_gives_back_the_original_state_dict(self) -> None:
        """``restore(prepare(model))`` has the original's keys and values (the dense export loads it)."""
        adapter, model, _ = self._setup()
        restored = adapter.restore(adapter.prepare(copy.deepcopy(model))).state_dict()
        original = model.state_dict()
        assert restored.keys() == original.keys(), (
            f"restore(prepare(model)) has other keys: {sorted(restored.keys() ^ original.keys())[:5]}"
        )
        assert all(_same(restored[key], original[key]) for key in original), (
            "restore(prepare(model)) changed a value"
        )

    def test_to_device_keeps_a_batch_usable(self) -> None:
        adapter, model, batches = self._setup()
        moved = adapter.to_device(batches[0], torch.device("cpu"))
        with torch.no_grad():
            assert torch.equal(adapter.predict(model, moved), adapter.predict(model, batches[0])), (
                "the moved batch predicts otherwise"
            )
        assert torch.equal(adapter.reference(moved), adapter.reference(batches[0])), (
            "the moved batch's reference differs"
        )
        assert adapter.domain(moved) == adapter.domain(batches[0]), "the moved batch's domain differs"

    def test_describes_batches_consistently(self) -> None:
        adapter, _, batches = self._setup()
        for batch in batches:
            domain = adapter.domain(batch)
            assert domain is None or isinstance(domain, str), f"domain must be None or a str, got {domain!r}"
            field = adapter.field(batch)
            if field is None:
                continue
            reference = adapter.reference(batch)
            assert isinstance(field, FieldDescription), f"field must be a FieldDescription, got {field!r}"
            assert len(field.channels) == reference.shape[1], (
                f"the field names {len(field.channels)} channels, the reference has {reference.shape[1]}"
            )
            assert len(field.spacing) == reference.ndim - 2, (
                f"the field has {len(field.spacing)} axes, the reference {reference.ndim - 2} grid axes"
            )

    def test_compresses_end_to_end_within_budget_leaving_the_model_alone(self) -> None:
        adapter, model, batches = self._setup()
        state = copy.deepcopy(model.state_dict())  # some frameworks keep non-tensor extra state in it
        modules = [(name, type(module)) for name, module in model.named_modules()]
        result = compress(
            model, batches, ratio=self.compression_ratio(adapter, model), adapter=adapter, recipe=self.recipe
        )
        assert result.params_after <= result.budget, (
            f"{result.params_after} parameters kept, budget {result.budget}"
        )
        assert any(rank is not None for rank in result.ranks.values()), (
            f"nothing was compressed: {result.ranks}"
        )
        with torch.no_grad():
            prediction = adapter.predict(result.model, batches[0])
        assert prediction.shape == adapter.reference(batches[0]).shape, (
            "the compressed model predicts another shape"
        )
        assert torch.isfinite(prediction).all(), "the compressed model's prediction has NaN/Inf entries"
        assert [(name, type(module)) for name, module in model.named_modules()] == modules, (
            "compress changed the caller's module structure"
        )
        after = model.state_dict()
        assert after.keys() == state.keys(), "compress changed the caller's state_dict keys"
        changed = [key for key, value in state.items() if not _same(after[key], value)]
        assert not changed, f"compress changed the caller's weights: {changed}"

    def test_same_on_cuda(self) -> None:
        if not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        adapter, model, batches = self._setup()
        on_gpu = copy.deepcopy(model).cuda()
        with torch.no_grad():
            prediction = adapter.predict(on_gpu, adapter.to_device(batches[0], torch.device("cuda")))
            expected = adapter.predict(model, batches[0])
        assert prediction.device.type == "cuda", "the prediction left the model's device"
        torch.testing.assert_close(prediction.cpu(), expected, rtol=1e-4, atol=1e-4)
