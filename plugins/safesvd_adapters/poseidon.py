"""Poseidon's conventions for its loss: channel groups, pixel masks and a ScOT config's settings.

Poseidon's ``ScOT`` trains with, per channel group ``[a, b)`` of its config's
``channel_slice_list_normalized_loss``, ``mean|pred − t|^p / (mean|t|^p + 1e-10)``, then the mean
over *every* group; ``p`` is the config's ``p`` (1 or 2). Entries where the batch's ``pixel_mask``
is true take the labels' values first, so they carry no error: a group whose channels are all
masked adds a zero term and still counts in the mean. A config without groups (``None``) trains
with the plain ``l1``/``mse``. Nothing here imports ``transformers`` or Poseidon.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError

from .base_losses import grouped_relative, l1, mse

#: The config field that holds the loss's channel boundaries in a ScOT config.
GROUPS_FIELD = "channel_slice_list_normalized_loss"


def boundaries(value: Any) -> tuple[int, ...] | None:
    """Channel boundaries of the groups, e.g. ``(0, 1, 3, 4)`` for [ρ | u, v | p]; None stays None."""
    if value is None:
        return None
    bounds = tuple(value)
    if (
        len(bounds) < 2
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        or bounds[0] != 0
        or any(b >= c for b, c in pairwise(bounds))
    ):
        raise ConfigError(
            "channel_groups must be increasing channel boundaries starting at 0, "
            f"e.g. (0, 1, 3, 4); got {value!r}"
        )
    return bounds


def bounded_groups(bounds: Sequence[int]) -> list[list[int]]:
    """``(0, 1, 3, 4)`` → ``[[0], [1, 2], [3]]``."""
    return [list(range(a, b)) for a, b in pairwise(bounds)]


def config_loss(model: nn.Module) -> dict[str, Any] | None:
    """``{"groups": bounds or None, "p": 1 | 2}`` from ``model.config`` when it is a ScOT config (it
    has ``channel_slice_list_normalized_loss``), else None."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, GROUPS_FIELD):
        return None
    try:
        groups = boundaries(getattr(config, GROUPS_FIELD))
    except ConfigError as error:
        raise ConfigError(f"the model's config has an unusable {GROUPS_FIELD}: {error}") from None
    p = getattr(config, "p", 1)
    if p not in (1, 2):
        raise ConfigError(f"the model's config has p={p!r}; ScOT's loss takes p 1 (L1) or 2 (MSE)")
    return {"groups": groups, "p": p}


def expand_mask(pixel_mask: Tensor, like: Tensor) -> Tensor:
    """Poseidon's ``pixel_mask`` (true: no data there) as a boolean tensor of ``like``'s shape: it is
    ``(batch, channels)``, one flag per channel as Poseidon's data loaders give it, or shaped like
    the field, one flag per entry."""
    mask = torch.as_tensor(pixel_mask, device=like.device).bool()
    if mask.shape == like.shape:
        return mask
    if mask.ndim == 2 and mask.shape == like.shape[:2]:
        return mask.reshape(*mask.shape, *(1,) * (like.ndim - 2)).expand(like.shape)
    raise ConfigError(
        f"pixel_mask must be (batch, channels) = {tuple(like.shape[:2])} or shaped like the labels "
        f"{tuple(like.shape)}; got {tuple(mask.shape)}"
    )


def with_known(prediction: Tensor, mask: Tensor | None, labels: Tensor | None) -> Tensor:
    """``prediction`` with the masked entries replaced by the labels' values (Poseidon's ``pixel_mask``)."""
    if mask is None:
        return prediction
    if labels is None:
        raise ConfigError("pixel_mask needs labels (the masked entries take the labels' values)")
    return torch.where(expand_mask(mask, prediction), labels.type_as(prediction), prediction)


def scot_loss(prediction: Tensor, labels: Tensor, bounds: Sequence[int] | None, p: int = 1) -> Tensor:
    """ScOT's training loss of an (already masked) prediction: grouped relative Lp over ``bounds``,
    or plain ``l1``/``mse`` when the config has no groups."""
    if bounds is None:
        return (l1 if p == 1 else mse)(prediction, labels)
    return grouped_relative(prediction, labels, bounded_groups(bounds), p=p)
