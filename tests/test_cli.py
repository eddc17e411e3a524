"""The command line end to end: compress a model a TOML config names, on an HDF5 file in the
PDEBench layout, then inspect, evaluate and export its folder; and every listed user mistake
answered in one line, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from safesvd_core import ConfigError, load_compressed, read_manifest
from safesvd_core.__main__ import main
from safesvd_zoo import reference

h5py = pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")
pytest.importorskip("matplotlib", reason="the plots extra (matplotlib) is not installed")
from PIL import Image  # noqa: E402 - matplotlib's own dependency

FACTORY = '''
import json
from importlib import resources

from safesvd_zoo.operator import FieldTransformer, OperatorConfig


def build(depth=4):
    """The reference architecture, as a user's own factory would build it."""
    card = json.loads((resources.files("safesvd_zoo") / "weights" / "ns2d-transformer.json").read_text())
    return FieldTransformer(OperatorConfig(**{**card["config"], "depth": depth}))
'''

CONFIG = """
[model]
factory = "my_operator:build"
weights = "{weights}"

[data]
pdebench = "ns_incom.h5"
options = {{ particles = false, extent = 6.283185307179586 }}
batch_size = 8
test_fraction = 0.25

[adapter]
options = {{ include = ["blocks.*"], block_names = ["blocks.0", "blocks.1", "blocks.2", "blocks.3"] }}

[compress]
recipe = "safe-svd"
ratio = 0.5
family = "ns-incompressible"

[evaluate]
horizons = [2]
"""


def write_pdebench_ns(path: Path, samples: int = 12, steps: int = 4) -> None:
    """Reference-model trajectories in PDEBench's incompressible-NS layout:
    velocity (N, T, X, Y, 2), t (N, T)."""
    start, trajectory = reference.trajectories(samples=samples, steps=steps, seed=21)
    frames = torch.cat([start[:, None], trajectory], dim=1)  # (N, T, 2, X, Y)
    with h5py.File(path, "w") as file:
        file.create_dataset("velocity", data=frames.permute(0, 1, 3, 4, 2).numpy())
        file.create_dataset(
            "particles", data=np.zeros((*frames.shape[:2], *frames.shape[3:], 1), dtype=np.float32)
        )
        file.create_dataset("force", data=np.zeros((samples, *frames.shape[3:], 2), dtype=np.float32))
        file.create_dataset("t", data=np.tile(np.arange(steps + 1, dtype=np.float32), (samples, 1)))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A user's folder: a model factory, its weights (the zoo's), an HDF5 file and a config."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "my_operator.py").write_text(FACTORY)
    with resources.as_file(
        resources.files("safesvd_zoo") / "weights" / "ns2d-transformer.safetensors"
    ) as weights:
        (folder / "weights.safetensors").write_bytes(Path(weights).read_bytes())
    write_pdebench_ns(folder / "ns_incom.h5")
    (folder / "config.toml").write_text(CONFIG.format(weights="weights.safetensors"))
    return folder


@pytest.fixture(scope="module")
def compressed(project, tmp_path_factory):
    """``safesvd compress`` run in process, with the in-memory compressed model kept."""
    from safesvd_cli import pipeline

    kept = []
    original_runs = pipeline.runs

    def keeping(*args, **kwargs):
        kept.extend(original_runs(*args, **kwargs))
        return kept

    out = tmp_path_factory.mktemp("out") / "run"
    pipeline.runs = keeping
    try:
        assert main(["compress", str(project / "config.toml"), "--out", str(out)]) == 0
    finally:
        pipeline.runs = original_runs
    (run,) = kept
    return out, run


def _model(project: Path) -> torch.nn.Module:
    sys.path.insert(0, str(project))
    try:
        from my_operator import build
    finally:
        sys.path.remove(str(project))
    return build()


def test_compress_writes_the_folder_with_every_part(compressed):
    out, run = compressed
    names = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert {"model.safetensors", "manifest.json", "config.json", "report.json", "report.csv"} <= names
    assert {"figures/spectra.png", "figures/ranks.png", "figures/fields.png", "figures/rollout.png"} <= names
    manifest = read_manifest(out)
    assert manifest["versions"]["torch"] == torch.__version__ and manifest["recipe"]["name"] == "safe-svd"
    assert manifest["adapter"]["name"] == "generic" and manifest["lam"] == run.result.lam > 0
    assert set(manifest["fingerprints"]) == {"weights", "calibration", "config"}
    layers = {layer["name"]: layer for layer in manifest["layers"]}
    assert {name: layer["rank"] for name, layer in layers.items()} == run.result.ranks
    assert all(0.0 < layer["kept_energy"] <= 1.0 for layer in layers.values())
    assert (
        sum(layer["params_before"] - layer["params_after"] for layer in layers.values())
        == manifest["params_before"] - manifest["params_after"]
    )
    assert not any(
        name.startswith(".") or name.endswith(".tmp") for name in names
    )  # atomic writes left nothing


def test_no_file_is_a_pickle_or_a_zip_and_every_png_opens(compressed, tmp_path):
    out, _ = compressed
    files = [path for path in out.rglob("*") if path.is_file()]
    for path in files:
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80") and head != b"PK\x03\x04", f"{path} starts like a pickle or a zip"
    pngs = [path for path in files if path.suffix == ".png"]
    assert len(pngs) >= 4
    for path in pngs:
        assert path.stat().st_size > 1000
        with Image.open(path) as image:
            image.verify()


def test_inspect_shows_every_layer_from_the_manifest(compressed, capsys):
    out, run = compressed
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    for name, rank in run.result.ranks.items():
        assert f"| {name} |" in text and f"| {rank if rank is not None else 'dense'} |" in text
    assert "λ = " in text and "α = 0.5" in text and "fallback" in text


def test_evaluate_prints_the_signed_table_with_the_horizon(compressed, capsys):
    out, run = compressed
    assert main(["evaluate", str(out), "--trust-code"]) == 0
    text = capsys.readouterr().out
    expected = run.report.metric("base loss")
    assert (
        f"| base loss | {expected.original:.6g} | {expected.compressed:.6g} | "
        f"{expected.signed_change_percent:+.2f} |" in text
    )
    assert "| horizon |" in text and "\n| 2 | " in text


def test_the_reloaded_model_and_the_dense_export_give_the_compressed_outputs(compressed, project, tmp_path):
    out, run = compressed
    x = reference.split("test")[0][:8]
    with torch.no_grad():
        expected = run.result.model(x)
        reloaded = load_compressed(_model(project), out)(x)
    assert torch.equal(reloaded, expected)
    dense_file = tmp_path / "dense.safetensors"
    assert main(["export", str(out), "--trust-code", "--dense", str(dense_file)]) == 0
    plain = _model(project)
    plain.load_state_dict(load_file(str(dense_file)))  # strict: the original architecture, no safesvd
    with torch.no_grad():
        assert torch.allclose(plain(x), expected, atol=1e-5)
    assert dense_file.read_bytes()[:4] not in (b"PK\x03\x04",) and not dense_file.read_bytes().startswith(
        b"\x80"
    )


def test_a_folder_of_several_ratios_names_its_model_folders(tmp_path):
    (tmp_path / "ratio-0.5").mkdir()
    (tmp_path / "ratio-0.5" / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds 1 ratio\\(s\\), one folder each: pass one of .*ratio-0.5"):
        main(["inspect", str(tmp_path), "--debug"])


# -- user mistakes: one line on stderr, no traceback ------------------------------------------------


def _safesvd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safesvd_core", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


MISTAKES = {
    "a missing config file": ("", "nothere.toml: no such config file"),
    "a misspelt TOML key": (
        "[compress]\nratoi = 0.5\n",
        "unknown key 'ratoi' in \\[compress\\].*did you mean 'ratio'",
    ),
    "an unknown plugin": (
        '[compress]\nrecipe = "safe-svdd"\n',
        "recipe 'safe-svdd' is not available.*Did you mean 'safe-svd'",
    ),
    "a wrong model path": ("", "cannot import 'no_such_module'"),
    "a missing data file": ("", "no such file .*missing.h5"),
}


def _mistake_config(project: Path, case: str) -> str:
    extra, _ = MISTAKES[case]
    text = CONFIG.format(weights="weights.safetensors")
    if case == "a wrong model path":
        text = text.replace("my_operator:build", "no_such_module:build")
    if case == "a missing data file":
        text = text.replace("ns_incom.h5", "missing.h5")
    if case in ("a misspelt TOML key", "an unknown plugin"):
        text = text.replace('[compress]\nrecipe = "safe-svd"\n', extra)
    return text


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_user_mistake_prints_one_line_without_a_traceback(project, tmp_path, case):
    import re

    config = tmp_path / "config.toml"
    config.write_text(_mistake_config(project, case))
    for name in ("my_operator.py", "weights.safetensors", "ns_incom.h5"):
        (tmp_path / name).symlink_to(project / name)
    target = "nothere.toml" if case == "a missing config file" else str(config)
    answer = _safesvd("compress", target, "--out", str(tmp_path / "out"), cwd=tmp_path)
    lines = answer.stderr.strip().splitlines()
    assert answer.returncode == 2 and len(lines) == 1, answer.stderr
    assert "Traceback" not in answer.stderr and re.search(MISTAKES[case][1], lines[0]), lines[0]
    assert lines[0].startswith("safesvd compress: error: ") and lines[0].endswith(
        "(run with --debug for the traceback)"
    )


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    import selectors
    import signal

    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored (as it
    # should: `nohup`, `&`): the child gets the default disposition a terminal's Ctrl-C meets.
    process = subprocess.Popen(
        [sys.executable, "-m", "safesvd_core", "demo", "--progress", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen, selector = "", selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    while "statistics" not in seen:  # interrupt inside the first compression, whatever the machine's speed
        assert selector.select(timeout=120), f"no progress within 120 s: {seen!r}"
        chunk = process.stderr.read(1)
        assert chunk, f"the demo ended before its first progress bar: {seen!r}"
        seen += chunk
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    process.wait(timeout=120)
    assert process.returncode == 130, seen + rest
    assert rest.strip().splitlines()[-1] == (
        "safesvd demo: interrupted (Ctrl-C); no file is half-written (each is written whole or not at all)"
    )
    assert "Traceback" not in seen + rest


def test_debug_shows_the_traceback(tmp_path):
    answer = _safesvd("inspect", str(tmp_path / "nothing"), "--debug", cwd=tmp_path)
    assert answer.returncode != 0 and "Traceback" in answer.stderr and "ConfigError" in answer.stderr


def test_config_keys_are_checked_before_anything_loads(project):
    from safesvd_cli.config import RunConfig, apply_setting, read_toml

    raw = read_toml(project / "config.toml")
    apply_setting(raw, "compress.options.alpha=0.7")
    apply_setting(raw, "compress.ratio=0.25")
    config = RunConfig.from_dict(raw, base=project)
    assert config.recipe_options == {"alpha": 0.7} and config.ratios == (0.25,)
    assert RunConfig.from_dict(config.to_dict(), base=Path("/")) == config
    raw["model"]["wieghts"] = "x"
    with pytest.raises(ConfigError, match="unknown key 'wieghts' in \\[model\\].*did you mean 'weights'"):
        RunConfig.from_dict(raw, base=project)
    with pytest.raises(ConfigError, match="expected TABLE.KEY=VALUE"):
        apply_setting(raw, "ratio")
