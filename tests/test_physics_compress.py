"""Physics in the core: family-driven Sobolev in the Fisher, λ modes, and paper-style evaluation."""

from __future__ import annotations

import json

import pytest
import torch

from safesvd_core import ConfigError, compress, evaluate, results_json, results_table
from safesvd_zoo import reference


@pytest.fixture(scope="module")
def ns():
    model = reference.load()
    calibration = reference.batches("calibration", batch_size=16)
    options = {
        "block_names": model.block_names(),
        "include": ["blocks.*"],
        "field_description": reference.FIELD,
    }
    return model, calibration, options


def test_family_puts_order_two_sobolev_into_the_fisher(ns):
    model, calibration, options = ns
    with_physics = compress(
        model, calibration, ratio=0.5, family="ns-incompressible", adapter_options=options
    )
    without = compress(model, calibration, ratio=0.5, adapter_options=options)
    (loss,) = with_physics.objective["physics"]
    assert "Sobolev(order=2, p=1" in loss and with_physics.objective["family"] == "ns-incompressible"
    assert with_physics.lam > 0 and with_physics.passes["lambda"] == 1
    name = "blocks.3.output_dense"
    fisher_physics = with_physics.statistics.layer(name)["fisher"]
    fisher_base = without.statistics.layer(name)["fisher"]
    assert not torch.allclose(fisher_physics, fisher_base, rtol=1e-3, atol=0.0)
    assert with_physics.ranks != without.ranks or any(
        not torch.allclose(with_physics.model.get_submodule(n).weight, without.model.get_submodule(n).weight)
        for n, r in with_physics.ranks.items()
        if r is not None
    )


def test_sobolev_order_and_type_are_options(ns):
    model, calibration, options = ns
    result = compress(
        model,
        calibration,
        ratio=0.6,
        family="ns-incompressible",
        sobolev_order=1,
        sobolev_p=2,
        adapter_options=options,
    )
    assert "Sobolev(order=1, p=2" in result.objective["physics"][0]
    with pytest.raises(ConfigError, match="sobolev_order needs a family"):
        compress(model, calibration, ratio=0.6, sobolev_order=1, adapter_options=options)


def test_per_order_lambda_mode_runs_and_differs(ns):
    model, calibration, options = ns
    per_order = compress(
        model,
        calibration,
        ratio=0.5,
        family="ns-incompressible",
        lam_mode="per-order",
        adapter_options=options,
    )
    assert (
        per_order.lam is None
        and per_order.objective["lam_mode"] == "per-order"
        and "lambda" not in per_order.passes
    )
    global_mode = compress(model, calibration, ratio=0.5, family="ns-incompressible", adapter_options=options)
    name = "blocks.0.query"
    assert not torch.allclose(
        per_order.statistics.layer(name)["fisher"],
        global_mode.statistics.layer(name)["fisher"],
        rtol=1e-3,
        atol=0.0,
    )


def test_family_missing_roles_is_a_clear_error(ns):
    model, calibration, options = ns
    from safesvd_core import FieldDescription

    scalar = FieldDescription(
        channels=("a", "b"), roles=("scalar", "scalar"), spacing=(0.1, 0.1), periodic=(True, True)
    )
    with pytest.raises(ConfigError, match="velocity"):
        compress(
            model,
            calibration,
            ratio=0.5,
            family="ns-incompressible",
            adapter_options={**options, "field_description": scalar},
        )
    with pytest.raises(ConfigError, match="needs a field description.*field_description"):
        compress(
            model,
            calibration,
            ratio=0.5,
            family="ns-incompressible",
            adapter_options={k: v for k, v in options.items() if k != "field_description"},
        )


def test_evaluate_prints_a_paper_style_table(ns):
    model, calibration, options = ns
    test = reference.batches("test", batch_size=32)
    rows = []
    for ratio in (0.8, 0.5):
        result = compress(
            model, calibration, ratio=ratio, family="ns-incompressible", adapter_options=options
        )
        report = evaluate(
            model,
            result.model,
            test,
            family="ns-incompressible",
            adapter_options={"field_description": reference.FIELD},
        )
        rows.append(("safe-svd", ratio, report))
    table = results_table(rows)
    print(table)
    header = table.splitlines()[0]
    for column in ("base loss", "sobolev", "divergence-free", "vorticity"):
        assert column in header
    assert len(table.splitlines()) == 4
    base = rows[1][2].metric("base loss")
    with torch.no_grad():
        inputs, targets = reference.split("test")
        expected = float(torch.mean((model(inputs) - targets) ** 2))
    assert base.original == pytest.approx(expected, rel=1e-5)
    assert base.change_percent == pytest.approx(100 * abs(base.compressed - base.original) / base.original)
    assert rows[1][2].metric("base loss").change_percent > rows[0][2].metric("base loss").change_percent * 0.5
    parsed = json.loads(results_json(rows))
    assert parsed[0]["method"] == "safe-svd" and parsed[0]["metrics"][0]["name"] == "base loss"


def test_rollout_reports_each_horizon(ns):
    model, calibration, options = ns
    result = compress(model, calibration, ratio=0.5, adapter_options=options)
    start, trajectory = reference.trajectories(samples=4, steps=3)
    report = evaluate(
        model,
        result.model,
        reference.batches("test", 32),
        family="ns-incompressible",
        adapter_options={"field_description": reference.FIELD},
        rollout=[(start, trajectory)],
        horizons=(1, 3),
    )
    assert set(report.rollout) == {1, 3}
    one, three = report.metric("base loss", 1), report.metric("base loss", 3)
    assert three.original > one.original  # errors grow along the rollout
    with torch.no_grad():
        state = start
        for _ in range(3):
            state = model(state)
        assert three.original == pytest.approx(float(torch.mean((state - trajectory[:, 2]) ** 2)), rel=1e-5)
    assert "horizon" in report.to_markdown()
    with pytest.raises(ConfigError, match="beyond the trajectory"):
        evaluate(
            model, result.model, reference.batches("test", 32), rollout=[(start, trajectory)], horizons=(4,)
        )
