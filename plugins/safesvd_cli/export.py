"""``safesvd export``: a compressed model's factors multiplied back into dense weights.

The result is a plain state dict of the original architecture (safetensors): anyone loads it with
``model.load_state_dict(load_file(path))``, without safesvd. It is checked by exactly that load,
strict, into a freshly built original model before it is written (``safesvd_core.export_dense``).
"""

from __future__ import annotations

from pathlib import Path

from safesvd_core import ConfigError, export_dense, load_compressed
from safesvd_core.plugin import make_adapter

from .config import RunConfig


def export(config: RunConfig, folder: Path, out: Path, *, overwrite: bool = False) -> Path:
    """Write the dense weights of ``folder``'s compressed model to ``out`` (safetensors), atomically."""
    blocker = next((parent for parent in out.parents if parent.is_file()), None)
    if blocker is not None:
        raise ConfigError(
            f"--dense {out}: {blocker} is a file, not a folder; give a file name ending in .safetensors in "
            f"a folder (e.g. --dense {blocker.with_name(out.with_suffix('.safetensors').name)})"
        )
    if out.suffix != ".safetensors":
        raise ConfigError(
            f"--dense {out}: expected a file name ending in .safetensors (e.g. --dense "
            f"{out.with_suffix('.safetensors')})"
        )
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    adapter = make_adapter(config.adapter, config.adapter_options)
    compressed = load_compressed(config.model.build(), folder)
    return export_dense(compressed, out, original=config.model.build(), adapter=adapter, overwrite=overwrite)
