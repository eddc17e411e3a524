"""Mixed precision for refinement: the student's passes under ``torch.autocast`` in bfloat16 or
float16, the loss and every parameter in float32.

- ``"auto"``: bfloat16 on CUDA where the device supports it, else float16; off elsewhere (on the
  CPU autocast is opt-in: it saves little there and rounds more).
- ``"bfloat16"``/``"float16"``: on any device torch autocasts on; float16 scales the loss
  (``torch.amp.GradScaler``) so that small gradients do not underflow, and skips a step whose
  gradients overflowed (the scaler's rule).
- ``"off"``: float32 throughout.

Only the training passes of the student are autocast. The teacher's predictions and the held-out
scores stay in the model's precision, so the state kept is chosen on exact scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
import torch
from torch import Tensor

from .._errors import ConfigError

#: ``RefineOptions.autocast``'s choices.
AUTOCAST_CHOICES = ("auto", "off", "bfloat16", "float16")


def autocast_dtype(choice: str, device: torch.device, dtype: torch.dtype) -> torch.dtype | None:
    """The autocast dtype ``choice`` means for a model of ``dtype`` on ``device`` (``None``: off)."""
    if choice == "off":
        return None
    if choice == "auto":
        if device.type != "cuda" or dtype != torch.float32:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype != torch.float32:
        raise ConfigError(
            f"refine autocast={choice!r} needs a float32 model, got {dtype}: autocast lowers float32 "
            "operations only; give autocast='off' or a float32 model"
        )
    return getattr(torch, choice)


@attrs.define
class MixedPrecision:
    """The training passes' precision on one device: the autocast context, the backward pass (the
    loss scaled for float16) and the optimiser step (unscaled, skipped on overflow for float16)."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def of(cls, choice: str, parameter: Tensor) -> MixedPrecision:
        """The precision ``choice`` (``RefineOptions.autocast``) for the parameters like ``parameter``."""
        dtype = autocast_dtype(choice, parameter.device, parameter.dtype)
        scaler = torch.amp.GradScaler(parameter.device.type) if dtype == torch.float16 else None
        return cls(parameter.device, dtype, scaler)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """The student's training passes: autocast to ``dtype``, or as they are when off."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    def backward(self, loss: Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimiser step on the (summed) gradients: for float16 unscaled first, skipped when they
        overflowed, and the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def name(self) -> str:
        """``"off"``, ``"bfloat16"`` or ``"float16"``: what ran (for the report)."""
        return "off" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def state(self) -> dict[str, Any] | None:
        """The loss scale's state for a checkpoint (``None`` without a scaler)."""
        if self.scaler is None:
            return None
        state = self.scaler.state_dict()
        return {"scale": float(state["scale"]), "growth_tracker": int(state["_growth_tracker"])}

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state`; a checkpoint written with another precision is refused."""
        if (state is None) != (self.scaler is None):
            raise ConfigError(
                "cannot resume refinement: its checkpoint was written with another autocast precision "
                f"(now {self.name()}); use the same autocast or delete the checkpoint"
            )
        if self.scaler is not None and state is not None:
            self.scaler.load_state_dict(
                {
                    **self.scaler.state_dict(),
                    "scale": state["scale"],
                    "_growth_tracker": state["growth_tracker"],
                }
            )
