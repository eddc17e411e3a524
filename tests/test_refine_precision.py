"""Refinement in mixed precision (``RefineOptions.autocast``): the compressed model's training passes
under ``torch.autocast``, the loss, parameters and scores in float32. On the CPU autocast is opt-in."""

from __future__ import annotations

import pytest
import torch

import safesvd_core.refinement._refine as refine_module
from safesvd_core import ConfigError, RefineOptions, refine
from safesvd_core.refinement._refine_precision import MixedPrecision, autocast_dtype

from test_compress import small_transformer
from test_refine import fresh, interrupting, options, quiet_compress
from test_rollout import trajectories

SETTINGS = {"lr": 1e-3, "eval_every": 10, "warmup": 3}
STEPS = 30


@pytest.fixture(scope="module")
def compressed():
    torch.manual_seed(0)
    model = small_transformer()
    result = quiet_compress(model, trajectories(steps=2), ratio=0.4, adapter_options=options(model))
    return model, result.model


def _refined(compressed, checkpoint=None, **extra):
    model, student = compressed
    return refine(
        student,
        model,
        fresh(),
        steps=STEPS,
        adapter_options=options(model),
        checkpoint_dir=checkpoint,
        **SETTINGS,
        **extra,
    )


def _state(refined):
    return refined.model.state_dict()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_refinement_trains_float32_parameters_close_to_the_float32_run(compressed, dtype):
    full, mixed = _refined(compressed, autocast="off"), _refined(compressed, autocast=dtype)
    assert full.report["autocast"] == "off" and mixed.report["autocast"] == dtype
    assert all(value.dtype == torch.float32 for value in _state(mixed).values() if value.is_floating_point())
    assert any(not torch.equal(_state(full)[key], value) for key, value in _state(mixed).items())
    closed, kept = mixed.report["held_out_closed_form"], mixed.report["held_out_refined"]
    assert kept < 0.8 * closed  # it trained
    gained_full = closed - full.report["held_out_refined"]
    assert closed - kept == pytest.approx(gained_full, rel=0.25)  # most of float32's gain


def test_auto_is_off_on_the_cpu_bit_for_bit(compressed):
    auto, off = _refined(compressed), _refined(compressed, autocast="off")
    assert auto.report["autocast"] == "off"
    for key, value in _state(off).items():
        assert torch.equal(_state(auto)[key], value), key


def test_a_float16_refinement_resumes_with_its_loss_scale(compressed, tmp_path, monkeypatch):
    whole = _refined(compressed, autocast="float16")
    monkeypatch.setattr(refine_module.Distiller, "loss", interrupting(25))
    with pytest.raises(KeyboardInterrupt):
        _refined(compressed, tmp_path, autocast="float16")
    monkeypatch.undo()
    resumed = _refined(compressed, tmp_path, autocast="float16")
    assert resumed.report["history"] == whole.report["history"]
    for key, value in _state(whole).items():
        assert torch.equal(_state(resumed)[key], value), key


def test_a_checkpoint_of_another_precision_is_refused():
    parameter = torch.zeros(2, requires_grad=True)
    with pytest.raises(ConfigError, match="another autocast precision"):
        MixedPrecision.of("off", parameter).load({"scale": 1024.0, "growth_tracker": 0})
    with pytest.raises(ConfigError, match="another autocast precision"):
        MixedPrecision.of("float16", parameter).load(None)


@pytest.mark.parametrize("choice", ["auto", "off", "bfloat16", "float16"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_autocast_choices_by_device_and_model_dtype(choice, dtype):
    cpu = torch.device("cpu")
    if choice in ("bfloat16", "float16") and dtype != torch.float32:
        with pytest.raises(ConfigError, match="needs a float32 model"):
            autocast_dtype(choice, cpu, dtype)
        return
    expected = getattr(torch, choice) if choice in ("bfloat16", "float16") else None
    assert autocast_dtype(choice, cpu, dtype) == expected


def test_an_unknown_autocast_is_refused():
    with pytest.raises(ConfigError, match="autocast"):
        RefineOptions(steps=1, autocast="fp8")


def test_refinement_in_autocast_same_on_cuda(compressed):
    """On CUDA ``auto`` autocasts (bfloat16 where the GPU has it); the scores stay in float32 and the
    refinement gains most of what the CPU's float32 refinement gains."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    model, student = compressed
    on_cpu = _refined(compressed, autocast="off")
    on_gpu = refine(
        student.cuda(),
        model.cuda(),
        [tuple(tensor.cuda() for tensor in item) for item in fresh()],
        steps=STEPS,
        adapter_options=options(model),
        **SETTINGS,
    )
    student.cpu(), model.cpu()
    assert on_gpu.report["autocast"] in ("bfloat16", "float16")
    closed = on_cpu.report["held_out_closed_form"]
    assert on_gpu.report["held_out_closed_form"] == pytest.approx(closed, rel=1e-3)
    gained = closed - on_gpu.report["held_out_refined"]
    assert gained == pytest.approx(closed - on_cpu.report["held_out_refined"], rel=0.25)
