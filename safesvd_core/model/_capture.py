"""Forward hooks that capture layer inputs/outputs and block arguments, with early stop."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .._errors import SafeSVDError
from ._recompute import recomputing


@contextlib.contextmanager
def removed_after(handles: Sequence[RemovableHandle]) -> Iterator[None]:
    """Hooks attached while the block runs: ``handles`` removed after it, whatever happens."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class StopForward(Exception):
    """Raised inside a hook to end a forward pass once everything needed was seen."""


class LayerRecorder:
    """Records, per named layer and per call, the input tensor (the output gradients of the clean
    pass come from :mod:`._gradient_taps`).

    ``stop_after`` maps layer name → number of calls after which the layer is complete; once
    every layer in it is complete the forward pass is stopped with :class:`StopForward`.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        *,
        stop_after: Mapping[str, int] | None = None,
    ) -> None:
        self.inputs: dict[str, list[Tensor]] = {name: [] for name in names}
        self.versions: dict[str, list[int]] = {name: [] for name in names}
        self.order: list[str] = []
        self._model = model
        self._names = list(names)
        self._stop_after = dict(stop_after or {})

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if recomputing():  # the backward pass running a block again: not a new call
                return
            if not args or not isinstance(args[0], Tensor):
                raise SafeSVDError(f"layer {name!r} was called without a tensor as first argument")
            if name not in self.order:
                self.order.append(name)
            self.inputs[name].append(args[0].detach())
            self.versions[name].append(args[0]._version)
            if self._stop_after and all(len(self.inputs[n]) >= c for n, c in self._stop_after.items()):
                raise StopForward

        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[LayerRecorder]:
        with removed_after(
            [self._model.get_submodule(name).register_forward_hook(self._hook(name)) for name in self._names]
        ):
            yield self

    def changed_in_place(self) -> list[str]:
        """The layers one of whose recorded inputs the model changed in place after the call (the
        record then no longer holds what the layer read)."""
        return [
            name
            for name in self._names
            if any(
                tensor._version != version for tensor, version in zip(self.inputs[name], self.versions[name])
            )
        ]

    def clear(self) -> None:
        for name in self._names:
            self.inputs[name].clear()
            self.versions[name].clear()


class BlockRecorder:
    """Records each named block's positional and keyword arguments, per call.

    With ``stop_at`` set, the forward pass stops at that block's ``stop_after``-th call (its
    arguments recorded), before it runs.
    """

    def __init__(
        self, model: nn.Module, names: Sequence[str], *, stop_at: str | None = None, stop_after: int = 1
    ) -> None:
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {name: [] for name in names}
        self.order: list[str] = []
        self._model = model
        self._names = list(names)
        self._stop_at = stop_at
        self._stop_after = stop_after

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if recomputing():
                return
            if name not in self.order:
                self.order.append(name)
            self.calls[name].append((_detach(args), _detach(kwargs)))
            if name == self._stop_at and len(self.calls[name]) >= self._stop_after:
                raise StopForward

        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[BlockRecorder]:
        with removed_after(
            [
                self._model.get_submodule(name).register_forward_pre_hook(self._hook(name), with_kwargs=True)
                for name in self._names
            ]
        ):
            yield self


def _detach(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, tuple):
        return tuple(_detach(item) for item in value)
    if isinstance(value, list):
        return [_detach(item) for item in value]
    if isinstance(value, dict):
        return {key: _detach(item) for key, item in value.items()}
    return value


def run_until_stopped(call, *args: Any, **kwargs: Any) -> bool:
    """Call ``call(*args, **kwargs)``; return True if a hook stopped it early."""
    try:
        call(*args, **kwargs)
    except StopForward:
        return True
    return False
