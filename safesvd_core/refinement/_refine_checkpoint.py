"""Checkpoint and resume of refinement: ``refine.safetensors`` in a directory holds the model's
state, the best state so far, Adam's moments and, in its header, the step, the best score, the
history and a fingerprint of the inputs (original weights, compressed model, refinement data and
options). Written atomically at every held-out evaluation; a later run with the same fingerprint
resumes at that step, a different one is refused.

A file can still be edited and stay valid safetensors, so every field is checked against the run
before anything is loaded: the step (one the run evaluates at), the history (one row per evaluation
up to it), the best step and score, every model and best-state tensor (names, shapes, dtypes, finite)
and Adam's moments (for the parameters that had them, each named moment, each shape). A field that
does not fit is refused by name, with the fix: delete the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .._errors import ConfigError
from ..io._files import atomic_write

if TYPE_CHECKING:
    from ._refine_options import RefineOptions

FILE = "refine.safetensors"
FORMAT = "safesvd.refine-checkpoint/1"


class RefineCheckpoint:
    """The refinement progress file in ``directory`` for inputs with ``fingerprint``."""

    def __init__(self, directory: Path, fingerprint: str, *, writer: bool = True) -> None:
        self.path = Path(directory) / FILE
        self.fingerprint = fingerprint
        self.writer = writer  # with several processes only process 0 writes; every one reads
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
        precision: dict[str, Any] | None = None,
    ) -> None:
        """Write the progress at ``step`` (process 0 only); ``precision``: the float16 loss scale's
        state (:meth:`MixedPrecision.state`)."""
        if not self.writer:
            return
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
            "moments": sorted(state),
            "precision": precision,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.path, lambda path: save_file(tensors, str(path), metadata={"refine": json.dumps(header)})
        )

    def restore(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, keys: list[str], options: RefineOptions
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """Load the saved state into ``model`` and ``optimizer``, each field checked against the run
        first (see the module); ``(step, best, history)``."""
        assert self.saved is not None
        header, tensors = self.saved["header"], self.saved["tensors"]
        if header.get("keys") != keys:
            raise self._refused("keys", "name other parameters than the model's")
        step = self._step(header, options)
        history = self._history(header, step, options)
        best_step, score = self._best(header, history)
        groups = {prefix: _group(tensors, prefix) for prefix in ("model::", "best::", "adam::")}
        unknown = sorted(
            set(tensors) - {f"{prefix}{key}" for prefix, group in groups.items() for key in group}
        )
        if unknown:
            raise self._refused(f"tensor {unknown[0]!r}", "is not one a checkpoint holds")
        expected = model.state_dict()
        self._state("model::", groups["model::"], expected)
        self._state("best::", groups["best::"], expected)
        moments = self._moments(header, groups["adam::"], optimizer)
        device = next(model.parameters()).device
        model.load_state_dict({key: value.to(device) for key, value in groups["model::"].items()})
        state = optimizer.state_dict()
        state["state"] = moments
        optimizer.load_state_dict(state)
        best_state = {key: value.to(device) for key, value in groups["best::"].items()}
        return step, {"step": best_step, "score": score, "state": best_state}, history

    def precision_state(self) -> dict[str, Any] | None:
        """The saved loss scale's state (``None``: none was saved, as without float16)."""
        assert self.saved is not None
        return self.saved["header"].get("precision")

    def _refused(self, field: str, problem: str) -> ConfigError:
        return ConfigError(
            f"cannot resume refinement from {self.path}: its {field} {problem}; delete the file to "
            "refine from the start"
        )

    def _step(self, header: dict[str, Any], options: RefineOptions) -> int:
        step = header.get("step")
        if not _whole(step) or not 1 <= step <= options.steps:
            raise self._refused("step", f"is {step!r}, not a step of this run (1 to {options.steps})")
        if step % options.eval_every and step != options.steps:
            raise self._refused(
                "step", f"is {step}, not one this run saves at (every {options.eval_every}, or the last)"
            )
        return step

    def _history(self, header: dict[str, Any], step: int, options: RefineOptions) -> list[dict[str, Any]]:
        history = header.get("history")
        evaluated = [*range(options.eval_every, step + 1, options.eval_every)]
        if step not in evaluated:
            evaluated.append(step)
        if (
            not isinstance(history, list)
            or [row.get("step") if isinstance(row, dict) else None for row in history] != evaluated
        ):
            raise self._refused("history", f"is not one row per evaluation up to step {step}")
        if not all(_number(row.get("train")) for row in history):
            raise self._refused("history", "holds a row without a training loss")
        return list(history)

    def _best(self, header: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, float]:
        best = header.get("best")
        if not isinstance(best, dict) or not _number(best.get("score")):
            raise self._refused("best", "has no score")
        if best.get("step") not in [0, *(row["step"] for row in history)]:
            raise self._refused("best", f"step {best.get('step')!r} is not an evaluated step")
        return best["step"], float(best["score"])

    def _state(self, prefix: str, saved: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
        missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        if missing or extra:
            name, what = (missing[0], "is missing") if missing else (extra[0], "is not the model's")
            raise self._refused(f"tensor {prefix}{name}", what)
        for name, value in saved.items():
            want = expected[name]
            if value.shape != want.shape or value.dtype != want.dtype:
                found, wanted = f"{value.dtype} {tuple(value.shape)}", f"{want.dtype} {tuple(want.shape)}"
                raise self._refused(f"tensor {prefix}{name}", f"is {found}, not the model's {wanted}")
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise self._refused(f"tensor {prefix}{name}", "holds non-finite values")

    def _moments(
        self, header: dict[str, Any], saved: dict[str, Tensor], optimizer: torch.optim.Optimizer
    ) -> dict[int, dict[str, Tensor]]:
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        indices = header.get("moments")
        if (
            not isinstance(indices, list)
            or not indices
            or not all(_whole(index) and 0 <= index < len(parameters) for index in indices)
        ):
            raise self._refused("moments", "do not list the parameters Adam kept moments for")
        names = {"step", "exp_avg", "exp_avg_sq"} | (
            {"max_exp_avg_sq"} if optimizer.param_groups[0].get("amsgrad") else set()
        )
        moments: dict[int, dict[str, Tensor]] = {}
        for index in indices:
            for name in sorted(names):
                value = saved.pop(f"{index}::{name}", None)
                shape = () if name == "step" else parameters[index].shape
                if value is None:
                    raise self._refused(f"tensor adam::{index}::{name}", "is missing")
                if value.shape != shape:
                    raise self._refused(
                        f"tensor adam::{index}::{name}",
                        f"has shape {tuple(value.shape)}, not {tuple(shape)}",
                    )
                moved = value if name == "step" else value.to(parameters[index].device)
                moments.setdefault(index, {})[name] = moved
        if saved:
            raise self._refused(f"tensor adam::{sorted(saved)[0]}", "is not a moment of a listed parameter")
        return moments


def _group(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
