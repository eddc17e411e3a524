"""The CI's security lint (SECURITY.md) passes on the package and catches every form it forbids."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import security_lint


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import pickle\n", "import pickle"),
        ("from pickle import loads\n", "from pickle import ..."),
        ("import torch\ntorch.load('x.pt')\n", "torch.load without weights_only=True"),
        ("import torch\ntorch.load('x.pt', weights_only=False)\n", "weights_only=False"),
        ("import numpy\nnumpy.load('x.npy', allow_pickle=True)\n", "allow_pickle=True"),
        ("import yaml\nyaml.load(open('c.yml'))\n", "yaml.load() (use yaml.safe_load)"),
        ("import subprocess\nsubprocess.run('ls', shell=True)\n", "shell=True"),
        ("eval('1 + 1')\n", "eval() of a string"),
        ("exec('x = 1')\n", "exec() of a string"),
        # aliases and indirect forms
        ("import torch as t\nt.load('x.pt')\n", "torch.load without weights_only=True"),
        ("from torch import load\nload('x.pt')\n", "torch.load without weights_only=True"),
        ("from torch import load as read\nread('x.pt')\n", "torch.load without weights_only=True"),
        ("import torch\ngetattr(torch, 'load')('x.pt')\n", "getattr() reaching torch.load"),
        ("__import__('pickle')\n", "__import__('pickle')"),
        ("import importlib\nimportlib.import_module('pickle')\n", "importlib.import_module('pickle')"),
        ("import _pickle\n", "import _pickle"),
        ("import os\nos.system('ls')\n", "os.system() (use subprocess with a list)"),
        ("from os import system\nsystem('ls')\n", "from os import system"),
        ("import builtins\nbuiltins.eval('1')\n", "eval() of a string"),
        ("from builtins import exec as run\nrun('x = 1')\n", "from builtins import exec"),
        ("import subprocess\nsubprocess.run('ls', shell=1)\n", "shell=True"),
        ("import numpy\nnumpy.load('x.npy', allow_pickle=True)\n", "allow_pickle=True"),
        ("import numpy as np\nnp.load('x.npy', allow_pickle=1)\n", "allow_pickle=True"),
        ("import torch\ntorch.jit.load('m.pt')\n", "torch.jit.load (a TorchScript archive carries code)"),
        # torch.load under its other name, the other pickles, yaml loaders, runners, archives with code
        ("import torch\ntorch.serialization.load('x.pt')\n", "torch.load without weights_only=True"),
        ("from torch.serialization import load\nload('x.pt')\n", "torch.load without weights_only=True"),
        ("import torch.serialization as s\ns.load('x.pt')\n", "torch.load without weights_only=True"),
        ("import pandas as pd\npd.read_pickle('x.pkl')\n", "pandas.read_pickle (a pickle)"),
        ("from pandas import read_pickle\n", "from pandas import read_pickle"),
        ("import joblib\njoblib.load('m.joblib')\n", "joblib.load (a pickle)"),
        ("import yaml\nyaml.unsafe_load_all(text)\n", "yaml.unsafe_load_all() (use yaml.safe_load)"),
        ("import yaml\nyaml.load_all(text)\n", "yaml.load_all() (use yaml.safe_load)"),
        ("import runpy\nrunpy.run_path('x.py')\n", "runpy.run_path (runs a file's code)"),
        ("import runpy\nrunpy.run_module('x')\n", "runpy.run_module (runs a module's code)"),
        (
            "import subprocess\nsubprocess.getoutput('ls')\n",
            "subprocess.getoutput() (a shell; use subprocess.run with a list)",
        ),
        ("from subprocess import getoutput\n", "from subprocess import getoutput"),
        ("import numpy as np\nnp.load(f, None, True)\n", "allow_pickle=True"),
        ("import numpy as np\nnp.load(f, None, flag)\n", "allow_pickle=True"),
        (
            "import torch\ntorch.package.PackageImporter('m.pt')\n",
            "torch.package.PackageImporter (a torch.package archive carries code)",
        ),
        (
            "from torch.package import PackageImporter\nPackageImporter('m.pt')\n",
            "torch.package.PackageImporter (a torch.package archive carries code)",
        ),
        ("import joblib\ngetattr(joblib, 'load')('m')\n", "getattr() reaching joblib.load"),
        # a forbidden callable passed on, to be called where its arguments cannot be seen
        (
            "import runpy\nrun = runpy.run_path\nrun('x.py')\n",
            "runpy.run_path passed on without a call (call it here, or not at all)",
        ),
        (
            "import torch\nlist(map(torch.load, paths))\n",
            "torch.load passed on without a call (call it here, or not at all)",
        ),
    ],
)
def test_each_forbidden_form_is_found(source, what):
    assert what in [found for _, found in security_lint.findings(source)]


def test_safe_forms_pass():
    source = (
        "import torch\nimport safetensors.torch\ntorch.load('x.pt', weights_only=True)\n"
        "safetensors.torch.load(b'')\nmodel.eval()\nsubprocess.run(['ls'])\n"
    )
    assert list(security_lint.findings(source)) == []
    safe_too = (
        "import numpy as np\nimport yaml\nnp.load(f, None, False)\nyaml.safe_load_all(text)\n"
        "np.load(f, 'r')\nimport torch\ntorch.serialization.load('x.pt', weights_only=True)\n"
        "frame.to_pickle\n"
    )
    assert list(security_lint.findings(safe_too)) == []


def test_an_allow_marker_needs_a_reason():
    source = (
        "import pickle  # security-lint: allow: our own objects in memory\n"
        "import marshal  # security-lint: allow: \n"
    )
    found = dict(security_lint.findings(source))
    assert security_lint.allowed(source, 1) and not security_lint.allowed(source, 2) and set(found) == {1, 2}


def test_the_whole_repository_is_clean():
    assert (
        len(security_lint.python_files([security_lint.ROOT])) > 200
    )  # tests, examples, benchmarks, scripts too
    assert security_lint.main([]) == 0


def test_a_file_named_explicitly_is_checked_even_under_build_or_dist(tmp_path):
    for folder in ("build", "dist", ".venv"):
        bad = tmp_path / folder / "loader.py"
        bad.parent.mkdir()
        bad.write_text("import joblib\njoblib.load('m')\n")
        assert security_lint.python_files([bad]) == [bad]
        assert security_lint.main([str(bad)]) == 1


def test_walking_checks_build_and_dist_but_leaves_out_virtual_environments(tmp_path):
    for folder in ("build/lib", "dist", "env", ".venv", "pkg/__pycache__"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "code.py").write_text("x = 1\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # a venv under any name
    found = {str(file.parent.relative_to(tmp_path)) for file in security_lint.python_files([tmp_path])}
    assert found == {"build/lib", "dist"}


def test_a_missing_path_or_unparsable_file_fails_the_lint(tmp_path, capsys):
    assert security_lint.main([str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    assert security_lint.main([str(broken)]) == 1
    assert "not Python the lint can parse" in capsys.readouterr().out
