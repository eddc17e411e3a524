"""Files written whole or not at all, their sha256, and the format check of a JSON document read back."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import ConfigError


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` then rename it to ``path``: a reader sees the old file or the whole new one."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.is_file():
            temporary.unlink()


def sha256_file(path: Path) -> str:
    """sha256 of the bytes of the file at ``path``."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_format(document: Any, where: Path | str, expected: str, reads: str) -> dict[str, Any]:
    """``document`` (parsed JSON) as a dict of format ``expected``; else a :class:`ConfigError` naming
    ``where`` it was read, the format found and what this safesvd ``reads`` ("reads", "resumes")."""
    if not isinstance(document, dict) or document.get("format") != expected:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{where} has format {found!r}; this safesvd {reads} {expected!r}")
    return document
