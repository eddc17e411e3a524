"""``save_refined``: a model refined after it was saved (:func:`~safesvd_core.refinement`) written as a new
compressed-model folder: the source folder's header and manifest, the refined weights, and the
record of the refinement (``refinements``, ``reports["refine"]``, a note). Never over the source."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_file

from .._errors import ConfigError
from ..io._files import atomic_write, sha256_file
from ..io._manifest import MANIFEST, MODEL, ranks_in, read_manifest
from ..io._manifest_facts import DIGESTS, fact_digests
from ..io._persist import file_header
from ..model._modules import tensor_state
from ._refine import summary
from ._refine_later import RefinedModel


def check_new_folder(path: str | Path, source: str | Path) -> None:
    """Refuse an output ``path`` for a model refined from ``source`` that is the source, inside it, or
    a file or folder that holds anything: a refinement writes a new folder, never over its input."""
    path, source = Path(path), Path(source)
    if path.resolve() == source.resolve() or source.resolve() in path.resolve().parents:
        raise ConfigError(
            f"{path} is the source folder or inside it: write the refined model to a new folder"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{path} exists and is not an empty folder: give a new folder")


def save_refined(refined: RefinedModel, path: str | Path, *, source: str | Path) -> Path:
    """Write ``refined`` to the new folder ``path`` (absent or empty) as a compressed model whose
    manifest is ``source``'s (the folder the compressed model was loaded from) plus the refinement:
    ``refinements`` lists every refinement since the compression, ``reports["refine"]`` is this one's."""
    source, path = Path(source), Path(path)
    if not source.is_dir():
        raise ConfigError(f"source {source} is not a folder: give the folder save_compressed wrote")
    check_new_folder(path, source)
    manifest = read_manifest(source)
    header, _ = file_header(source / MODEL)
    saved = {name: rank for name, rank in header["ranks"].items() if rank is not None}
    state = tensor_state(refined.model)
    if ranks_in({key: tuple(value.shape) for key, value in state.items()}) != saved:
        raise ConfigError(
            f"the refined model's factored layers are not those of {source}: refine the model loaded "
            "from that folder"
        )
    manifest["reports"] = {**manifest.get("reports", {}), "refine": refined.report}
    manifest["refinements"] = [*manifest.get("refinements", []), refined.record]
    manifest["notes"] = [*manifest.get("notes", []), summary(refined.report)]
    header[DIGESTS] = fact_digests(manifest)
    file = path / MODEL
    try:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(
            file, lambda temporary: save_file(state, str(temporary), metadata={"safesvd": json.dumps(header)})
        )
        manifest["model"]["sha256"] = sha256_file(file)
        atomic_write(path / MANIFEST, lambda temporary: temporary.write_text(json.dumps(manifest, indent=1)))
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"cannot write {path}: {error}") from None
    return path
