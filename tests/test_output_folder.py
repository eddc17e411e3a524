"""``--out`` as a whole (safesvd_cli.output): checked before compute, locked, written to a temporary
sibling and moved into place; nothing of the user's replaced without --overwrite, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safesvd_cli.output import OutputFolder, foreign_files
from safesvd_core import ConfigError


def fill(files):
    def write(folder):
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        return sorted(files)

    return write


def test_a_new_folder_is_written_whole_and_the_lock_removed(tmp_path):
    out = OutputFolder(tmp_path / "out")
    with out.locked():
        assert out.lock.is_file()
        assert out.write(fill({"model.safetensors": "m", "figures/ranks.png": "p"})) == [
            "figures/ranks.png",
            "model.safetensors",
        ]
    assert (tmp_path / "out" / "figures" / "ranks.png").read_text() == "p"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock, no temporary sibling left


def test_a_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(ConfigError, match="--out .*out is a file"):
        OutputFolder(tmp_path / "out").check()


def test_the_users_own_files_are_named_and_kept_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "ranks.png").write_text("an earlier figure")
    assert foreign_files(out) == ["notes.txt"]
    with (
        pytest.raises(ConfigError, match="holds files safesvd did not write \\(notes.txt\\).*--overwrite"),
        OutputFolder(out).locked(),
    ):
        pass
    assert (out / "notes.txt").read_text() == "mine" and not (tmp_path / ".out.lock").exists()
    with OutputFolder(out, overwrite=True).locked() as target:
        target.write(fill({"model.safetensors": "new"}))
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]


def test_an_earlier_output_is_replaced_whole_only_with_overwrite(tmp_path):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:  # a one-ratio run
        target.write(fill({"model.safetensors": "old", "manifest.json": "{}", "config.json": "{}"}))
    with pytest.raises(ConfigError, match="holds an earlier output; pass --overwrite"):
        OutputFolder(out).check()
    with OutputFolder(
        out, overwrite=True
    ).locked() as target:  # a two-ratio run: no stale top-level model left
        target.write(
            fill(
                {"ratio-0.6/model.safetensors": "a", "ratio-0.4/model.safetensors": "b", "config.json": "{}"}
            )
        )
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "ratio-0.4", "ratio-0.6"]


@pytest.mark.parametrize("failure", [RuntimeError("the second ratio failed"), KeyboardInterrupt()])
def test_a_failure_while_writing_changes_nothing(tmp_path, failure):
    out = tmp_path / "out"
    with OutputFolder(out).locked() as target:
        target.write(fill({"model.safetensors": "old"}))

    def broken(folder):
        (folder / "model.safetensors").write_text("half")
        raise failure

    with pytest.raises(type(failure)), OutputFolder(out, overwrite=True).locked() as target:
        target.write(broken)
    assert (out / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    with (
        OutputFolder(tmp_path / "out").locked(),
        pytest.raises(ConfigError, match="another safesvd run is writing .*delete the lock file"),
        OutputFolder(tmp_path / "out").locked(),
    ):
        pass
    with OutputFolder(tmp_path / "out").locked():  # released: the next run goes ahead
        pass


def test_compress_refuses_a_folder_with_the_users_files_before_any_compute(tmp_path, monkeypatch):
    from safesvd_cli import pipeline
    from safesvd_core.__main__ import main

    (tmp_path / "c.toml").write_text(
        '[model]\nzoo = "ns2d-transformer"\n\n[data]\ngenerator = "navier_stokes"\n'
        "options = { samples = 8 }\n"
    )
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "config.json").write_text("my own config")
    monkeypatch.setattr(
        pipeline, "prepare", lambda *a, **k: pytest.fail("compute started before --out was checked")
    )
    assert main(["compress", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")]) == 2
    assert (tmp_path / "o" / "config.json").read_text() == "my own config"


def _hold(out: OutputFolder) -> None:
    with out.locked():
        pytest.fail("the run went on past the refusal")


def test_a_symbolic_link_to_an_earlier_output_is_refused_and_both_kept(tmp_path):
    earlier = OutputFolder(tmp_path / "earlier")
    with earlier.locked():
        earlier.write(fill({"model.safetensors": "old"}))
    (tmp_path / "link").symlink_to(tmp_path / "earlier")
    with pytest.raises(ConfigError, match="--out .*link is a symbolic link .*give the folder it points to"):
        _hold(OutputFolder(tmp_path / "link", overwrite=True))
    assert (tmp_path / "link").is_symlink() and (
        tmp_path / "earlier" / "model.safetensors"
    ).read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "link"]


@pytest.mark.parametrize("out", [".", ".."])
def test_the_current_folder_or_one_holding_it_is_refused(tmp_path, monkeypatch, out):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(ConfigError, match=f"--out {out} is \\(or holds\\) the current folder"):
        _hold(OutputFolder(Path(out), overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_parent_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write in .*locked \\(permission denied\\)"):
            _hold(OutputFolder(tmp_path / "locked" / "out"))
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_a_permission_error_on_the_lock_is_one_line(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.lock"))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ConfigError, match="--out .*out: cannot write in .*choose a folder you can write to"):
        _hold(OutputFolder(tmp_path / "out"))
