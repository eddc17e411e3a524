"""Compressible layers seen as one linear map ``y = W x + b`` over a channel axis.

``nn.Linear`` maps the last axis; a 1×1 ``Conv1d``/``Conv2d``/``Conv3d`` (stride 1, no padding,
no dilation, one group) maps axis 1. Both become :class:`LowRankLinear` with the same axis.
"""

from __future__ import annotations

import attrs
from torch import Tensor, nn

from .._errors import ConfigError
from ._lowrank import LowRankLinear
from ._modules import get_submodule

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@attrs.frozen
class LinearMap:
    """A view of one compressible module: its ``m × n`` weight, bias and channel axis."""

    name: str
    module: nn.Module
    channel_dim: int

    @property
    def weight(self) -> Tensor:
        """The weight as an ``out × in`` matrix (a view, no copy)."""
        weight = self.module.weight
        return weight if weight.ndim == 2 else weight.reshape(weight.shape[0], weight.shape[1])

    @property
    def bias(self) -> Tensor | None:
        return self.module.bias

    @property
    def out_features(self) -> int:
        return int(self.module.weight.shape[0])

    @property
    def in_features(self) -> int:
        return int(self.module.weight.shape[1])

    def rows(self, tensor: Tensor) -> Tensor:
        """Flatten an input or output of the module to ``(samples, channels)`` rows."""
        if self.channel_dim != -1:
            tensor = tensor.movedim(self.channel_dim, -1)
        return tensor.reshape(-1, tensor.shape[-1])

    def row_count(self, tensor: Tensor) -> int:
        """How many rows :meth:`rows` gives for ``tensor``, without flattening it (a copy when the
        tensor is a strided view, e.g. one mode's slice of a Fourier layer's coefficients)."""
        return tensor.numel() // tensor.shape[self.channel_dim] if tensor.numel() else 0

    def low_rank(self, first: Tensor, second: Tensor, *, balance: bool = True) -> LowRankLinear:
        """The replacement module with factors ``first`` = ``B`` (``k × n``) and ``second`` = ``A``
        (``m × k``), balanced unless ``balance=False`` (factors that already are, e.g. read back from a
        checkpoint)."""
        bias = None if self.bias is None else self.bias.detach()
        return LowRankLinear.from_factors(first, second, bias, channel_dim=self.channel_dim, balance=balance)

    def empty_low_rank(self, rank: int) -> LowRankLinear:
        """An uninitialised replacement of ``rank`` (to load saved weights into)."""
        weight = self.module.weight
        return LowRankLinear(
            self.in_features,
            self.out_features,
            rank,
            bias=self.bias is not None,
            channel_dim=self.channel_dim,
            device=weight.device,
            dtype=weight.dtype,
        )


def is_compressible(module: nn.Module) -> bool:
    """True for ``nn.Linear`` and pointwise (1×1, plain) convolutions."""
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, _CONVS):
        return _pointwise_problem(module) is None
    return False


def _pointwise_problem(conv: nn.Module) -> str | None:
    if any(k != 1 for k in conv.kernel_size):
        return f"kernel size {tuple(conv.kernel_size)}"
    if any(s != 1 for s in conv.stride) or any(d != 1 for d in conv.dilation):
        return "stride or dilation other than 1"
    if isinstance(conv.padding, str) or any(p != 0 for p in conv.padding):
        return "padding"
    if conv.groups != 1:
        return f"groups={conv.groups}"
    return None


def linear_map(model: nn.Module, name: str) -> LinearMap:
    """The compressible module called ``name``; anything else is a clear error."""
    module = get_submodule(model, name)
    if isinstance(module, nn.Linear):
        return LinearMap(name, module, -1)
    if isinstance(module, _CONVS):
        problem = _pointwise_problem(module)
        if problem is None:
            return LinearMap(name, module, 1)
        raise ConfigError(
            f"layer {name!r} is a {type(module).__name__} with {problem}; "
            "only 1×1 plain convolutions are linear maps"
        )
    raise ConfigError(
        f"layer {name!r} is a {type(module).__name__}; compressible layers are nn.Linear and 1×1 convolutions"
    )
