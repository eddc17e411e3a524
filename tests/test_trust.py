"""No code runs from an output folder unless the user says so, and a config's folder leaves sys.path
after its import (SECURITY.md)."""

from __future__ import annotations

import json
import sys

import pytest

from safesvd_cli.user_code import import_object, untrusted_reason
from safesvd_core.__main__ import main

pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")

PLANTED = """
from pathlib import Path

Path(__file__).with_name("RAN").write_text("the planted code ran")


def build():
    raise SystemExit("never")
"""


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """A real output folder of the zoo model (no code of its own)."""
    folder = tmp_path_factory.mktemp("received")
    config = folder / "c.toml"
    config.write_text(
        '[model]\nzoo = "ns2d-transformer"\n\n[data]\ngenerator = "navier_stokes"\n'
        'options = { samples = 8 }\nbatch_size = 4\n\n[adapter]\noptions = { include = ["blocks.*"] }\n\n'
        "[compress]\nratio = 0.5\n\n[evaluate]\nfigures = false\n"
    )
    assert main(["compress", str(config), "--out", str(folder / "out")]) == 0
    return folder / "out"


def _planted(output, tmp_path):
    """A copy of ``output`` whose config.json names a factory in a Python file placed in the folder."""
    import shutil

    folder = tmp_path / "out"
    shutil.copytree(output, folder)
    (folder / "evil.py").write_text(PLANTED)
    raw = json.loads((folder / "config.json").read_text())
    raw["model"] = {"factory": "evil:build", "options": {}, "import_from": "."}
    (folder / "config.json").write_text(json.dumps(raw))
    return folder


@pytest.mark.parametrize("command", [["evaluate"], ["export", "--dense", "d.safetensors"]])
def test_a_folder_naming_code_is_refused_and_the_code_never_runs(output, tmp_path, command, capsys):
    folder = _planted(output, tmp_path)
    assert main([command[0], str(folder), *command[1:]]) == 2
    error = capsys.readouterr().err
    assert "names code to import and run: [model] factory 'evil:build'" in error and "--trust-code" in error
    assert not (folder / "RAN").exists()
    assert "evil" not in sys.modules


def test_with_trust_code_the_named_code_is_imported(output, tmp_path):
    folder = _planted(output, tmp_path)
    with pytest.raises(SystemExit, match="never"):
        main(["evaluate", str(folder), "--trust-code"])
    assert (folder / "RAN").read_text() == "the planted code ran"
    sys.modules.pop("evil", None)


def test_a_folder_of_zoo_models_and_generators_needs_no_trust(output, capsys):
    assert main(["evaluate", str(output)]) == 0
    assert "base loss" in capsys.readouterr().out


def test_the_config_folder_leaves_sys_path_after_the_import(tmp_path):
    (tmp_path / "my_factory_module.py").write_text("def build():\n    return 1\n")
    before = list(sys.path)
    assert import_object("my_factory_module:build", "[model] factory", (tmp_path,))() == 1
    assert sys.path == before
    sys.modules.pop("my_factory_module", None)


def test_a_safesvd_module_is_never_imported_from_the_config_folder(tmp_path):
    (tmp_path / "safesvd_data.py").write_text("raise SystemExit('shadowed')\n")
    imported = import_object("safesvd_data:RolloutSet", "[data] function", (tmp_path,))
    assert imported.__module__.startswith("safesvd_data.")  # the installed package's


def _received(output, tmp_path, module: str, factory: str):
    """A copy of ``output`` holding a planted ``module``.py, its config naming ``factory`` (or the zoo
    model and generator it was written with, when ``factory`` is empty)."""
    import shutil

    folder = tmp_path / "received"
    shutil.copytree(output, folder)
    (folder / f"{module}.py").write_text(PLANTED)
    if factory:
        raw = json.loads((folder / "config.json").read_text())
        raw["model"] = {"factory": factory, "options": {}, "import_from": "."}
        (folder / "config.json").write_text(json.dumps(raw))
    return folder


def _evaluate_in(folder, *args):
    """``cd folder; python -m safesvd_core evaluate . ARGS``, as a user who received the folder would."""
    import os
    import subprocess

    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "safesvd_core", "evaluate", ".", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_a_safesvd_prefix_does_not_make_a_planted_module_trusted(output, tmp_path):
    folder = _received(output, tmp_path, "safesvd_evil", "safesvd_evil:build")
    answer = _evaluate_in(folder)
    lines = answer.stderr.strip().splitlines()
    assert answer.returncode == 2 and len(lines) == 1, answer.stderr
    assert "[model] factory 'safesvd_evil:build'" in lines[0] and "--trust-code" in lines[0]
    assert "not a module of an installed safesvd package" in lines[0]
    assert not (folder / "RAN").exists()


@pytest.mark.parametrize("factory", ["", "safesvd_data:build"])
def test_a_planted_module_named_like_an_installed_one_never_runs(output, tmp_path, factory):
    folder = _received(output, tmp_path, "safesvd_data", factory)
    answer = _evaluate_in(folder)
    assert not (folder / "RAN").exists(), answer.stderr
    if factory:  # the installed safesvd_data is imported, and has no build
        assert answer.returncode == 2 and "module 'safesvd_data' has no 'build'" in answer.stderr
    else:  # the zoo model and its generator, from the installed packages
        assert answer.returncode == 0 and "base loss" in answer.stdout, answer.stderr


def test_trust_follows_where_a_module_is_found_not_its_name(tmp_path, monkeypatch):
    assert untrusted_reason("safesvd_zoo.models:load") is None
    assert untrusted_reason("evil:build") == "not a module of an installed safesvd package"
    assert untrusted_reason("safesvd_evil:build") == "not a module of an installed safesvd package"
    (tmp_path / "safesvd_data.py").write_text(PLANTED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # the current folder on the path, as python -m puts it
    for name in [name for name in sys.modules if name.split(".")[0] == "safesvd_data"]:
        monkeypatch.delitem(sys.modules, name)
    reason = untrusted_reason("safesvd_data:build")
    assert reason and f"would be imported from {tmp_path.resolve() / 'safesvd_data.py'}" in reason
    assert "remove that file, or run from another folder" in reason
    assert not (tmp_path / "RAN").exists()


def test_two_config_folders_with_a_module_of_one_name_each_get_their_own(tmp_path):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "shared_name_data.py").write_text(f"def load():\n    return {name!r}\n")
    try:
        for name in ("first", "second", "first"):
            load = import_object("shared_name_data:load", "[data]", (tmp_path / name,))
            assert load() == name
    finally:
        sys.modules.pop("shared_name_data", None)
