"""The contract every :class:`~safesvd_core.plugin.Estimator` must meet, as a pytest suite to subclass.

::

    class TestMyEstimator(EstimatorConformance):
        plugin_name = "my-estimator"  # created from the registry, with ``options``

Override :meth:`~EstimatorConformance.make_estimator` for an unregistered class,
:meth:`~EstimatorConformance.make_signals` when the estimator needs other signals, ``domains`` for a
multi-domain estimator (the calibration then has batches of each domain), and set ``row_additive``
to False when one update is the unit of the statistic (e.g. one call of the layer), not one row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import pytest
import safetensors.torch
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from .._errors import ConfigError, NumericalError
from ..kinds._interfaces import SIGNALS, Estimator, LayerSignals
from ..kinds._plugins import registry
from ._shared import across_subclasses
from .reduction import on_two_ranks
from .strategies import chunkings

#: Rows of each calibration batch of one domain (a batch is one call of the layer).
BATCH_ROWS = (3, 6, 4)

#: Ways of dealing the calibration batches to two processes: batch ``index`` of domain number
#: ``domain`` (of ``count``) goes to rank ``rule(domain, index, count)``.
Split = Callable[[int, int, int], int]
SPLITS: dict[str, Split] = {
    "interleaved": lambda domain, index, count: index % 2,
    # several domains: rank 0 sees all of them, rank 1 only the later ones
    "first-domain-only-on-rank-0": lambda domain, index, count: (
        0 if index == 0 or (domain == 0 and count > 1) else 1
    ),
    "rank-1-saw-nothing": lambda domain, index, count: 0,
}


def rows_of(signals: LayerSignals, start: int, stop: int) -> LayerSignals:
    """Rows ``start:stop`` of every signal in ``signals``."""
    return attrs.evolve(
        signals,
        **{
            field: getattr(signals, field)[start:stop]
            for field in SIGNALS
            if getattr(signals, field) is not None
        },
    )


def signals_on(signals: LayerSignals, device: torch.device | str) -> LayerSignals:
    """``signals`` with every signal moved to ``device``."""
    return attrs.evolve(
        signals,
        **{
            field: getattr(signals, field).to(device)
            for field in SIGNALS
            if getattr(signals, field) is not None
        },
    )


def _bytes(tensors: Sequence[Tensor]) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class EstimatorConformance:
    """Streams, merges and reduces to the one-pass statistics, round-trips its state, plans its
    memory, and refuses missing or non-finite signals."""

    #: The registered name; the default :meth:`make_estimator` creates it with ``options``.
    plugin_name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    in_features: ClassVar[int] = 5
    out_features: ClassVar[int] = 3
    #: Domain labels of the calibration batches; several for a multi-domain estimator.
    domains: ClassVar[tuple[str, ...]] = ("a",)
    #: True when the statistics depend on the rows seen, not on how they were split into updates.
    row_additive: ClassVar[bool] = True
    #: Tolerances of float64 statistics summed in another order.
    rtol: ClassVar[float] = 1e-9
    atol: ClassVar[float] = 1e-10

    # -- hooks --------------------------------------------------------------------------------

    def make_estimator(self, in_features: int, out_features: int) -> Estimator:
        """A new, empty estimator of the layer shape."""
        return registry("estimator").create(
            self.plugin_name, in_features=in_features, out_features=out_features, **self.options
        )

    def make_signals(
        self, generator: torch.Generator, rows: int, in_features: int, out_features: int, domain: str = "a"
    ) -> LayerSignals:
        """One batch: float64 random inputs (per-channel scales spanning decades), shifted inputs
        near them and output gradients, ``rows`` rows each, from ``domain``."""
        scale = torch.exp(torch.randn(in_features, generator=generator, dtype=torch.float64))
        inputs = torch.randn(rows, in_features, generator=generator, dtype=torch.float64) * scale
        shifted = inputs + 0.3 * torch.randn(rows, in_features, generator=generator, dtype=torch.float64)
        grads = torch.randn(rows, out_features, generator=generator, dtype=torch.float64)
        return LayerSignals(inputs=inputs, shifted_inputs=shifted, output_grads=grads, domain=domain)

    # -- helpers ------------------------------------------------------------------------------

    def _new(self) -> Estimator:
        return self.make_estimator(self.in_features, self.out_features)

    def _batches(self, seed: int) -> list[list[LayerSignals]]:
        """Per domain, the calibration batches of :data:`BATCH_ROWS` rows."""
        generator = torch.Generator().manual_seed(seed)
        return [
            [
                self.make_signals(generator, rows, self.in_features, self.out_features, domain)
                for rows in BATCH_ROWS
            ]
            for domain in self.domains
        ]

    def _fed(self, batches: Sequence[LayerSignals]) -> Estimator:
        estimator = self._new()
        for signals in batches:
            estimator.update(signals)
        return estimator

    def _assert_same(self, actual: Estimator, expected: Estimator, what: str) -> None:
        got, want = actual.statistics(), expected.statistics()
        assert got.keys() == want.keys(), f"{what}: statistics {sorted(got)}, expected {sorted(want)}"
        for key in want:
            torch.testing.assert_close(
                got[key],
                want[key],
                rtol=self.rtol,
                atol=self.atol,
                msg=lambda message, key=key: f"{what}, statistic {key!r}: {message}",
            )

    def _split(
        self, batches: list[list[LayerSignals]], rule: Split
    ) -> tuple[list[LayerSignals], list[LayerSignals]]:
        parts: tuple[list[LayerSignals], list[LayerSignals]] = ([], [])
        for domain, of_domain in enumerate(batches):
            for index, signals in enumerate(of_domain):
                parts[rule(domain, index, len(batches))].append(signals)
        return parts

    # -- the contract -------------------------------------------------------------------------

    def test_has_a_name(self) -> None:
        name = type(self._new()).name
        assert isinstance(name, str) and name, "an estimator needs a non-empty string `name`"
        expected = getattr(self, "plugin_name", name)
        assert name == expected, f"the estimator is named {name!r}, registered as {expected!r}"

    def test_declares_signals_and_statistics(self) -> None:
        estimator = self._new()
        assert isinstance(estimator.requires, frozenset), (
            f"`requires` must be a frozenset, got {estimator.requires!r}"
        )
        assert estimator.requires <= set(SIGNALS), (
            f"`requires` {set(estimator.requires)} names signals outside {SIGNALS}"
        )
        provided = type(estimator).provided(**self.options)
        assert isinstance(provided, frozenset) and provided, (
            f"`provided()` must be a non-empty frozenset, got {provided!r}"
        )
        assert all(isinstance(key, str) for key in provided), f"statistic names must be strings: {provided!r}"

    def test_statistics_are_what_it_provides_float64_and_finite(self) -> None:
        estimator = self._fed([signals for of_domain in self._batches(0) for signals in of_domain])
        statistics = estimator.statistics()
        provided = type(estimator).provided(**self.options)
        assert set(statistics) == provided, (
            f"statistics() gave {sorted(statistics)}, provided() says {sorted(provided)}"
        )
        for key, value in statistics.items():
            assert isinstance(value, Tensor) and value.dtype == torch.float64, (
                f"{key!r} is not a float64 tensor"
            )
            assert torch.isfinite(value).all(), f"{key!r} has NaN/Inf entries"

    def test_no_rows_is_a_numerical_error(self) -> None:
        with pytest.raises(NumericalError):
            self._new().statistics()

    @across_subclasses()
    @given(seed=st.integers(0, 2**31 - 1), data=st.data())
    def test_order_of_updates_does_not_matter(self, seed: int, data: st.DataObject) -> None:
        batches = [signals for of_domain in self._batches(seed) for signals in of_domain]
        order = data.draw(st.permutations(range(len(batches))), label="order")
        self._assert_same(
            self._fed([batches[i] for i in order]), self._fed(batches), "updates in another order"
        )

    @across_subclasses()
    @given(seed=st.integers(0, 2**31 - 1), data=st.data())
    def test_streaming_over_any_chunking_equals_one_update(self, seed: int, data: st.DataObject) -> None:
        if not self.row_additive:
            pytest.skip("row_additive is off: one update is the unit of this estimator's statistic")
        rows = data.draw(st.integers(1, 24), label="rows")
        chunks = data.draw(chunkings(rows), label="chunks")
        generator = torch.Generator().manual_seed(seed)
        whole = [
            self.make_signals(generator, rows, self.in_features, self.out_features, domain)
            for domain in self.domains
        ]
        streamed = self._new()
        for start, stop in chunks:
            for signals in whole:
                streamed.update(rows_of(signals, start, stop))
        self._assert_same(streamed, self._fed(whole), f"streamed over chunks {chunks}")

    @across_subclasses()
    @given(seed=st.integers(0, 2**31 - 1), data=st.data())
    def test_merge_equals_one_pass(self, seed: int, data: st.DataObject) -> None:
        batches = self._batches(seed)
        ranks = data.draw(
            st.lists(st.integers(0, 1), min_size=sum(map(len, batches)), max_size=sum(map(len, batches))),
            label="rank of each batch",
        )
        first, second = self._split(batches, lambda domain, index, _: ranks[domain * len(BATCH_ROWS) + index])
        whole = self._fed(first + second)
        merged = self._fed(first)
        merged.merge(self._fed(second))
        self._assert_same(merged, whole, "the second part merged into the first")
        merged = self._fed(second)
        merged.merge(self._fed(first))
        self._assert_same(merged, whole, "the first part merged into the second")

    @pytest.mark.parametrize("split", sorted(SPLITS))
    def test_reduce_across_two_processes_equals_one_pass(self, split: str) -> None:
        parts = self._split(self._batches(1), SPLITS[split])
        estimators = [self._fed(part) for part in parts]
        on_two_ranks(lambda reduction, rank: estimators[rank].reduce(reduction))
        whole = self._fed(parts[0] + parts[1])
        for rank, estimator in enumerate(estimators):
            self._assert_same(estimator, whole, f"rank {rank} after reduce ({split})")

    def test_state_dict_round_trips_through_safetensors(self) -> None:
        estimator = self._fed([signals for of_domain in self._batches(2) for signals in of_domain])
        state = estimator.state_dict()
        assert state and all(isinstance(key, str) for key in state), (
            f"state_dict keys must be strings: {list(state)}"
        )
        for key, value in state.items():
            assert isinstance(value, Tensor), f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor"
            assert value.is_contiguous(), f"state_dict[{key!r}] is not contiguous (safetensors refuses it)"
        restored = self._new()
        restored.load_state_dict(safetensors.torch.load(safetensors.torch.save(state)))
        want = estimator.statistics()
        got = restored.statistics()
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"statistic {key!r} changed in the state round trip"

    def test_footprint_is_the_size_of_the_state(self) -> None:
        """Planned before calibration for the domains it will see: at least the state's arrays, at
        most every state tensor (row counts may be kept as Python ints, not counted)."""
        planned = self._new().footprint(len(self.domains))
        assert isinstance(planned, int) and planned > 0, f"footprint must be a positive int, got {planned!r}"
        state = self._fed([signals for of_domain in self._batches(3) for signals in of_domain]).state_dict()
        arrays = _bytes([value for value in state.values() if value.ndim > 0])
        total = _bytes(list(state.values()))
        assert arrays <= planned <= total, (
            f"footprint({len(self.domains)}) = {planned} bytes, but the state after "
            f"{len(self.domains)} domain(s) holds {arrays} bytes of arrays ({total} with its scalars)"
        )

    def test_missing_signal_is_a_config_error(self) -> None:
        estimator = self._new()
        if not estimator.requires:
            pytest.skip("the estimator requires no signal")
        batch = self._batches(4)[0][0]
        for signal in sorted(estimator.requires):
            with pytest.raises(ConfigError):
                estimator.update(attrs.evolve(batch, **{signal: None}))

    def test_non_finite_rows_are_a_numerical_error(self) -> None:
        estimator = self._new()
        if not estimator.requires:
            pytest.skip("the estimator requires no signal")
        batch = self._batches(5)[0][0]
        for signal in sorted(estimator.requires):
            for value in (math.nan, math.inf):
                bad = getattr(batch, signal).clone()
                bad[-1, 0] = value
                with pytest.raises(NumericalError):
                    estimator.update(attrs.evolve(batch, **{signal: bad}))

    def test_same_on_cuda(self) -> None:
        if not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        batches = [signals for of_domain in self._batches(6) for signals in of_domain]
        on_gpu = self._fed([signals_on(signals, "cuda") for signals in batches]).statistics()
        on_cpu = self._fed(batches).statistics()
        for key, value in on_cpu.items():
            assert on_gpu[key].device.type == "cuda", f"{key!r} left the device its rows came from"
            torch.testing.assert_close(on_gpu[key].cpu(), value, rtol=1e-7, atol=self.atol)
