"""A channel without the role a family needs: the error says which option gives it one, in Python and in
a ``safesvd compress`` config, with example values built from the channels; and the option it names
works (a The Well file whose field the reader does not know, compressed from the command line)."""

from __future__ import annotations

import json
import re
import tomllib

import numpy as np
import pytest

from safesvd_core import ConfigError, FieldDescription, registry
from safesvd_core.__main__ import main


def test_the_error_names_the_option_with_example_values_from_the_channels():
    field = FieldDescription.uniform(channels=("u", "v", "p"), roles=("scalar", "scalar", "pressure"), dim=2)
    with pytest.raises(ConfigError) as caught:
        registry("pde_family").create("ns-incompressible").check(field)
    message = str(caught.value)
    assert message.startswith(
        "PDE family 'ns-incompressible' needs channel role(s) velocity_x, velocity_y, which no "
        "unmasked channel has; channels are u=scalar, v=scalar, p=pressure."
    )
    assert "e.g. u → velocity_x, v → velocity_y" in message
    # Python: the field description's roles (every channel, in order) or the reader's option
    assert 'roles=["velocity_x", "velocity_y", "pressure"] in the FieldDescription' in message
    assert 'TheWell(path, roles={"u": "velocity_x", "v": "velocity_y"})' in message
    # the config: [data] options for a The Well file, or [adapter] options.field_description
    assert '[data] options = { roles = { u = "velocity_x", v = "velocity_y" } }' in message
    assert (
        'roles = ["velocity_x", "velocity_y", "pressure"] in [adapter] options.field_description' in message
    )
    # the example values are real: the roles they give satisfy the family
    given = re.search(r"roles=(\[[^]]*\]) in the FieldDescription", message).group(1)
    fixed = FieldDescription.uniform(channels=("u", "v", "p"), roles=json.loads(given), dim=2)
    registry("pde_family").create("ns-incompressible").check(fixed)


def test_a_masked_channel_is_not_suggested():
    field = FieldDescription.uniform(
        channels=("pad", "c"), roles=("scalar", "pressure"), dim=2, masked=("pad",)
    )
    with pytest.raises(ConfigError, match=r"e\.g\. c → concentration\."):
        registry("pde_family").create("diffusion-reaction").check(field)


FACTORY = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 1), nn.GELU(), nn.Conv2d(16, 16, 1), nn.GELU(), nn.Conv2d(16, 1, 1))
"""
CONFIG = """
[model]
factory = "role_hint_model:build"

[data]
the_well = "allen_cahn.hdf5"
batch_size = 8

[compress]
ratio = 0.6
family = "diffusion-reaction"

[evaluate]
horizons = [2]
figures = false
"""


def _well(path, n=6, steps=6, size=8) -> None:
    """A tiny Well file with one field the reader does not know: phi."""
    h5py = pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")
    phi = (
        np.cumsum(np.random.default_rng(0).standard_normal((n, steps, size, size)), axis=1).astype(np.float32)
        / 4
    )
    with h5py.File(path, "w") as file:
        file.attrs.update(
            {"dataset_name": "allen_cahn", "grid_type": "cartesian", "n_spatial_dims": 2, "n_trajectories": n}
        )
        dims = file.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        for name, values in {
            "x": np.arange(size) / size,
            "y": np.arange(size) / size,
            "time": np.arange(steps) * 0.1,
        }.items():
            dims[name] = values.astype(np.float32)
        file.create_group("boundary_conditions")
        for order in range(3):
            group = file.create_group(f"t{order}_fields")
            group.attrs["field_names"] = ["phi"] if order == 0 else []
        file["t0_fields/phi"] = phi
        file["t0_fields/phi"].attrs.update(
            {"sample_varying": True, "time_varying": True, "dim_varying": [True, True]}
        )


def test_the_config_line_the_error_names_makes_the_run_work(tmp_path, capsys):
    _well(tmp_path / "allen_cahn.hdf5")
    (tmp_path / "role_hint_model.py").write_text(FACTORY)
    (tmp_path / "config.toml").write_text(CONFIG)
    with pytest.raises(ConfigError) as caught:
        main(["compress", str(tmp_path / "config.toml"), "--out", str(tmp_path / "out"), "--debug"])
    line = re.search(r"\[data\] (options = \{ roles = \{[^}]*\} \})", str(caught.value)).group(1)
    assert line == 'options = { roles = { phi = "concentration" } }'
    assert not (tmp_path / "out").exists()
    (tmp_path / "config.toml").write_text(CONFIG.replace("batch_size = 8", f"batch_size = 8\n{line}"))
    assert tomllib.loads((tmp_path / "config.toml").read_text())["data"]["options"] == {
        "roles": {"phi": "concentration"}
    }
    assert main(["compress", str(tmp_path / "config.toml"), "--out", str(tmp_path / "out")]) == 0
    built = json.loads((tmp_path / "out" / "report.json").read_text())
    assert built["evaluation"]["metrics"][0]["name"] == "base loss"
    # the report's copy-the-input baseline: the test pairs' own input-against-target error
    assert built["copy_baseline"]["omitted"] is None and built["copy_baseline"]["metrics"]["base loss"] > 0
    assert (
        built["test_samples"]["one_step"] > built["test_samples"]["rollout"] > 0
    )  # later starts lack room for h = 2
    printed = capsys.readouterr().out
    assert (
        "| copy the input (next = current) | one step | h = 2 |" in printed and "So horizon 1 is" in printed
    )
