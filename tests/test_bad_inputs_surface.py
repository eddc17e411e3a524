"""The product surface answers a hurried user's mistakes in one clear line (issue 20's cases): non-finite
data named by kind, place and item, test data checked before the work, config values of the wrong type,
damaged checkpoints, a text file given as HDF5, a pairs function asked for trajectories."""

from __future__ import annotations

import json

import pytest
import torch

from safesvd_core import ConfigError, IdleLayersWarning, NumericalError, Refinement, compress, evaluate

from test_compress import small_data, small_transformer


def _poisoned(where: str, value: float, index: int = 1):
    data = small_data(batches=3)
    x, y = data[index]
    if where == "input":
        x = x.clone()
        x[0, 0, 0, 0] = value
    else:
        y = y.clone()
        y[1, 1, 2, 3] = value
    data[index] = (x, y)
    return data


@pytest.mark.parametrize(
    ("where", "value", "kind"), [("input", float("nan"), "nan"), ("target", float("inf"), "inf")]
)
def test_non_finite_calibration_data_is_named_by_kind_place_and_item(where, value, kind):
    with pytest.raises(
        NumericalError, match=f"calibration item 1: its {where} holds {kind} \\(1 of 512 values\\)"
    ):
        compress(small_transformer(), _poisoned(where, value), ratio=0.5)


def test_non_finite_refinement_and_evaluation_data_are_named_too():
    model = small_transformer()
    with pytest.raises(NumericalError, match="refinement item 2: its target holds nan"):
        compress(
            model,
            small_data(),
            ratio=0.5,
            refine=Refinement(_poisoned("target", float("nan"), index=2), steps=2, held_out=0.0),
        )
    with pytest.raises(NumericalError, match="evaluation item 0: its input holds inf"):
        evaluate(model, model, _poisoned("input", float("inf"), index=0))


def test_evaluation_data_the_model_cannot_run_is_refused_before_any_metric():
    model = small_transformer()
    wrong = [(torch.randn(2, 2, 6, 6), torch.randn(2, 2, 6, 6))]  # the model takes 8 × 8 fields
    with pytest.raises(ConfigError, match="cannot run the first evaluation item .*\\(2, 2, 6, 6\\)"):
        evaluate(model, model, wrong)


def _config(
    tmp_path, model_table: str, data_table: str = 'generator = "navier_stokes"\noptions = { samples = 8 }'
):
    path = tmp_path / "c.toml"
    path.write_text(f"[model]\n{model_table}\n\n[data]\n{data_table}\n")
    return path


@pytest.mark.parametrize(
    ("model_table", "data_table", "message"),
    [
        ("factory = 42", None, '\\[model\\] factory: expected "module:function" \\(a string\\), got 42'),
        ('factory = ["a:b"]', None, '\\[model\\] factory: expected "module:function"'),
        ("zoo = 3", None, "\\[model\\] zoo: expected a zoo model's name, got 3"),
        ('zoo = "ns2d-transformer"', "function = 7", '\\[data\\] function: expected "module:function"'),
        ('zoo = "ns2d-transformer"', "generator = 1", "\\[data\\] generator: expected a generator's name"),
    ],
)
def test_config_values_of_the_wrong_type_are_one_line(tmp_path, capsys, model_table, data_table, message):
    import re

    from safesvd_core.__main__ import main

    config = _config(tmp_path, model_table, *(() if data_table is None else (data_table,)))
    assert main(["compress", str(config), "--out", str(tmp_path / "o")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines


def test_a_pairs_function_asked_for_trajectories_says_so(tmp_path):
    from safesvd_cli.data_source import DataSpec

    (tmp_path / "pairs_only.py").write_text("def load(samples=4):\n    return []\n")
    spec = DataSpec(function="pairs_only:load", import_from=str(tmp_path))
    with pytest.raises(
        ConfigError,
        match="trajectory_steps = 3 asks data function 'pairs_only:load' for 3-step "
        "trajectories, but it takes no 'steps' argument",
    ):
        spec.load(3)


def test_a_text_file_given_as_hdf5_is_named(tmp_path):
    pytest.importorskip("h5py")
    from safesvd_data import PDEBenchIncompressibleNS

    (tmp_path / "notes.h5").write_text("not HDF5")
    with pytest.raises(ConfigError, match="notes.h5 is not a readable HDF5 file"):
        PDEBenchIncompressibleNS(path=tmp_path / "notes.h5").read()


@pytest.fixture
def checkpointed(tmp_path):
    model, data = small_transformer(), small_data()
    compress(model, data, ratio=0.5, checkpoint_dir=tmp_path / "ckpt")
    return model, data, tmp_path / "ckpt"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("fingerprints"), "'fingerprints' is missing or damaged"),
        (
            lambda m: m["stages"][0].pop("file"),
            "stages\\[0\\] \\(its 'file' and 'records'\\) is missing or damaged",
        ),
        (lambda m: m.update(stages="all"), "'stages' is missing or damaged"),
    ],
)
def test_a_damaged_checkpoint_manifest_is_named(checkpointed, edit, message):
    model, data, directory = checkpointed
    manifest = json.loads((directory / "checkpoint.json").read_text())
    edit(manifest)
    (directory / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=message + ".*delete the directory to start over"):
        compress(model, data, ratio=0.5, checkpoint_dir=directory)


def test_a_checkpoint_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "ckpt").write_text("a file")
    with pytest.raises(ConfigError, match="checkpoint_dir .*ckpt is a file"):
        compress(small_transformer(), small_data(), ratio=0.5, checkpoint_dir=tmp_path / "ckpt")


def test_an_output_folder_config_that_is_not_json_is_one_line(tmp_path, capsys):
    from safesvd_core import save_compressed
    from safesvd_core.__main__ import main

    folder = save_compressed(compress(small_transformer(), small_data(), ratio=0.5), tmp_path / "o")
    (folder / "config.json").write_text("{not json")
    assert main(["evaluate", str(folder)]) == 2
    assert "config.json is not valid JSON" in capsys.readouterr().err


def test_nan_in_the_test_split_is_found_before_any_compression(tmp_path, capsys, monkeypatch):
    from safesvd_cli import pipeline
    from safesvd_core.__main__ import main

    (tmp_path / "my_data.py").write_text(
        "import torch\n\n\ndef load():\n"
        "    x, y = torch.randn(16, 2, 32, 32, generator=torch.Generator().manual_seed(0)), "
        "torch.zeros(16, 2, 32, 32)\n"
        "    y[15, 0, 3, 3] = float('nan')  # in the last quarter: the test split\n"
        "    return [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]\n"
    )
    config = _config(tmp_path, 'zoo = "ns2d-transformer"', 'function = "my_data:load"')
    monkeypatch.setattr(
        pipeline, "compress", lambda *a, **k: pytest.fail("compression ran before the test data was checked")
    )
    assert main(["compress", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "test item 0: its target holds nan" in capsys.readouterr().err


def test_a_layer_without_gradient_is_noted_and_kept_at_the_floor_rank():
    from torch import nn

    class WithIdleHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.idle, self.c = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)

        def forward(self, x):
            hidden = torch.tanh(self.a(x))
            return self.c(hidden) + 0.0 * self.idle(hidden)  # the loss never sees `idle`

    generator = torch.Generator().manual_seed(1)
    data = [
        (torch.randn(64, 16, generator=generator), torch.randn(64, 16, generator=generator)) for _ in range(3)
    ]
    with pytest.warns(IdleLayersWarning, match="1 of 3 compressible layers get no gradient.*: idle"):
        result = compress(WithIdleHead(), data, ratio=0.6)
    assert result.ranks["idle"] == 1 and result.ranks["a"] > 1 and result.ranks["c"] > 1
    assert any(
        "get no gradient from the calibration loss" in note and note.endswith(": idle")
        for note in result.notes
    )
    assert result.records["idle"].paths["fisher"] == "identity"  # the solve's fallback, recorded


def test_nan_weights_are_named_before_any_pass():
    model = small_transformer()
    with torch.no_grad():
        model.blocks[1].query.weight[0, 0] = float("nan")
    with pytest.raises(NumericalError, match="the model's blocks.1.query.weight holds nan \\(1 of"):
        compress(model, small_data(), ratio=0.5)


def test_evaluate_with_data_the_model_cannot_take_is_one_line_before_any_metric(tmp_path, capsys):
    from safesvd_core.__main__ import main

    config = _config(
        tmp_path,
        'zoo = "ns2d-transformer"',
        'generator = "navier_stokes"\noptions = { samples = 8 }\nbatch_size = 4',
    )
    assert main(["compress", str(config), "--out", str(tmp_path / "o"), "--no-figures"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "o"),
                "--data",
                "navier_stokes",
                "--data-option",
                "size=8",
                "--data-option",
                "samples=4",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "cannot run the first test item" in error[0] and "(4, 2, 8, 8)" in error[0], (
        error
    )
