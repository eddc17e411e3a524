"""The memory a compression takes, estimated before any pass over the data, against what the
machine has available."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs

from .._errors import ConfigError

logger = logging.getLogger("safesvd")

GIB = 2**30
MEMINFO = Path("/proc/meminfo")


def available_bytes() -> int | None:
    """The memory the kernel can give without swapping (``MemAvailable``), or None where unknown."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@attrs.frozen(kw_only=True)
class MemoryEstimate:
    """Bytes of a run: the model copies ``compress`` made (allocated already: the working copy, and
    the prepared copies of adapters that rewrite modules), and what is still to come: the clean
    statistics held at once (all of them, or the spill cap) and the largest layer's float64 solve."""

    models: int
    statistics: int
    solve: int

    @property
    def to_allocate(self) -> int:
        return self.statistics + self.solve

    def describe(self) -> str:
        return (
            f"estimated memory: model copies {self.models / GIB:.2f} GiB (allocated), then clean statistics "
            f"{self.statistics / GIB:.2f} GiB and the largest solve {self.solve / GIB:.2f} GiB"
        )


def estimate(*, model_bytes: int, copies: int, statistics: int, largest: tuple[int, int]) -> MemoryEstimate:
    """The estimate for ``copies`` model copies, ``statistics`` bytes of statistics held at once and a
    largest layer of ``(in, out)`` features (its float64 solve: covariances, Fisher, SVD)."""
    n, m = largest
    return MemoryEstimate(
        models=copies * model_bytes, statistics=statistics, solve=8 * (4 * n * n + 3 * m * m + 3 * m * n)
    )


def check_fits(need: MemoryEstimate) -> str:
    """Log ``need``; refuse before any pass when the machine cannot give it. Returns the logged line."""
    have = available_bytes()
    line = need.describe() + ("" if have is None else f"; {have / GIB:.2f} GiB available")
    logger.info(line)
    if have is not None and need.to_allocate > have:
        raise ConfigError(
            f"this compression does not fit in memory: {line}. Cap the statistics "
            "(statistics=SpillPolicy(directory, '…GiB')), compress on a machine with more memory, "
            "or free some"
        )
    return line
