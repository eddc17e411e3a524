"""Batches and outputs as users have them (issue 27): an Aurora-like ``Batch`` dataclass of dicts of
tensors plus metadata, a dict output, a three-argument graph forward, and the one-line message for a
structure safesvd cannot see into; all with the generic adapter and no wrapper."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from safesvd_core import ConfigError, compress, evaluate, register_structure
from safesvd_core.plugin import make_adapter, map_structure, tensor_leaves

SURF, ATMOS, LEVELS, SIZE = ("2t", "msl"), ("t", "z"), 3, 6


@dataclasses.dataclass(frozen=True)
class Metadata:
    lat: Tensor
    lon: Tensor
    time: tuple[datetime.datetime, ...]
    rollout_step: int = 0


@dataclasses.dataclass
class Batch:
    """Like Microsoft Aurora's: surface ``(B, T, H, W)``, static ``(H, W)``, atmospheric
    ``(B, T, C, H, W)`` variables by name, and metadata."""

    surf_vars: dict[str, Tensor]
    static_vars: dict[str, Tensor]
    atmos_vars: dict[str, Tensor]
    metadata: Metadata


class PixelWeather(nn.Module):
    """A per-pixel MLP over every variable and level: Batch → Batch one step on."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        features = len(SURF) + len(ATMOS) * LEVELS
        self.lift = nn.Linear(features + 1, width)
        self.mix = nn.Linear(width, width)
        self.project = nn.Linear(width, features)

    def forward(self, batch: Batch) -> Batch:
        surf = torch.stack([batch.surf_vars[k] for k in SURF], dim=-1)  # B, T, H, W, S
        atmos = torch.stack([batch.atmos_vars[k] for k in ATMOS], dim=-1)  # B, T, C, H, W, A
        atmos = atmos.permute(0, 1, 3, 4, 2, 5).flatten(-2)  # B, T, H, W, C·A
        static = batch.static_vars["z"].expand(*surf.shape[:-1])[..., None]
        x = torch.cat([surf, atmos, static], dim=-1)
        step = self.project(F.gelu(self.mix(F.gelu(self.lift(x)))))
        out = torch.cat([surf, atmos], dim=-1) + 0.1 * step
        new_surf = {k: out[..., i] for i, k in enumerate(SURF)}
        new_atmos = out[..., len(SURF) :].unflatten(-1, (LEVELS, len(ATMOS))).permute(0, 1, 4, 2, 3, 5)
        metadata = dataclasses.replace(
            batch.metadata,
            time=tuple(t + datetime.timedelta(hours=6) for t in batch.metadata.time),
            rollout_step=batch.metadata.rollout_step + 1,
        )
        return Batch(
            surf_vars=new_surf,
            static_vars=batch.static_vars,
            atmos_vars={k: new_atmos[..., i] for i, k in enumerate(ATMOS)},
            metadata=metadata,
        )


def weather(batch: int = 4, seed: int = 0, steps: int | None = None) -> Batch:
    """A random Batch (history of one step); with ``steps``, its variables carry a time axis of
    ``steps`` after the batch axis (a trajectory's true states)."""
    generator = torch.Generator().manual_seed(seed)
    time = () if steps is None else (steps,)

    def draw(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    return Batch(
        surf_vars={k: draw(batch, *time, 1, SIZE, SIZE) for k in SURF},
        static_vars={"z": draw(SIZE, SIZE)},
        atmos_vars={k: draw(batch, *time, 1, LEVELS, SIZE, SIZE) for k in ATMOS},
        metadata=Metadata(
            lat=torch.linspace(-90, 90, SIZE),
            lon=torch.linspace(0, 360, SIZE + 1)[:-1],
            time=(datetime.datetime(2020, 6, 1, 12),) * batch,
        ),
    )


def advanced(state: Batch) -> Batch:
    """The 'true' dynamics: a smooth shift of every variable."""
    return map_structure(
        lambda place, leaf: (
            0.9 * leaf + 0.1 * torch.roll(leaf, 1, dims=-1)
            if isinstance(leaf, Tensor) and ("surf" in place or "atmos" in place)
            else leaf
        ),
        state,
    )


def weather_items(count: int = 6, seed: int = 0) -> list[tuple[Batch, Batch]]:
    starts = [weather(seed=seed + i) for i in range(count)]
    return [(start, advanced(start)) for start in starts]


def stacked(start: Batch, states: list[Batch]) -> Batch:
    """``start``'s structure with its surface and atmospheric variables the ``states`` stacked on dim 1."""
    places = [dict(tensor_leaves(state)) for state in states]
    return map_structure(
        lambda place, leaf: (
            torch.stack([found[place] for found in places], dim=1)
            if isinstance(leaf, Tensor) and ("surf" in place or "atmos" in place)
            else leaf
        ),
        start,
    )


def weather_trajectories(count: int = 3, steps: int = 3, seed: int = 10) -> list[tuple[Batch, Batch]]:
    """``(start, trajectory)``: the trajectory's surface and atmospheric variables stacked on dim 1."""
    items = []
    for i in range(count):
        start = weather(seed=seed + i)
        states = [advanced(start)]
        for _ in range(steps - 1):
            states.append(advanced(states[-1]))
        items.append((start, stacked(start, states)))
    return items


@pytest.fixture(scope="module")
def trained_weather() -> PixelWeather:
    torch.manual_seed(0)
    return PixelWeather()


def test_an_aurora_like_batch_compresses_evaluates_and_rolls_out_without_a_wrapper(trained_weather):
    model, items = trained_weather, weather_items()
    result = compress(model, items, ratio=0.5)
    assert result.params_after <= 0.5 * result.params_before
    report = evaluate(
        model, result.model, weather_items(seed=50), rollout=weather_trajectories(), horizons=(1, 3)
    )
    base = report.metric("base loss")
    assert base.original > 0 and base.compressed > 0
    assert set(report.rollout) == {1, 3}
    with torch.no_grad():
        out = result.model(items[0][0])
    assert isinstance(out, Batch) and out.metadata.rollout_step == 1
    assert out.metadata.time[0] == datetime.datetime(2020, 6, 1, 18)


def test_rollout_calibration_of_an_aurora_like_batch(trained_weather):
    result = compress(trained_weather, weather_trajectories(count=4), ratio=0.5)
    assert result.params_after <= 0.5 * result.params_before
    assert result.passes  # ran


def test_the_default_loss_sums_the_places_and_leaf_weights_weigh_them(trained_weather):
    batch = weather_items(count=1)[0]
    adapter = make_adapter("generic", None)
    with torch.no_grad():
        prediction = adapter.predict(trained_weather, batch)
        total = adapter.base_loss(prediction, batch)
        by_hand = sum(
            F.mse_loss(dict(tensor_leaves(prediction))[place], leaf)
            for place, leaf in tensor_leaves(batch[1])
        )
        assert torch.allclose(total, by_hand)
        weighted = make_adapter("generic", {"leaf_weights": {"surf_vars.2t": 3.0, "metadata.lat": 0}})
        extra = 2 * F.mse_loss(prediction.surf_vars["2t"], batch[1].surf_vars["2t"])
        assert torch.allclose(weighted.base_loss(prediction, batch), total + extra)
    with pytest.raises(ConfigError, match=r"leaf_weights names \['surf\.2t'\]"):
        make_adapter("generic", {"leaf_weights": {"surf.2t": 1.0}}).base_loss(prediction, batch)


def test_a_user_loss_takes_the_structures_as_they_are(trained_weather):
    seen = []

    def loss(prediction: Batch, target: Batch) -> Tensor:
        seen.append((type(prediction), type(target)))
        return F.mse_loss(prediction.surf_vars["2t"], target.surf_vars["2t"])

    result = compress(trained_weather, weather_items(), ratio=0.5, adapter_options={"loss": loss})
    assert result.params_after <= 0.5 * result.params_before
    assert seen and set(seen) == {(Batch, Batch)}


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU())
        self.velocity = nn.Linear(32, 2)
        self.pressure = nn.Linear(32, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.body(x)
        return {"velocity": self.velocity(h), "pressure": self.pressure(h)}


def test_a_dict_output_compresses_without_a_wrapper():
    torch.manual_seed(0)
    model = DictOut()
    x = [torch.randn(16, 8) for _ in range(4)]
    items = [(xi, {"velocity": xi[:, :2].sin(), "pressure": xi[:, 2:3].cos()}) for xi in x]
    result = compress(model, items, ratio=0.5)
    assert result.params_after <= 0.5 * result.params_before
    report = evaluate(model, result.model, items)
    assert report.metric("base loss").compressed > 0


@dataclasses.dataclass
class Graph:
    """A small graph: who sends to whom."""

    edge_index: Tensor
    nodes: int


class Graphish:
    """A graph object that is no dataclass: its tensors live in ``__dict__``."""

    def __init__(self, edge_index: Tensor) -> None:
        self.edge_index = edge_index
        self.name = "mesh"


class MeshGraphNetLike(nn.Module):
    """``forward(node_features, edge_features, graph)``: one message-passing step."""

    def __init__(self, nodes: int = 4, edges: int = 3, width: int = 32) -> None:
        super().__init__()
        self.edge_mlp = nn.Sequential(nn.Linear(2 * nodes + edges, width), nn.GELU(), nn.Linear(width, width))
        self.node_mlp = nn.Sequential(nn.Linear(nodes + width, width), nn.GELU(), nn.Linear(width, nodes))

    def forward(self, node_features: Tensor, edge_features: Tensor, graph: Any) -> Tensor:
        sender, receiver = graph.edge_index
        message = self.edge_mlp(
            torch.cat([node_features[sender], node_features[receiver], edge_features], -1)
        )
        summed = torch.zeros(node_features.shape[0], message.shape[-1]).index_add(0, receiver, message)
        return node_features + self.node_mlp(torch.cat([node_features, summed], -1))


def graph_items(kind: type, count: int = 4) -> list[Any]:
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(count):
        edge_index = torch.randint(0, 20, (2, 40), generator=generator)
        graph = kind(edge_index, 20) if kind is Graph else kind(edge_index)
        nodes = torch.randn(20, 4, generator=generator)
        edges = torch.randn(40, 3, generator=generator)
        items.append(((nodes, edges, graph), nodes.roll(1, 0)))
    return items


@pytest.mark.parametrize("kind", [Graph, Graphish])
def test_a_three_argument_forward_with_call_args(kind):
    torch.manual_seed(0)
    model, items = MeshGraphNetLike(), graph_items(kind)
    options = {"call": "args"}
    result = compress(model, items, ratio=0.5, adapter_options=options)
    assert result.params_after <= 0.5 * result.params_before
    assert evaluate(model, result.model, items, adapter_options=options).metric("base loss").compressed > 0


def test_a_three_argument_forward_without_call_args_says_what_to_set():
    with pytest.raises(ConfigError, match=r"'call': 'args'"):
        compress(MeshGraphNetLike(), graph_items(Graph), ratio=0.5)


def test_keyword_arguments_with_call_kwargs():
    class Keywords(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 32), nn.Linear(32, 6)

        def forward(self, *, x: Tensor, scale: float) -> Tensor:
            return self.b(F.gelu(self.a(x))) * scale

    items = [({"x": torch.randn(8, 6), "scale": 2.0}, torch.randn(8, 6)) for _ in range(3)]
    result = compress(Keywords(), items, ratio=0.5, adapter_options={"call": "kwargs"})
    assert result.params_after <= 0.5 * result.params_before
    with pytest.raises(ConfigError, match="call='kwargs'"):
        compress(
            Keywords(),
            [((torch.randn(8, 6),), torch.randn(8, 6))],
            ratio=0.5,
            adapter_options={"call": "kwargs"},
        )


def test_a_rollout_of_a_model_whose_output_is_not_its_input_is_refused_in_one_line():
    model, items = MeshGraphNetLike(), graph_items(Graph)
    (nodes, edges, graph), target = items[0]
    trajectory = ((nodes, edges, graph), torch.stack([target, target], dim=1))
    with pytest.raises(ConfigError) as error:
        evaluate(model, model, items, adapter_options={"call": "args"}, rollout=[trajectory], horizons=(1,))
    assert "\n" not in str(error.value)


class Slotted:
    """Keeps its tensor in __slots__: safesvd cannot see it unless the class is registered."""

    __slots__ = ("value",)

    def __init__(self, value: Tensor) -> None:
        self.value = value


class SlottedOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 32), nn.Linear(32, 6)

    def forward(self, x: Tensor) -> Slotted:
        return Slotted(self.b(F.gelu(self.a(x))))


def test_an_unsupported_structure_is_one_line_naming_the_type_and_the_registration():
    items = [(torch.randn(8, 6), Slotted(torch.randn(8, 6))) for _ in range(2)]
    with pytest.raises(ConfigError) as error:
        compress(SlottedOut(), items, ratio=0.5)
    message = str(error.value)
    assert "\n" not in message and "Slotted" in message and "register_structure(Slotted)" in message


def test_a_registered_class_compresses():
    class Pair:
        __slots__ = ("value",)

        def __init__(self, value: Tensor) -> None:
            self.value = value

    class PairOut(SlottedOut):
        def forward(self, x: Tensor) -> Pair:
            return Pair(super().forward(x).value)

    register_structure(Pair)
    register_structure(Pair)  # the same registration again: nothing changes
    with pytest.raises(ConfigError, match="already registered"):
        register_structure(Pair, lambda p: {"value": p.value}, lambda children: Pair(children["value"]))
    items = [(torch.randn(8, 6), Pair(torch.randn(8, 6))) for _ in range(3)]
    result = compress(PairOut(), items, ratio=0.5)
    assert result.params_after <= 0.5 * result.params_before


class TensorModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 32), nn.Linear(32, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(F.gelu(self.a(x)))


def test_a_tensor_model_gives_the_same_bits_as_the_same_data_in_a_one_leaf_structure():
    torch.manual_seed(0)
    model = TensorModel()
    items = [(torch.randn(8, 6), torch.randn(8, 6)) for _ in range(4)]
    plain = compress(model, items, ratio=0.5)
    again = compress(model, items, ratio=0.5)

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
            return {"u": self.inner(x["u"])}

    wrapped = compress(Wrapped(model), [({"u": x}, {"u": y}) for x, y in items], ratio=0.5)
    for other in (again, wrapped):
        state = {key.removeprefix("inner."): value for key, value in other.model.state_dict().items()}
        assert plain.model.state_dict().keys() == state.keys()
        assert all(torch.equal(value, state[key]) for key, value in plain.model.state_dict().items())


leaves = st.one_of(
    st.integers(),
    st.text(max_size=3),
    st.just(datetime.datetime(2020, 1, 1)),
    st.builds(lambda n: torch.arange(float(n)), st.integers(0, 4)),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3),
        st.builds(Graph, inner, st.integers()),
    ),
    max_leaves=8,
)


@given(trees)
def test_map_structure_keeps_the_structure_and_moves_every_tensor(tree):
    doubled = map_structure(lambda _, leaf: leaf * 2 if isinstance(leaf, Tensor) else leaf, tree)
    before, after = tensor_leaves(tree), tensor_leaves(doubled)
    assert [place for place, _ in before] == [place for place, _ in after]
    assert all(torch.equal(a * 2, b) for (_, a), (_, b) in zip(before, after))
    assert map_structure(lambda _, leaf: leaf, tree) is tree
    assert make_adapter("generic", None).to_device(tree, torch.device("cpu")) is tree


class GrowingOutput(nn.Module):
    """Returns one tensor more than it takes: its output cannot be its next input."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 32), nn.Linear(32, 7)

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.b(F.gelu(self.a(x["u"])))
        return {"u": out[:, :6], "p": out[:, 6:]}


def test_a_rollout_whose_prediction_cannot_be_the_next_input_is_one_line():
    item = ({"u": torch.randn(8, 6)}, {"u": torch.randn(8, 3, 6)})
    one_step = [({"u": torch.randn(8, 6)}, {"u": torch.randn(8, 6)})]
    model = GrowingOutput()
    with pytest.raises(ConfigError, match="cannot be rolled out") as error:
        evaluate(model, model, one_step, rollout=[item], horizons=(2,))
    assert "\n" not in str(error.value)


class FieldModel(nn.Module):
    """``(B, 2, 4, 4)`` fields in (a tensor or ``{'u': ...}``), out (a tensor or ``{'velocity': ...}``)."""

    def __init__(self, structured_output: bool = False) -> None:
        super().__init__()
        self.mix = nn.Conv2d(2, 2, 1)
        self.structured_output = structured_output

    def forward(self, x: Any) -> Any:
        out = self.mix(x["u"] if isinstance(x, dict) else x)
        return {"velocity": out} if self.structured_output else out


@pytest.mark.parametrize(
    ("structured_input", "structured_output"), [(False, False), (True, False), (True, True)]
)
def test_the_fields_figure_never_shows_the_target_as_the_input(
    monkeypatch, tmp_path, structured_input, structured_output
):
    from types import SimpleNamespace

    from safesvd_cli import folder

    x, y = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)
    model = FieldModel(structured_output)
    batch = ({"u": x} if structured_input else x, {"velocity": y} if structured_output else y)
    drawn = {}
    monkeypatch.setattr(
        folder.figures, "fields", lambda path, rows, *rest: drawn.update(rows=rows, title=rest[-1])
    )
    prepared = SimpleNamespace(
        adapter=make_adapter("generic", None), test=[batch], model=model, config=SimpleNamespace(family=None)
    )
    folder._fields(
        tmp_path / "fields.png", prepared, SimpleNamespace(result=SimpleNamespace(model=model)), "x"
    )
    given = [row[1] for row in drawn["rows"]]
    if structured_input:  # the input column is left empty (a note says why), never the target
        assert given == [None, None]
    else:
        assert all(torch.equal(torch.as_tensor(g), x[0, i]) for i, g in enumerate(given))
    assert ("velocity" in drawn["title"]) == structured_output
