"""Refinement with data: compress(..., refine=Refinement(inputs, steps=..., ...))."""

from __future__ import annotations

import copy
import warnings

import attrs
import pytest
import torch

import safesvd_core.refinement._refine as refine_module
from safesvd_core import (
    ConfigError,
    FieldDescription,
    RefineDataWarning,
    Refinement,
    RefineOptions,
    RefineWarning,
    Role,
    compress,
    read_manifest,
    save_compressed,
)
from safesvd_core.plugin import PairSource, RolloutSource

from test_compress import small_transformer
from test_rollout import trajectories


def fresh(samples=64, steps=2, seed=7, batch=8):
    """Refinement items, drawn apart from the calibration items (seed 0)."""
    return trajectories(samples=samples, steps=steps, seed=seed, batch=batch)


def quiet_compress(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefineDataWarning)
        return compress(*args, **kwargs)


def interrupting(call: int):
    """A ``Distiller.loss`` that raises ``KeyboardInterrupt`` at its ``call``-th call: an interrupted run."""
    real, calls = refine_module.Distiller.loss, {"n": 0}

    def killed(self, terms):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(self, terms)

    return killed


def options(model):
    return {"block_names": model.block_names(), "include": ["blocks.*"]}


def distance(original, compressed, items) -> float:
    with torch.no_grad():
        return sum(float(torch.mean((compressed(x) - original(x)) ** 2)) for x, _ in items)


def test_refinement_with_fresh_data_gets_closer_to_the_original_and_reports_both_scores():
    model, calibration = small_transformer(), trajectories(steps=2)
    plain = compress(model, calibration, ratio=0.4, adapter_options=options(model))
    refined = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), steps=60, lr=1e-3, eval_every=20, warmup=5),
    )
    report = refined.reports["refine"]
    assert report["kept"] == "refined" and report["best_step"] > 0
    assert report["held_out_refined"] < report["held_out_closed_form"]
    assert report["items"] == {"fit": 7, "held_out": 1, "processes": 1, "held_out_domains": None} and [
        row["step"] for row in report["history"]
    ] == [
        20,
        40,
        60,
    ]
    assert refined.ranks == plain.ranks and refined.params_after == plain.params_after
    test = fresh(seed=99)
    assert distance(model, refined.model, test) < distance(model, plain.model, test)
    assert "refine" in refined.timings and "(closed form)" in refined.notes[-1]


def test_refinement_never_returns_a_model_worse_than_the_closed_form_on_the_held_out_split():
    model, calibration = small_transformer(), trajectories(steps=2)
    plain = compress(model, calibration, ratio=0.4, adapter_options=options(model))
    wrecked = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), steps=10, lr=0.5, eval_every=5, warmup=0),
    )
    report = wrecked.reports["refine"]
    assert report["kept"] == "closed form" and report["best_step"] == 0
    assert all(row["held_out"] > report["held_out_closed_form"] for row in report["history"])
    for key, value in plain.model.state_dict().items():
        assert torch.equal(wrecked.model.state_dict()[key], value), key


def test_a_non_finite_loss_stops_with_a_warning_and_keeps_the_best_state(monkeypatch):
    model, calibration = small_transformer(), trajectories(steps=2)
    plain = compress(model, calibration, ratio=0.4, adapter_options=options(model))
    real = refine_module.Distiller.loss
    calls = {"n": 0}

    def poisoned(self, terms):
        calls["n"] += 1
        value = real(self, terms)
        return value * float("nan") if calls["n"] == 3 else value

    monkeypatch.setattr(refine_module.Distiller, "loss", poisoned)
    with pytest.warns(RefineWarning, match="became nan at step 3"):
        result = quiet_compress(
            model,
            calibration,
            ratio=0.4,
            adapter_options=options(model),
            refine=Refinement(fresh(), steps=10, held_out=0.0),
        )
    assert "step 3" in result.reports["refine"]["stopped"]
    for key, value in plain.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[key], value), key


def test_the_source_follows_the_items():
    model = small_transformer()
    adapter_items = fresh(steps=3)
    from safesvd_core.plugin import make_adapter

    adapter = make_adapter("generic", None).for_model(model)
    assert refine_module.source_for(adapter, adapter_items, None) == RolloutSource(steps=3)
    assert refine_module.source_for(adapter, adapter_items, 1) == RolloutSource(steps=1)
    pairs = [(x, trajectory[:, 0]) for x, trajectory in adapter_items]
    assert isinstance(refine_module.source_for(adapter, pairs, None), PairSource)
    with pytest.raises(ConfigError, match="hold 3 steps"):
        refine_module.source_for(adapter, adapter_items, 4)
    with pytest.raises(ConfigError, match="needs trajectory items"):
        refine_module.source_for(adapter, pairs, 2)


def test_rollout_refinement_weights_one_step_and_the_k_step_mean():
    distiller = refine_module.Distiller(
        None, None, RolloutSource(steps=3), rollout_weight=0.25, cache_bytes=0
    )
    terms = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(6.0)]
    assert float(distiller.loss(terms)) == pytest.approx(0.75 * 1.0 + 0.25 * 3.0)
    assert float(distiller.loss(terms[:1])) == 1.0


@pytest.mark.parametrize(
    ("data", "steps", "settings", "message"),
    [
        ("fresh", None, {}, "Refinement needs steps="),
        ("fresh", 5, {"learning_rate": 1}, "the options are steps, lr"),
        ("fresh", 5, {"held_out": 1.0}, "must be below 1"),
        ("fresh", 0.5, {}, "steps must be an integer"),
        ("fresh", RefineOptions(steps=6), {"lr": 1e-3}, "give one of the two"),
        ("a string", 5, {}, "must be an iterable of items"),
        ("empty", 5, {}, "refinement set is empty"),
        ("one", 5, {}, "needs at least 2 items"),
        ("float64", 5, {}, "refinement data are torch.float64"),
        ("fresh", 5, {"rollout_steps": 9}, "hold 2 steps"),
        ("small", 5, {}, "the model cannot run the first refinement item .*\\(8, 2, 6, 6\\)"),
        ("channels", 5, {}, "the model cannot run the first refinement item .*\\(8, 3, 8, 8\\)"),
    ],
)
def test_bad_refinements_are_refused_before_any_pass(data, steps, settings, message, monkeypatch):
    model, calibration = small_transformer(), trajectories(steps=2)
    items = {
        "fresh": fresh(),
        "a string": "fresh",
        "empty": [],
        "one": fresh(samples=8, batch=8),
        "float64": [(x.double(), t.double()) for x, t in fresh()],
        "small": trajectories(samples=64, steps=2, size=6, seed=7, batch=8),  # the model takes 8 × 8
        "channels": [(x.repeat(1, 2, 1, 1)[:, :3], t.repeat(1, 1, 2, 1, 1)[:, :, :3]) for x, t in fresh()],
    }[data]

    def no_pass(*args, **kw):
        raise AssertionError("a pass over the calibration data ran before the refusal")

    monkeypatch.setattr("safesvd_core.run._engine.run_phases", no_pass)
    with pytest.raises(ConfigError, match=message):
        refinement = Refinement(items, steps, **settings)
        quiet_compress(model, calibration, ratio=0.4, adapter_options=options(model), refine=refinement)
    with pytest.raises(ConfigError, match="refine must be a Refinement .*, got dict"):
        quiet_compress(model, calibration, ratio=0.4, refine={"data": items, "steps": 5})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refine_steps": 10}, "need refine_data"),
        ({"refine_options": {"lr": 1e-3}}, "need refine_data"),
        ({"refine_data": "fresh"}, "without refine_steps"),
        ({"refine_data": "fresh", "refine_steps": 5, "refine_options": {"steps": 5}}, "as refine_steps="),
        ({"refine_data": "fresh", "refine_steps": 5, "refine_options": RefineOptions(steps=6)}, "disagrees"),
        ({"refine_data": "fresh", "refine_steps": 5, "refine": "new"}, "give refine= only"),
    ],
)
def test_the_refine_keywords_of_the_last_release_are_checked_as_before(kwargs, message):
    model, calibration = small_transformer(), trajectories(steps=2)
    given = {"fresh": fresh(), "new": Refinement(fresh(), steps=5)}
    kwargs = {
        key: given.get(value, value) if isinstance(value, str) else value for key, value in kwargs.items()
    }
    with pytest.raises(ConfigError, match=message):
        quiet_compress(model, calibration, ratio=0.4, adapter_options=options(model), **kwargs)


def test_the_refine_keywords_of_the_last_release_still_refine_deprecated():
    model, calibration = small_transformer(), trajectories(steps=2)
    old_style = {"refine_data": fresh(), "refine_steps": 4, "refine_options": {"eval_every": 2}}
    with pytest.warns(DeprecationWarning, match=r"use refine=Refinement\(data, steps, \*\*options\)"):
        old = quiet_compress(model, calibration, ratio=0.4, adapter_options=options(model), **old_style)
    new = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), 4, eval_every=2),
    )
    assert old.reports["refine"]["history"] == new.reports["refine"]["history"]


def test_refining_on_the_calibration_data_or_on_little_data_warns():
    model, calibration = small_transformer(), trajectories(steps=2)
    with pytest.warns(RefineDataWarning, match="is the calibration data"):
        compress(
            model,
            calibration,
            ratio=0.4,
            adapter_options=options(model),
            refine=Refinement(calibration, steps=2, held_out=0.5),
        )
    with pytest.warns(RefineDataWarning, match="holds 64 inputs"):
        compress(
            model, calibration, ratio=0.4, adapter_options=options(model), refine=Refinement(fresh(), steps=2)
        )


def test_the_refine_report_is_saved_in_the_manifest(tmp_path):
    model, calibration = small_transformer(), trajectories(steps=2)
    result = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=options(model),
        refine=Refinement(fresh(), steps=4, eval_every=2),
    )
    save_compressed(result, tmp_path / "out")
    saved = read_manifest(tmp_path / "out")["reports"]["refine"]
    assert saved["steps"] == 4 and saved["kept"] in ("refined", "closed form") and len(saved["history"]) == 2


def test_an_interrupted_refinement_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    model, calibration = small_transformer(), trajectories(steps=2)
    settings = {"eval_every": 10, "lr": 1e-3, "warmup": 3}
    arguments = dict(ratio=0.4, adapter_options=options(model), refine=Refinement(fresh(), 30, **settings))
    whole = quiet_compress(model, calibration, **arguments)

    monkeypatch.setattr(refine_module.Distiller, "loss", interrupting(25))
    with pytest.raises(KeyboardInterrupt):
        quiet_compress(model, calibration, checkpoint_dir=tmp_path / "ckpt", **arguments)
    monkeypatch.undo()
    assert (tmp_path / "ckpt" / "refine.safetensors").is_file()
    resumed = quiet_compress(model, calibration, checkpoint_dir=tmp_path / "ckpt", **arguments)
    assert resumed.reports["refine"]["history"] == whole.reports["refine"]["history"]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    changed = {**arguments, "refine": Refinement(fresh(), 30, **{**settings, "lr": 2e-3})}
    with pytest.raises(ConfigError, match="cannot resume refinement"):
        quiet_compress(model, calibration, checkpoint_dir=tmp_path / "ckpt", **changed)


def test_refinement_same_on_cuda():
    """The model, the calibration and the refinement data on the GPU: the refinement runs there and
    ends within a few percent of the CPU run's held-out distance (Adam's steps round differently)."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    model, calibration, data = small_transformer(), trajectories(steps=2), fresh()
    arguments = dict(ratio=0.4, adapter_options=options(model))
    on_cpu = quiet_compress(model, calibration, refine=Refinement(data, 20, eval_every=10), **arguments)
    on_gpu = quiet_compress(
        copy.deepcopy(model).cuda(),
        [(x.cuda(), t.cuda()) for x, t in calibration],
        refine=Refinement([(x.cuda(), t.cuda()) for x, t in data], 20, eval_every=10),
        **arguments,
    )
    assert next(on_gpu.model.parameters()).device.type == "cuda" and on_gpu.ranks == on_cpu.ranks
    cpu, gpu = (result.reports["refine"]["held_out_refined"] for result in (on_cpu, on_gpu))
    assert gpu == pytest.approx(cpu, rel=0.05)


@pytest.mark.parametrize("cap", [0, 40_000])
def test_the_teacher_cache_holds_at_most_its_cap_and_changes_nothing(cap):
    """The teacher's predictions beyond ``teacher_cache_bytes`` are computed again at every use: the
    memory they hold stays under the cap whatever the number of items, and the refined model is
    the one a whole cache gives."""
    model, calibration = small_transformer(), trajectories(steps=2)
    settings = {"lr": 1e-3, "eval_every": 10, "warmup": 2, "held_out": 0.0}
    runs = {
        bytes_: quiet_compress(
            model,
            calibration,
            ratio=0.4,
            adapter_options=options(model),
            refine=Refinement(fresh(samples=96, batch=8), 30, **settings, teacher_cache_bytes=bytes_),
        )
        for bytes_ in (cap, 2**30)
    }
    teacher = runs[cap].reports["refine"]["teacher"]
    assert teacher["cap_bytes"] == cap and teacher["cached_bytes"] <= cap
    assert teacher["recomputed"] > 0 and teacher["cached_items"] < 12
    whole = runs[2**30].reports["refine"]["teacher"]
    assert whole["recomputed"] == 0 and whole["cached_items"] == 12
    for key, value in runs[2**30].model.state_dict().items():
        assert torch.equal(runs[cap].model.state_dict()[key], value), key


PERIODIC = FieldDescription.uniform(
    channels=("u", "v"), roles=(Role.VELOCITY_X, Role.VELOCITY_Y), spacing=0.1, periodic=True
)


def test_refinement_with_the_family_symmetries_trains_on_transformed_inputs_reproducibly():
    model, calibration = small_transformer(), trajectories(steps=2)
    adapter_options = {**options(model), "field_description": PERIODIC}
    settings = {"lr": 1e-3, "eval_every": 5, "warmup": 1, "symmetries": "ns-incompressible"}
    runs = [
        quiet_compress(
            model,
            calibration,
            ratio=0.4,
            adapter_options=adapter_options,
            refine=Refinement(fresh(), steps=10, **settings),
        )
        for _ in range(2)
    ]
    plain = quiet_compress(
        model,
        calibration,
        ratio=0.4,
        adapter_options=adapter_options,
        refine=Refinement(fresh(), steps=10, **{**settings, "symmetries": None}),
    )
    first, second = (run.reports["refine"]["history"] for run in runs)
    assert first == second  # the draws are seeded by the step
    assert first != plain.reports["refine"]["history"]  # the items were transformed
    assert runs[0].reports["refine"]["options"]["symmetries"] == "ns-incompressible"


def test_symmetries_the_field_does_not_allow_are_refused_before_any_pass(monkeypatch):
    model, calibration = small_transformer(), trajectories(steps=2)
    walls = attrs.evolve(PERIODIC, periodic=(False, False))

    def no_pass(*args, **kw):
        raise AssertionError("a pass over the calibration data ran before the refusal")

    monkeypatch.setattr("safesvd_core.run._engine.run_phases", no_pass)
    refinement = Refinement(fresh(), steps=2, symmetries="ns-incompressible")
    with pytest.raises(ConfigError, match="declares no symmetry on this field"):
        quiet_compress(
            model,
            calibration,
            ratio=0.4,
            adapter_options={**options(model), "field_description": walls},
            refine=refinement,
        )
    with pytest.raises(ConfigError, match="needs the field description"):
        quiet_compress(model, calibration, ratio=0.4, adapter_options=options(model), refine=refinement)
    with pytest.raises(ConfigError, match="must name a PDE family"):
        Refinement(fresh(), steps=2, symmetries="")
