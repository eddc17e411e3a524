"""scot-ns (a SmallScOT, HF transformers): loads, reproduces its card, beats copy by ≥ 3×."""

from __future__ import annotations

import torch

from conftest import check_recorded, optional

optional("transformers")


def test_scot_ns_reproduces_its_card_and_beats_copy_by_three():
    check_recorded("scot-ns")


def test_scot_ns_batches_follow_the_adapter_convention():
    from safesvd_zoo import models

    batch = next(models.batches("scot-ns", "test", batch_size=4))
    assert set(batch) == {"pixel_values", "labels", "time", "domain"}
    assert batch["pixel_values"].shape == (4, 2, 32, 32)
    prediction = models.spec("scot-ns").adapter().predict(models.load("scot-ns"), batch)
    assert prediction.shape == batch["labels"].shape
    masked = dict(
        batch, pixel_mask=torch.tensor([[False, True]] * 4)
    )  # (B, C), as Poseidon's loaders give it
    prediction = models.spec("scot-ns").adapter().predict(models.load("scot-ns"), masked)
    assert torch.equal(prediction[:, 1], batch["labels"][:, 1]) and not torch.equal(
        prediction[:, 0], batch["labels"][:, 0]
    )
