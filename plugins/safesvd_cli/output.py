"""``--out`` written as a whole: checked before any compute, locked against a second writer, written
to a temporary sibling and moved into place, so that a reader (or an interrupt) sees the old
folder or the whole new one, never a mix.

- A path that is a file is refused.
- A folder that holds files safesvd did not write is refused, naming them, unless ``--overwrite``.
- A folder that holds an earlier output is replaced only with ``--overwrite`` (so a 1-ratio run then
  a 2-ratio run can no longer leave a stale model beside new reports).
- ``.<name>.lock`` beside the folder marks a run writing it; a second run is refused while it exists.
- A symbolic link is refused (replacing it would replace the link, not the folder it points to), so
  is the current folder or one holding it (it cannot be moved aside while in use), and a parent the
  user cannot write to is one line naming it, all before any compute.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from safesvd_core.plugin import ConfigError

#: The files safesvd writes in an output folder (each model folder, and the summary beside them).
WRITTEN = frozenset({"model.safetensors", "manifest.json", "config.json", "report.json", "report.csv"})
T = TypeVar("T")


def _ours(relative: Path) -> bool:
    """Whether a file at ``relative`` (inside an output folder) is one safesvd writes there."""
    parts = relative.parts
    if parts and parts[0].startswith("ratio-"):
        parts = parts[1:]
    if len(parts) == 1:
        return parts[0] in WRITTEN
    return len(parts) == 2 and parts[0] == "figures" and parts[1].endswith(".png")


def foreign_files(folder: Path) -> list[str]:
    """The files under ``folder`` that safesvd does not write, relative, sorted."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if not path.is_dir() and not _ours(path.relative_to(folder))
    )


class OutputFolder:
    """The output folder ``path`` of one run (see the module)."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.lock = self.path.parent / f".{self.path.name}.lock"
        self.partial = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"

    def check(self) -> None:
        """Refuse, before any compute, what the run could not write or must not replace."""
        if self.path.is_symlink():
            raise ConfigError(
                f"--out {self.path} is a symbolic link (to {self.path.readlink()}); give the folder it "
                "points to, or a new folder"
            )
        if Path.cwd().resolve().is_relative_to(self.path.resolve()):
            raise ConfigError(
                f"--out {self.path} is (or holds) the current folder, which cannot be replaced while in "
                "use; give a new folder, e.g. --out compressed"
            )
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"--out {self.path} is a file; give a folder (new, or an earlier output with --overwrite)"
            )
        if not self.path.is_dir() or not any(self.path.iterdir()) or self.overwrite:
            return
        foreign = foreign_files(self.path)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ConfigError(
                f"--out {self.path} holds files safesvd did not write ({shown}); choose another folder, "
                "or pass --overwrite to replace the whole folder"
            )
        raise ConfigError(
            f"--out {self.path} holds an earlier output; pass --overwrite to replace it (whole), or "
            "choose another folder"
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[OutputFolder]:
        """The run's hold on the folder: checked, and a lock file beside it, removed when the run ends."""
        self.check()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise ConfigError(
                f"another safesvd run is writing {self.path} (its lock {self.lock} exists); wait for it, "
                "or delete the lock file if no run is"
            ) from None
        except PermissionError:
            raise ConfigError(
                f"--out {self.path}: cannot write in {self.path.parent} (permission denied); choose a "
                "folder you can write to"
            ) from None
        os.write(handle, str(os.getpid()).encode())
        os.close(handle)
        try:
            yield self
        finally:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.lock.unlink(missing_ok=True)

    def write(self, fill: Callable[[Path], T]) -> T:
        """``fill(folder)`` on a new temporary sibling, then that folder moved to ``path`` (an earlier
        output moved aside first and removed last); on any failure nothing at ``path`` changes."""
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        value = fill(self.partial)
        aside = self.path.parent / f".{self.path.name}.replaced-{os.getpid()}"
        if self.path.exists():
            self.path.rename(aside)
        self.partial.rename(self.path)
        shutil.rmtree(aside, ignore_errors=True)
        return value
