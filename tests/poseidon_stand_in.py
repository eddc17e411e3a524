"""What the Poseidon page's examples (examples/poseidon/) run on in the tests: a package ``scOT`` written
into their folder, whose ``scOT.model.ScOT`` is safesvd's structural stand-in (``ScOTLike``) and whose
``scOT.problems.base.get_dataset`` gives Poseidon-style items (``pixel_values``, ``labels``, a float
``time``, a per-channel ``pixel_mask``) of synthetic periodic flows, plus a tiny checkpoint folder (briefly
trained, saved with ``save_pretrained``). The examples import ``from scOT.model import ScOT`` as Poseidon's
users do; nothing of Poseidon's own code is here (its repository has no licence) and nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

#: The checkpoint folder the examples load, and the grid of the stand-in's data.
CHECKPOINT, SIZE = "Poseidon-T", 32

_MODEL = '''"""Poseidon's scOT.model in safesvd's tests: the structural stand-in (safesvd_adapters.scot_like)."""

from safesvd_adapters.scot_like import ScOTLike as ScOT, ScOTLikeConfig as ScOTConfig  # noqa: F401
'''  # noqa: E501 - Poseidon's module, written out whole

_BASE = '''"""Poseidon's scOT.problems.base in safesvd's tests: get_dataset gives smooth periodic flows on a
{size}x{size} grid as Poseidon's incompressible data sets lay them out: channels rho, u, v, p (the pressure
masked), time steps 0 ... 20 of a trajectory, ``time`` = (t2 - t1) / 20; the same index layout (every pair
t1 <= t2 of multiples of time_step_size, or the input fixed to one step)."""

import math

import torch
from torch.utils.data import Dataset

SIZE = {size}


class Flows(Dataset):
    def __init__(self, which, num_trajectories, max_num_time_steps=7, time_step_size=2, fix_input_to_time_step=None):
        self.offset = {{"train": 0, "val": 1000, "test": 2000}}[which]
        self.trajectories = num_trajectories if which == "train" else 16
        if fix_input_to_time_step is None:
            self.pairs = [(time_step_size * a, time_step_size * b) for a in range(max_num_time_steps + 1)
                          for b in range(a, max_num_time_steps + 1)]
        else:
            self.pairs = [(fix_input_to_time_step, fix_input_to_time_step + time_step_size * (k + 1))
                          for k in range(max_num_time_steps)]
        grid = torch.arange(SIZE) / SIZE
        self.x, self.y = torch.meshgrid(grid, grid, indexing="ij")

    def __len__(self):
        return self.trajectories * len(self.pairs)

    def state(self, trajectory, step):
        """Six Fourier modes per velocity component, travelling and decaying with the step, plus a little
        noise (the same for the same trajectory and step)."""
        generator = torch.Generator().manual_seed(self.offset + trajectory)
        k = torch.randint(1, 4, (2, 6, 2), generator=generator)
        amplitude, phase = torch.randn(2, 6, generator=generator) / 3, torch.rand(2, 6, generator=generator)
        fields = []
        for c in range(2):
            field = torch.zeros(SIZE, SIZE)
            for m in range(6):
                angle = 2 * math.pi * (k[c, m, 0] * self.x + k[c, m, 1] * self.y + phase[c, m] + 0.3 * step / 20)
                field += amplitude[c, m] * torch.sin(angle) * math.exp(-0.05 * int(k[c, m].sum()) * step / 20)
            fields.append(field)
        noise = 0.05 * torch.randn(2, SIZE, SIZE, generator=torch.Generator().manual_seed(10**6 * self.offset + 100 * trajectory + step))
        u, v = fields[0] + noise[0], fields[1] + noise[1]
        return torch.stack([torch.ones_like(u), u, v, torch.zeros_like(u)])

    def __getitem__(self, index):
        trajectory, pair = divmod(index, len(self.pairs))
        t1, t2 = self.pairs[pair]
        return {{"pixel_values": self.state(trajectory, t1), "labels": self.state(trajectory, t2), "time": (t2 - t1) / 20,
                "pixel_mask": torch.tensor([False, False, False, True])}}


def get_dataset(dataset, which="train", num_trajectories=128, data_path="./data", **kwargs):
    return Flows(which, num_trajectories, **kwargs)
'''  # noqa: E501 - Poseidon's module, written out whole


def write_poseidon(folder: Path) -> None:
    """The ``scOT`` package and the checkpoint folder ``CHECKPOINT`` in ``folder`` (kept when there)."""
    package = folder / "scOT"
    (package / "problems").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        '"""Poseidon\'s scOT, played by safesvd\'s stand-in in the tests."""\n'
    )
    (package / "model.py").write_text(_MODEL)
    (package / "problems" / "__init__.py").write_text("")
    (package / "problems" / "base.py").write_text(_BASE.format(size=SIZE))
    if not (folder / CHECKPOINT / "config.json").is_file():
        trained(package / "problems" / "base.py").save_pretrained(folder / CHECKPOINT)


def trained(data: Path, steps: int = 40):
    """Poseidon-T's structure at a tiny width (embedding 12, depth 2 per level, 32²), trained ``steps``
    Adam steps on the stand-in's flows (``data``: its ``scOT/problems/base.py``) with ScOT's loss, so that
    its predictions are not the near-zero output of an untrained model (about 5 s on one thread)."""
    import importlib.util

    import torch
    from torch.utils.data import DataLoader

    from safesvd_adapters.scot_like import scot_like

    spec = importlib.util.spec_from_file_location("poseidon_stand_in_data", data)
    flows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flows)
    torch.manual_seed(0)
    model = scot_like(
        "T", embed_dim=12, image_size=SIZE, window_size=4, depths=(2, 2, 2, 2), skip_connections=(1, 1, 1, 0)
    )
    with torch.no_grad():  # time-conditioned scales about 1 to start with (initialised: about 0.02 t)
        for module in model.modules():
            if type(module).__name__ == "ConditionalLayerNorm":
                module.weight.bias.fill_(1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = DataLoader(
        flows.get_dataset("fluids.incompressible.Sines", num_trajectories=32),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    model.train()
    for _, batch in zip(range(steps), loader):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
