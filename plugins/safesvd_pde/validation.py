"""Checks shared by the PDE families' options (the input checks every physics loss makes are
``safesvd_core.plugin.check_pair`` and ``finite``)."""

from __future__ import annotations

import math
import numbers
from typing import Any


def is_finite_non_negative(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool), finite and ≥ 0: a weight or an epsilon."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and value >= 0
    )
