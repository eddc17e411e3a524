"""The CI's security lint (SECURITY.md) passes on the package and catches every form it forbids."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import security_lint  # noqa: E402


@pytest.mark.parametrize(("source", "what"), [
    ("import pickle\n", "import pickle"),
    ("from pickle import loads\n", "from pickle import ..."),
    ("import torch\ntorch.load('x.pt')\n", "torch.load without weights_only=True"),
    ("import torch\ntorch.load('x.pt', weights_only=False)\n", "weights_only=False"),
    ("import numpy\nnumpy.load('x.npy', allow_pickle=True)\n", "allow_pickle=True"),
    ("import yaml\nyaml.load(open('c.yml'))\n", "yaml.load() (use yaml.safe_load)"),
    ("import subprocess\nsubprocess.run('ls', shell=True)\n", "shell=True"),
    ("eval('1 + 1')\n", "eval() of a string"),
    ("exec('x = 1')\n", "exec() of a string"),
])
def test_each_forbidden_form_is_found(source, what):
    assert what in [found for _, found in security_lint.findings(source)]


def test_safe_forms_pass():
    source = ("import torch\nimport safetensors.torch\ntorch.load('x.pt', weights_only=True)\n"
              "safetensors.torch.load(b'')\nmodel.eval()\nsubprocess.run(['ls'])\n")
    assert list(security_lint.findings(source)) == []


def test_the_package_is_clean():
    assert security_lint.main([]) == 0
