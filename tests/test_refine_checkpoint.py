"""A refinement checkpoint edited by hand but still valid safetensors is refused in one line naming
the field, before anything is loaded; an untouched one still resumes (test_refine)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import safesvd_core.refinement._refine as refine_module
from safesvd_core import ConfigError, Refinement

from test_compress import small_transformer
from test_refine import fresh, interrupting, options, quiet_compress
from test_rollout import trajectories

STEPS, EVERY = 20, 5


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped part-way through 20 steps: its checkpoint holds an evaluated step before the last
    (model, best, Adam, header)."""
    model, calibration = small_transformer(), trajectories(steps=2)
    arguments = dict(
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), steps=STEPS, eval_every=EVERY, lr=1e-3),
    )
    folder = tmp_path_factory.mktemp("ckpt")
    real = refine_module.Distiller.loss
    refine_module.Distiller.loss = interrupting(13)
    try:
        with pytest.raises(KeyboardInterrupt):
            quiet_compress(model, calibration, checkpoint_dir=folder, **arguments)
    finally:
        refine_module.Distiller.loss = real
    return model, calibration, arguments, folder / "refine.safetensors"


def _edited(interrupted, tmp_path, edit):
    """A copy of the checkpoint with ``edit(header, tensors)`` applied, then the run resumed from it."""
    model, calibration, arguments, source = interrupted
    with safe_open(str(source), framework="pt") as handle:
        header = json.loads(handle.metadata()["refine"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    assert header["step"] in range(EVERY, STEPS, EVERY)
    edit(header, tensors)
    shutil.copytree(source.parent, tmp_path / "ckpt")  # the compression's own checkpoint too
    save_file(tensors, str(tmp_path / "ckpt" / "refine.safetensors"), metadata={"refine": json.dumps(header)})
    quiet_compress(model, calibration, checkpoint_dir=tmp_path / "ckpt", **arguments)


def _first(tensors, prefix):
    return next(key for key in sorted(tensors) if key.startswith(prefix))


def _drop_model_tensor(header, tensors):
    del tensors[_first(tensors, "model::")]


def _drop_one_moment(header, tensors):
    del tensors["adam::0::exp_avg"]


def _drop_all_moments(header, tensors):
    for key in [key for key in tensors if key.startswith("adam::")]:
        del tensors[key]


def _reshape(header, tensors):
    key = _first(tensors, "model::blocks.")
    tensors[key] = tensors[key].reshape(-1).contiguous()


def _set(field, value):
    def edit(header, tensors):
        header[field] = value

    return edit


def _drop(field):
    def edit(header, tensors):
        del header[field]

    return edit


def _poison_best(header, tensors):
    key = _first(tensors, "best::blocks.")
    tensors[key] = torch.full_like(tensors[key], float("nan"))


def _extra_tensor(header, tensors):
    tensors["junk::x"] = torch.zeros(1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_model_tensor, r"its tensor model::\S+ is missing"),
        (_drop_one_moment, "its tensor adam::0::exp_avg is missing"),
        (_drop_all_moments, "its tensor adam::0::exp_avg is missing"),
        (_drop("moments"), "its moments do not list the parameters"),
        (_drop("history"), r"its history is not one row per evaluation up to step \d+"),
        (_set("history", [{"step": 4, "train": 1.0}]), "its history is not one row per evaluation"),
        (_reshape, r"its tensor model::blocks\.\S+ is torch.float32 \(\d+,\), not the model's"),
        (_set("step", 10000), "its step is 10000, not a step of this run \\(1 to 20\\)"),
        (_set("step", -3), "its step is -3, not a step of this run"),
        (_set("step", 7), "its step is 7, not one this run saves at \\(every 5, or the last\\)"),
        (_set("step", "10"), "its step is '10', not a step of this run"),
        (_set("best", {"step": 3, "score": 0.1}), "its best step 3 is not an evaluated step"),
        (_set("best", {"step": 5}), "its best has no score"),
        (_poison_best, r"its tensor best::blocks\.\S+ holds non-finite values"),
        (_extra_tensor, "its tensor 'junk::x' is not one a checkpoint holds"),
    ],
)
def test_an_edited_checkpoint_is_refused_naming_the_field(interrupted, tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message) as refused:
        _edited(interrupted, tmp_path, edit)
    assert "\n" not in str(refused.value) and str(refused.value).endswith(
        "delete the file to refine from the start"
    )


def test_the_untouched_checkpoint_resumes(interrupted, tmp_path):
    model, calibration, arguments, source = interrupted
    shutil.copytree(source.parent, tmp_path / "ckpt")
    resumed = quiet_compress(model, calibration, checkpoint_dir=tmp_path / "ckpt", **arguments)
    assert [row["step"] for row in resumed.reports["refine"]["history"]] == [5, 10, 15, 20]
