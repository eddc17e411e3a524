"""When each submodule of a model starts and ends in one forward pass, counted in hook events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn


class CallTimeline:
    """Per named submodule: how often it was called, the event at which its first call started and
    the event at which its first call ended (every module's start and end is one event)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: dict[str, int] = {}
        self.starts: dict[str, int] = {}
        self.ends: dict[str, int] = {}
        self._model = model
        self._events = 0

    def _tick(self) -> int:
        self._events += 1
        return self._events

    def _started(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.starts.setdefault(name, self._tick())

        return hook

    def _ended(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.ends.setdefault(name, self._tick())

        return hook

    @contextlib.contextmanager
    def attached(self) -> Iterator[CallTimeline]:
        handles = []
        for name, module in self._model.named_modules():
            if name:
                handles.append(module.register_forward_pre_hook(self._started(name)))
                handles.append(module.register_forward_hook(self._ended(name)))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()
