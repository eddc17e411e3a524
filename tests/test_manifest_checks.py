"""A compressed-model folder is trusted only as far as its parts agree: the manifest's fields and
ranks against the model file's tensors, the model file's header against its tensors. An edit or a
damaged field is refused with a one-line error naming it; the model is left unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from safesvd_core import ConfigError, compress, load_compressed, read_manifest, save_compressed
from safesvd_core.__main__ import main

from test_compress import small_data, small_transformer


@pytest.fixture(scope="module")
def result():
    return compress(small_transformer(), small_data(), ratio=0.5)


@pytest.fixture
def folder(result, tmp_path):
    return save_compressed(result, tmp_path / "out")


def _edit_manifest(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _factored(manifest):
    return next(layer for layer in manifest["layers"] if layer["rank"] is not None)


def _refused_everywhere(folder, message, capsys):
    with pytest.raises(ConfigError, match=message):
        read_manifest(folder)
    model = small_transformer()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ConfigError, match=message):
        load_compressed(model, folder)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items()), (
        "the model changed"
    )
    assert main(["inspect", str(folder)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines


MANIFEST_EDITS = {
    "a rank changed": (
        lambda m: _factored(m).update(rank=_factored(m)["rank"] - 1),
        r"does not describe model.safetensors: layer '[\w.]+' has rank \d+ in the manifest but rank \d+",
    ),
    "a factored layer deleted": (
        lambda m: m["layers"].remove(_factored(m)),
        "the model file has factored layers the manifest does not list",
    ),
    "a dense layer made factored": (
        lambda m: next(layer for layer in m["layers"] if layer["rank"] is None).update(rank=2),
        "but no factors \\(dense\\) in the model file",
    ),
    "no 'layers'": (lambda m: m.pop("layers"), "'layers' is missing"),
    "no 'model'": (lambda m: m.pop("model"), "'model' is missing"),
    "'layers' not a list": (lambda m: m.update(layers={"a": 1}), "'layers' is a dict"),
    "a rank that is text": (
        lambda m: _factored(m).update(rank="5"),
        r"layers\[\d+\].rank \('[\w.]+'\) is '5'",
    ),
    "a layer without its name": (lambda m: m["layers"][0].pop("name"), r"layers\[0\].name is missing"),
    # issue 28: what the tensors or the file's header confirm, recomputed; the rest by its digest
    "the ratio edited": (
        lambda m: m.update(ratio=0.1),
        r"'ratio' or 'budget' disagree: ratio 0.1 of [\d,]+ parameters is a budget of [\d,]+, not \d+",
    ),
    "params_after edited": (
        lambda m: m.update(params_after=12),
        r"'params_after' \(12\) is not 'params_before' \([\d,]+\) less the [\d,]+ parameters its factored",
    ),
    "both counts shifted alike": (
        lambda m: m.update(params_before=m["params_before"] + 7, params_after=m["params_after"] + 7),
        r"'ratio' or 'budget' disagree|'params_before' is \d+ but the model file says \d+",
    ),
    "a layer's parameters edited": (
        lambda m: _factored(m).update(params_after=1),
        r"layer '[\w.]+' params_after is 1 but its tensors give \d+",
    ),
    "met_budget flipped": (lambda m: m.update(met_budget=False), r"'met_budget' is False for [\d,]+ of a"),
    "the recipe renamed": (
        lambda m: m["recipe"].update(name="svd-llm"),
        r"'recipe' is 'svd-llm' but the model file says 'safe-svd'",
    ),
    "a recipe option edited": (
        lambda m: m["recipe"]["options"].update(alpha=0.123),
        r"'recipe' differs from what was written; the manifest was edited after safesvd wrote it",
    ),
    "a kept energy edited": (
        lambda m: _factored(m).update(kept_energy=0.5),
        r"layers\['[\w.]+'\] differs from what was written",
    ),
    "a note added": (lambda m: m["notes"].append("verified"), r"'notes' differs from what was written"),
}


@pytest.mark.parametrize("case", list(MANIFEST_EDITS))
def test_an_edited_manifest_is_refused_naming_the_field(folder, case, capsys):
    change, message = MANIFEST_EDITS[case]
    if case == "a dense layer made factored" and all(
        layer["rank"] is not None for layer in read_manifest(folder)["layers"]
    ):
        pytest.skip("every layer is factored at this ratio")
    _edit_manifest(folder, change)
    _refused_everywhere(folder, message, capsys)


def _rewrite_model_file(path, change_header=None, change_tensors=None):
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = dict(handle.metadata()), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open: no `in`
    if change_header is not None:
        metadata["safesvd"] = change_header(metadata["safesvd"])
    if change_tensors is not None:
        change_tensors(tensors)
    save_file(tensors, str(path), metadata=metadata)


def _header_change(change):
    def edit(raw):
        header = json.loads(raw)
        change(header)
        return json.dumps(header)

    return edit


HEADER_EDITS = {
    "a header that is not JSON": (lambda raw: raw[:-3], "its 'safesvd' header is not JSON"),
    "a header without ranks": (_header_change(lambda h: h.pop("ranks")), "its header's 'ranks' is missing"),
    "a rank that is not an integer": (
        _header_change(lambda h: h["ranks"].update({next(k for k, v in h["ranks"].items() if v): 2.5})),
        "not a map of layer → integer",
    ),
    "header ranks that are not the tensors'": (
        _header_change(lambda h: h["ranks"].update({next(k for k, v in h["ranks"].items() if v): 1})),
        "the ranks in its header are not those of its tensors",
    ),
}


@pytest.mark.parametrize("case", list(HEADER_EDITS))
def test_a_damaged_model_file_header_is_refused(result, tmp_path, case):
    path = save_compressed(result, tmp_path / "model.safetensors")
    change, message = HEADER_EDITS[case]
    _rewrite_model_file(path, change_header=change)
    model = small_transformer()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ConfigError, match=message):
        load_compressed(model, path)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_an_untouched_folder_still_loads_exactly(result, folder):
    loaded = load_compressed(small_transformer(), folder)
    x = small_data()[0][0]
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))
