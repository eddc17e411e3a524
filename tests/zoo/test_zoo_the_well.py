"""avit-multiphysics (the_well AViT on NS, shallow water, wave): loads, reproduces its card, beats
copy by ≥ 3×; batches are channels-last, one domain each."""

from __future__ import annotations

from conftest import check_recorded, optional

optional("the_well.benchmark.models.avit")


def test_avit_reproduces_its_card_and_beats_copy_by_three():
    check_recorded("avit-multiphysics")


def test_avit_batches_are_channels_last_and_one_domain_each():
    from safesvd_zoo import models

    domains = [batch[2] for batch in models.batches("avit-multiphysics", "calibration", batch_size=8)]
    assert domains == ["navier_stokes"] * 2 + ["shallow_water"] * 2 + ["wave"] * 2
    first = next(models.batches("avit-multiphysics", "calibration"))
    assert first[0].shape == (8, 64, 64, 5)
