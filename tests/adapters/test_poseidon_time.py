"""Poseidon's rollout time convention (``rollout_time="total"``) against safesvd's (``"step"``).

Poseidon's ``ar_steps=K`` rollout feeds every step ``time / K``, where the item's ``time`` is the lead
time of the whole rollout; safesvd's rollouts feed every step the item's ``time`` as a per-step lead
time. The two must give the same calls when the times are converted (``T`` total = ``T / K`` per step),
and Poseidon's own loop, written out here, must be what ``rollout_time="total"`` runs."""

from __future__ import annotations

import pytest
import torch

from safesvd_core import ConfigError, compress, evaluate, registry

from adapter_helpers import optional

optional("transformers")
from safesvd_adapters.scot_like import scot_like  # noqa: E402

STEPS = 3


@pytest.fixture(scope="module")
def model():
    """A tiny time-conditioned ScOT stand-in that reads 5 channels and predicts 4 (a constant fifth
    input, as Poseidon's forcing, is carried over), with norms that depend strongly on the time."""
    torch.manual_seed(0)
    net = scot_like(
        "T",
        embed_dim=12,
        image_size=32,
        window_size=4,
        depths=(1, 1, 1, 1),
        num_channels=5,
        num_out_channels=4,
        channel_slice_list_normalized_loss=(0, 1, 3, 4),
    )
    with torch.no_grad():
        for module in net.modules():
            if (
                type(module).__name__ == "ConditionalLayerNorm"
            ):  # trained-like scales: about 1, time-dependent
                module.weight.bias.fill_(1.0)
                module.weight.weight.normal_(0.0, 1.0)
                module.bias.weight.normal_(0.0, 0.5)
    return net.eval()


def item(total_time: float = 0.6, seed: int = 3) -> dict[str, torch.Tensor]:
    """A rollout item: ``STEPS`` labels, the masked pressure (channel 3) the same at every step, as in
    Poseidon's incompressible data sets; ``time`` is the rollout's total lead time."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randn(2, STEPS, 4, 32, 32, generator=generator)
    labels[:, :, 3] = 0.25
    return {
        "pixel_values": torch.randn(2, 5, 32, 32, generator=generator),
        "labels": labels,
        "time": torch.full((2,), total_time, dtype=torch.float64),
        "pixel_mask": torch.tensor([[False, False, False, True]] * 2),
    }


def one_step(seed: int) -> dict[str, torch.Tensor]:
    """A one-step batch: the first state of an item as its labels."""
    data = item(seed=seed)
    return {**data, "labels": data["labels"][:, 0]}


def adapter(rollout_time: str, model):
    """The transformers adapter as compress and evaluate use it (with the model's ScOT loss)."""
    return registry("model_adapter").create("transformers", rollout_time=rollout_time).for_model(model)


def rolled(model, ad, sequence) -> list[torch.Tensor]:
    """Every step's prediction, as safesvd's rollouts (calibration, evaluation) run them."""
    state, states = None, []
    with torch.no_grad():
        for step in range(1, STEPS + 1):
            state = ad.predict(model, ad.rollout_step(sequence, state, step))
            states.append(state)
    return states


def poseidon_loop(model, sequence) -> list[torch.Tensor]:
    """Poseidon's ``ar_steps=K`` rollout written out: every call gets ``time / K``, the labels and the
    mask; the prediction, with the channels it does not predict appended, is the next input."""
    inputs, states = sequence["pixel_values"], []
    with torch.no_grad():
        for _ in range(STEPS):
            output = model(
                pixel_values=inputs,
                time=sequence["time"] / STEPS,
                pixel_mask=sequence["pixel_mask"],
                labels=sequence["labels"][:, -1],
            ).output
            states.append(output)
            inputs = torch.cat([output, inputs[:, output.shape[1] :]], dim=1)
    return states


def test_the_time_matters_so_the_comparisons_below_can_fail(model):
    data = item()
    with torch.no_grad():
        whole = model(pixel_values=data["pixel_values"], time=data["time"]).output
        third = model(pixel_values=data["pixel_values"], time=data["time"] / STEPS).output
    assert (whole - third).abs().mean() > 0.05 * whole.abs().mean()


def test_total_time_runs_poseidons_own_rollout_loop(model):
    data = item()
    total = rolled(model, adapter("total", model), data)
    for ours, theirs in zip(total, poseidon_loop(model, data), strict=True):
        torch.testing.assert_close(ours, theirs)
    per_step = rolled(
        model, adapter("step", model), data
    )  # the same item read as a per-step time: another rollout
    assert (per_step[-1] - total[-1]).abs().mean() > 0.05 * total[-1].abs().mean()


def test_total_time_equals_per_step_time_divided_by_the_steps(model):
    data = item()
    converted = {**data, "time": data["time"] / STEPS}
    for total, step in zip(
        rolled(model, adapter("total", model), data),
        rolled(model, adapter("step", model), converted),
        strict=True,
    ):
        torch.testing.assert_close(total, step, rtol=0, atol=0)
    total_ad, step_ad = adapter("total", model), adapter("step", model)
    one = one_step(3)  # a one-step batch: K = 1, nothing to divide
    with torch.no_grad():
        assert torch.equal(total_ad.predict(model, one), step_ad.predict(model, one))
    first = total_ad.rollout_step(data, None, 1)
    assert torch.equal(first["time"], data["time"] / STEPS) and torch.equal(
        data["time"], item()["time"]
    )  # not in place


def test_evaluate_and_compress_agree_across_the_two_conventions(model):
    data, converted = item(), {**item(), "time": item()["time"] / STEPS}
    reports = [
        evaluate(
            model,
            model,
            [one_step(9)],
            adapter=registry("model_adapter").create("transformers", rollout_time=kind),
            rollout=[sequence],
            horizons=(1, STEPS),
        )
        for kind, sequence in (("total", data), ("step", converted))
    ]
    for horizon in (1, STEPS):
        assert (
            reports[0].metric("base loss", horizon).original
            == reports[1].metric("base loss", horizon).original
        )
    assert reports[0].metric("base loss", STEPS).original > 0.0
    results = [
        compress(
            model,
            [sequence],
            ratio=0.7,
            recipe="svd-llm",
            adapter=registry("model_adapter").create("transformers", rollout_time=kind),
        )
        for kind, sequence in (("total", data), ("step", converted))
    ]
    assert results[0].ranks == results[1].ranks
    with torch.no_grad():
        torch.testing.assert_close(
            results[0].model(**one_step(11)).output, results[1].model(**one_step(11)).output
        )
    assert results[0].configs["adapter"]["options"]["rollout_time"] == "total"  # saved with the weights


def test_rollout_time_takes_step_or_total_only():
    with pytest.raises(ConfigError, match="rollout_time.*'step', 'total'"):
        registry("model_adapter").create("transformers", rollout_time="per-step")


def test_a_scot_model_with_rollout_time_unset_is_warned_at_its_first_rollout_step(model):
    import warnings

    from safesvd_adapters.hf_models import small_vit

    unset = registry("model_adapter").create("transformers").for_model(model)
    with pytest.warns(
        UserWarning, match="rollout_time unset: .*'total'\\): set the adapter option rollout_time"
    ):
        first = unset.rollout_step(item(), None, 1)
    assert torch.equal(first["time"], adapter("step", model).rollout_step(item(), None, 1)["time"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once set, either way, no word
        for kind in ("step", "total"):
            adapter(kind, model).rollout_step(item(), None, 1)
    # a model that is not a ScOT has no convention to guess: "step", settled by for_model
    assert registry("model_adapter").create("transformers").for_model(small_vit()).rollout_time == "step"
