"""Calibration and refinement items as ``compress`` takes them: materialised once, checked against
the model's dtype, moved to its device."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, NumericalError, SafeSVDError
from .._structures import describe, map_structure, tensor_leaves, unreachable
from ..kinds._interfaces import ModelAdapter

#: What the positions of a tuple item hold, for messages: ``(input, target)`` or ``(input, trajectory)``.
_POSITIONS = ("input", "target")


def model_device(model: nn.Module):
    """The device of the model's parameters (None for a parameter-free model)."""
    first = next(model.parameters(), None)
    return None if first is None else first.device


def materialise(calibration: Iterable[Any], what: str = "calibration") -> list[Any]:
    """The batches as a list, each one as :func:`plain_item` makes it: every pass must see the same
    batches in the same order (a shuffling DataLoader would otherwise pair clean and shifted rows of
    different samples), so an iterable (a DataLoader, with workers or not) is read once."""
    try:
        iterator = iter(calibration)
    except TypeError:
        raise ConfigError(
            f"{what} must be an iterable of batches, got {type(calibration).__name__}"
        ) from None
    batches: list[Any] = []
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            break
        except Exception as error:  # the user's data source failed: named, chained, re-raised
            raise ConfigError(
                f"reading the {what} data failed after {len(batches)} item(s): "
                f"{type(error).__name__}: {error}"
            ) from error
        batches.append(plain_item(item))
    if not batches:
        raise ConfigError(f"the {what} set is empty")
    return batches


def plain_item(item: Any) -> Any:
    """``item`` as safesvd keeps it. A dataclass instance (not a mapping) becomes the dict of its fields
    (shallow: the values are not copied), so that every adapter reads it as a dict batch and every tensor
    in it is checked and moved. A CPU tensor in shared memory (how a DataLoader's workers send batches:
    each holds an open file descriptor while it lives) becomes a private copy, so that keeping many
    batches does not exhaust the process's descriptors ("Too many open files")."""
    if dataclasses.is_dataclass(item) and not isinstance(item, (type, Mapping)):
        item = {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
    return _private(item)


def _private(value: Any) -> Any:
    """``value`` with its shared-memory CPU tensors copied; containers rebuilt only where one was."""
    return map_structure(lambda _, leaf: leaf.clone() if _shared(leaf) else leaf, value)


def _shared(leaf: Any) -> bool:
    return (
        isinstance(leaf, Tensor)
        and leaf.layout is torch.strided
        and leaf.device.type == "cpu"
        and leaf.is_shared()
    )


def tensors(value: Any) -> list[Tensor]:
    """Every tensor in ``value`` (nested tuples, lists, dicts, dataclasses, ...), in order."""
    return [tensor for _, tensor in _named_tensors(value, "")]


def check_dtypes(item: Any, model: nn.Module, what: str = "calibration") -> None:
    """Some floating tensor of the first item must have the model's floating dtype (checked before any
    pass; auxiliary tensors, e.g. a lead time, may have another)."""
    wanted = {p.dtype for p in model.parameters() if p.is_floating_point()}
    given = {t.dtype for t in tensors(item) if t.is_floating_point()}
    if len(wanted) == 1 and given and given.isdisjoint(wanted):
        (model_dtype,) = wanted
        raise ConfigError(
            f"the {what} data are {', '.join(sorted(str(d) for d in given))} but the model's parameters "
            f"are {model_dtype}: cast the data (e.g. tensor.to({model_dtype})) or the model"
        )


def moved(adapter: ModelAdapter, item: Any, device: Any, index: int, what: str = "calibration") -> Any:
    try:
        return adapter.to_device(item, device)
    except (RuntimeError, NotImplementedError) as error:
        raise ConfigError(
            f"{what} item {index} cannot be moved to the model's device {device} "
            f"({type(error).__name__}: {error}); give the data on the CPU or on the model's device"
        ) from None


def describe_shapes(item: Any) -> str:
    """The shapes of the tensors in ``item`` (and the types of its other leaves), for messages."""
    if isinstance(item, Mapping):
        return "{" + ", ".join(f"{key!r}: {describe_shapes(value)}" for key, value in item.items()) + "}"
    if isinstance(item, (tuple, list)):
        return "(" + ", ".join(describe_shapes(value) for value in item) + ")"
    return describe(item) if tensor_leaves(item) or isinstance(item, Tensor) else type(item).__name__


def _named_tensors(value: Any, place: str) -> list[tuple[str, Tensor]]:
    """The tensor leaves of an item; the places of a tuple item's first two entries are named by
    :data:`_POSITIONS`."""
    if not place and isinstance(value, (tuple, list)):
        names = [_POSITIONS[i] if i < len(_POSITIONS) else f"[{i}]" for i in range(len(value))]
        return [pair for name, inner in zip(names, value) for pair in tensor_leaves(inner, name)]
    return tensor_leaves(value, place)


def _non_finite(tensor: Tensor) -> str | None:
    """``"nan (k of n values)"`` or ``"inf (…)"`` when ``tensor`` holds such values, else ``None``
    (integer and meta tensors: ``None``)."""
    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.device.type == "meta":
        return None
    bad = ~torch.isfinite(tensor.detach())
    if not bool(bad.any()):
        return None
    kind = "nan" if bool(torch.isnan(tensor.detach()).any()) else "inf"
    return f"{kind} ({int(bad.sum())} of {tensor.numel()} values)"


def check_finite(items: Iterable[Any], what: str = "calibration") -> None:
    """Refuse the first item holding NaN or Inf, naming the kind, the place (``input``, ``target``,
    a dict key) and the item's index: found before any pass, not as a NaN loss later."""
    for index, item in enumerate(items):
        for place, tensor in _named_tensors(item, ""):
            found = _non_finite(tensor)
            if found is not None:
                raise NumericalError(
                    f"{what} item {index}: its {place or 'tensor'} holds {found}; clean or drop that item"
                )


@contextlib.contextmanager
def running_first(item: Any, what: str) -> Iterator[None]:
    """Turn the model failing on the first ``what`` item into a :class:`ConfigError` naming the
    item's shapes (the adapter's own :class:`SafeSVDError` passes: it names its cause)."""
    try:
        yield
    except SafeSVDError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        raise ConfigError(
            f"the model cannot run the first {what} item ({type(error).__name__}: {error}); check that "
            f"the items have the model's input shape and layout (e.g. channels first); the item holds "
            f"{describe_shapes(item)}"
        ) from error


def check_runs(adapter: ModelAdapter, model: nn.Module, item: Any, what: str) -> None:
    """``model`` runs on the one-step batch ``item`` and predicts the target's shape; else a
    :class:`ConfigError` naming the item's shapes (checked before the work that needs it)."""
    with running_first(item, what), torch.no_grad():
        prediction = adapter.predict(model, item)
    check_prediction(prediction, adapter.reference(item), f"the first {what} item's target")


def check_prediction(prediction: Any, reference: Any, target: str) -> None:
    """``prediction`` has the shape of ``reference`` (called ``target`` in messages); for structures,
    every tensor place of the target is a tensor place of the prediction, of the same shape (the
    prediction may hold more)."""
    if isinstance(prediction, Tensor) and isinstance(reference, Tensor):
        if tuple(prediction.shape) != tuple(reference.shape):
            trajectory = reference.ndim == prediction.ndim + 1 and (
                tuple(reference.shape[:1] + reference.shape[2:]) == tuple(prediction.shape)
            )
            hint = (
                f" (it looks like trajectories of {reference.shape[1]} steps: pass them as rollout= with "
                "horizons=, or rollout calibration items, not as one-step data)"
                if trajectory
                else ""
            )
            raise ConfigError(
                f"the model predicts shape {tuple(prediction.shape)} but {target} has "
                f"shape {tuple(reference.shape)}: give targets shaped like the predictions{hint}"
            )
        return
    predicted = dict(tensor_leaves(prediction))
    expected = dict(tensor_leaves(reference))
    for value, leaves, what in ((prediction, predicted, "the model's output"), (reference, expected, target)):
        if not leaves:
            raise ConfigError(unreachable(value, what))
    missing = [place for place in expected if place not in predicted]
    if missing:
        raise ConfigError(
            f"{target} holds tensors at {', '.join(missing)}, where the model's output "
            f"({type(prediction).__name__}) has none; its tensors are at {', '.join(predicted)}"
        )
    for place, wanted in expected.items():
        if predicted[place].shape != wanted.shape:
            raise ConfigError(
                f"the model predicts {place or 'its output'} of shape {tuple(predicted[place].shape)} but "
                f"{target}'s {place or 'tensor'} has shape {tuple(wanted.shape)}: give targets shaped "
                "like the predictions"
            )


def check_loaded(model: nn.Module) -> None:
    """Refuse a model whose parameters or buffers are on the meta device (shapes without values),
    naming the first: checked at entry, before anything reads a weight."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise ConfigError(
                f"the model's weights are on the meta device ({name} has a shape but no values): "
                "load them first (model.load_state_dict(state, assign=True), or from_pretrained "
                "without device_map='meta' or init_empty_weights), then compress"
            )


def check_finite_weights(model: nn.Module) -> None:
    """Refuse a model whose parameters or buffers hold NaN or Inf, naming the first such tensor."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        found = _non_finite(tensor)
        if found is not None:
            raise NumericalError(
                f"the model's {name} holds {found}: fix or reload the weights before compressing"
            )
