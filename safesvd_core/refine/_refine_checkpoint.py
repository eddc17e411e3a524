"""Checkpoint and resume of refinement: ``refine.safetensors`` in a directory holds the model's
state, the best state so far, Adam's moments and, in its header, the step, the best score, the
history and a fingerprint of the inputs (original weights, compressed model, refinement data and
options). Written atomically at every held-out evaluation; a later run with the same fingerprint
resumes at that step, a different one is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .._errors import ConfigError
from ..io._files import atomic_write

FILE = "refine.safetensors"
FORMAT = "safesvd.refine-checkpoint/1"


class RefineCheckpoint:
    """The refinement progress file in ``directory`` for inputs with ``fingerprint``."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.path = Path(directory) / FILE
        self.fingerprint = fingerprint
        self.saved: dict[str, Any] | None = None
        if self.path.exists():
            self.saved = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            with safe_open(str(self.path), framework="pt") as handle:
                header = json.loads((handle.metadata() or {}).get("refine", "null"))
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        except (SafetensorError, OSError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"{self.path} cannot be read ({error}); delete it to refine from the start"
            ) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ConfigError(
                f"{self.path} is not a safesvd refinement checkpoint; delete it to refine from the start"
            )
        if header.get("fingerprint") != self.fingerprint:
            raise ConfigError(
                f"cannot resume refinement from {self.path}: the original, the compressed model, the "
                "refinement data or its options changed; use a new checkpoint_dir or delete the file"
            )
        return {"header": header, "tensors": tensors}

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        keys: list[str],
        best: dict[str, Any],
        history: list[dict[str, Any]],
    ) -> None:
        tensors: dict[str, Tensor] = {}
        for key, value in model.state_dict().items():
            tensors[f"model::{key}"] = value.detach().contiguous().cpu()
        for key, value in best["state"].items():
            tensors[f"best::{key}"] = value.detach().contiguous().cpu()
        state = optimizer.state_dict()["state"]
        for index, moments in state.items():
            for name, value in moments.items():
                tensors[f"adam::{index}::{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
        header = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "step": step,
            "keys": keys,
            "best": {"step": best["step"], "score": best["score"]},
            "history": history,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.path, lambda path: save_file(tensors, str(path), metadata={"refine": json.dumps(header)})
        )

    def restore(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, keys: list[str]
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """Load the saved state into ``model`` and ``optimizer``; ``(step, best, history)``."""
        assert self.saved is not None
        header, tensors = self.saved["header"], self.saved["tensors"]
        if header["keys"] != keys:
            raise ConfigError(
                f"cannot resume refinement from {self.path}: it was written for other parameters"
            )
        device = next(model.parameters()).device
        model.load_state_dict(
            {
                key[len("model::") :]: value.to(device)
                for key, value in tensors.items()
                if key.startswith("model::")
            }
        )
        best_state = {
            key[len("best::") :]: value.to(device)
            for key, value in tensors.items()
            if key.startswith("best::")
        }
        state = optimizer.state_dict()
        moments: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("adam::"):
                _, index, name = key.split("::")
                moments.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
        state["state"] = moments
        optimizer.load_state_dict(state)
        best = {"step": header["best"]["step"], "score": header["best"]["score"], "state": best_state}
        return int(header["step"]), best, list(header["history"])
