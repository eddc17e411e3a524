"""Exceptions raised by safesvd. Every user-facing error derives from :class:`SafeSVDError`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SafeSVDError(Exception):
    """Base class of every error that safesvd raises on purpose."""


class ConfigError(SafeSVDError, ValueError):
    """A configuration value is invalid; the message names the field, what was expected and what came."""


class UnknownPluginError(SafeSVDError, LookupError):
    """A plugin name is not registered for its kind."""

    def __init__(self, kind: str, name: str, available: Iterable[str], failed: Iterable[object] = ()) -> None:
        names = sorted(available)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        choices = ", ".join(names) if names else "(none registered)"
        failures = "; ".join(map(str, failed))
        broken = f" These plugins failed to load: {failures}." if failures else ""
        super().__init__(
            f"{kind} {name!r} is not available (plugin may not be installed).{hint} "
            f"Choose one of: {choices}.{broken}"
        )
        self.kind = kind
        self.name = name
        self.available = names
        self._failed = tuple(failed)

    def __reduce__(self):  # picklable across processes (multiprocessing, torch.distributed)
        return type(self), (self.kind, self.name, self.available, self._failed)


class DuplicatePluginError(SafeSVDError):
    """Two plugins register the same name for the same kind."""


class NumericalError(SafeSVDError, ArithmeticError):
    """A computation produced NaN/Inf or could not be made numerically valid."""


class BudgetError(SafeSVDError):
    """A parameter budget cannot be met."""
