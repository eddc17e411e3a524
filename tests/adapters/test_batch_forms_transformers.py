"""Batches as Poseidon users have them, on the transformers adapter: dicts, ``transformers.BatchFeature``,
dataclasses with Poseidon's field names and a ``DataLoader`` with workers over a Poseidon-style data set
(items of ``pixel_values``, ``labels``, a float ``time`` and a per-channel ``pixel_mask``) all compress
as the plain dicts do; a tuple is refused naming the keys it needs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from safesvd_core import ConfigError, compress, evaluate

from adapter_helpers import optional

optional("transformers")
from transformers import BatchFeature  # noqa: E402

from safesvd_adapters.scot_like import scot_like  # noqa: E402

SIZE, SAMPLES, BATCH = 32, 8, 4
OPTIONS = {"channels": ["rho", "u", "v", "p"], "roles": ["density", "velocity_x", "velocity_y", "pressure"]}


class PoseidonLike(Dataset):
    """Items as Poseidon's ``scOT.problems`` data sets give them: ``time`` a Python float (collated to
    float64), ``pixel_mask`` one flag per channel (the pressure masked)."""

    def __init__(self, count: int = SAMPLES, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(count, 4, SIZE, SIZE, generator=generator)
        self.y = self.x + 0.1 * torch.randn(count, 4, SIZE, SIZE, generator=generator)
        self.t = torch.rand(count, generator=generator).tolist()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return {
            "pixel_values": self.x[index],
            "labels": self.y[index],
            "time": self.t[index],
            "pixel_mask": torch.tensor([False, False, False, True]),
        }


@dataclasses.dataclass
class PoseidonBatch:
    pixel_values: torch.Tensor
    labels: torch.Tensor
    time: torch.Tensor
    pixel_mask: torch.Tensor | None = None


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = scot_like("T", embed_dim=12, image_size=SIZE, window_size=4, depths=(1, 1, 1, 1))
    with torch.no_grad():
        for module in net.modules():
            if type(module).__name__ == "ConditionalLayerNorm":  # scales about 1, as a trained model's
                module.weight.bias.fill_(1.0)
    return net.eval()


def dicts() -> list[dict]:
    return list(DataLoader(PoseidonLike(), batch_size=BATCH))


def run(model, data):
    return compress(model, data, ratio=0.5, recipe="svd-llm", adapter="transformers", adapter_options=OPTIONS)


@pytest.fixture(scope="module")
def reference(model):
    return run(model, dicts())


def assert_same(result, reference) -> None:
    assert result.ranks == reference.ranks
    mine, theirs = result.model.state_dict(), reference.model.state_dict()
    for key, value in theirs.items():
        torch.testing.assert_close(mine[key], value, rtol=0, atol=0, msg=key)


FORMS = {
    "BatchFeature": lambda batch: BatchFeature(batch),
    "dataclass": lambda batch: PoseidonBatch(**batch),
}


def test_the_dicts_are_poseidons_collated_layout(reference):
    batch = dicts()[0]
    assert batch["time"].dtype == torch.float64 and batch["pixel_mask"].shape == (BATCH, 4)
    assert reference.met_budget


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_compresses_and_evaluates_as_the_dicts_do(form, model, reference):
    data = [FORMS[form](batch) for batch in dicts()]
    assert_same(run(model, data), reference)
    report = evaluate(model, reference.model, data, adapter="transformers", adapter_options=OPTIONS)
    plain = evaluate(model, reference.model, dicts(), adapter="transformers", adapter_options=OPTIONS)
    assert report.metric("base loss").compressed == plain.metric("base loss").compressed > 0.0


def test_a_dataloader_with_workers(model, reference):
    loader = DataLoader(PoseidonLike(), batch_size=BATCH, num_workers=2)
    assert_same(run(model, loader), reference)
    report = evaluate(
        model, reference.model, loader, adapter="transformers", adapter_options=OPTIONS
    )  # read again
    assert report.metric("base loss").original != report.metric("base loss").compressed


def test_a_tuple_or_a_dataclass_without_labels_is_refused_naming_the_keys(model):
    batch = dicts()[0]
    with pytest.raises(ConfigError, match="expects dict batches with keys pixel_values, labels, got tuple"):
        run(model, [(batch["pixel_values"], batch["labels"])])

    @dataclasses.dataclass
    class Unlabelled:
        pixel_values: torch.Tensor
        time: torch.Tensor

    with pytest.raises(
        ConfigError, match=r"the batch has no 'labels'; its keys are \['pixel_values', 'time'\]"
    ):
        run(model, [Unlabelled(batch["pixel_values"], batch["time"])])
