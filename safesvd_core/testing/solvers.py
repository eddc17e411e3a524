"""The contract every :class:`~safesvd_core.plugin.Solver` must meet, as a pytest suite to subclass.

::

    class TestMySolver(SolverConformance):
        plugin_name = "my-solver"  # created from the registry, with ``options``

The statistics are built from random calibration rows and given exactly as the solver's
``requires`` (plus ``optional_statistics``) says: a solver that reads more fails here, as it would
in a plan. Override :meth:`~SolverConformance.make_statistics` for statistics the default cannot
build, and set ``exact_at_full_rank`` to False, with the reason, for a solver whose optimum at full
rank is not the weight itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from .._errors import ConfigError, NumericalError
from ..kinds._interfaces import Factorization, Solver, SolveRecord
from ..kinds._plugins import registry
from ..linalg._balance import component_norms, is_balanced
from ._shared import across_subclasses
from .strategies import second_moment, weights

_SEEDS = st.integers(0, 2**31 - 1)


def calibration_statistics(weight: Tensor, generator: torch.Generator, rows: int) -> dict[str, Tensor]:
    """Every statistic of the built-in estimators, in float64, from ``rows`` random rows for ``weight``
    (``m × n``): ``sigma``, ``sigma_shift``, ``sigma_cross``, ``fisher``, ``gram``,
    ``input_abs_mean`` and ``weight_fisher`` (of one call)."""
    m, n = weight.shape
    inputs = torch.randn(rows, n, generator=generator, dtype=torch.float64)
    inputs = inputs * torch.exp(0.5 * torch.randn(n, generator=generator, dtype=torch.float64))
    shifted = inputs + 0.3 * torch.randn(rows, n, generator=generator, dtype=torch.float64)
    grads = torch.randn(rows, m, generator=generator, dtype=torch.float64)
    return {
        "sigma": second_moment(inputs),
        "sigma_shift": second_moment(shifted),
        "sigma_cross": second_moment(inputs, shifted),
        "fisher": second_moment(grads),
        "gram": inputs.mT @ inputs,
        "input_abs_mean": inputs.abs().mean(0),
        "weight_fisher": ((grads.mT @ inputs) ** 2).sum(0),
    }


class SolverConformance:
    """Factors of the right shapes and dtype, balanced, a descending spectrum, exact at full rank, clear
    errors for bad ranks and non-finite weights, deterministic, inputs left alone."""

    #: The registered name; the default :meth:`make_solver` creates it with ``options``.
    plugin_name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    #: Statistics the solver reads when present, beyond ``requires``.
    optional_statistics: ClassVar[frozenset[str]] = frozenset()
    #: Whether the factors at rank ``min(m, n)`` reproduce the weight (with full-rank statistics).
    exact_at_full_rank: ClassVar[bool] = True
    max_size: ClassVar[int] = 10
    #: Relative tolerance of the full-rank reconstruction (float64).
    full_rank_rtol: ClassVar[float] = 1e-6

    # -- hooks --------------------------------------------------------------------------------

    def make_solver(self) -> Solver:
        """The solver under test."""
        return registry("solver").create(self.plugin_name, **self.options)

    def make_statistics(
        self, weight: Tensor, generator: torch.Generator, *, rows: int | None = None
    ) -> dict[str, Tensor]:
        """What the solver reads (``requires`` and ``optional_statistics``) from ``rows`` random rows;
        by default ``3 max(m, n) + 2``, which makes every matrix statistic full rank."""
        rows = 3 * max(weight.shape) + 2 if rows is None else rows
        available = calibration_statistics(weight, generator, rows)
        wanted = set(self.make_solver().requires) | set(self.optional_statistics)
        missing = wanted - available.keys()
        if missing:
            raise NotImplementedError(f"override make_statistics: the default cannot build {sorted(missing)}")
        return {key: available[key] for key in wanted}

    # -- helpers ------------------------------------------------------------------------------

    def _problem(
        self, weight: Tensor, seed: int, rows: int | None = None
    ) -> tuple[Solver, dict[str, Tensor]]:
        return self.make_solver(), self.make_statistics(
            weight, torch.Generator().manual_seed(seed), rows=rows
        )

    @staticmethod
    def _check_factors(result: Factorization, weight: Tensor, rank: int) -> None:
        m, n = weight.shape
        assert isinstance(result, Factorization), (
            f"solve must return a Factorization, got {type(result).__name__}"
        )
        assert tuple(result.first.shape) == (rank, n), (
            f"first (B) is {tuple(result.first.shape)}, expected {(rank, n)}"
        )
        assert tuple(result.second.shape) == (m, rank), (
            f"second (A) is {tuple(result.second.shape)}, expected {(m, rank)}"
        )
        for which in ("first", "second"):
            factor = getattr(result, which)
            assert factor.dtype == weight.dtype, f"{which} is {factor.dtype}, the weight {weight.dtype}"
            assert torch.isfinite(factor).all(), f"{which} has NaN/Inf entries"
        assert isinstance(result.record, SolveRecord), f"the record is a {type(result.record).__name__}"

    # -- the contract -------------------------------------------------------------------------

    def test_has_a_name(self) -> None:
        name = type(self.make_solver()).name
        assert isinstance(name, str) and name, "a solver needs a non-empty string `name`"
        expected = getattr(self, "plugin_name", name)
        assert name == expected, f"the solver is named {name!r}, registered as {expected!r}"

    def test_requires_is_a_frozenset_of_names(self) -> None:
        requires = self.make_solver().requires
        assert isinstance(requires, frozenset), f"`requires` must be a frozenset, got {requires!r}"
        assert all(isinstance(key, str) and key for key in requires), (
            f"`requires` must name statistics: {requires!r}"
        )

    @across_subclasses()
    @given(weight=weights(dtypes=(torch.float64, torch.float32)), seed=_SEEDS, data=st.data())
    def test_factors_have_the_shapes_and_dtype_of_the_weight(
        self, weight: Tensor, seed: int, data: st.DataObject
    ) -> None:
        rank = data.draw(st.integers(1, min(weight.shape)), label="rank")
        solver, statistics = self._problem(weight, seed)
        self._check_factors(solver.solve(weight, rank, statistics), weight, rank)

    @across_subclasses()
    @given(weight=weights(), seed=_SEEDS, data=st.data())
    def test_factors_are_balanced(self, weight: Tensor, seed: int, data: st.DataObject) -> None:
        """Each rank component has ``‖aᵢ‖ = ‖bᵢ‖`` (:meth:`Factorization.of`): optimisers and half
        precision then see well-scaled factors."""
        rank = data.draw(st.integers(1, min(weight.shape)), label="rank")
        solver, statistics = self._problem(weight, seed)
        result = solver.solve(weight, rank, statistics)
        rows, columns = component_norms(result.first, result.second)
        assert is_balanced(result.first, result.second, rtol=1e-9), (
            f"unbalanced factors: ‖rows of first‖ {rows.tolist()}, ‖columns of second‖ {columns.tolist()}"
        )

    @across_subclasses()
    @given(weight=weights(dtypes=(torch.float64, torch.float32)), seed=_SEEDS)
    def test_spectrum_is_descending_non_negative_float64(self, weight: Tensor, seed: int) -> None:
        solver, statistics = self._problem(weight, seed)
        spectrum = solver.spectrum(weight, statistics)
        assert spectrum.dtype == torch.float64, f"the spectrum is {spectrum.dtype}, expected float64"
        assert tuple(spectrum.shape) == (min(weight.shape),), (
            f"spectrum of shape {tuple(spectrum.shape)} for a "
            f"{tuple(weight.shape)} weight, expected ({min(weight.shape)},)"
        )
        assert torch.isfinite(spectrum).all(), f"the spectrum has NaN/Inf entries: {spectrum}"
        assert bool((spectrum >= 0).all()), f"the spectrum has negative values: {spectrum}"
        assert bool((spectrum[:-1] >= spectrum[1:]).all()), f"the spectrum is not descending: {spectrum}"

    @across_subclasses()
    @given(weight=weights(), seed=_SEEDS)
    def test_full_rank_reproduces_the_weight(self, weight: Tensor, seed: int) -> None:
        if not self.exact_at_full_rank:
            pytest.skip("exact_at_full_rank is off: this solver's optimum at full rank is not the weight")
        solver, statistics = self._problem(weight, seed)
        result = solver.solve(weight, min(weight.shape), statistics)
        scale = float(weight.abs().max())
        torch.testing.assert_close(
            result.second @ result.first,
            weight,
            rtol=self.full_rank_rtol,
            atol=self.full_rank_rtol * scale,
            msg=lambda m: f"full-rank factors ≠ weight: {m}",
        )

    @across_subclasses()
    @given(weight=weights(), seed=_SEEDS, data=st.data())
    def test_rank_deficient_statistics_still_solve(
        self, weight: Tensor, seed: int, data: st.DataObject
    ) -> None:
        """Fewer calibration rows than inputs, as in real calibration of wide layers."""
        rows = data.draw(st.integers(1, max(1, weight.shape[1] - 1)), label="rows")
        rank = data.draw(st.integers(1, min(weight.shape)), label="rank")
        solver, statistics = self._problem(weight, seed, rows)
        self._check_factors(solver.solve(weight, rank, statistics), weight, rank)
        assert torch.isfinite(solver.spectrum(weight, statistics)).all(), "the spectrum has NaN/Inf entries"

    def test_rank_out_of_range_is_a_config_error(self) -> None:
        weight = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        solver, statistics = self._problem(weight, 0)
        for rank in (0, -1, min(weight.shape) + 1):
            with pytest.raises(ConfigError):
                solver.solve(weight, rank, statistics)

    def test_non_finite_weight_is_a_numerical_error(self) -> None:
        for value in (math.nan, math.inf):
            weight = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            solver, statistics = self._problem(weight, 1)
            weight[1, 2] = value
            with pytest.raises(NumericalError):
                solver.solve(weight, 2, statistics)
            with pytest.raises(NumericalError):
                solver.spectrum(weight, statistics)

    def test_is_deterministic_and_leaves_its_inputs_alone(self) -> None:
        weight = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        solver, statistics = self._problem(weight, 2)
        before = weight.clone(), {key: value.clone() for key, value in statistics.items()}
        first, second = solver.solve(weight, 3, statistics), solver.solve(weight, 3, statistics)
        assert torch.equal(first.first, second.first) and torch.equal(first.second, second.second), (
            "two solves of the same problem gave different factors"
        )
        assert torch.equal(solver.spectrum(weight, statistics), solver.spectrum(weight, statistics)), (
            "two spectra of the same problem differ"
        )
        assert torch.equal(weight, before[0]), "solve or spectrum changed the weight"
        for key, value in before[1].items():
            assert torch.equal(statistics[key], value), f"solve or spectrum changed the statistic {key!r}"

    def test_same_on_cuda(self) -> None:
        if not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        weight = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        solver, statistics = self._problem(weight, 3)
        on_device = {key: value.cuda() for key, value in statistics.items()}
        on_gpu = solver.solve(weight.cuda(), 3, on_device)
        assert on_gpu.first.device.type == on_gpu.second.device.type == "cuda", (
            "the factors left the weight's device"
        )
        on_cpu = solver.solve(weight, 3, statistics)
        # singular vectors are defined up to sign: compare the products
        torch.testing.assert_close(
            (on_gpu.second @ on_gpu.first).cpu(), on_cpu.second @ on_cpu.first, rtol=1e-6, atol=1e-8
        )
        torch.testing.assert_close(
            solver.spectrum(weight.cuda(), on_device).cpu(),
            solver.spectrum(weight, statistics),
            rtol=1e-6,
            atol=1e-8,
        )
