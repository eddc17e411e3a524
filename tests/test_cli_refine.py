"""The ``[refine]`` table of a ``compress`` config: refinement data from a generator, options checked
when the config is read, the report in the output folder's manifest."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from safesvd_core import ConfigError, RefineDataWarning, read_manifest
from safesvd_core.__main__ import main

pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")

CONFIG = """
[model]
zoo = "ns2d-transformer"

[data]
generator = "navier_stokes"
options = { samples = 16, size = 32, seed = 5 }
batch_size = 8
trajectory_steps = 2

[test]
generator = "navier_stokes"
options = { samples = 8, size = 32, seed = 6 }

[adapter]
options = { include = ["blocks.*"], block_names = ["blocks.0", "blocks.1", "blocks.2", "blocks.3"] }

[compress]
ratio = 0.5
family = "ns-incompressible"

[evaluate]
figures = false

[refine]
generator = "navier_stokes"
options = { samples = 32, size = 32, seed = 7 }
batch_size = 8
trajectory_steps = 2
steps = 6
eval_every = 3
lr = 1e-4
"""


def _raw(text: str = CONFIG) -> dict:
    import tomllib

    return tomllib.loads(text)


def test_refine_table_refines_and_the_manifest_reports_it(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefineDataWarning)
        assert main(["compress", str(config), "--out", str(tmp_path / "out")]) == 0
    report = read_manifest(tmp_path / "out")["reports"]["refine"]
    assert report["steps"] == 6 and [row["step"] for row in report["history"]] == [3, 6]
    assert (
        report["items"] == {"fit": 3, "held_out": 1, "processes": 1, "held_out_domains": None}
        and report["source"] == "RolloutSource(steps=2, one_step_group=False)"
    )


def test_refine_options_are_checked_when_the_config_is_read():
    from safesvd_cli.config import RunConfig

    config = RunConfig.from_dict(_raw(), base=Path.cwd())
    assert (
        config.refine.options.steps == 6
        and config.refine.trajectory_steps == 2
        and config.trajectory_steps == 2
    )
    assert RunConfig.from_dict(config.to_dict(), base=Path.cwd()) == config
    for change, message in [
        (("steps", None), "\\[refine\\] steps: missing"),
        (("lr", -1.0), "\\[refine\\]: refine lr must be a positive number"),
        (("held_out", 1.0), "\\[refine\\]: refine held_out must be below 1"),
        (("trajectory_steps", -2), "\\[refine\\] trajectory_steps: expected an integer ≥ 0"),
        (("stpes", 3), "unknown key 'stpes' in \\[refine\\].*did you mean 'steps'"),
    ]:
        raw = _raw()
        key, value = change
        if value is None:
            del raw["refine"][key]
        else:
            raw["refine"][key] = value
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_dict(raw, base=Path("."))


def test_the_old_rollout_steps_key_still_reads_and_says_what_to_write():
    """``rollout_steps`` in ``[data]``/``[refine]`` named the steps of the trajectories to load; it is now
    ``trajectory_steps`` (the recipe's ``rollout_steps`` is the steps a rollout uses of them)."""
    from safesvd_cli.config import RunConfig

    new = RunConfig.from_dict(_raw(), base=Path.cwd())
    raw = _raw(CONFIG.replace("trajectory_steps = 2", "rollout_steps = 2"))
    with pytest.warns(FutureWarning) as caught:
        old = RunConfig.from_dict(raw, base=Path.cwd(), label="old.toml")
    assert (
        old == new
        and old.to_dict()["data"]["trajectory_steps"] == 2
        and "rollout_steps" not in old.to_dict()["data"]
    )
    messages = sorted(str(warning.message) for warning in caught)
    assert messages == [
        f"old.toml: [{table}] rollout_steps is now called trajectory_steps (the steps of each trajectory "
        "loaded); write trajectory_steps = 2 (the old name goes in the next release)"
        for table in ("data", "refine")
    ]
    raw["data"]["trajectory_steps"] = 3
    with pytest.raises(
        ConfigError, match=r"\[data\] gives both trajectory_steps and rollout_steps, its old name"
    ):
        RunConfig.from_dict(raw, base=Path.cwd())


def test_refinement_items_the_model_cannot_run_are_refused_before_any_pass(tmp_path, monkeypatch, capsys):
    def no_pass(*args, **kw):
        raise AssertionError("a pass over the calibration data ran before the refusal")

    monkeypatch.setattr("safesvd_core.run._engine.run_phases", no_pass)
    config = tmp_path / "config.toml"
    config.write_text(
        CONFIG.replace(
            "options = { samples = 32, size = 32, seed = 7 }",
            "options = { samples = 32, size = 16, seed = 7 }",
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # --threads: no line about a busy machine beside the refusal (the item is run to check it)
        assert main(["compress", str(config), "--out", str(tmp_path / "out"), "--threads", "1"]) == 2
    assert not [w for w in caught if issubclass(w.category, RefineDataWarning)]  # the refusal alone
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "the model cannot run the first refinement item" in lines[0], lines
    assert not (tmp_path / "out").exists()


def _refine_reads(source: str) -> dict:
    """The config with ``[refine]`` reading the ``source`` table's data (its generator and options)."""
    raw = _raw()
    raw["refine"].update(generator=raw[source]["generator"], options=dict(raw[source]["options"]))
    return raw


def test_refine_reading_the_data_table_refines_on_its_calibration_share_only_and_says_so():
    from safesvd_cli.config import RunConfig
    from safesvd_cli.pipeline import prepare

    raw = _refine_reads("data")
    del raw["test"]  # the test split is then the last share of [data]
    config = RunConfig.from_dict(raw, base=Path.cwd())
    with pytest.warns(
        RefineDataWarning,
        match="\\[refine\\] reads the same data as \\[data\\] \\(generator 'navier_stokes', the same "
        "options\\): it refines on the calibration share only",
    ):
        prepared = prepare(config)
    # the same steps and batch size: exactly the calibration items, none of the test split
    assert len(prepared.refine_items) == len(prepared.calibration)
    for refine_item, calibration_item in zip(prepared.refine_items, prepared.calibration):
        assert all(map(torch.equal, refine_item, calibration_item))


def test_refine_reading_the_test_table_is_refused_when_the_config_is_read():
    from safesvd_cli.config import RunConfig

    with pytest.raises(
        ConfigError,
        match="\\[refine\\] reads the test data \\(\\[test\\] generator 'navier_stokes', the same options\\)"
        ": the evaluation would score inputs the model was refined on",
    ):
        RunConfig.from_dict(_refine_reads("test"), base=Path.cwd())
