"""Small helpers on module trees: parameter counts, lookup and replacement by qualified name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn

from .._errors import ConfigError


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameter elements (shared parameters counted once)."""
    return sum(parameter.numel() for parameter in model.parameters())


def tensor_state(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s state dict without its non-tensor entries (neuraloperator adds a ``_metadata``
    dict of its constructor's arguments, rebuilt by the model itself), detached and contiguous."""
    return {
        key: value.detach().contiguous()
        for key, value in model.state_dict().items()
        if isinstance(value, Tensor)
    }


def get_submodule(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``, with a clear error if there is none."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ConfigError(f"the model has no submodule {name!r}") from None


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replace the submodule called ``name`` by ``module``."""
    parent_name, _, child = name.rpartition(".")
    parent = get_submodule(model, parent_name) if parent_name else model
    if not hasattr(parent, child):
        raise ConfigError(f"the model has no submodule {name!r}")
    setattr(parent, child, module)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block; every module's own mode is restored afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.train(mode)
