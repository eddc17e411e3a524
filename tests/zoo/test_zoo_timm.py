"""vit-timm (timm VisionTransformer): loads, reproduces its card, beats copy by ≥ 3×."""

from __future__ import annotations

from conftest import check_recorded, optional

optional("timm")


def test_vit_timm_reproduces_its_card_and_beats_copy_by_three():
    check_recorded("vit-timm")
