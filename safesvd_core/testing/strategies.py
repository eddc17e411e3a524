"""Hypothesis strategies for safesvd's objects: layers, allocations, field descriptions and grids.

Shipped so that plugin authors can reuse them in their own property tests.
"""

from __future__ import annotations

import itertools

import torch
from hypothesis import strategies as st
from torch import Tensor

from .._field import AXES, FieldDescription, Role
from ..kinds._interfaces import LayerCandidate


@st.composite
def layer_problems(draw, *, max_size: int = 12, shifted: bool = True) -> dict[str, object]:
    """A random layer: weight ``m × n``, clean/shifted inputs, output gradients, a rank, α.

    Rows may be fewer than ``n`` (rank-deficient covariances are normal in calibration).
    """
    m = draw(st.integers(2, max_size))
    n = draw(st.integers(2, max_size))
    rows = draw(st.integers(1, 3 * n))
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(m, n, generator=generator, dtype=torch.float64)
    inputs = torch.randn(rows, n, generator=generator, dtype=torch.float64)
    inputs = inputs * torch.exp(torch.randn(n, generator=generator, dtype=torch.float64))
    noise = draw(st.floats(0.0, 0.5))
    shifted_inputs = inputs + noise * torch.randn(rows, n, generator=generator, dtype=torch.float64)
    grads = torch.randn(max(rows, m + 1), m, generator=generator, dtype=torch.float64)
    return {
        "weight": weight,
        "inputs": inputs,
        "shifted_inputs": shifted_inputs if shifted else inputs,
        "grads": grads,
        "rank": draw(st.integers(1, min(m, n))),
        "alpha": draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0])),
        "seed": seed,
    }


def second_moment(left: Tensor, right: Tensor | None = None) -> Tensor:
    """``E[a bᵀ]`` over rows, the reference for streaming estimators."""
    right = left if right is None else right
    return left.mT @ right / left.shape[0]


@st.composite
def layer_candidates(
    draw, *, max_layers: int = 6, max_size: int = 24, types: tuple[str, ...] | None = None
) -> list[LayerCandidate]:
    """Random layers with descending non-negative spectra, in order: named ``layer0``, ``layer1``, …,
    or with ``types`` ``0.query``, ``1.value``, … (a type drawn from ``types`` per layer, as
    allocators that group layers by type see them)."""
    count = draw(st.integers(1, max_layers))
    layers = []
    for index in range(count):
        m = draw(st.integers(1, max_size))
        n = draw(st.integers(1, max_size))
        values = draw(
            st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=min(m, n), max_size=min(m, n))
        )
        spectrum = torch.tensor(sorted(values, reverse=True), dtype=torch.float64)
        name = f"layer{index}" if types is None else f"{index}.{draw(st.sampled_from(types))}"
        layers.append(
            LayerCandidate(name=name, out_features=m, in_features=n, spectrum=spectrum, order=index)
        )
    return layers


_COMPONENTS = {role for role in Role if role.value[-2:] in ("_x", "_y", "_z")}


@st.composite
def field_descriptions(
    draw: st.DrawFn, *, dims: tuple[int, ...] = (1, 2, 3), max_channels: int = 5
) -> FieldDescription:
    """Any valid description: random roles (each vector component at most once), masks and axis order."""
    dim = draw(st.sampled_from(dims))
    count = draw(st.integers(1, max_channels))
    roles: list[Role] = []
    for _ in range(count):
        role = draw(st.sampled_from([role for role in Role if role not in _COMPONENTS or role not in roles]))
        roles.append(role)
    channels = [f"c{i}" for i in range(count)]
    return FieldDescription(
        channels=channels,
        roles=roles,
        spacing=draw(st.lists(st.floats(1e-3, 1e2), min_size=dim, max_size=dim)),
        periodic=draw(st.lists(st.booleans(), min_size=dim, max_size=dim)),
        masked=draw(st.lists(st.sampled_from(channels), unique=True, max_size=count - 1)),
        axes=draw(st.permutations(AXES[:dim])),
    )


def grids(dim: int, *, min_size: int = 4, max_size: int = 9) -> st.SearchStrategy[tuple[int, ...]]:
    """Grid shapes of ``dim`` axes, each large enough for every second-order stencil."""
    return st.tuples(*[st.integers(min_size, max_size)] * dim)


@st.composite
def channel_scales(draw, size: int, *, zeros: bool = True) -> Tensor:
    """A non-negative per-input-channel statistic of length ``size`` (float64), spanning decades,
    with exact zeros (dead channels) when ``zeros``."""
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    values = torch.exp(2.0 * torch.randn(size, generator=generator, dtype=torch.float64))
    if zeros and size > 1:
        dead = draw(st.lists(st.integers(0, size - 1), max_size=size - 1, unique=True))
        values[dead] = 0.0
    return values


@st.composite
def gram_problems(draw, *, max_size: int = 10, full_rank: bool | None = None) -> dict[str, object]:
    """A weight ``m × n`` with calibration rows ``X`` (``r × n``) and ``H = Xᵀ X`` (the Gram *sum*).

    ``full_rank=True`` draws ``r ≥ n + 2`` rows, ``False`` fewer than ``n``, ``None`` either.
    """
    m = draw(st.integers(2, max_size))
    n = draw(st.integers(2, max_size))
    if full_rank is None:
        rows = draw(st.integers(1, 3 * n))
    elif full_rank:
        rows = draw(st.integers(n + 2, 3 * n + 2))
    else:
        rows = draw(st.integers(1, n - 1))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    weight = torch.randn(m, n, generator=generator, dtype=torch.float64)
    inputs = torch.randn(rows, n, generator=generator, dtype=torch.float64)
    inputs = inputs * torch.exp(0.5 * torch.randn(n, generator=generator, dtype=torch.float64))
    return {
        "weight": weight,
        "inputs": inputs,
        "gram": inputs.mT @ inputs,
        "rank": draw(st.integers(1, min(m, n))),
    }


@st.composite
def chunkings(draw, rows: int, *, max_chunks: int = 6) -> list[tuple[int, int]]:
    """A split of ``range(rows)`` into consecutive non-empty chunks ``(start, stop)``, in order."""
    cuts = draw(st.lists(st.integers(1, rows - 1), unique=True, max_size=max_chunks - 1)) if rows > 1 else []
    bounds = [0, *sorted(cuts), rows]
    return list(itertools.pairwise(bounds))


@st.composite
def weights(draw, *, max_size: int = 10, dtypes: tuple[torch.dtype, ...] = (torch.float64,)) -> Tensor:
    """A random dense weight ``m × n`` (``1 ≤ m, n ≤ max_size``) of one of ``dtypes``."""
    m, n = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(m, n, generator=generator, dtype=torch.float64).to(draw(st.sampled_from(dtypes)))
