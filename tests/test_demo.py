"""The README's main job: the demo table on the bundled reference model, and its output folder."""

from __future__ import annotations

import re

import pytest

from safesvd_cli import demo
from safesvd_core import read_manifest
from safesvd_core.__main__ import main


def test_demo_prints_a_table_where_safe_svd_degrades_less_one_step_and_over_the_rollout(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    out = tmp_path / "demo"
    assert main(["demo", "--ratios", "0.8", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    changes = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[1] == "0.8":
            changes[cells[0]] = [float(re.sub(r"[^0-9.+-]", "", cell)) for cell in cells[4:6]]
    assert set(changes) == set(demo.VARIANTS)
    ours, theirs = changes["safe-svd (ns-incompressible)"], changes["svd-llm"]
    assert abs(ours[0]) < abs(theirs[0]) and abs(ours[1]) < abs(theirs[1])  # one step and after 8 steps
    # the folder `safesvd compress` writes, for safe-svd
    assert read_manifest(out)["recipe"]["name"] == "safe-svd"
    assert {"model.safetensors", "config.json", "report.json", "report.csv"} <= {
        p.name for p in out.iterdir()
    }
    assert len([p for p in (out / "figures").glob("*.png") if p.stat().st_size > 0]) >= 2
