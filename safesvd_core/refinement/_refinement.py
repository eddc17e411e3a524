"""``Refinement``: what ``compress(..., refine=)`` refines on, and how (its data and options)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .._errors import ConfigError
from ._refine_options import RefineOptions


@attrs.frozen(init=False)
class Refinement:
    """Refinement after the closed form: ``Refinement(fresh_inputs, steps=1000, lr=3e-4)``, the
    keywords being :class:`RefineOptions`'s, or ``Refinement(fresh_inputs, RefineOptions(...))``.

    ``data`` is any re-iterable of unlabelled items in the calibration's form (one-step batches or
    trajectories), fresh inputs from the data distribution rather than the calibration items."""

    data: Iterable[Any] = attrs.field(repr=False)
    options: RefineOptions

    def __init__(self, data: Iterable[Any], steps: int | RefineOptions | None = None, **options: Any) -> None:
        if data is None or isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
            raise ConfigError(
                f"Refinement's data must be an iterable of items (batches or trajectories), got "
                f"{type(data).__name__}"
            )
        if isinstance(steps, RefineOptions):
            if options:
                raise ConfigError(
                    f"Refinement got RefineOptions and the keywords {sorted(options)}: give one of the two"
                )
            built = steps
        else:
            if steps is None:
                raise ConfigError("Refinement needs steps=: how many optimiser steps to take")
            try:
                built = RefineOptions(steps=steps, **options)
            except TypeError as error:
                known = ", ".join(field.name for field in attrs.fields(RefineOptions))
                raise ConfigError(f"Refinement: {error}; the options are {known}") from None
        self.__attrs_init__(data, built)  # type: ignore[attr-defined]
