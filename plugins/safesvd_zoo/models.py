"""The reference PFM zoo: small operators trained through the framework adapters.

Each model ships as ``weights/<name>.safetensors`` with a JSON card (configuration, data splits
and seeds, training settings, torch version, seconds, test and copy-the-input losses), written by
``benchmarks/train_zoo.py``. Its data come from the seeded generators of :mod:`safesvd_data`, so
splits are regenerated on the fly, never downloaded. The optional frameworks (``transformers``,
``timm``, ``the_well``) are imported only when a model of theirs is built, with the adapters'
missing-extra error.

The models learn the increment: they are ``input + operator(input)`` wrappers
(:class:`ResidualScOT`, :class:`ResidualField`). Their loss is the relative MSE
(:func:`relative_mse`). Families with different channels share one channel layout, a fixed
superset of slots (``ZooModel.channels``); a family fills its own slots, the others are zero in
input and target, and the loss ignores them (``Split.mask``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from safesvd_core.plugin import ConfigError, ModelAdapter
from safesvd_data import GENERATORS

from .shipped import load_weights, read_card

#: Split name → seed offset; a family's seed is ``offset + 100 × family index``.
SEEDS = {"train": 0, "calibration": 1, "test": 2}


@attrs.frozen(kw_only=True)
class Family:
    """One PDE family: a :data:`safesvd_data.GENERATORS` name, its options, and the slots of the
    model's channel layout that its channels fill (in the generator's channel order)."""

    generator: str = attrs.field(validator=attrs.validators.in_(tuple(GENERATORS)))
    slots: tuple[int, ...] = attrs.field(converter=tuple)
    options: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=lambda v: tuple(dict(v).items()))

    def pairs(self, samples: int, seed: int, grid: int):
        """The generator's :class:`~safesvd_data.PairSet` of ``samples`` pairs on a ``grid``² grid."""
        return GENERATORS[self.generator](
            samples=samples, size=grid, seed=seed, **dict(self.options)
        ).generate()

    def to_dict(self) -> dict[str, Any]:
        return {"generator": self.generator, "slots": list(self.slots), "options": dict(self.options)}


@attrs.frozen(kw_only=True, eq=False)
class Split:
    """Samples in the model's channel layout: ``inputs``/``targets`` ``(N, C, H, W)``, ``mask``
    ``(N, C)`` (the channels a sample's family has), lead ``time`` ``(N,)`` and ``domains``."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    time: Tensor
    domains: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.inputs)


@attrs.frozen(kw_only=True, eq=False)
class ZooModel:
    """A zoo entry: framework (adapter name), model configuration, channel layout and data on a
    ``grid``² grid; ``samples[split]`` pairs per family and lead time."""

    name: str
    framework: str = attrs.field(validator=attrs.validators.in_(("transformers", "timm", "the_well")))
    config: Mapping[str, Any] = attrs.field(converter=lambda v: dict(v))
    channels: tuple[str, ...] = attrs.field(converter=tuple)
    families: tuple[Family, ...] = attrs.field(converter=tuple)
    lead_times: tuple[float, ...] = attrs.field(default=(), converter=tuple)
    samples: Mapping[str, int] = attrs.field(converter=lambda v: dict(v))
    grid: int = 32

    def split(self, name: str) -> Split:
        """The ``"train"``, ``"calibration"`` or ``"test"`` split."""
        if name not in SEEDS:
            raise ConfigError(f"split must be one of {', '.join(SEEDS)}, got {name!r}")
        parts = []
        for index, family in enumerate(self.families):
            for step, lead in enumerate(self.lead_times or (None,)):
                seed = SEEDS[name] + 100 * index + 10 * step
                member = (
                    family
                    if lead is None
                    else attrs.evolve(family, options={**dict(family.options), "lead_time": lead})
                )
                pairs = member.pairs(self.samples[name], seed, self.grid)
                parts.append((family, pairs))
        inputs, targets, masks, times, domains = [], [], [], [], []
        for family, pairs in parts:
            shape = (len(pairs), len(self.channels), self.grid, self.grid)
            x, y, mask = (
                torch.zeros(shape),
                torch.zeros(shape),
                torch.zeros(len(pairs), len(self.channels), dtype=torch.bool),
            )
            x[:, list(family.slots)], y[:, list(family.slots)], mask[:, list(family.slots)] = (
                pairs.inputs,
                pairs.targets,
                True,
            )
            inputs.append(x), targets.append(y), masks.append(mask)
            times.append(torch.full((len(pairs),), pairs.lead_time))
            domains += [pairs.domain] * len(pairs)
        return Split(
            inputs=torch.cat(inputs),
            targets=torch.cat(targets),
            mask=torch.cat(masks),
            time=torch.cat(times),
            domains=tuple(domains),
        )

    def build(self) -> nn.Module:
        """A randomly initialised model (seed torch first for a reproducible one)."""
        return _BUILDERS[self.framework](self)

    def adapter(self) -> ModelAdapter:
        """The framework's safesvd adapter for this model, with :func:`relative_mse` as its loss."""
        from safesvd_adapters.hf import TransformersAdapter
        from safesvd_adapters.timm_vit import TimmAdapter
        from safesvd_adapters.well_avit import WellAdapter

        adapters = {"transformers": TransformersAdapter, "timm": TimmAdapter, "the_well": WellAdapter}
        return adapters[self.framework](loss=relative_mse)

    def batch(self, split: Split, index: Tensor | slice, *, domain: str | None = None) -> Any:
        """Samples ``index`` of ``split`` in the adapter's batch convention."""
        x, y = split.inputs[index], split.targets[index]
        if self.framework == "transformers":
            batch = {"pixel_values": x, "labels": y, "time": split.time[index]}
            return batch if domain is None else {**batch, "domain": domain}
        if self.framework == "the_well":
            x, y = x.movedim(1, -1), y.movedim(1, -1)
        return (x, y) if domain is None else (x, y, domain)

    def loss(self, model: nn.Module, split: Split, index: Tensor | slice) -> Tensor:
        """:func:`relative_mse` of the model on samples ``index``, predicted through the adapter."""
        adapter, batch = self.adapter(), self.batch(split, index)
        return relative_mse(adapter.predict(model, batch), adapter.reference(batch), split.mask[index])


def relative_mse(prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over samples and their active channels of ``‖prediction − target‖² / ‖target‖²`` (over the grid).

    ``mask`` ``(N, C)`` marks the active channels; by default those whose target is not all zero
    (so it serves as an adapter's ``loss`` callable on zero-padded batches)."""
    norm = target.pow(2).flatten(2).sum(-1)
    error = (prediction - target).pow(2).flatten(2).sum(-1) / norm.clamp_min(1e-12)
    return error[norm > 0 if mask is None else mask].mean()


class ResidualScOT(nn.Module):
    """``pixel_values + operator(...).output``, keeping Poseidon's calling convention and output."""

    def __init__(self, operator: nn.Module) -> None:
        super().__init__()
        self.operator = operator

    def forward(
        self,
        pixel_values: Tensor,
        time: Tensor | None = None,
        pixel_mask: Tensor | None = None,
        labels: Tensor | None = None,
    ):
        from safesvd_adapters.hf_models import OperatorOutput
        from safesvd_adapters.poseidon import with_known

        prediction = pixel_values + self.operator(pixel_values=pixel_values, time=time).output
        return OperatorOutput(output=with_known(prediction, pixel_mask, labels))


class ResidualField(nn.Module):
    """``x + operator(x)`` for operators called on one field tensor (timm, the_well)."""

    def __init__(self, operator: nn.Module) -> None:
        super().__init__()
        self.operator = operator

    def forward(self, x: Tensor) -> Tensor:
        return x + self.operator(x)


def _scot(spec: ZooModel) -> nn.Module:
    from safesvd_adapters.framework import require

    require("transformers", adapter="transformers", extra="transformers")
    from safesvd_adapters.hf_models import small_scot

    return ResidualScOT(small_scot(channels=len(spec.channels), size=spec.grid, **spec.config))


def _timm(spec: ZooModel) -> nn.Module:
    from safesvd_adapters.timm_vit import TimmViTOperator

    channels = len(spec.channels)
    return ResidualField(
        TimmViTOperator(channels=channels, out_channels=channels, size=spec.grid, **spec.config)
    )


def _avit(spec: ZooModel) -> nn.Module:
    from safesvd_adapters.well_avit import small_avit

    return ResidualField(small_avit(fields=len(spec.channels), steps=1, size=spec.grid, **spec.config))


_BUILDERS: dict[str, Callable[[ZooModel], nn.Module]] = {
    "transformers": _scot,
    "timm": _timm,
    "the_well": _avit,
}

_NS = Family(generator="navier_stokes", slots=(0, 1))
#: The zoo, by name.
MODELS: dict[str, ZooModel] = {
    spec.name: spec
    for spec in (
        ZooModel(
            name="scot-ns",
            framework="transformers",
            channels=("u", "v"),
            families=(_NS,),
            lead_times=(0.5, 1.0),
            config={"patch": 2, "embed_dim": 32, "depths": (2, 2), "heads": (2, 4), "window": 4},
            samples={"train": 256, "calibration": 16, "test": 32},
        ),
        ZooModel(
            name="avit-multiphysics",
            framework="the_well",
            channels=("u", "v", "h", "w", "w_t"),
            families=(
                _NS,
                Family(generator="shallow_water", slots=(2, 0, 1)),
                Family(generator="wave", slots=(3, 4), options={"speed": 0.05, "lead_time": 0.5}),
            ),
            config={"width": 96, "heads": 4, "blocks": 4},
            samples={"train": 192, "calibration": 16, "test": 32},
            grid=64,
        ),
        ZooModel(
            name="vit-timm",
            framework="timm",
            channels=("u", "v"),
            families=(_NS,),
            config={"patch": 4, "width": 64, "depth": 4, "heads": 4},
            samples={"train": 512, "calibration": 16, "test": 32},
        ),
    )
}


def spec(name: str) -> ZooModel:
    """The zoo entry ``name``."""
    if name not in MODELS:
        raise ConfigError(f"unknown zoo model {name!r}; models are {', '.join(MODELS)}")
    return MODELS[name]


def card(name: str) -> dict[str, Any]:
    """The JSON card of model ``name``'s shipped weights (``ns2d-transformer`` included)."""
    from . import reference

    if name == reference.NAME:
        return reference.card()
    return read_card(spec(name).name, f"benchmarks/train_zoo.py {name}")


def load(name: str) -> nn.Module:
    """The trained model ``name``, in eval mode (needs its framework's extra; ``ns2d-transformer`` too)."""
    from . import reference

    if name == reference.NAME:
        return reference.load()
    entry = spec(name)
    card(name)
    return load_weights(entry.build(), name)


def test_split(name: str) -> Split:
    """The test split of model ``name``."""
    return spec(name).split("test")


def batches(name: str, split: str = "calibration", batch_size: int = 8) -> Iterator[Any]:
    """A split in the adapter's batch convention, one domain per batch, with its domain label."""
    entry = spec(name)
    return domain_batches(entry, entry.split(split), batch_size)


def domain_batches(entry: ZooModel, data: Split, batch_size: int = 8) -> Iterator[Any]:
    """``data`` (a split of ``entry``, e.g. one drawn with other sample counts) in the adapter's batch
    convention, one domain per batch, with its domain label."""
    for domain in dict.fromkeys(data.domains):
        rows = torch.tensor([i for i, d in enumerate(data.domains) if d == domain])
        for start in range(0, len(rows), batch_size):
            yield entry.batch(data, rows[start : start + batch_size], domain=domain)


def test_loss(name: str, model: nn.Module, data: Split | None = None) -> tuple[float, float]:
    """``(model, copy-the-input)`` :func:`relative_mse` on the test split (in float64 sums, batches of 16)."""
    entry = spec(name)
    data = entry.split("test") if data is None else data
    total = copy = 0.0
    with torch.no_grad():
        for start in range(0, len(data), 16):
            index = slice(start, start + 16)
            count = int(data.mask[index].sum())
            total += float(entry.loss(model, data, index)) * count
            copy += float(relative_mse(data.inputs[index], data.targets[index], data.mask[index])) * count
    count = int(data.mask.sum())
    return total / count, copy / count


test_loss.__test__ = False  # not a pytest test
test_split.__test__ = False

__all__ = [
    "MODELS",
    "Family",
    "ResidualField",
    "ResidualScOT",
    "Split",
    "ZooModel",
    "batches",
    "card",
    "domain_batches",
    "load",
    "relative_mse",
    "spec",
    "test_loss",
    "test_split",
]
