"""Batches as users have them, on the generic adapter: tuples, lists, namedtuples, dicts and dataclasses
give the same compression as ``(input, target)`` tuples; a ``DataLoader`` with workers works as
calibration, evaluation and refinement data (read once per call, its shared-memory batches copied out
so that many batches do not exhaust the file descriptors); other forms are refused naming the type."""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import textwrap
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from safesvd_core import ConfigError, Refinement, compress, evaluate
from safesvd_core.plugin import plain_item

WIDTH, SAMPLES, BATCH = 8, 32, 8


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(WIDTH, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, WIDTH)
    ).eval()


def pairs(count: int = SAMPLES, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, WIDTH, generator=generator)
    return x, torch.tanh(x) + 0.1 * torch.randn(count, WIDTH, generator=generator)


@dataclasses.dataclass
class Pair:
    input: torch.Tensor
    target: torch.Tensor
    domain: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenPair:
    input: torch.Tensor
    target: torch.Tensor


@dataclasses.dataclass
class Misnamed:
    x: torch.Tensor
    y: torch.Tensor


NamedPair = collections.namedtuple("NamedPair", "input target")


class Samples(Dataset):
    """``(input, target)`` samples, or dicts of them (``as_dict``); module-level so workers can use it."""

    def __init__(self, as_dict: bool = False, count: int = SAMPLES, seed: int = 1) -> None:
        self.x, self.y = pairs(count, seed)
        self.as_dict = as_dict

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return (
            {"input": self.x[index], "target": self.y[index]}
            if self.as_dict
            else (self.x[index], self.y[index])
        )


def to_pair(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> Pair:
    """A collate_fn that gives a dataclass batch."""
    return Pair(torch.stack([x for x, _ in samples]), torch.stack([y for _, y in samples]))


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = pairs()
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, SAMPLES, BATCH)]


FORMS = {
    "tuple": lambda x, y: (x, y),
    "list": lambda x, y: [x, y],
    "tuple with a domain": lambda x, y: (x, y, "ns"),
    "namedtuple": NamedPair,
    "dict": lambda x, y: {"input": x, "target": y},
    "dict with a domain": lambda x, y: {"input": x, "target": y, "domain": "ns"},
    "dataclass": Pair,
    "dataclass with a domain": lambda x, y: Pair(x, y, "ns"),
    "frozen dataclass with slots": FrozenPair,
}


def weights(result) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in result.model.state_dict().items()}


def assert_same(result, reference) -> None:
    assert result.ranks == reference.ranks and result.params_after == reference.params_after
    for key, value in weights(reference).items():
        torch.testing.assert_close(weights(result)[key], value, rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def reference():
    return compress(model(), batches(), ratio=0.5, recipe="svd-llm")


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_compresses_and_evaluates_as_the_tuple_does(form, reference):
    data = [FORMS[form](x, y) for x, y in batches()]
    result = compress(model(), data, ratio=0.5, recipe="svd-llm")
    assert_same(result, reference)
    plain = evaluate(model(), reference.model, batches())
    report = evaluate(model(), result.model, data)
    assert report.metric("base loss").compressed == plain.metric("base loss").compressed > 0.0
    assert report.metric("base loss").compressed != report.metric("base loss").original  # it was compressed


def test_a_dataclass_is_read_as_the_dict_of_its_fields_without_copying():
    x, y = pairs(4)
    item = plain_item(Pair(x, y))
    assert isinstance(item, dict) and list(item) == ["input", "target", "domain"]
    assert item["input"] is x and item["target"] is y and item["domain"] is None
    ordinary = (x, {"a": y})
    assert plain_item(ordinary) is ordinary  # nothing to change: the same object


def test_a_dataclass_with_other_fields_or_an_unknown_type_is_refused_naming_it():
    x, y = pairs(4)
    with pytest.raises(
        ConfigError,
        match=r"needs the keys 'input' and 'target'; missing \['input', 'target'\], "
        r"its keys are \['x', 'y'\]",
    ):
        compress(model(), [Misnamed(x, y)], ratio=0.5, recipe="svd-llm")
    with pytest.raises(
        ConfigError, match="expects \\(input, target\\) tuples or .* dicts, got SimpleNamespace"
    ):
        compress(model(), [types.SimpleNamespace(input=x, target=y)], ratio=0.5, recipe="svd-llm")
    with pytest.raises(ConfigError, match="got list"):
        compress(model(), [[x, y, "ns", "extra"]], ratio=0.5, recipe="svd-llm")


def test_nan_in_a_dataclass_batch_is_found_by_its_field_name():
    x, y = pairs(4)
    y[0, 0] = float("nan")
    with pytest.raises(Exception, match="calibration item 0: its target holds nan"):
        compress(model(), [Pair(x, y)], ratio=0.5, recipe="svd-llm")


@pytest.mark.parametrize("as_dict", [False, True], ids=["tuples", "dicts"])
def test_a_dataloader_with_workers_is_calibration_evaluation_and_refinement_data(as_dict, reference):
    loader = DataLoader(Samples(as_dict), batch_size=BATCH, num_workers=2)
    first = next(iter(loader))
    assert (first["input"] if as_dict else first[0]).is_shared()  # the workers' batches come in shared memory
    result = compress(model(), loader, ratio=0.5, recipe="svd-llm")
    assert_same(result, reference)
    report = evaluate(model(), result.model, loader)  # the same loader, read again
    assert (
        report.metric("base loss").compressed
        == evaluate(model(), reference.model, batches()).metric("base loss").compressed
    )
    fresh = DataLoader(Samples(as_dict, count=64, seed=7), batch_size=BATCH, num_workers=2)
    with pytest.warns(Warning):  # few refinement inputs: RefineDataWarning, the run goes on
        refined = compress(
            model(),
            loader,
            ratio=0.5,
            recipe="svd-llm",
            refine=Refinement(fresh, steps=4, eval_every=2),
        )
    assert refined.reports["refine"]["kept"] in ("refined", "closed form")


def test_a_shuffling_dataloader_is_read_once_per_call():
    """Every pass of a compression sees the same batches: the loader's one shuffle, not one per pass."""

    def loader():
        return DataLoader(
            Samples(),
            batch_size=BATCH,
            shuffle=True,
            num_workers=2,
            generator=torch.Generator().manual_seed(5),
        )

    once = list(loader())
    assert not torch.equal(once[0][0], batches()[0][0])  # shuffled
    assert_same(
        compress(model(), loader(), ratio=0.5, recipe="svd-llm"),
        compress(model(), once, ratio=0.5, recipe="svd-llm"),
    )


def test_a_dataloader_with_a_collate_fn_giving_dataclasses(reference):
    loader = DataLoader(Samples(), batch_size=BATCH, num_workers=2, collate_fn=to_pair)
    assert isinstance(next(iter(loader)), Pair)
    assert_same(compress(model(), loader, ratio=0.5, recipe="svd-llm"), reference)


def test_many_batches_from_workers_do_not_exhaust_the_file_descriptors():
    """Each batch a worker sends holds an open descriptor while it lives; with a limit of 128 the 200
    batches of two tensors below would fail ("Too many open files") if they were kept as sent."""
    script = textwrap.dedent("""
        import resource

        import torch
        from torch.utils.data import DataLoader, Dataset

        from safesvd_core import available, compress

        class Pairs(Dataset):
            def __len__(self):
                return 200

            def __getitem__(self, index):
                generator = torch.Generator().manual_seed(index)
                return torch.randn(4, generator=generator), torch.randn(4, generator=generator)

        if __name__ == "__main__":
            available("recipe")  # the plugins load before the limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
            result = compress(model, DataLoader(Pairs(), batch_size=1, num_workers=2), ratio=0.6, recipe="svd-llm")
            print("compressed", result.met_budget)
    """)  # noqa: E501 - the script as it runs
    answer = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert answer.returncode == 0 and "compressed True" in answer.stdout, answer.stderr[-2000:]


def test_a_config_data_function_may_return_dataclasses_or_a_dataloader(tmp_path):
    """``[data] function``: the items it returns are taken as compress takes them."""
    from safesvd_cli.data_source import DataSpec

    (tmp_path / "batch_forms_data.py").write_text(
        textwrap.dedent("""
        import dataclasses

        import torch
        from torch.utils.data import DataLoader, TensorDataset


        @dataclasses.dataclass
        class Pair:
            input: torch.Tensor
            target: torch.Tensor


        def pairs():
            generator = torch.Generator().manual_seed(0)
            return [Pair(torch.randn(4, 8, generator=generator), torch.randn(4, 8, generator=generator)) for _ in range(4)]


        def loader():
            return DataLoader(TensorDataset(torch.randn(16, 8), torch.randn(16, 8)), batch_size=4, num_workers=2)
    """)  # noqa: E501 - the script as it runs
    )
    for function in ("pairs", "loader"):
        loaded = DataSpec.from_dict({"function": f"batch_forms_data:{function}"}, base=tmp_path).load(
            None, (0.0, 0.75)
        )
        assert len(loaded.items) == 3
        first = loaded.items[0]
        x = first["input"] if function == "pairs" else first[0]
        assert x.shape == (4, 8) and not x.is_shared()
        result = compress(model(), loaded.items, ratio=0.5, recipe="svd-llm")
        assert result.met_budget
