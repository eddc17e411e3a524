"""Calibration and refinement items as ``compress`` takes them: materialised once, checked against
the model's dtype, moved to its device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import Tensor, nn

from ._errors import ConfigError
from ._interfaces import ModelAdapter


def model_device(model: nn.Module):
    """The device of the model's parameters (None for a parameter-free model)."""
    first = next(model.parameters(), None)
    return None if first is None else first.device


def materialise(calibration: Iterable[Any], what: str = "calibration") -> list[Any]:
    """The batches as a list: every pass must see the same batches in the same order (a
    shuffling DataLoader would otherwise pair clean and shifted rows of different samples)."""
    try:
        iterator = iter(calibration)
    except TypeError:
        raise ConfigError(f"{what} must be an iterable of batches, got {type(calibration).__name__}") from None
    batches: list[Any] = []
    while True:
        try:
            batches.append(next(iterator))
        except StopIteration:
            break
        except Exception as error:  # noqa: BLE001 - the user's data source failed: named, chained, re-raised
            raise ConfigError(f"reading the {what} data failed after {len(batches)} item(s): "
                              f"{type(error).__name__}: {error}") from error
    if not batches:
        raise ConfigError(f"the {what} set is empty")
    return batches


def tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in tensors(item)]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors(item)]
    return []


def check_dtypes(item: Any, model: nn.Module, what: str = "calibration") -> None:
    """Some floating tensor of the first item must have the model's floating dtype (checked before any
    pass; auxiliary tensors, e.g. a lead time, may have another)."""
    wanted = {p.dtype for p in model.parameters() if p.is_floating_point()}
    given = {t.dtype for t in tensors(item) if t.is_floating_point()}
    if len(wanted) == 1 and given and given.isdisjoint(wanted):
        (model_dtype,) = wanted
        raise ConfigError(f"the {what} data are {', '.join(sorted(str(d) for d in given))} but the model's parameters "
                          f"are {model_dtype}: cast the data (e.g. tensor.to({model_dtype})) or the model")


def moved(adapter: ModelAdapter, item: Any, device: Any, index: int, what: str = "calibration") -> Any:
    try:
        return adapter.to_device(item, device)
    except (RuntimeError, NotImplementedError) as error:
        raise ConfigError(f"{what} item {index} cannot be moved to the model's device {device} "
                          f"({type(error).__name__}: {error}); give the data on the CPU or on the model's device") from None
