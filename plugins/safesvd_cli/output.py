"""``--out`` written as a whole: locked against a second writer, checked, written to a temporary
sibling and moved into place, so that a reader (or an interrupt) sees the old folder or the whole new
one, never a mix.

- A path that is a file is refused.
- A folder that holds files safesvd did not write is refused, naming them, unless ``--overwrite``.
- A folder that holds an earlier output is replaced only with ``--overwrite`` (so a 1-ratio run then
  a 2-ratio run can no longer leave a stale model beside new reports).
- ``.<name>.lock`` beside the folder marks a run writing it: it records the run's pid and host, and
  the run holds a kernel lock on it (``flock``), which ends with the process, a killed one included.
  The lock is taken first and the folder checked under it, so two runs cannot both pass the check.
  A second run is refused while the lock is held; a lock whose run is gone (killed) is taken over,
  with a line. A lock of another host is refused (its process cannot be checked from here).
- Under the lock, what a stopped run left beside the folder is cleaned up, with a line each: its
  ``.<name>.partial-PID`` folder, and its ``.<name>.replaced-PID`` (the earlier output, moved aside:
  moved back when the run was killed before the new output was in place). No other run can be
  writing them: every run holds the lock while they exist.
- Right before the swap the folder is compared with what the check saw: a file added (or changed)
  during the run stops the swap, with a line; the folder stays as it is and the new output is kept
  in ``<name>.new`` (or ``<name>.new-2``, …).
- A symbolic link is refused (replacing it would replace the link, not the folder it points to), so
  is the current folder or one holding it (it cannot be moved aside while in use), and a parent the
  user cannot write to is one line naming it, all before any compute.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from safesvd_core.plugin import ConfigError

#: The files safesvd writes in an output folder (each model folder, and the summary beside them).
WRITTEN = frozenset({"model.safetensors", "manifest.json", "config.json", "report.json", "report.csv"})
T = TypeVar("T")
#: What is at a path: its files as ``{relative path: (size, mtime_ns)}`` (``{}``: nothing there), or
#: what else it is ("a symbolic link to …", "a file").
Snapshot = dict[str, tuple[int, int]] | str


def _ours(relative: Path) -> bool:
    """Whether a file at ``relative`` (inside an output folder) is one safesvd writes there."""
    parts = relative.parts
    if parts and parts[0].startswith("ratio-"):
        parts = parts[1:]
    if len(parts) == 1:
        return parts[0] in WRITTEN
    return len(parts) == 2 and parts[0] == "figures" and parts[1].endswith(".png")


def _has_manifest(folder: Path) -> bool:
    """Whether ``folder`` holds a safesvd manifest, at its top or in a ``ratio-*`` folder."""
    for path in (folder / "manifest.json", *folder.glob("ratio-*/manifest.json")):
        try:
            if json.loads(path.read_text()).get("format", "").startswith("safesvd."):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def foreign_files(folder: Path) -> list[str]:
    """The files under ``folder`` that safesvd does not write, relative, sorted."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if not path.is_dir() and not _ours(path.relative_to(folder))
    )


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _say(line: str) -> None:
    print(f"safesvd: {line}", file=sys.stderr, flush=True)


def _snapshot(path: Path) -> Snapshot:
    """What is at ``path`` (symbolic links are not followed)."""
    if path.is_symlink():
        return f"a symbolic link to {os.readlink(path)}"
    if not path.exists():
        return {}
    if not path.is_dir():
        return "a file"
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            status = os.lstat(os.path.join(folder, name))
            relative = os.path.relpath(os.path.join(folder, name), path)
            files[relative] = (status.st_size, status.st_mtime_ns)
    return files


def _changes(before: Snapshot, after: Snapshot) -> str | None:
    """What was added or changed at a path between two snapshots (a file removed loses nothing)."""
    if isinstance(after, str):
        return None if after == before else f"it is now {after}"
    if isinstance(before, str):
        return f"it was {before}, it is now a folder"
    added = sorted(set(after) - set(before))
    changed = sorted(name for name in set(after) & set(before) if after[name] != before[name])
    found = [
        f"{label}: {_shown(names)}" for label, names in (("added", added), ("changed", changed)) if names
    ]
    return "; ".join(found) or None


def _size(folder: Path) -> str:
    """The bytes of the files under ``folder``, for a person (``1.2 MB``)."""
    total = sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir())
    size = float(total)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{total} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(handle: int) -> tuple[int, str | None, bool] | str | None:
    """The run a lock file records: ``(pid, host, written with the kernel lock held)``; older safesvd
    wrote the pid alone (host: this one, no kernel lock). None: empty; a string: unreadable."""
    text = os.pread(handle, 4096, 0).decode(errors="replace").strip()
    if not text:
        return None
    if text.isdigit():
        return int(text), None, False
    with contextlib.suppress(ValueError):
        record = json.loads(text)
        if isinstance(record, dict) and isinstance(record.get("pid"), int):
            return record["pid"], str(record.get("host")), True
    return text[:80]


class OutputFolder:
    """The output folder ``path`` of one run (see the module)."""

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.lock = self.path.parent / f".{self.path.name}.lock"
        self.partial = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        self._seen: Snapshot | None = None  # what the check saw at ``path``

    def _check_shape(self) -> None:
        """Refuse what no run could write: a symbolic link, the current folder, a file."""
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

    def check(self) -> None:
        """Refuse, before any compute, what the run could not write or must not replace (and note what
        is there, for the comparison before the swap)."""
        self._check_shape()
        self._seen = _snapshot(self.path)
        if not self.path.is_dir() or not any(self.path.iterdir()) or self.overwrite:
            return
        foreign = foreign_files(self.path)
        if foreign:
            raise ConfigError(
                f"--out {self.path} holds files safesvd did not write ({_shown(foreign)}); choose another "
                "folder, or pass --overwrite to replace the whole folder"
            )
        if not _has_manifest(self.path):
            raise ConfigError(
                f"--out {self.path} is not empty and holds no safesvd output (no manifest.json of one); "
                "choose another folder, or pass --overwrite to replace the whole folder"
            )
        raise ConfigError(
            f"--out {self.path} holds an earlier output; pass --overwrite to replace it (whole), or "
            "choose another folder"
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[OutputFolder]:
        """The run's hold on the folder: the lock beside it, then the folder checked; the lock is
        removed when the run ends."""
        self._check_shape()  # before the lock: no lock file beside what cannot be an output folder
        handle = self._acquire()
        try:
            self._clean()
            self.check()
            yield self
        finally:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.lock.unlink(missing_ok=True)  # before the kernel lock ends: no run locks a removed file
            os.close(handle)

    def _acquire(self) -> int:
        """The lock file, held (see the module); its descriptor."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while True:
                handle = os.open(self.lock, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = _owner(handle)
                    os.close(handle)
                    raise ConfigError(
                        self._busy(owner, "wait for it to end, or choose another folder")
                    ) from None
                except OSError:  # no kernel locks on this filesystem: the recorded pid decides
                    kernel = False
                else:
                    kernel = True
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(self.lock).st_ino == os.fstat(handle).st_ino:
                        break
                os.close(handle)  # its run removed it as it ended: lock the next one
        except PermissionError:
            raise ConfigError(
                f"--out {self.path}: cannot write in {self.path.parent} (permission denied); choose a "
                "folder you can write to"
            ) from None
        try:
            self._take_over(_owner(handle), kernel)
        except BaseException:
            os.close(handle)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%FT%T%z")}
        os.ftruncate(handle, 0)
        os.pwrite(handle, (json.dumps(record) + "\n").encode(), 0)
        return handle

    def _busy(self, owner: tuple[int, str | None, bool] | str | None, advice: str) -> str:
        who = (
            f"run {owner[0]} on {owner[1] or socket.gethostname()}"
            if isinstance(owner, tuple)
            else "another run"
        )
        return f"safesvd {who} is writing {self.path} (its lock {self.lock}); {advice}"

    def _take_over(self, owner: tuple[int, str | None, bool] | str | None, kernel: bool) -> None:
        """Refuse a lock whose run may still be writing; take over one whose run is gone, with a line."""
        if owner is None:
            return
        if isinstance(owner, str):
            _say(f"took over the lock {self.lock} (it names no run: {owner!r})")
            return
        pid, host, held = owner
        if host is not None and host != socket.gethostname():
            raise ConfigError(
                self._busy(
                    owner,
                    f"safesvd cannot check a process on {host} from here: wait for it, or delete the "
                    "lock file if that run no longer runs",
                )
            )
        if _alive(pid) and not (held and kernel):  # an older safesvd, or a reused pid: cannot tell
            raise ConfigError(
                self._busy(owner, f"wait for it, or delete the lock file if process {pid} is not safesvd")
            )
        # here a run that held the kernel lock has ended; its pid may have been given to another process
        reused = f"; pid {pid} is now another process" if _alive(pid) else ""
        _say(f"took over the lock {self.lock} of run {pid} on this host (no longer running{reused})")

    def _clean(self) -> None:
        """What stopped runs left beside the folder (see the module), each said in one line."""
        partial, replaced = f".{self.path.name}.partial-", f".{self.path.name}.replaced-"
        left = sorted(
            (p for p in self.path.parent.iterdir() if p.name.startswith((partial, replaced))),
            key=lambda p: p.lstat().st_mtime_ns,
        )
        aside = [p for p in left if p.name.startswith(replaced)]
        if aside and not self.path.exists() and not self.path.is_symlink():
            earlier = aside[-1]
            earlier.rename(self.path)
            left.remove(earlier)
            _say(
                f"restored {self.path} from {earlier.name}, the earlier output a stopped run had moved "
                "aside to put its own in place"
            )
        for folder in left:
            size = _size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            _say(f"removed {folder.name} ({size}), left by a run that was stopped")

    def write(self, fill: Callable[[Path], T]) -> T:
        """``fill(folder)`` on a new temporary sibling, then that folder moved to ``path`` (an earlier
        output moved aside first and removed last); on any failure nothing at ``path`` changes. A
        folder that changed during the run is not replaced: the new output is kept beside it."""
        seen = _snapshot(self.path) if self._seen is None else self._seen
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        value = fill(self.partial)
        aside = self.path.parent / f".{self.path.name}.replaced-{os.getpid()}"
        moved = self.path.exists() or self.path.is_symlink()
        if moved:  # aside first: a write into the folder from now on cannot be lost unseen
            self.path.rename(aside)
        changes = _changes(seen, _snapshot(aside) if moved else {})
        if changes:
            if moved:
                aside.rename(self.path)
            kept = self._keep()
            raise ConfigError(
                f"--out {self.path} changed during the run ({changes}), so it was not replaced; the new "
                f"output is kept in {kept}: move what you need out of {self.path.name}, then run again "
                f"or rename {kept.name}"
            )
        self.partial.rename(self.path)
        shutil.rmtree(aside, ignore_errors=True)
        return value

    def _keep(self) -> Path:
        """The new output moved to ``<name>.new`` (``<name>.new-2``, …: the first free name)."""
        for number in itertools.count(1):
            kept = self.path.with_name(f"{self.path.name}.new" + (f"-{number}" if number > 1 else ""))
            if not kept.exists() and not kept.is_symlink():
                self.partial.rename(kept)
                return kept
        raise AssertionError("unreachable")
