"""Measured latency of one compressible layer, dense or factored at a rank, on a device: the cost
model of the latency-aware allocation and of merging slow layers back. Profiles are cached per
device, dtype and shape (``$XDG_CACHE_HOME/safesvd/latency-<device>.json``)."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from .._defaults import DEFAULTS
from ..kinds._interfaces import LayerCandidate

#: ``(out, in, rows, rank or None for dense) -> seconds`` of one call.
Timing = Callable[[int, int, int, "int | None"], float]


def median_seconds(
    call: Callable[[], object],
    repeats: int = DEFAULTS.repeats,
    device: torch.device | None = None,
    *,
    warmup: int = 2,
) -> float:
    """The median wall time of ``call()`` over ``repeats`` calls after ``warmup`` untimed calls (no
    grad; CUDA synchronised around each call)."""
    cuda = device is not None and device.type == "cuda"
    with torch.no_grad():
        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            call()
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cache_path(device: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "safesvd"
    return root / f"latency-{device.replace(':', '-')}.json"


class LatencyProfile:
    """Seconds per call of a ``out × in`` layer on ``rows`` input rows, dense or at a rank, on
    ``device`` in ``dtype``: measured once per shape, then read from the cache (``cache=False``
    keeps it in memory only). Ranks between measured points are interpolated linearly."""

    def __init__(
        self,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        repeats: int = DEFAULTS.repeats,
        cache: bool = True,
    ) -> None:
        self.device, self.dtype, self.repeats = torch.device(device), dtype, repeats
        self.path = _cache_path(str(self.device)) if cache else None
        self.table: dict[str, float] = {}
        if self.path is not None and self.path.is_file():
            try:
                self.table = {key: float(value) for key, value in json.loads(self.path.read_text()).items()}
            except (OSError, ValueError):
                self.table = {}  # an unreadable cache is measured again, not trusted

    @classmethod
    def of(cls, layer: LayerCandidate, *, repeats: int = DEFAULTS.repeats) -> LatencyProfile:
        """The cached profile of ``layer``'s device and dtype."""
        return cls(layer.device, getattr(torch, layer.dtype), repeats=repeats)

    def _key(self, out: int, inputs: int, rows: int, rank: int | None) -> str:
        return (
            f"{str(self.dtype).removeprefix('torch.')}:{out}x{inputs}:rows={rows}:"
            f"rank={'dense' if rank is None else rank}"
        )

    def measure(self, out: int, inputs: int, rows: int, rank: int | None) -> float:
        """One measured point (cached)."""
        key = self._key(out, inputs, rows, rank)
        if key not in self.table:
            make = lambda *shape: torch.randn(*shape, device=self.device, dtype=self.dtype)  # noqa: E731
            x, bias = make(max(rows, 1), inputs), make(out)
            if rank is None:
                weight = make(out, inputs)
                call = lambda: F.linear(x, weight, bias)  # noqa: E731
            else:
                first, second = make(rank, inputs), make(out, rank)
                call = lambda: F.linear(F.linear(x, first), second, bias)  # noqa: E731
            self.table[key] = median_seconds(call, self.repeats, self.device)
            self._save()
        return self.table[key]

    def __call__(self, out: int, inputs: int, rows: int, rank: int | None) -> float:
        """Seconds of one call at ``rank`` (``None``: dense), interpolated between powers of two."""
        if rank is None:
            return self.measure(out, inputs, rows, None)
        low = 1 << (rank.bit_length() - 1)
        high = min(2 * low, min(out, inputs))
        if rank == low or high <= low:
            return self.measure(out, inputs, rows, rank)
        share = (rank - low) / (high - low)
        return (1 - share) * self.measure(out, inputs, rows, low) + share * self.measure(
            out, inputs, rows, high
        )

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.table, indent=0, sort_keys=True))
        os.replace(temporary, self.path)
