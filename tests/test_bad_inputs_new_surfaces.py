"""Issue 28's bad inputs on the surfaces added since issue 20: each ends as one clear line naming the
fix, raised before the work where it can be checked, or as a documented fallback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from safesvd_core import ConfigError, Refinement, compress, dense_model

from test_compress import small_data, small_transformer

_LATE_CTRL_C = """
import atexit, os, signal, sys, time

def late_ctrl_c():  # Ctrl-C while Python exits, after the command's files are written
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)

atexit.register(late_ctrl_c)
signal.signal(signal.SIGINT, signal.default_int_handler)
from safesvd_core.__main__ import main
sys.argv = ["safesvd", "plugins"]
sys.exit(main())
"""


def test_ctrl_c_after_the_command_ended_is_quiet_and_keeps_the_status():
    answer = subprocess.run([sys.executable, "-c", _LATE_CTRL_C], capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stderr
    assert "KeyboardInterrupt" not in answer.stderr and "Exception ignored" not in answer.stderr


def test_a_model_on_the_meta_device_is_refused_at_entry():
    with torch.device("meta"):
        model = small_transformer()
    with pytest.raises(
        ConfigError,
        match="weights are on the meta device \\(position has a shape but no values\\): load them first",
    ):
        compress(model, small_data(), ratio=0.5)


def _mlp(hidden: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, hidden), nn.GELU(), nn.Linear(hidden, 32))


def test_a_wrong_original_for_dense_export_names_the_layer_and_both_shapes():
    data = [(torch.randn(8, 32), torch.randn(8, 32)) for _ in range(2)]
    result = compress(_mlp(16), data, ratio=0.5)
    with pytest.raises(
        ConfigError,
        match="layer '0': original= holds a weight of shape \\[32, 32\\] \\(Linear\\), the compressed "
        "layer maps 32 to 16 features \\(weight \\[16, 32\\]\\): pass the model this one was compressed",
    ):
        dense_model(result, _mlp(32))


def test_an_unstable_navier_stokes_solve_raises_naming_a_stable_time_step():
    from safesvd_core import NumericalError
    from safesvd_data import NavierStokesGenerator

    with pytest.raises(
        NumericalError, match="128² grid with dt = 0.02: the solution became unstable"
    ) as caught:
        NavierStokesGenerator(samples=8, size=128).generate()  # dt's default: NaN fields, before
    stable = float(str(caught.value).rsplit("pass dt ≤ ", 1)[1])
    fields = NavierStokesGenerator(samples=8, size=128, dt=stable).generate()
    assert torch.isfinite(fields.inputs).all() and torch.isfinite(fields.targets).all()


def _trajectories(steps: int, count: int = 1) -> list:
    generator = torch.Generator().manual_seed(steps)
    return [
        (torch.randn(4, 2, 8, 8, generator=generator), torch.randn(4, steps, 2, 8, 8, generator=generator))
        for _ in range(count)
    ]


@pytest.mark.parametrize("recipe", ["safe-svd", "svd-llm"])
def test_trajectories_of_no_step_are_named_before_any_pass(recipe):
    message = "the calibration items are trajectories of 0 steps \\(an empty step axis\\).*give K ≥ 1"
    with pytest.raises(ConfigError, match=message):  # svd-llm: a raw IndexError, before
        compress(small_transformer(), _trajectories(0), ratio=0.5, recipe=recipe)


def test_rollout_evaluation_trajectories_of_no_step_are_named():
    from safesvd_core import evaluate

    model = small_transformer()
    with pytest.raises(ConfigError, match="the rollout evaluation items are trajectories of 0 steps"):
        evaluate(model, model, small_data(), rollout=_trajectories(0), horizons=(1,))


def test_refinement_trajectories_of_mixed_length_are_called_refinement_items():
    mixed = (_trajectories(3) + _trajectories(2)) * 4
    with pytest.raises(ConfigError, match="^the refinement items mix lengths \\(2 steps, 3 steps\\)"):
        compress(small_transformer(), small_data(), ratio=0.5, refine=Refinement(mixed, steps=2))


def test_no_compressible_layer_names_the_fix():
    data = [(torch.randn(8, 32), torch.randn(8, 32))]
    with pytest.raises(
        ConfigError,
        match="the model \\(Sequential\\) has no compressible layer \\(nn.Linear or 1×1 convolution\\).*"
        "choose the adapter for this kind of model",
    ):
        compress(nn.Sequential(nn.GELU()), data, ratio=0.5)
    with pytest.raises(
        ConfigError,
        match="selected none of the 2 linear layers of the model \\(Sequential\\) "
        "\\(include \\['nothing.\\*'\\], exclude \\[\\]\\): widen its include globs",
    ):
        compress(_mlp(16), data, ratio=0.5, adapter_options={"include": ["nothing.*"]})


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 32)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_tied_weights_are_named_not_a_budget_error_at_every_ratio():
    data = [(torch.randn(8, 32), torch.randn(8, 32))]
    with pytest.raises(
        ConfigError,
        match="layer 'a' shares its weight with b.weight \\(tied: one tensor under 2 names\\).*"
        "exclude \\['a', 'b'\\] with the adapter's exclude globs",
    ):
        compress(_Tied(), data, ratio=0.9)


@pytest.mark.parametrize("where", ["folder", "model.safetensors"])
def test_loading_onto_another_architecture_names_the_class_and_the_expected_layers(tmp_path, where):
    from safesvd_core import load_compressed, save_compressed

    data = [(torch.randn(8, 32), torch.randn(8, 32)) for _ in range(2)]
    saved = save_compressed(compress(_mlp(16), data, ratio=0.5), tmp_path / where)
    other = nn.Sequential(nn.Linear(32, 16))  # "no submodule '2'", before: the class and structure unnamed
    expected = (
        "it expects the linear layers 0 \\(32 → 16\\), 2 \\(16 → 32\\)"
        if where == "folder"
        else "it factors 0, 2"
    )
    with pytest.raises(ConfigError, match=f"this model \\(Sequential; another architecture.*{expected}"):
        load_compressed(other, saved)


def _cfd_file(path, dtype="float32"):
    """A tiny PDEBench 2D_CFD file (docs/data.md's layout) of ``dtype``."""
    h5py = pytest.importorskip("h5py")
    import numpy as np

    n, steps, size = 2, 4, 8
    values = np.random.default_rng(0).random((n, steps, size, size))
    with h5py.File(path, "w") as file:
        for name in ("density", "pressure", "Vx", "Vy"):
            file[name] = (values + 1j * values if dtype.startswith("complex") else values).astype(dtype)
        file["x-coordinate"] = file["y-coordinate"] = (np.arange(size, dtype=np.float32) + 0.5) / size
        file["t-coordinate"] = np.arange(steps + 1, dtype=np.float32) * 0.05
    return path


def test_a_complex_hdf5_file_is_refused_not_cast_to_its_real_part(tmp_path):
    from safesvd_data import PDEBenchCFD

    path = _cfd_file(tmp_path / "cfd_periodic.hdf5", "complex64")
    with pytest.raises(
        ConfigError, match="'cfd_periodic': the file's fields are complex \\(complex64\\); safesvd reads real"
    ):
        PDEBenchCFD(path=path).read()  # before: numpy's ComplexWarning, the imaginary part dropped
    assert len(PDEBenchCFD(path=_cfd_file(tmp_path / "real_periodic.hdf5")).read()) > 0


def test_an_empty_hdf5_file_says_so(tmp_path):
    h5py = pytest.importorskip("h5py")
    from safesvd_cli.data_source import DataSpec
    from safesvd_data import PDEBenchCFD

    path = tmp_path / "empty.hdf5"
    h5py.File(path, "w").close()
    message = (
        "is an empty HDF5 file \\(no dataset or group: an interrupted download or write\\?\\); give the file"
    )
    with pytest.raises(ConfigError, match=message):  # before: "cannot tell the layout of empty.hdf5"
        DataSpec(pdebench=str(path)).load()
    with pytest.raises(ConfigError, match=message):  # with the layout given
        PDEBenchCFD(path=path).read()


def test_horizons_with_a_pairs_function_name_the_horizons_not_trajectory_steps(tmp_path, capsys):
    from safesvd_core.__main__ import main

    (tmp_path / "pairs_only.py").write_text(
        "import torch\n\ndef load(samples=10):\n"
        "    return [(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)) for _ in range(samples)]\n"
    )
    config = tmp_path / "c.toml"
    config.write_text('[model]\nzoo = "ns2d-transformer"\n\n[data]\nfunction = "pairs_only:load"\n')
    arguments = ["compress", str(config), "--out", str(tmp_path / "o"), "--horizons", "2"]
    assert main(arguments) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "trajectory_steps" not in lines[0], lines
    assert (
        "horizons = [2] ([evaluate] or --horizons) asks data function 'pairs_only:load' for 2-step "
        "trajectories, but it takes no 'steps' argument" in lines[0]
    ) and lines[0].endswith("or leave out horizons (run with --debug for the traceback)"), lines


def test_dense_export_under_a_file_names_the_file_before_any_load(tmp_path):
    from safesvd_cli.export import export

    (tmp_path / "afile").write_text("notes")
    for given in ("afile/x", "afile/x.safetensors"):
        with pytest.raises(
            ConfigError, match="afile is a file, not a folder; .* \\(e.g. --dense .*x.safetensors\\)"
        ):
            export(None, tmp_path / "run", tmp_path / given)  # checked first: no config, model or folder read
    with pytest.raises(
        ConfigError, match="expected a file name ending in .safetensors \\(e.g. --dense .*dense"
    ):
        export(None, tmp_path / "run", tmp_path / "dense")


def test_trajectories_given_as_evaluation_data_point_to_rollout():
    from safesvd_core import evaluate
    from safesvd_zoo import reference

    model = reference.load()
    items = reference.trajectory_batches(samples=4, steps=3, batch_size=4)
    with pytest.raises(ConfigError, match="trajectories of 3 steps: pass them as rollout= with horizons="):
        evaluate(model, model, items)
