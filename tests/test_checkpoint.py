"""Checkpoint and resume: a killed compression resumes bit-identically; changed inputs and corrupt
files are refused or recomputed, never used; runs are deterministic."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from safesvd_core import ConfigError, compress
from safesvd_core.io import _checkpoint

from test_compress import small_data, small_transformer

OPTIONS = {"adapter_options": {"block_names": ["blocks.0", "blocks.1", "blocks.2"], "include": ["blocks.*"]}}


def digest(result) -> str:
    """sha256 of the ranks and every tensor of the compressed model."""
    hasher = hashlib.sha256(json.dumps(result.ranks, sort_keys=True).encode())
    for key, value in sorted(result.model.state_dict().items()):
        hasher.update(key.encode() + value.detach().contiguous().numpy().tobytes())
    return hasher.hexdigest()


class Killed(Exception):
    """The injected fault: the process dies right after a stage's checkpoint is written."""


@pytest.fixture
def kill_after(monkeypatch):
    def arm(stage: int) -> None:
        original = _checkpoint.Checkpoint.stage_done

        def stage_done(self, state, done):
            original(self, state, done)
            if state.progress.stage_index == stage:
                raise Killed(f"killed after stage {stage}")

        monkeypatch.setattr(_checkpoint.Checkpoint, "stage_done", stage_done)

    return arm


def run(directory=None, model=None, data=None, **options):
    model = small_transformer(depth=3) if model is None else model
    data = small_data(batches=3) if data is None else data
    return compress(model, data, ratio=0.5, checkpoint_dir=directory, **OPTIONS, **options)


def test_runs_are_deterministic_and_a_killed_run_resumes_bit_identically(tmp_path, kill_after, monkeypatch):
    reference = run()
    assert digest(run()) == digest(reference)  # the same inputs and seed: the same bits
    kill_after(2)
    with pytest.raises(Killed):
        run(tmp_path / "checkpoint")
    manifest = json.loads((tmp_path / "checkpoint" / "checkpoint.json").read_text())
    assert [stage["file"] for stage in manifest["stages"]] == [
        "stage-00001.safetensors",
        "stage-00002.safetensors",
    ]
    monkeypatch.undo()
    resumed = run(tmp_path / "checkpoint")
    assert digest(resumed) == digest(reference)
    assert "clean" not in resumed.passes and "lambda" not in resumed.passes  # the statistics were resumed
    assert (
        resumed.passes["stages"] == 1
        and "resumed from" in resumed.notes[-1]
        and "after stage 2" in resumed.notes[-1]
    )
    assert resumed.records == reference.records


def test_a_changed_input_refuses_to_resume_and_says_which(tmp_path, kill_after):
    kill_after(1)
    with pytest.raises(Killed):
        run(tmp_path)
    with pytest.raises(ConfigError, match="the recipe, adapter or ratio changed"):
        compress(
            small_transformer(depth=3), small_data(batches=3), ratio=0.6, checkpoint_dir=tmp_path, **OPTIONS
        )
    with pytest.raises(ConfigError, match="the calibration data changed"):
        run(tmp_path, data=small_data(batches=2))
    other = small_transformer(depth=3)
    with torch.no_grad():
        other.blocks[0].query.weight.mul_(1.001)
    with pytest.raises(ConfigError, match="the original model's weights changed"):
        run(tmp_path, model=other)


@pytest.mark.parametrize(
    ("corrupt", "resumes_after"), [("stage-00002.safetensors", 1), ("statistics.safetensors", 0)]
)
def test_a_corrupt_checkpoint_file_is_named_and_recomputed(
    tmp_path, kill_after, monkeypatch, corrupt, resumes_after
):
    reference = run()
    kill_after(3)
    with pytest.raises(Killed):
        run(tmp_path)
    monkeypatch.undo()
    path = tmp_path / corrupt
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    with pytest.warns(_checkpoint.CheckpointWarning, match=corrupt):
        resumed = run(tmp_path)
    assert digest(resumed) == digest(reference)
    if resumes_after:
        assert f"after stage {resumes_after}" in resumed.notes[-1]
    else:
        assert resumed.passes["clean"] == 1  # nothing was usable: recomputed from the start


def test_a_checkpoint_directory_must_be_new_empty_or_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no checkpoint.json"):
        run(tmp_path)


def test_checkpoint_files_are_written_atomically(tmp_path, monkeypatch):
    """A write that dies midway leaves the previous file, never a partial one."""
    target = tmp_path / "file"
    _checkpoint.atomic_write(target, lambda path: path.write_text("old"))

    def dying(path):
        path.write_text("half")
        raise Killed

    with pytest.raises(Killed):
        _checkpoint.atomic_write(target, dying)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]
