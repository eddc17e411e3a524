"""The original model of a ``compress`` config: ``module:factory`` (called with ``options``) plus
an optional weights file (safetensors, or a torch state dict read with ``weights_only=True``, no
fallback), or a zoo name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from safesvd_core.plugin import ConfigError

from .user_code import call_user, code_value, import_object, options_value, path_value


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a torch state dict (``weights_only=True``, no fallback)."""
    if not path.is_file():
        raise ConfigError(
            f"{where}: no such file {str(path)!r} (relative paths are read from the config's folder)"
        )
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"{where}: {path} is not a readable safetensors file: {error}") from None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - pickle refused or file damaged: one named line
        raise ConfigError(
            f"{where}: {path} cannot be read as weights only ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]}); save model.state_dict() with torch.save, or as "
            "safetensors (safesvd never unpickles code, SECURITY.md)"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where}: {path} holds a {type(state).__name__}, not a state dict (name → tensor)")
    return dict(state)


@attrs.frozen(kw_only=True)
class ModelSpec:
    """``factory`` (``module:function``) with ``options`` and ``weights``, or ``zoo`` (a bundled model)."""

    factory: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    weights: str | None = None
    zoo: str | None = None
    import_from: str = "."

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base: Path) -> ModelSpec:
        if ("factory" in table) == ("zoo" in table):
            raise ConfigError(
                "[model]: give factory = 'module:function' (with weights) or zoo = 'name', one of them"
            )
        if "zoo" in table and ("weights" in table or "options" in table):
            raise ConfigError("[model]: a zoo model ships its weights; weights and options go with factory")
        weights, zoo = table.get("weights"), table.get("zoo")
        if zoo is not None and (not isinstance(zoo, str) or not zoo):
            raise ConfigError(f"[model] zoo: expected a zoo model's name, got {zoo!r}")
        return cls(
            factory=code_value(table.get("factory"), "[model] factory"),
            options=options_value(table.get("options", {}), "[model] options"),
            weights=None if weights is None else path_value(weights, base, "[model] weights"),
            zoo=zoo,
            import_from=path_value(table.get("import_from", "."), base, "[model] import_from"),
        )

    def to_dict(self) -> dict[str, Any]:
        if self.zoo is not None:
            return {"zoo": self.zoo}
        return {
            "factory": self.factory,
            "options": dict(self.options),
            "import_from": self.import_from,
            **({"weights": self.weights} if self.weights else {}),
        }

    def build(self) -> nn.Module:
        """The original model, in eval mode, with its weights loaded."""
        if self.zoo is not None:
            from safesvd_zoo import models

            return models.load(self.zoo)
        factory = import_object(self.factory, "[model] factory", (Path(self.import_from), Path.cwd()))
        model = call_user(factory, f"[model] factory {self.factory!r}", **self.options)
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"[model] factory {self.factory!r} returned a {type(model).__name__}, not a torch.nn.Module"
            )
        if self.weights is not None:
            state = read_state_dict(Path(self.weights), "[model] weights")
            missing, unexpected = (
                model.state_dict().keys() - state.keys(),
                state.keys() - model.state_dict().keys(),
            )
            wrong = sorted(
                k
                for k in state.keys() & model.state_dict().keys()
                if state[k].shape != model.state_dict()[k].shape
            )
            if missing or unexpected or wrong:
                raise ConfigError(
                    f"[model] weights: {Path(self.weights).name} does not fit the model {self.factory!r} "
                    f"builds: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}, other "
                    f"shapes {wrong[:3]} (check [model] options)"
                )
            model.load_state_dict(state)
        return model.eval()
