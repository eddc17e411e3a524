# examples/own_model/structured.py
"""Batches that are not tensors, with the generic adapter and no wrapper: an Aurora-like Batch
(dicts of variables plus metadata) in and out, rolled out; a graph net called as model(nodes, edges, graph)."""

import dataclasses
import datetime

import torch
from torch import nn

from safesvd_core import compress, evaluate


@dataclasses.dataclass
class Batch:
    surf_vars: dict[str, torch.Tensor]  # (batch, time, height, width)
    atmos_vars: dict[str, torch.Tensor]  # (batch, time, levels, height, width)
    time: datetime.datetime  # metadata: passed through untouched


class Weather(nn.Module):
    """A per-pixel MLP over the surface variable and the 3 levels: Batch → Batch six hours on."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, 4))

    def forward(self, batch: Batch) -> Batch:
        x = torch.stack([batch.surf_vars["2t"], *batch.atmos_vars["t"].unbind(2)], dim=-1)
        y = x + 0.1 * self.mlp(x)
        return Batch({"2t": y[..., 0]}, {"t": y[..., 1:].movedim(-1, 2)}, batch.time + datetime.timedelta(hours=6))


def state(seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch({"2t": torch.randn(4, 1, 8, 8, generator=g)}, {"t": torch.randn(4, 1, 3, 8, 8, generator=g)},
                 datetime.datetime(2020, 6, 1))


def truth(b: Batch) -> Batch:  # the "true" next state: a smooth shift of every variable
    step = lambda v: 0.9 * v + 0.1 * v.roll(1, -1)  # noqa: E731
    return Batch({"2t": step(b.surf_vars["2t"])}, {"t": step(b.atmos_vars["t"])}, b.time)


def trajectory(b: Batch, steps: int = 3) -> Batch:  # the input's structure, time on dim 1
    states = [truth(b)]
    for _ in range(steps - 1):
        states.append(truth(states[-1]))
    return Batch({"2t": torch.stack([s.surf_vars["2t"] for s in states], 1)},
                 {"t": torch.stack([s.atmos_vars["t"] for s in states], 1)}, b.time)


torch.manual_seed(0)
model = Weather()
calibration = [(state(i), truth(state(i))) for i in range(8)]
test = [(state(100 + i), truth(state(100 + i))) for i in range(4)]
options = {"leaf_weights": {"surf_vars.2t": 2.0}}  # the default MSE, summed over the places, 2t twice
result = compress(model, calibration, ratio=0.5, adapter_options=options)
report = evaluate(model, result.model, test, adapter_options=options,
                  rollout=[(state(200 + i), trajectory(state(200 + i))) for i in range(2)], horizons=(1, 3))
print(f"Batch model: {result.params_after} of {result.params_before} parameters")
print(report.to_markdown())


class MessagePassing(nn.Module):
    """forward(node_features, edge_features, graph), as PhysicsNeMo's MeshGraphNet."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.edge = nn.Sequential(nn.Linear(11, width), nn.GELU(), nn.Linear(width, width))
        self.node = nn.Sequential(nn.Linear(4 + width, width), nn.GELU(), nn.Linear(width, 4))

    def forward(self, nodes, edges, graph):
        sender, receiver = graph.edge_index
        message = self.edge(torch.cat([nodes[sender], nodes[receiver], edges], -1))
        summed = torch.zeros(len(nodes), message.shape[-1]).index_add(0, receiver, message)
        return nodes + self.node(torch.cat([nodes, summed], -1))


@dataclasses.dataclass
class Graph:
    edge_index: torch.Tensor


graphs = [(torch.randn(20, 4), torch.randn(40, 3), Graph(torch.randint(0, 20, (2, 40)))) for _ in range(4)]
items = [(inputs, inputs[0].roll(1, 0)) for inputs in graphs]  # input: the model's positional arguments
result = compress(MessagePassing(), items, ratio=0.5, adapter_options={"call": "args"})
print(f"graph net: {result.params_after} of {result.params_before} parameters")
