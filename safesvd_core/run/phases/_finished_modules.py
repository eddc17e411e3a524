"""Finished parts of the compressed model, replayed instead of run again by later stage passes.

Stages are solved in forward order, so once every layer called before a submodule's call ends is
solved, that submodule's output in the compressed model no longer changes: it is *finished*. A
stage pass (an exact stage's pass, or a prefix pass up to a block) runs the compressed model from
the start, but a finished submodule called once per item need not run again: its output, recorded
by the first pass that ran it finished, is returned instead (a copy). The outermost finished
submodules are replayed, so a stage late in the model (a decoder, the heads) runs little more
than the code between them. The rows are the same bit for bit.

Only submodules with children, called once per item in the probe, are replayed (a rollout calls
every module K times: nothing is). A replay kept above :data:`REPLAY_BYTES`, or a submodule that
does not make one call on every item, is not replayed (its children may be); a second call
within one pass is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from ..._errors import SafeSVDError
from ..._structures import map_structure, tensor_leaves
from .._job import RunState

#: The most bytes of recorded outputs the replays keep at once.
REPLAY_BYTES = 2**28


class FinishedModules:
    """The recorded outputs of the compressed model's finished submodules, per item."""

    def __init__(self, state: RunState) -> None:
        probe = state.need("probe", "stages")
        self.state = state
        self.first_calls = dict(probe.first_calls)
        self.ends = dict(probe.single_calls)
        self.kept: dict[str, list[Any]] = {}  # submodule → its output per item
        self.recording: dict[str, dict[int, list[Any]]] = {}
        self.refused: set[str] = set()

    def before(self, names: Sequence[str]) -> int:
        """The event at which the first of ``names`` (layers, or a block) is first called."""
        return min(self.first_calls[name] for name in names)

    def outermost(self, before: int, within: str | None = None) -> list[str]:
        """The outermost submodules finished before event ``before`` (not refused), those inside
        ``within`` only when given."""
        done = [
            name
            for name, end in self.ends.items()
            if end < before and name not in self.refused and _inside(name, within)
        ]
        return [name for name in done if not any(name.startswith(other + ".") for other in done)]

    @contextlib.contextmanager
    def running(
        self, model: nn.Module, before: int, index: int, *, within: str | None = None, record: bool = True
    ) -> Iterator[None]:
        """While a pass of ``model`` (the compressed model) on item ``index`` runs up to event
        ``before``: the outermost finished submodules kept are replayed, the others recorded
        (``record``). ``within``: a block run alone, whose submodules are the only ones it calls."""
        replayed = self.replayed(before, within)
        saved: dict[str, Any] = {}
        handles = []
        for name in replayed:
            module = model.get_submodule(name)
            saved[name] = module.__dict__.get("forward")
            module.forward = self._replay(name, index)
        for name in self.outermost(before, within) if record else ():
            if name not in self.kept:
                module = model.get_submodule(name)
                handles.append(module.register_forward_hook(self._record(name, index)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for name, forward in saved.items():
                module = model.get_submodule(name)
                del module.forward
                if forward is not None:
                    module.forward = forward

    def replayed(self, before: int, within: str | None = None) -> list[str]:
        """The kept submodules a pass up to event ``before`` replays (those finished by then, inside
        ``within`` when given)."""
        return [name for name in self.kept if self.ends[name] < before and _inside(name, within)]

    def forget(self, within: str) -> None:
        """Drop what is kept inside ``within`` (a block whose stage is over)."""
        for name in [name for name in self.kept if _inside(name, within)]:
            del self.kept[name]

    def _replay(self, name: str, index: int):
        calls = []

        def forward(*args: Any, **kwargs: Any) -> Any:
            if calls:
                raise SafeSVDError(
                    f"module {name!r} was called twice in one pass but once in the probe: its "
                    "replay cannot answer"
                )
            calls.append(True)
            return _copied(self.kept[name][index])

        return forward

    def _record(self, name: str, index: int):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.recording.setdefault(name, {}).setdefault(index, []).append(
                _copied(output)  # the caller may add into its output in place
            )

        return hook

    def finish(self, items: int) -> None:
        """After a stage's passes over the ``items`` items: keep what was recorded (one call on every
        item, under the cap), dropping the replays of submodules inside it."""
        for name, outputs in self.recording.items():
            if sorted(outputs) != list(range(items)) or any(len(calls) != 1 for calls in outputs.values()):
                self.refused.add(name)
                continue
            inner = [other for other in self.kept if other.startswith(name + ".")]
            size = sum(_bytes(self.kept[other]) for other in self.kept if other not in inner)
            record = [outputs[index][0] for index in range(items)]
            if size + _bytes(record) > REPLAY_BYTES:
                self.refused.add(name)
                continue
            for other in inner:
                del self.kept[other]
            self.kept[name] = record
        self.recording = {}


def _bytes(outputs: list[Any]) -> int:
    """Bytes of the tensors in recorded outputs (any structure)."""
    return sum(leaf.numel() * leaf.element_size() for output in outputs for _, leaf in tensor_leaves(output))


def _copied(output: Any) -> Any:
    """``output`` with each tensor copied (detached)."""
    return map_structure(lambda _, leaf: leaf.detach().clone() if isinstance(leaf, Tensor) else leaf, output)


def _inside(name: str, within: str | None) -> bool:
    """Whether submodule ``name`` lies inside ``within`` (anywhere when None)."""
    return within is None or name.startswith(within + ".")
