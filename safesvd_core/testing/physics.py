"""The contract every :class:`~safesvd_core.PhysicsLoss` must meet, as a pytest suite to subclass.

::

    class TestMyLoss(PhysicsLossConformance):
        def make_loss(self):
            return MyLoss()

Override :meth:`~PhysicsLossConformance.field_description` (and ``grid_shape``) when the loss
needs other channel roles, :meth:`~PhysicsLossConformance.make_field` when it needs other values,
and :meth:`~PhysicsLossConformance.make_zero_pair` for constraint losses that are zero on fields
satisfying the constraint rather than on any pair of identical fields.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor

from .._errors import ConfigError
from .._field import FieldDescription, Role
from ..kinds._interfaces import PhysicsLoss

#: Each subclass runs the inherited hypothesis tests on its own instance, which is intended here;
#: no deadline, as the first call of a loss pays for torch's warm-up.
_shared_across_subclasses = settings(
    deadline=None,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.differing_executors],
)


class PhysicsLossConformance:
    """Zero on equal fields, non-negative, finite, differentiable, batch-order and device invariant."""

    batch_size: ClassVar[int] = 3
    grid_shape: ClassVar[tuple[int, ...]] = (12, 10)
    #: Relative tolerance of float32 against float64, and of CUDA against CPU (float64).
    float32_rtol: ClassVar[float] = 1e-3
    device_rtol: ClassVar[float] = 1e-7
    #: Absolute tolerance of "zero" (float64).
    zero_atol: ClassVar[float] = 1e-9

    # -- hooks --------------------------------------------------------------------------------

    def make_loss(self) -> PhysicsLoss:
        """The loss under test."""
        raise NotImplementedError("subclasses return the physics loss under test")

    def field_description(self) -> FieldDescription:
        """A 2-D field with velocity, density and energy; x periodic, y bounded, unequal spacing."""
        return FieldDescription(
            channels=("u", "v", "rho", "E"),
            roles=(Role.VELOCITY_X, Role.VELOCITY_Y, Role.DENSITY, Role.ENERGY),
            spacing=(0.1, 0.15),
            periodic=(True, False),
        )

    def make_field(self, generator: torch.Generator) -> Tensor:
        """A random float64 field ``(batch_size, channels, *grid_shape)``."""
        shape = (self.batch_size, len(self.field_description().channels), *self.grid_shape)
        return torch.randn(shape, generator=generator, dtype=torch.float64)

    def make_zero_pair(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(prediction, reference)`` on which the loss must vanish: by default a field and its copy."""
        field = self.make_field(generator)
        return field, field.clone()

    # -- helpers ------------------------------------------------------------------------------

    def _pair(self, seed: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return self.make_field(generator), self.make_field(generator)

    def _value(self, prediction: Tensor, reference: Tensor) -> Tensor:
        return self.make_loss()(prediction, reference, self.field_description())

    # -- the contract -------------------------------------------------------------------------

    def test_has_a_name(self) -> None:
        name = type(self.make_loss()).name
        assert isinstance(name, str) and name, "a physics loss needs a non-empty string `name`"

    def test_zero_on_identical_fields(self) -> None:
        prediction, reference = self.make_zero_pair(torch.Generator().manual_seed(0))
        value = self._value(prediction, reference)
        assert value.shape == ()
        assert abs(float(value)) <= self.zero_atol, f"expected 0, got {float(value)}"

    @_shared_across_subclasses
    @given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3))
    def test_non_negative_and_finite(self, seed: int, scale: float) -> None:
        prediction, reference = self._pair(seed)
        value = self._value(scale * prediction, scale * reference)
        assert value.shape == ()
        assert torch.isfinite(value), f"not finite: {float(value)}"
        assert float(value) >= 0.0, f"negative: {float(value)}"

    def test_has_a_gradient(self) -> None:
        prediction, reference = self._pair(1)
        prediction.requires_grad_(True)
        self._value(prediction, reference).backward()
        grad = prediction.grad
        assert grad is not None, "no gradient reached the prediction"
        assert torch.isfinite(grad).all(), "the gradient has NaN/Inf entries"
        assert grad.abs().sum() > 0, "the gradient is zero on differing fields"

    @_shared_across_subclasses
    @given(data=st.data())
    def test_batch_order_invariant(self, data: st.DataObject) -> None:
        order = torch.tensor(data.draw(st.permutations(range(self.batch_size)), label="order"))
        prediction, reference = self._pair(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        torch.testing.assert_close(
            self._value(prediction[order], reference[order]),
            self._value(prediction, reference),
            rtol=1e-10,
            atol=0,
        )

    def test_float32_matches_float64(self) -> None:
        prediction, reference = self._pair(2)
        single = self._value(prediction.float(), reference.float())
        assert single.dtype == torch.float32
        torch.testing.assert_close(
            single.double(), self._value(prediction, reference), rtol=self.float32_rtol, atol=self.zero_atol
        )

    def test_same_on_cuda(self) -> None:
        if not torch.cuda.is_available():
            pytest.skip("CUDA is not available; test_float32_matches_float64 covers the CPU side")
        prediction, reference = self._pair(3)
        on_gpu = self._value(prediction.cuda(), reference.cuda())
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(
            on_gpu.cpu(), self._value(prediction, reference), rtol=self.device_rtol, atol=self.zero_atol
        )

    def test_rejects_mismatched_shapes(self) -> None:
        prediction, reference = self._pair(4)
        with pytest.raises(ConfigError):
            self._value(prediction, reference[:, :, :-1])

    def test_rejects_a_field_of_other_channels(self) -> None:
        prediction, reference = self._pair(5)
        with pytest.raises(ConfigError):
            self._value(prediction[:, :-1], reference[:, :-1])
