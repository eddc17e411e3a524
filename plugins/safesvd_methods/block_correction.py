"""The block-output correction phase (beyond the paper; training-free): after the stages, each
block's *output layer* is solved again so that the compressed block's output matches the original
block's output, block by block in call order.

A block's output layer is its last factored layer in call order whose output is added to the
block's output unchanged (``∂ block / ∂ layer = I``: the output projection of a residual branch),
checked by a perturbation on the first calibration item; a block without one is left alone. With
``r̃`` the rest of the compressed block's output, the layer's target is ``T = Y − r̃ − b`` (``Y``
the original block's output on the original's own inputs), and its rank-``k`` weight minimises
``E‖T − W' h̃‖²`` over the compressed model's inputs ``h̃``: reduced-rank regression, the
whitened truncated SVD of the least-squares map ``C H⁻¹`` (``H = E h̃h̃ᵀ``, ``C = E T h̃ᵀ``).
The correction thus absorbs the block's other layers' errors and the error carried into it.
Cost: two passes over the calibration items per corrected block (the original's, the compressed model's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from safesvd_core.plugin import (
    DEFAULTS,
    LowRankLinear,
    Phase,
    RunState,
    one_step_batches,
    set_submodule,
    whitened_factorization,
)


def _output(value: Any) -> Tensor | None:
    return (
        value
        if isinstance(value, Tensor)
        else (
            value[0] if isinstance(value, (tuple, list)) and value and isinstance(value[0], Tensor) else None
        )
    )


@contextlib.contextmanager
def _hooked(module: nn.Module, hook) -> Iterator[None]:
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@attrs.frozen(kw_only=True)
class BlockCorrectionPhase(Phase):
    """Options: ``jitter`` (relative ridge of ``H``)."""

    name: ClassVar[str] = "block-correction"
    reads: ClassVar[tuple[str, ...]] = ("probe", "progress")
    writes: ClassVar[tuple[str, ...]] = ("progress",)

    jitter: float = DEFAULTS.jitter

    def run(self, state: RunState) -> None:
        probe = state.probe
        corrected, skipped = {}, {}
        for block in probe.block_order:
            layer = self._output_layer(state, block)
            if layer is None:
                skipped[block] = "no factored layer whose output is added to the block's output unchanged"
                continue
            corrected[block] = {"layer": layer, **self._correct(state, block, layer)}
            state.count(self.name, 2)
        state.log.reports[self.name] = {"corrected": corrected, "skipped": skipped}
        state.log.notes.append(
            f"block-correction: {len(corrected)} of {len(probe.block_order)} blocks' output layers "
            "solved again against the original blocks' outputs"
        )

    def _output_layer(self, state: RunState, block: str) -> str | None:
        """The block's last factored layer (call order) whose output passes to the block's output
        unchanged."""
        order = [
            name
            for name in state.probe.order
            if name.startswith(block + ".") and isinstance(state.job.model.get_submodule(name), LowRankLinear)
        ]
        for name in reversed(order):
            if self._passes_through(state, block, name):
                return name
        return None

    def _passes_through(self, state: RunState, block: str, layer: str) -> bool:
        job, item = state.job, state.job.batches[0]
        outputs: dict[str, list[Tensor]] = {"plain": [], "moved": []}
        deltas: list[Tensor] = []

        def perturb(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
            delta = torch.randn(output.shape, generator=generator, dtype=output.dtype).to(output.device)
            deltas.append(delta)
            return output + delta

        for key in ("plain", "moved"):
            generator = torch.Generator().manual_seed(0)
            record = lambda module, args, output, key=key: outputs[key].append(_output(output).detach())  # noqa: E731
            with (
                torch.no_grad(),
                _hooked(job.model.get_submodule(block), record),
                contextlib.ExitStack() as stack,
            ):
                if key == "moved":
                    stack.enter_context(_hooked(job.model.get_submodule(layer), perturb))
                job.adapter.predict(job.model, state.source.first_batch(job.adapter, item))
        plain, moved = outputs["plain"], outputs["moved"]
        if len(plain) != 1 or len(moved) != 1 or len(deltas) != 1 or plain[0].shape != deltas[0].shape:
            return False
        change = moved[0] - plain[0]
        return bool(torch.allclose(change, deltas[0], rtol=1e-3, atol=1e-4 * float(deltas[0].abs().max())))

    def _correct(self, state: RunState, block: str, name: str) -> dict[str, float]:
        job, view = state.job, state.maps[name]
        teacher: list[Tensor] = []
        with (
            torch.no_grad(),
            _hooked(
                job.original.get_submodule(block),
                lambda module, args, output: teacher.append(_output(output).detach()),
            ),
        ):
            for batch in one_step_batches(job.adapter, job.batches):
                job.adapter.predict(job.original, batch)
        inputs, layer_out, block_out = [], [], []
        layer = job.model.get_submodule(name)

        def record_layer(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            inputs.append(args[0].detach())
            layer_out.append(output.detach())

        with (
            torch.no_grad(),
            _hooked(layer, record_layer),
            _hooked(
                job.model.get_submodule(block),
                lambda module, args, output: block_out.append(_output(output).detach()),
            ),
        ):
            for batch in one_step_batches(job.adapter, job.batches):
                job.adapter.predict(job.model, batch)
        n, m = view.in_features, view.out_features
        gram = torch.zeros(n, n, dtype=torch.float64, device=layer.first.weight.device)
        cross = torch.zeros(m, n, dtype=torch.float64, device=gram.device)
        before = after_rows = 0.0
        bias = layer.bias.detach().double() if layer.bias is not None else 0.0
        for h, z, out, y in zip(inputs, layer_out, block_out, teacher, strict=True):
            rows_h = view.rows(h).double()
            target = view.rows(y).double() - (view.rows(out).double() - view.rows(z).double()) - bias
            gram += rows_h.mT @ rows_h
            cross += target.mT @ rows_h
            before += float(((view.rows(out) - view.rows(y)).double() ** 2).sum())
            after_rows += rows_h.shape[0]
        count = max(after_rows, 1.0)
        ridge = self.jitter * float(torch.trace(gram)) / n + torch.finfo(torch.float64).tiny
        least_squares = torch.linalg.solve(
            gram + ridge * torch.eye(n, dtype=gram.dtype, device=gram.device), cross.mT
        ).mT
        fisher = state.statistics.clean.layer(name).get("fisher") if state.statistics is not None else None
        factors = whitened_factorization(
            least_squares, layer.rank, gram / count, fisher=fisher, alpha=0.0, jitter=self.jitter
        )
        module = view.low_rank(
            factors.first.to(layer.first.weight.dtype), factors.second.to(layer.first.weight.dtype)
        )
        set_submodule(job.model, name, module)
        state.progress.records[name] = factors.record
        state.progress.factors[name] = (module.first.weight.detach(), module.second.weight.detach())
        return {"block_error_before": before / count}
