"""Every bad input gets a clear error that names the problem and its fix (or a documented,
recorded fallback): never a raw exception, never a NaN model, never a modified original, never
a half-written output. One case per input."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from safesvd_core import (
    ConfigError,
    DuplicatePluginError,
    FieldDescription,
    UnknownPluginError,
    compress,
    load_compressed,
    save_compressed,
)
from safesvd_core.kinds import _plugins
from safesvd_core.plugin import PluginLoadWarning, PluginManager

from test_compress import small_data, small_transformer
from test_plugins import FakeDistribution, fake_plugin, with_fake

BLOCKS = {"adapter_options": {"block_names": ["blocks.0", "blocks.1"], "include": ["blocks.*"]}}


def _data():
    return small_data(batches=2)


def _iterator_that_fails():
    yield _data()[0]
    raise RuntimeError("disk gone")


FIELD_WITH_PRESSURE = FieldDescription(
    channels=("u", "v", "p"),
    roles=("velocity_x", "velocity_y", "pressure"),
    spacing=(0.1, 0.1),
    periodic=(True, True),
)

#: name → (compress keyword arguments, calibration data, the error message expected)
COMPRESS_CASES = {
    "input shape does not fit the model": (
        {},
        lambda: [(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8))],
        "cannot run the first calibration item .* input shape and layout",
    ),
    "input layout is channels-last": (
        {},
        lambda: [(x.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1)) for x, y in _data()],
        "cannot run the first calibration item .* channels first",
    ),
    "target shape does not match the prediction": (
        {},
        lambda: [(x, y[..., :4]) for x, y in _data()],
        "predicts shape \\(4, 2, 8, 8\\) but the calibration target has shape",
    ),
    "data in float64 for a float32 model": (
        {},
        lambda: [(x.double(), y.double()) for x, y in _data()],
        "are torch.float64 but the model's parameters are torch.float32: cast",
    ),
    "calibration iterator raises midway": (
        {},
        _iterator_that_fails,
        "reading the calibration data failed after 1 item\\(s\\): RuntimeError: disk gone",
    ),
    "data on another device than the model": (
        {},
        lambda: [(x.to("meta"), y.to("meta")) for x, y in _data()],
        "cannot be moved to the model's device cpu",
    ),
    "a block name that is a single layer": (
        {"adapter_options": {"block_names": ["blocks.0.query"]}},
        _data,
        "block 'blocks.0.query' named in block_names is a single layer",
    ),
    "data channels do not match the field description": (
        {"family": "ns-incompressible", "adapter_options": {"field_description": FIELD_WITH_PRESSURE}},
        _data,
        "expected shape \\(batch, 3, n, n\\) for channels u, v, p",
    ),
}


@pytest.mark.parametrize("case", list(COMPRESS_CASES))
def test_a_bad_compress_input_is_a_clear_error_and_leaves_the_model_alone(case):
    options, data, message = COMPRESS_CASES[case]
    model = small_transformer()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ConfigError, match=message):
        compress(model, data(), ratio=0.5, **options)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_fewer_calibration_rows_than_inputs_is_a_recorded_fallback():
    model = small_transformer(width=32)
    tiny = [(torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8))]  # one sample: 16 rows (tokens) for 32 inputs
    result = compress(model, tiny, ratio=0.6)
    assert torch.isfinite(result.model(tiny[0][0])).all() and result.met_budget
    notes = [note for note in result.notes if "calibration rows for 32 inputs" in note]
    assert notes and "rank ≤ 16" in notes[0] and "more calibration data would help" in notes[0]


@pytest.fixture
def saved(tmp_path):
    result = compress(small_transformer(), _data(), ratio=0.5)
    path = tmp_path / "model.safetensors"
    save_compressed(result, path)
    return result, path


def test_loading_a_truncated_file_is_a_clear_error(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigError, match="is not a readable safetensors file"):
        load_compressed(small_transformer(), truncated)


def test_loading_a_file_that_is_not_safetensors_is_a_clear_error(tmp_path):
    other = tmp_path / "model.pt"
    other.write_bytes(b"PK\x03\x04 a zip archive, or a pickle")
    with pytest.raises(ConfigError, match="is not a readable safetensors file"):
        load_compressed(small_transformer(), other)


def test_loading_onto_another_architecture_changes_nothing(saved):
    _, path = saved
    for model in (small_transformer(depth=1), small_transformer(width=16)):
        before = {key: value.clone() for key, value in model.state_dict().items()}
        with pytest.raises(ConfigError, match="the model has no submodule|does not fit this model"):
            load_compressed(model, path)
        assert (
            all(torch.equal(before[k], v) for k, v in model.state_dict().items())
            and before.keys() == model.state_dict().keys()
        )


def test_saving_to_an_unwritable_path_is_a_clear_error_and_writes_nothing(saved, tmp_path):
    result, _ = saved
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write"):
        save_compressed(result, blocked / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "model.safetensors"]


def test_an_output_that_holds_another_model_is_refused_unless_overwrite(saved):
    result, path = saved
    save_compressed(result, path)  # the same model: written again
    other = compress(small_transformer(), _data(), ratio=0.7)
    with pytest.raises(ConfigError, match="already holds another model; pass overwrite=True"):
        save_compressed(other, path)
    save_compressed(other, path, overwrite=True)
    assert load_compressed(small_transformer(), path) is not None


def test_a_plugin_that_raises_while_loading_is_isolated_and_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_broken_plugin", types.ModuleType("fake_broken_plugin"))
    monkeypatch.setattr(
        _plugins.importlib.metadata,
        "distributions",
        with_fake(FakeDistribution("broken", {"broken": "fake_broken_plugin:nothing_here"})),
    )
    with pytest.warns(PluginLoadWarning, match="'broken' \\(broken 9.9\\)"):
        manager = PluginManager()
    assert "safe-svd" in manager.registry("recipe")
    with pytest.raises(UnknownPluginError, match="failed to load: 'broken'"):
        manager.registry("recipe").get("missing")


def test_a_duplicate_plugin_name_is_an_error_naming_both():
    manager = PluginManager(autoload=False)
    manager.register(
        fake_plugin("safesvd_allocators", [type("A", (), {"name": "same"})]), name="a", distribution="one 1"
    )
    manager.register(
        fake_plugin("safesvd_allocators", [type("B", (), {"name": "same"})]), name="b", distribution="two 2"
    )
    with pytest.raises(DuplicatePluginError, match="'a' \\(one 1\\) and by 'b' \\(two 2\\)"):
        manager.registry("allocator")


def test_a_job_that_cannot_fit_in_memory_is_refused_before_any_pass(monkeypatch, caplog):
    from safesvd_core.run import _memory

    passes = []
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1000)  # a machine with 1 kB free
    model = small_transformer()
    model.blocks[0].register_forward_hook(lambda *args: passes.append(1))
    with pytest.raises(
        ConfigError, match="does not fit in memory: estimated memory: .* GiB available. Cap the statistics"
    ):
        compress(model, _data(), ratio=0.5)
    assert passes == []  # refused before the first forward pass
    monkeypatch.setattr(_memory, "available_bytes", lambda: 2**40)
    with caplog.at_level("INFO", logger="safesvd"):
        compress(model, _data(), ratio=0.5)
    assert "estimated memory: model copies" in caplog.text
