"""What the adapters share: optional-package imports, layer selection, losses and field options."""

from __future__ import annotations

import copy
import importlib
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor, nn

from safesvd_core import FieldDescription, Role
from safesvd_core.plugin import ConfigError

from . import structured
from .base_losses import BASE_LOSSES, BaseLoss
from .selection import Coverage, Selection, SkipRule, coverage, pattern_tuple, select


class MissingExtraError(ConfigError, ImportError):
    """An adapter's optional framework package is not installed (or does not import): a
    configuration error (a :class:`SafeSVDError`) that is also an ``ImportError``."""


def require(module: str, *, adapter: str, extra: str) -> ModuleType:
    """Import ``module`` for ``adapter``; if it is missing, say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"adapter {adapter!r} needs the {module!r} package, which cannot be imported ({error}). "
            f"Install it with: pip install 'safesvd[{extra}]'"
        ) from error


def check_loss(value: Any, special: Iterable[str] = ()) -> None:
    """A base-loss name (or one of the adapter's ``special`` names) or a callable."""
    names = sorted(set(BASE_LOSSES) | set(special))
    if isinstance(value, str) and value not in names:
        raise ConfigError(f"loss must be a callable or one of {', '.join(names)}, got {value!r}")
    if not isinstance(value, str) and not callable(value):
        raise ConfigError(f"loss must be a callable (prediction, target) -> Tensor or a name, got {value!r}")


def resolve_loss(value: str | BaseLoss) -> BaseLoss:
    return BASE_LOSSES[value] if isinstance(value, str) else value


def _optional_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else pattern_tuple(value)


def tuple_parts(batch: Any, adapter: str) -> tuple[Any, Tensor, str | None]:
    """``(input, target[, domain])`` from a tuple/list or an ``{'input', 'target'[, 'domain']}`` dict."""
    if isinstance(batch, Mapping):
        missing = {"input", "target"} - batch.keys()
        if missing:
            raise ConfigError(
                f"a dict batch (or a dataclass: its fields) needs the keys 'input' and 'target'; missing "
                f"{sorted(missing)}, its keys are {sorted(map(str, batch))}"
            )
        return batch["input"], batch["target"], batch.get("domain")
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], (batch[2] if len(batch) == 3 else None)
    raise ConfigError(
        f"the {adapter} adapter expects (input, target) tuples or {{'input', 'target'}} dicts, got "
        f"{type(batch).__name__}"
    )


def _number_or_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, Iterable) and not isinstance(value, str) else value


class TupleBatches:
    """Mixin: ``(input, target[, domain])`` batches (or such dicts), the model called as
    ``model(input)``; subclasses with other batch layouts override :meth:`_parts`.

    A *trajectory* item has a ``target`` of shape ``(batch, K, *input.shape[1:])``: the true
    states 1…K lead times on. It is rolled out by feeding each prediction back as the next input.
    """

    name: ClassVar[str]

    def _parts(self, batch: Any) -> tuple[Any, Tensor, str | None]:
        return tuple_parts(batch, self.name)

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        return model(self._parts(batch)[0])

    def reference(self, batch: Any) -> Tensor:
        return self._parts(batch)[1]

    def domain(self, batch: Any) -> str | None:
        label = self._parts(batch)[2]
        return None if label is None else str(label)

    def trajectory_steps(self, item: Any) -> int | None:
        inputs, target, _ = self._parts(item)
        if not isinstance(inputs, Tensor):
            return structured.trajectory_steps(inputs, target)
        if (
            isinstance(target, Tensor)
            and target.ndim == inputs.ndim + 1
            and target.shape[0] == inputs.shape[0]
            and target.shape[2:] == inputs.shape[1:]
        ):
            return int(target.shape[1])
        return None

    def rollout_step(self, sequence: Any, state: Any | None, step: int) -> Any:
        steps = self.trajectory_steps(sequence)
        inputs, trajectory, domain = self._parts(sequence)
        if steps is None and not isinstance(inputs, Tensor):
            raise ConfigError(
                f"a rollout item of the {self.name} adapter is (input, trajectory), each prediction becoming "
                "the next input: for a structured input the trajectory has the input's structure, each "
                "tensor that changes in time shaped (batch, K, *its input's shape[1:]); got input "
                f"{structured.describe(inputs)} and target {structured.describe(trajectory)}"
            )
        if steps is None:
            raise ConfigError(
                f"a rollout item of the {self.name} adapter is (input, trajectory) with the trajectory "
                f"shaped (batch, K, *input.shape[1:]); got input {tuple(inputs.shape)} "
                f"and target {structured.describe(trajectory)}"
            )
        if not 1 <= step <= steps:
            raise ConfigError(f"rollout step {step} is beyond the trajectory's {steps} steps")
        if isinstance(inputs, Tensor):
            batch = (inputs if state is None else state, trajectory[:, step - 1])
        else:
            if state is not None:
                structured.check_state(state, inputs)
            batch = (inputs if state is None else state, structured.rollout_target(inputs, trajectory, step))
        return batch if domain is None else (*batch, domain)


def sibling_chain(model: nn.Module, kind: type[nn.Module]) -> list[str] | None:
    """The names of the ``kind`` modules of ``model`` when they are all children of one container
    (e.g. a transformer's layer list, in forward order), else None."""
    names = [name for name, module in model.named_modules() if isinstance(module, kind)]
    parents = {name.rpartition(".")[0] for name in names}
    return names if names and len(parents) == 1 else None


class SelectingAdapter:
    """Mixin: ``compressible_layers``, ``skipped_layers`` and ``coverage`` from :meth:`selection`."""

    @abstractmethod
    def selection(self, model: nn.Module) -> Selection:
        """The compressible layers of ``model`` (as ``compress`` sees it) and the skipped ones."""

    def compressible_layers(self, model: nn.Module) -> list[str]:
        return list(self.selection(model).compressible)

    def skipped_layers(self, model: nn.Module) -> dict[str, str]:
        """Every ``nn.Linear``/convolution that is not compressed, with the reason."""
        return dict(self.selection(self._prepared(model)).skipped)

    def coverage(self, model: nn.Module) -> Coverage:
        """How many parameters are compressible, and the smallest ratio ``compress`` can meet."""
        prepared = self._prepared(model)
        return coverage(prepared, self.compressible_layers(prepared))

    def compressible_fraction(self, model: nn.Module) -> float:
        """Share of the parameters that sit in compressible layers."""
        return self.coverage(model).fraction

    def _prepared(self, model: nn.Module) -> nn.Module:
        return self.prepare(copy.deepcopy(model)) if self.rewrites_modules else model


@attrs.frozen(kw_only=True)
class FieldAdapter(SelectingAdapter):
    """Base of the framework adapters: skip rules, include/exclude globs, loss and field options.

    Fields are described by ``channels`` (names), ``roles`` (default ``scalar``), ``masked``
    (channels without data: the base loss and physics losses skip them), ``spacing`` (one number,
    one per axis, or None for a unit domain: ``1 / n`` per axis), ``periodic`` (one flag or one
    per axis) and ``axes`` (tensor order of the grid axes, default x, y, z).
    """

    #: Rules applied before the user's globs; subclasses set their own.
    skip_rules: ClassVar[tuple[SkipRule, ...]] = ()
    #: Loss names that the subclass handles itself.
    special_losses: ClassVar[tuple[str, ...]] = ()

    loss: str | BaseLoss = "mse"
    include: tuple[str, ...] = attrs.field(default=("*",), converter=pattern_tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=pattern_tuple)
    channels: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    roles: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)
    masked: tuple[str, ...] = attrs.field(default=(), converter=pattern_tuple)
    spacing: float | tuple[float, ...] | None = attrs.field(default=None, converter=_number_or_tuple)
    periodic: bool | tuple[bool, ...] = attrs.field(default=False, converter=_number_or_tuple)
    axes: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)

    def __attrs_post_init__(self) -> None:
        check_loss(self.loss, self.special_losses)
        if self.channels is None and (self.roles is not None or self.masked):
            raise ConfigError("roles and masked need channels (the channel names, in tensor order)")
        if self.channels is not None:
            FieldDescription.uniform(channels=self.channels, roles=self.roles, masked=self.masked, dim=1)

    # -- losses and fields -----------------------------------------------------------------

    def field(self, batch: Any) -> FieldDescription | None:
        if self.channels is None:
            return None
        dim = self.reference(batch).ndim - 2
        grid = self.reference(batch).shape[2:]
        spacing = self.spacing if self.spacing is not None else tuple(1.0 / n for n in grid)
        return FieldDescription(
            channels=self.channels,
            roles=self.roles if self.roles is not None else [Role.SCALAR] * len(self.channels),
            spacing=spacing if isinstance(spacing, Iterable) else [spacing] * dim,
            periodic=self.periodic if isinstance(self.periodic, Iterable) else [self.periodic] * dim,
            masked=self.masked_channels(batch),
            **({"axes": self.axes} if self.axes is not None else {}),
        )

    def masked_channels(self, batch: Any) -> tuple[str, ...]:
        """The channels of ``batch`` without data: the ``masked`` option
        (subclasses may add the batch's own)."""
        return self.masked

    def active_channels(self) -> list[int] | None:
        """Indices of the unmasked channels, or None when every channel counts."""
        if self.channels is None or not self.masked:
            return None
        return [i for i, name in enumerate(self.channels) if name not in self.masked]

    def base_loss(self, prediction: Tensor, batch: Any) -> Tensor:
        target = self.reference(batch)
        active = self.active_channels()
        if active is not None:
            index = torch.as_tensor(active, device=target.device)
            prediction, target = prediction.index_select(1, index), target.index_select(1, index)
        return resolve_loss(self.loss)(prediction, target)

    # -- layers ----------------------------------------------------------------------------

    def selection(self, model: nn.Module) -> Selection:
        return select(
            model, self.skip_rules, include=self.include, exclude=self.exclude, extra=self.extra_skips(model)
        )

    def extra_skips(self, model: nn.Module) -> dict[str, str]:
        """Adapter-specific skipped modules (name → reason) beyond the name rules."""
        return {}
