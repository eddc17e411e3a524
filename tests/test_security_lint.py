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
