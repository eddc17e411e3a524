"""Output gradients of named layers, handed over one at a time while the backward pass runs.

Each call's output ``y`` passes through :class:`_Tap`, an identity whose other input is a zero
scalar that requires grad (the *anchor*; one per dtype and device) and whose backward hands
``∂L/∂y`` over. One backward pass from the loss to the anchors then reaches every tapped output that
the loss depends on, and hands its gradient over as soon as it is computed. Neither the outputs
nor their gradients are held together, as they are by ``torch.autograd.grad(loss, outputs)``,
which returns them all at once. The tap copies nothing and adds no work to either pass: its
output is ``y``'s storage (an in-place change of it after the layer, a ReLU's, is allowed), and its
backward passes the gradient on unchanged, none to the anchor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import SafeSVDError
from ._capture import removed_after
from ._recompute import recomputing

#: ``receive(layer, call, gradient)``: the gradient of the loss at one call's output.
Receiver = Callable[[str, int, Tensor], None]


class _Tap(torch.autograd.Function):
    """Identity on ``output``; the backward hands its gradient to ``receive``. ``anchor`` puts every
    tap on the way from the loss to the anchors."""

    @staticmethod
    def forward(ctx: Any, output: Tensor, anchor: Tensor, receive: Callable[[Tensor], None]) -> Tensor:
        ctx.receive = receive
        return output.detach()  # the same storage, tracked by this function (not a view of it)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        ctx.receive(grad)
        return grad, None, None


class GradientTaps:
    """Taps the outputs of ``names`` in ``model`` while :meth:`attached`; :meth:`backward` runs one
    backward pass and hands each tapped output's gradient to a receiver."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self._model = model
        self._names = list(names)
        self._outputs: dict[str, list[tuple[torch.Size, torch.dtype, torch.device]]] = {n: [] for n in names}
        self._anchors: dict[tuple[torch.dtype, str], Tensor] = {}
        self._receive: Receiver | None = None

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Tensor | None:
            if recomputing():  # the backward pass running a block again: its first run was tapped
                return None
            if not isinstance(output, Tensor) or not output.requires_grad:
                raise SafeSVDError(
                    f"layer {name!r} returned no tensor that requires grad: its output gradient "
                    "cannot be taken (the clean pass sets the layers' weights to require grad)"
                )
            call = len(self._outputs[name])
            self._outputs[name].append((output.shape, output.dtype, output.device))
            return _Tap.apply(output, self._anchor(output), lambda grad: self._received(name, call, grad))

        return hook

    @property
    def calls(self) -> dict[str, int]:
        """Calls tapped so far (this item), per layer."""
        return {name: len(outputs) for name, outputs in self._outputs.items()}

    def _anchor(self, output: Tensor) -> Tensor:
        key = (output.dtype, str(output.device))
        if key not in self._anchors:
            self._anchors[key] = torch.zeros((), dtype=output.dtype, device=output.device, requires_grad=True)
        return self._anchors[key]

    def _received(self, name: str, call: int, grad: Tensor) -> None:
        if self._receive is not None:
            self._receive(name, call, grad)

    @contextlib.contextmanager
    def attached(self) -> Iterator[GradientTaps]:
        with removed_after(
            [self._model.get_submodule(name).register_forward_hook(self._hook(name)) for name in self._names]
        ):
            yield self

    def backward(self, loss: Tensor, receive: Receiver, *, retain_graph: bool = False) -> None:
        """Run the backward pass of ``loss`` to the anchors; ``receive`` gets the gradient at each
        tapped output the loss depends on (an output it does not depend on gets no call)."""
        if not self._anchors:
            return
        self._receive = receive
        try:
            torch.autograd.grad(
                loss, list(self._anchors.values()), allow_unused=True, retain_graph=retain_graph
            )
        finally:
            self._receive = None

    def zeros(self, name: str, call: int) -> Tensor:
        """A zero gradient for ``name``'s ``call`` (an output the loss does not depend on)."""
        shape, dtype, device = self._outputs[name][call]
        return torch.zeros(shape, dtype=dtype, device=device)

    def clear(self) -> None:
        """Start counting calls afresh (a new item) and let the anchors' graphs go."""
        self._outputs = {name: [] for name in self._names}
        self._anchors.clear()
