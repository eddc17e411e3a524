"""No code runs from an output folder unless the user says so, and a config's folder leaves sys.path
after its import (SECURITY.md)."""

from __future__ import annotations

import json
import sys

import pytest

from safesvd_cli.user_code import import_object
from safesvd_core import ConfigError
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
    (tmp_path / "safesvd_zoo_shadow.py").write_text("raise SystemExit('shadowed')\n")
    with pytest.raises(ConfigError, match="cannot import 'safesvd_zoo_shadow'"):
        import_object("safesvd_zoo_shadow:x", "[data] function", (tmp_path,))
