"""The copy-the-input baseline of the reports and figures (computed from the test data, omitted with a
reason where the input holds other fields than the prediction), and the spectra figure's texts: the
kept energy never shown as 100 % when some is dropped, a dense layer's panel, the legend."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from safesvd_cli import figures, report
from safesvd_cli.baseline import LABEL, copy_baseline
from safesvd_core import FieldDescription, registry
from safesvd_core.plugin import make_adapter

FIELD = FieldDescription.uniform(
    channels=("u", "v"), roles=("velocity_x", "velocity_y"), dim=2, spacing=0.25, periodic=True
)


def _close(figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _adapter():
    return make_adapter("generic", {"field_description": FIELD}).for_model(torch.nn.Identity())


def _data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    states = torch.randn(7, 4, 2, 8, 8, generator=generator).cumsum(1)  # 7 trajectories of 4 states
    test = [(states[:4, 0], states[:4, 1]), (states[4:, 0], states[4:, 1])]  # batches of 4 and 3
    rollout = [(states[:5, 0], states[:5, 1:]), (states[5:, 0], states[5:, 1:])]  # 3-step trajectories
    return states, test, rollout


def test_the_copy_baseline_is_the_error_of_predicting_the_current_state():
    states, test, rollout = _data()
    copied = copy_baseline(_adapter(), test, family="ns-incompressible", rollout=rollout, horizons=(1, 3))
    assert copied.omitted is None
    # one step: the MSE of input against target over every sample (batches weighted by their size)
    assert copied.value("base loss") == pytest.approx(
        float(torch.mean((states[:, 0] - states[:, 1]) ** 2)), rel=1e-6
    )
    # along the rollout: the start state against the true state h steps on
    for horizon in (1, 3):
        expected = float(torch.mean((states[:, 0] - states[:, horizon]) ** 2))
        assert copied.value("base loss", horizon) == pytest.approx(expected, rel=1e-6)
    # the family's metrics on the same predictor, as the evaluation computes them
    sobolev = registry("pde_family").create("ns-incompressible").metrics()["sobolev"]
    whole = float(sobolev(states[:, 0], states[:, 1], FIELD))
    parts = [float(sobolev(x, y, FIELD)) * len(x) for x, y in test]
    assert copied.value("sobolev") == pytest.approx(sum(parts) / 7, rel=1e-6)
    assert set(copied.metrics) == {"base loss", *registry("pde_family").create("ns-incompressible").metrics()}
    assert math.isfinite(whole) and copied.value("base loss", 2) is None  # horizon 2 was not asked


def test_the_copy_baseline_is_omitted_with_the_reason_where_the_input_holds_other_fields():
    generator = torch.Generator().manual_seed(0)
    inputs, targets = (
        torch.randn(4, 3, 8, 8, generator=generator),
        torch.randn(4, 2, 8, 8, generator=generator),
    )
    copied = copy_baseline(_adapter(), [(inputs, targets)])
    assert copied.metrics == {} and "(4, 2, 8, 8)" in copied.omitted and "(4, 3, 8, 8)" in copied.omitted
    assert copied.to_dict()["omitted"] == copied.omitted
    assert report.copy_table(copied, ["base loss"]) == f"{LABEL}: {copied.omitted}."


def test_the_report_and_the_printed_table_carry_the_copy_values():
    from safesvd_core import EvaluationReport, MetricChange

    _, test, rollout = _data()
    copied = copy_baseline(_adapter(), test, rollout=rollout, horizons=(1, 2, 3))
    evaluation = EvaluationReport(
        metrics=(MetricChange(name="base loss", original=0.5, compressed=0.6),),
        rollout={h: (MetricChange(name="base loss", original=h, compressed=h + 0.5),) for h in (1, 2, 3)},
    )
    manifest = {
        "ratio": 0.5,
        "recipe": {"name": "safe-svd"},
        "params_before": 10,
        "params_after": 5,
        "layers": [],
    }
    built = report.build(manifest, evaluation, copy=copied, sizes=(7, 7), legend="rows")
    assert json.loads(json.dumps(built))["copy_baseline"]["rollout"]["3"]["base loss"] == copied.value(
        "base loss", 3
    )
    assert built["test_samples"] == {"one_step": 7, "rollout": 7, "legend": "rows"}
    rows = [
        row
        for row in csv.DictReader(io.StringIO(report.to_csv(built)))
        if row["kind"] in ("metric", "rollout")
    ]
    assert [(row["kind"], row["horizon"]) for row in rows] == [
        ("metric", "0"),
        ("rollout", "1"),
        ("rollout", "2"),
        ("rollout", "3"),
    ]
    assert float(rows[0]["copy_input"]) == pytest.approx(copied.value("base loss"))
    assert float(rows[3]["copy_input"]) == pytest.approx(copied.value("base loss", 3))
    text = report.evaluation_table(evaluation, (1, 3), copy=copied)
    assert f"| {LABEL} (next = current) | one step | h = 1 | h = 3 |" in text
    assert (
        f"| base loss | {copied.value('base loss'):.6g} | {copied.value('base loss', 1):.6g} | "
        f"{copied.value('base loss', 3):.6g} |" in text
    )
    # a report without the baseline (an omitted one) leaves the column empty
    plain = report.to_csv(report.build(manifest, evaluation))
    assert all(
        row["copy_input"] == "" for row in csv.DictReader(io.StringIO(plain)) if row["kind"] == "metric"
    )


def test_the_rollout_figure_draws_the_copy_line_in_its_legend():
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    figure = figures.rollout_figure(
        [1, 2, 3],
        [0.1, 0.2, 0.4],
        {"ratio 0.5": [0.12, 0.25, 0.5]},
        "base loss",
        1.0,
        "title",
        baseline={LABEL: [0.5, 0.9, 1.4]},
    )
    try:
        left, right = figure.axes
        assert [text.get_text() for text in left.get_legend().get_texts()] == [LABEL, "original", "ratio 0.5"]
        drawn = {line.get_label(): line.get_ydata().tolist() for line in left.get_lines()}
        assert drawn[LABEL] == [0.5, 0.9, 1.4]
        assert LABEL not in [text.get_text() for text in right.get_legend().get_texts()]
    finally:
        _close(figure)


@pytest.mark.parametrize(
    ("energy", "text"),
    [
        (1.0, "100 %"),
        (0.99999995, ">99.9 %"),
        (0.9995, ">99.9 %"),
        (0.99949, "99.9 %"),
        (0.5, "50.0 %"),
        (0.0, "0.0 %"),
    ],
)
def test_the_kept_energy_is_never_shown_as_100_percent_when_some_is_dropped(energy, text):
    assert figures.energy_text(energy) == text


def test_no_energy_below_one_reads_as_100_percent():
    for energy in np.linspace(0.999, 1.0, 2001)[:-1]:
        assert not figures.energy_text(float(energy)).startswith("100")


def test_the_spectra_figure_shows_a_dense_layer_and_names_both_shadings():
    pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
    layers = [
        ("blocks.0.expand", np.logspace(0, -3, 24), 8, 0.99999995),
        ("head", np.array([3.0]), None, 1.0),
    ]
    figure = figures.spectra_figure(layers, "spectra")
    try:
        kept, dense = figure.axes[:2]
        assert kept.get_title() == "blocks.0.expand\nk = 8 of 24, >99.9 % energy"
        assert dense.get_title() == "head\nkept dense (not factored): all 1"
        (line,) = dense.get_lines()  # the single value is drawn, with a marker, inside the axis
        assert line.get_marker() == "o" and line.get_ydata().tolist() == [1.0]
        assert dense.get_xlim() == (0.5, 1.5)
        labels = [text.get_text() for text in figure.legends[0].get_texts()]
        assert any("kept dense" in label for label in labels) and any(
            "kept: the first k" in label for label in labels
        )
    finally:
        _close(figure)
    only_kept = figures.spectra_figure(layers[:1], "spectra")
    try:  # the legend names only the shadings the figure has
        assert not any("dense" in text.get_text() for text in only_kept.legends[0].get_texts())
    finally:
        _close(only_kept)
