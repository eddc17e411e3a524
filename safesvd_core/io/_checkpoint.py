"""Checkpoint and resume: a run hook that writes the run's progress to a directory after the clean
statistics, the allocation and every stage, and a later ``compress`` with the same directory
resumes after the last finished stage.

The directory holds ``checkpoint.json`` (the manifest: format, the fingerprints of the original
weights, the calibration items and the config, the ranks, the finished stages and the sha256 of
every file), ``statistics.safetensors`` (or, for spilled statistics, the spill directory's path)
and one ``stage-NNNNN.safetensors`` per finished stage (the factors of its solved layers, their
solve records in the header). Every file is written to a temporary name and renamed, so a kill
leaves either the old file or the new one. On resume a changed fingerprint refuses with the part
that changed; a file whose sha256 does not match (truncated, corrupt) is named in a warning, and
the run resumes from before it: a corrupt file is never used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from .._errors import ConfigError
from ..kinds._interfaces import SolveRecord
from ..run._job import Phase, RunHook, RunState
from ..run._outputs import Progress, Stage
from ..statistics._statistics import CalibrationStatistics
from ._files import atomic_write, check_format, sha256_file

FORMAT = "safesvd.checkpoint/1"
MANIFEST = "checkpoint.json"
STATISTICS = "statistics.safetensors"
#: What the fingerprints cover, in the order a refusal names them.
PARTS = ("weights", "calibration", "config")


def _check_manifest(saved: Mapping[str, Any], path: Path) -> None:
    """Every field resuming reads is there with its type; else a :class:`ConfigError` naming it."""

    def refuse(field: str) -> None:
        raise ConfigError(f"{path}: {field} is missing or damaged; delete the directory to start over")

    if not isinstance(saved.get("fingerprints"), dict):
        refuse("'fingerprints'")
    if not isinstance(saved.get("files"), dict):
        refuse("'files'")
    if not isinstance(saved.get("stages"), list):
        refuse("'stages'")
    for index, entry in enumerate(saved["stages"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("file"), str)
            or not isinstance(entry.get("records"), dict)
        ):
            refuse(f"stages[{index}] (its 'file' and 'records')")


class CheckpointWarning(UserWarning):
    """A checkpoint file failed its check and is recomputed, not used."""


class Checkpoint(RunHook):
    """Checkpoints of one compression in ``directory``, for the given ``fingerprints`` (see :data:`PARTS`).

    Only the process with ``writer=True`` writes (rank 0 of a distributed run); every process
    reads on resume (a directory shared between them).
    """

    def __init__(
        self, directory: str | Path, fingerprints: Mapping[str, str], *, writer: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.fingerprints = dict(fingerprints)
        self.writer = writer
        self.manifest: dict[str, Any] = {
            "format": FORMAT,
            "fingerprints": self.fingerprints,
            "files": {},
            "ranks": None,
            "stages": [],
            "statistics": None,
        }
        self.resumed_stages: list[dict[str, Any]] = []
        self.statistics: CalibrationStatistics | None = None
        self._load()

    # -- resume ---------------------------------------------------------------------------------

    def _load(self) -> None:
        path = self.directory / MANIFEST
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(
                f"checkpoint_dir {self.directory} is a file; give a new or empty directory, or the one of "
                "an earlier run to resume it"
            )
        if not path.exists():
            if self.directory.exists() and any(self.directory.iterdir()):
                raise ConfigError(
                    f"checkpoint_dir {self.directory} is not empty and holds no {MANIFEST}: give a new or "
                    "empty directory, or the one of an earlier run to resume it"
                )
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"{path} cannot be read ({error}); delete the directory to start over"
            ) from None
        saved = check_format(saved, path, FORMAT, "resumes")
        _check_manifest(saved, path)
        changed = [part for part in PARTS if saved["fingerprints"].get(part) != self.fingerprints[part]]
        if changed:
            what = {
                "weights": "the original model's weights",
                "calibration": "the calibration data",
                "config": "the recipe, adapter or ratio",
            }
            raise ConfigError(
                f"cannot resume from {self.directory}: {', '.join(what[p] for p in changed)} changed since "
                "the checkpoint was written; use a new checkpoint_dir (or the original inputs)"
            )
        self.manifest.update(ranks=saved["ranks"])
        if saved.get("statistics") and self._intact(saved, saved["statistics"]):
            self.statistics = self._statistics(saved["statistics"])
            self.manifest["statistics"] = saved["statistics"]
            self.manifest["files"].update(
                {k: v for k, v in saved["files"].items() if k == saved["statistics"]}
            )
        for entry in saved["stages"]:  # resume from the first stage whose file fails its check
            if self.statistics is None or not self._intact(saved, entry["file"]):
                break
            self.resumed_stages.append(entry)
            self.manifest["stages"].append(entry)
            self.manifest["files"][entry["file"]] = saved["files"][entry["file"]]

    def _intact(self, saved: Mapping[str, Any], name: str) -> bool:
        path = self.directory / name
        if Path(name).is_absolute():  # a spill directory: its own files are checked when it is opened
            return path.exists()
        if path.exists() and sha256_file(path) == saved["files"].get(name):
            return True
        warnings.warn(
            f"checkpoint file {path} is missing or corrupt (its sha256 does not match the manifest); "
            "it is not used: the run resumes from before it",
            CheckpointWarning,
            stacklevel=4,
        )
        return False

    def _statistics(self, name: str) -> CalibrationStatistics:
        if Path(name).is_absolute():
            return CalibrationStatistics.open(name)
        return CalibrationStatistics.from_file(self.directory / name)

    # -- the run hook ---------------------------------------------------------------------------
    # What the checkpoint saves and restores are the run's typed outputs: the statistics after the
    # phase that writes them, the ranks and each stage's factors from the progress (to the phase that
    # writes the progress, on resume, it hands a progress to continue). No phase is named here.

    def phase_started(self, state: RunState, phase: Phase) -> None:
        if "progress" not in phase.writes or state.progress is not None:
            return
        ranks = dict(state.allocation.ranks)
        if not self.resumed_stages:
            self.manifest["ranks"] = ranks  # as the stages use them, after any phase that changed them
            self._write_manifest()
            return
        if self.manifest["ranks"] != ranks:
            raise ConfigError(
                f"cannot resume from {self.directory}: the allocation gave other ranks than the "
                "checkpoint's with the same inputs (an allocator or merge rule whose measured times "
                "changed?)"
            )
        progress = Progress(stage_index=len(self.resumed_stages))
        for entry in self.resumed_stages:
            factors = load_file(str(self.directory / entry["file"]))
            for name, record in entry["records"].items():
                progress.factors[name] = (factors[f"{name}::first"], factors[f"{name}::second"])
                progress.records[name] = SolveRecord(**record)
        state.progress = progress  # the stages phase puts the factors back and goes on after them
        state.log.notes.append(f"resumed from {self.directory} after stage {progress.stage_index}")

    def phase_done(self, state: RunState, phase: Phase) -> None:
        if "statistics" in phase.writes and self.manifest["statistics"] is None:
            self._write_statistics(state.statistics.clean)

    def stage_done(self, state: RunState, stage: Stage) -> None:
        progress = state.progress
        if progress.stage_index <= len(self.manifest["stages"]):
            return  # a resumed stage
        solved = [name for name in stage.layers if state.allocation.ranks[name] is not None]
        tensors = {
            f"{name}::{key}": factor.contiguous()
            for name in solved
            for key, factor in zip(("first", "second"), progress.factors[name])
        }
        records = {name: progress.records[name].to_dict() for name in solved}
        name = f"stage-{progress.stage_index:05d}.safetensors"
        self._write(
            name, lambda path: save_file(tensors, str(path), metadata={"checkpoint": json.dumps(records)})
        )
        self.manifest["stages"].append({"file": name, "layers": list(stage.layers), "records": records})
        self._write_manifest()

    # -- writing --------------------------------------------------------------------------------

    def _write_statistics(self, statistics: CalibrationStatistics) -> None:
        if statistics.spilled:  # already on disk: the manifest points to the spill directory
            self.manifest["statistics"] = str(Path(statistics.directory).resolve())
        else:
            self._write(STATISTICS, statistics.save)
            self.manifest["statistics"] = STATISTICS
        self._write_manifest()

    def _write(self, name: str, write: Callable[[Path], None]) -> None:
        if not self.writer:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.directory / name, write)
        self.manifest["files"][name] = sha256_file(self.directory / name)

    def _write_manifest(self) -> None:
        if self.writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            atomic_write(
                self.directory / MANIFEST, lambda path: path.write_text(json.dumps(self.manifest, indent=1))
            )
