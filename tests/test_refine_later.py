"""Refinement of a saved compressed model: ``refine`` + ``save_refined`` from Python, and
``safesvd refine FOLDER CONFIG --out NEW`` from the command line."""

from __future__ import annotations

import warnings

import pytest
import torch

from safesvd_core import (
    ConfigError,
    RefineDataWarning,
    Refinement,
    compress,
    load_compressed,
    read_manifest,
    refine,
    save_compressed,
    save_refined,
)
from safesvd_core.__main__ import main

from test_cli_refine import CONFIG
from test_compress import small_transformer
from test_refine import fresh, options
from test_rollout import trajectories

SETTINGS = {"eval_every": 2, "lr": 1e-3, "warmup": 1}


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefineDataWarning)
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A compressed small transformer saved to a folder, with its original model."""
    folder = tmp_path_factory.mktemp("saved") / "compressed"
    torch.manual_seed(0)
    model = small_transformer()
    result = compress(model, trajectories(steps=2), ratio=0.4, adapter_options=options(model))
    save_compressed(result, folder)
    return model, folder


def test_a_saved_model_refines_as_compress_refines_it(saved, tmp_path):
    model, folder = saved
    loaded = load_compressed(small_transformer_like(model), folder)
    before = {key: value.clone() for key, value in loaded.state_dict().items()}
    later = _quiet(refine, loaded, model, fresh(), steps=6, adapter_options=options(model), **SETTINGS)
    assert all(torch.equal(value, before[key]) for key, value in loaded.state_dict().items())
    at_once = _quiet(
        compress,
        model,
        trajectories(steps=2),
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), steps=6, **SETTINGS),
    )
    assert later.report["history"] == at_once.reports["refine"]["history"]
    for key, value in at_once.model.state_dict().items():
        torch.testing.assert_close(later.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    written = save_refined(later, tmp_path / "refined", source=folder)
    manifest = read_manifest(written)
    (record,) = manifest["refinements"]
    assert record["steps"] == 6 and record["best_step"] == later.report["best_step"]
    assert (
        record["data"] == later.record["data"]
        and record["held_out_refined"] == later.report["held_out_refined"]
    )
    assert manifest["reports"]["refine"]["history"] == later.report["history"]
    reloaded = load_compressed(small_transformer_like(model), written)
    for key, value in later.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def small_transformer_like(model):
    """A fresh copy of ``model``'s architecture, other weights (what a user builds before loading)."""
    torch.manual_seed(123)
    return small_transformer()


def test_refining_a_saved_model_refuses_what_cannot_work(saved, tmp_path):
    model, folder = saved
    loaded = load_compressed(small_transformer_like(model), folder)
    with pytest.raises(ConfigError, match="has no factored layer"):
        refine(model, model, fresh(), steps=2)
    with pytest.raises(ConfigError, match="Refinement needs steps=|steps must be"):
        refine(loaded, model, fresh(), steps=None)
    refined = _quiet(refine, loaded, model, fresh(), steps=2, adapter_options=options(model), **SETTINGS)
    with pytest.raises(ConfigError, match="the source folder or inside it"):
        save_refined(refined, folder / "inner", source=folder)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match="not an empty folder"):
        save_refined(refined, tmp_path / "busy", source=folder)
    other = compress(model, trajectories(steps=2), ratio=0.7, adapter_options=options(model))
    save_compressed(other, tmp_path / "other")
    with pytest.raises(ConfigError, match="factored layers are not those of"):
        save_refined(refined, tmp_path / "new", source=tmp_path / "other")


def test_the_cli_refines_a_saved_folder_into_a_new_one(tmp_path):
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    without_refine = CONFIG.split("[refine]")[0]
    (tmp_path / "compress.toml").write_text(without_refine)
    (tmp_path / "refine.toml").write_text(CONFIG)
    assert main(["compress", str(tmp_path / "compress.toml"), "--out", str(tmp_path / "run")]) == 0
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    arguments = [
        "refine",
        str(tmp_path / "run"),
        str(tmp_path / "refine.toml"),
        "--out",
        str(tmp_path / "new"),
    ]
    assert _quiet(main, arguments) == 0
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before  # the input is never written
    manifest = read_manifest(tmp_path / "new")
    (record,) = manifest["refinements"]
    assert record["steps"] == 6 and record["options"]["lr"] == 1e-4 and len(record["data"]) == 64
    assert manifest["reports"]["refine"]["steps"] == 6
    assert (tmp_path / "new" / "report.json").is_file() and (tmp_path / "new" / "config.json").is_file()
    assert main(["evaluate", str(tmp_path / "new")]) == 0  # the new folder is a model folder like any
    assert main([*arguments[:-1], str(tmp_path / "run" / "inside")]) == 2
    assert main([*arguments[:-1], str(tmp_path / "new")]) == 2  # not empty
