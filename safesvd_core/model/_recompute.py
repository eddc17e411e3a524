"""Blocks whose forward pass runs again in the backward pass, so that the graph between the forward
and the backward pass holds each block's arguments, not its intermediate tensors.

While :func:`recomputed_blocks` is open, each named block's forward goes through PyTorch's
non-reentrant activation checkpoint (``torch.utils.checkpoint``): the backward pass recomputes the
block's forward when it reaches the block, with the random state of the first run. Forward hooks
inside the block fire again during that recomputation; hooks that record a pass ask
:func:`recomputing` and skip it. A block that changes its arguments in place, or whose arguments
are changed in place after it ran, makes autograd raise in the backward pass (its saved arguments
are version-checked): the values are never silently wrong.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from contextvars import ContextVar, Token

from torch import nn
from torch.utils.checkpoint import checkpoint

from .._errors import SafeSVDError

_RECOMPUTING: ContextVar[bool] = ContextVar("safesvd_recomputing", default=False)


def recomputing() -> bool:
    """Whether a block's forward pass is being run again for the backward pass (in this thread)."""
    return _RECOMPUTING.get()


class _Marked:
    """:func:`recomputing` while entered; reusable (a graph kept for a second backward pass runs
    its blocks again, in the same context)."""

    def __init__(self) -> None:
        self._tokens: list[Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(_RECOMPUTING.set(True))

    def __exit__(self, *exc: object) -> None:
        _RECOMPUTING.reset(self._tokens.pop())


def _contexts() -> tuple[contextlib.AbstractContextManager[None], _Marked]:
    """The checkpoint's contexts: nothing around the first run, :func:`recomputing` around the others."""
    return contextlib.nullcontext(), _Marked()


@contextlib.contextmanager
def recomputed_blocks(model: nn.Module, names: Sequence[str]) -> Iterator[None]:
    """While open, the blocks ``names`` of ``model`` keep only their arguments for the backward pass
    and run their forward again there (each call of a block checkpointed on its own)."""
    blocks = {name: model.get_submodule(name) for name in names}
    patched: list[tuple[nn.Module, object]] = []
    try:
        for name, block in blocks.items():
            if any(block is other for other, _ in patched):
                raise SafeSVDError(f"block {name!r} is named twice (the same module)")
            own = vars(block).get("forward")  # an instance's own forward, if one was set on it
            patched.append((block, own))
            block.forward = functools.partial(
                checkpoint, block.forward, use_reentrant=False, context_fn=_contexts
            )
        yield
    finally:
        for block, own in patched:
            if own is None:
                del block.forward
            else:
                block.forward = own
