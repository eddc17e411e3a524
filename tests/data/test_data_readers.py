"""Readers: small files written in each layout read back with the right values, roles, spacing,
periodicity and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from safesvd_core import ConfigError, Role
from safesvd_data import (
    MultiDomainLoader,
    PDEBenchCFD,
    PDEBenchDiffusionReaction,
    PDEBenchIncompressibleNS,
    PDEBenchShallowWater,
    TheWell,
)

h5py = pytest.importorskip("h5py", reason="the data extra (h5py) is not installed")

CFD_NAME = "2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_8_Train.hdf5"


def _random(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def write_cfd(path: Path, n: int = 3, steps: int = 5, nx: int = 8, ny: int = 6) -> dict[str, np.ndarray]:
    """The 2D_CFD layout of Data_Merge.py: (N, T, X, Y) datasets, cell-centre coordinates, T + 1 times."""
    fields = {
        name: _random(n, steps, nx, ny, seed=i) for i, name in enumerate(("density", "pressure", "Vx", "Vy"))
    }
    with h5py.File(path, "w") as file:
        for name, data in fields.items():
            file.create_dataset(name, data=data)
        file.create_dataset("x-coordinate", data=(np.arange(nx, dtype=np.float32) + 0.5) / nx)
        file.create_dataset("y-coordinate", data=(np.arange(ny, dtype=np.float32) + 0.5) * 2 / ny)
        file.create_dataset("t-coordinate", data=np.arange(steps + 1, dtype=np.float32) * 0.05)
        file.attrs.update({"eta": 0.01, "zeta": 0.01, "M": 0.1})
    return fields


def write_groups(
    path: Path, shape: tuple[int, ...], axes: tuple[str, ...], steps: dict[str, float]
) -> list[np.ndarray]:
    """The per-sample layout of gen_diff_react.py / sim_radial_dam_break.py: NNNN/data, NNNN/grid/*."""
    samples = [_random(*shape, seed=i) for i in range(3)]
    with h5py.File(path, "w") as file:
        for index, data in enumerate(samples):
            group = file.create_group(f"{index:04d}")
            group.create_dataset("data", data=data)
            for axis, size in zip(axes, shape[1:-1], strict=True):
                group.create_dataset(
                    f"grid/{axis}", data=-1 + (np.arange(size, dtype=np.float32) + 0.5) * steps[axis]
                )
            group.create_dataset("grid/t", data=np.arange(shape[0], dtype=np.float32) * steps["t"])
            group.attrs["config"] = "sim: {}"
    return samples


def write_well(path: Path, *, grid_type: str = "cartesian") -> dict[str, np.ndarray]:
    """The Well layout: root attrs, dimensions, boundary_conditions, scalars, t0/t1/t2 fields."""
    n, steps, nx, ny = 2, 4, 8, 6
    fields = {
        "density": _random(n, steps, nx, ny, seed=1),
        "tracer": _random(steps, nx, ny, seed=2),  # not sample-varying: broadcast
        "viscosity": _random(nx, ny, seed=3),  # constant: not a channel
        "velocity": _random(n, steps, nx, ny, 2, seed=4),
        "stress": _random(n, steps, nx, 2, 2, seed=5),  # constant along y: broadcast
    }
    with h5py.File(path, "w") as file:
        file.attrs.update(
            {
                "dataset_name": "toy_shear",
                "grid_type": grid_type,
                "n_spatial_dims": 2,
                "n_trajectories": n,
                "simulation_parameters": ["Re"],
                "Re": 100.0,
            }
        )
        dims = file.create_group("dimensions")
        dims.attrs["spatial_dims"] = ["x", "y"]
        for name, values in {
            "x": np.arange(nx) / nx,
            "y": np.arange(ny) * 0.5,
            "time": np.arange(steps) * 0.1,
        }.items():
            dataset = dims.create_dataset(name, data=values.astype(np.float32))
            dataset.attrs.update({"sample_varying": False, "time_varying": False})
        bcs = file.create_group("boundary_conditions")
        for name, axis, kind in (("x_periodic", "x", "periodic"), ("y_wall", "y", "WALL")):
            group = bcs.create_group(name)
            group.attrs.update(
                {
                    "associated_dims": [axis],
                    "associated_fields": [],
                    "bc_type": kind,
                    "sample_varying": False,
                    "time_varying": False,
                }
            )
            group.create_dataset("mask", data=np.ones(nx if axis == "x" else ny, dtype=bool))
        scalars = file.create_group("scalars")
        scalars.attrs["field_names"] = ["Re"]
        scalars.create_dataset("Re", data=np.float32(100.0)).attrs.update(
            {"sample_varying": False, "time_varying": False}
        )
        layout = {
            "t0_fields": {
                "density": (True, True, True),
                "tracer": (False, True, True),
                "viscosity": (False, False, True),
            },
            "t1_fields": {"velocity": (True, True, True)},
            "t2_fields": {"stress": (True, True, False)},
        }
        for group_name, members in layout.items():
            group = file.create_group(group_name)
            group.attrs["field_names"] = list(members)
            for name, (sample_varying, time_varying, y_varying) in members.items():
                dataset = group.create_dataset(name, data=fields[name])
                dataset.attrs.update(
                    {
                        "sample_varying": sample_varying,
                        "time_varying": time_varying,
                        "dim_varying": [True, y_varying],
                    }
                )
    return fields


def test_data_pdebench_cfd_round_trip(tmp_path: Path) -> None:
    fields = write_cfd(tmp_path / CFD_NAME)
    pairs = PDEBenchCFD(path=tmp_path / CFD_NAME, lead_steps=2).read()
    # 3 trajectories × inputs at steps 0 and 2 (targets at 2 and 4)
    assert pairs.inputs.shape == (6, 4, 8, 6) and pairs.inputs.dtype == torch.float32
    stacked = np.stack([fields[name] for name in ("density", "pressure", "Vx", "Vy")], axis=2)
    np.testing.assert_array_equal(pairs.inputs[1].numpy(), stacked[0, 2])
    np.testing.assert_array_equal(pairs.targets[1].numpy(), stacked[0, 4])
    np.testing.assert_array_equal(pairs.targets[5].numpy(), stacked[2, 4])
    field = pairs.field
    assert field.channels == ("density", "pressure", "Vx", "Vy")
    assert field.roles == (Role.DENSITY, Role.PRESSURE, Role.VELOCITY_X, Role.VELOCITY_Y)
    assert field.spacing == pytest.approx((1 / 8, 2 / 6)) and field.periodic == (True, True)
    assert pairs.domain == CFD_NAME.removesuffix(".hdf5") and pairs.lead_time == pytest.approx(0.1)


def test_data_pdebench_cfd_boundary_from_name_or_option(tmp_path: Path) -> None:
    write_cfd(tmp_path / "2D_CFD_Turb_M1.0_trans_8.hdf5")
    assert PDEBenchCFD(path=tmp_path / "2D_CFD_Turb_M1.0_trans_8.hdf5").read().field.periodic == (
        False,
        False,
    )
    write_cfd(tmp_path / "mine.h5")
    with pytest.raises(ConfigError, match="periodic"):
        PDEBenchCFD(path=tmp_path / "mine.h5").read()
    pairs = PDEBenchCFD(
        path=tmp_path / "mine.h5", periodic=True, trajectories=1, stride=1, domain="cfd"
    ).read()
    assert pairs.field.periodic == (True, True) and len(pairs) == 4 and pairs.domain == "cfd"


def test_data_pdebench_cfd_names_what_is_wrong(tmp_path: Path) -> None:
    write_cfd(tmp_path / CFD_NAME)
    with h5py.File(tmp_path / CFD_NAME, "a") as file:
        del file["Vy"]
    with pytest.raises(ConfigError, match="'Vy'"):
        PDEBenchCFD(path=tmp_path / CFD_NAME).read()
    write_cfd(tmp_path / CFD_NAME)
    with h5py.File(tmp_path / CFD_NAME, "a") as file:
        file["x-coordinate"][3] = 0.9
    with pytest.raises(ConfigError, match="x-coordinate: expected evenly spaced"):
        PDEBenchCFD(path=tmp_path / CFD_NAME).read()
    write_cfd(tmp_path / "2D_CFD_periodic.h5")
    with pytest.raises(ConfigError, match="lead_steps: expected fewer than the 5 saved time steps"):
        PDEBenchCFD(path=tmp_path / "2D_CFD_periodic.h5", lead_steps=5).read()
    with pytest.raises(ConfigError, match="no such file"):
        PDEBenchCFD(path=tmp_path / "missing_periodic.h5").read()
    with pytest.raises(ConfigError, match="lead_steps"):
        PDEBenchCFD(path=tmp_path / CFD_NAME, lead_steps=0)


def test_data_pdebench_diffusion_reaction_round_trip(tmp_path: Path) -> None:
    # sim_diff_react.py stores (T, Ny, Nx, 2): axes y then x
    samples = write_groups(
        tmp_path / "2D_diff-react_NA_NA.h5", (4, 6, 8, 2), ("y", "x"), {"x": 0.25, "y": 0.5, "t": 0.1}
    )
    pairs = PDEBenchDiffusionReaction(path=tmp_path / "2D_diff-react_NA_NA.h5", lead_steps=3).read()
    assert pairs.inputs.shape == (3, 2, 6, 8)
    np.testing.assert_array_equal(pairs.inputs[2].numpy(), np.moveaxis(samples[2][0], -1, 0))
    np.testing.assert_array_equal(pairs.targets[2].numpy(), np.moveaxis(samples[2][3], -1, 0))
    field = pairs.field
    assert field.channels == ("u", "v") and field.roles == (Role.CONCENTRATION, Role.CONCENTRATION)
    assert field.axes == ("y", "x") and field.spacing == pytest.approx((0.5, 0.25))
    assert field.periodic == (False, False) and pairs.lead_time == pytest.approx(0.3)
    assert pairs.domain == "2D_diff-react_NA_NA"


def test_data_pdebench_shallow_water_round_trip(tmp_path: Path) -> None:
    samples = write_groups(
        tmp_path / "2D_rdb_NA_NA.h5", (5, 8, 8, 1), ("x", "y"), {"x": 5 / 8, "y": 5 / 8, "t": 0.01}
    )
    pairs = PDEBenchShallowWater(path=tmp_path / "2D_rdb_NA_NA.h5", trajectories=2, lead_steps=4).read()
    assert pairs.inputs.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(pairs.targets[1, 0].numpy(), samples[1][4, ..., 0])
    assert pairs.field.roles == (Role.WATER_HEIGHT,) and pairs.field.axes == ("x", "y")
    assert pairs.field.spacing == pytest.approx((0.625, 0.625)) and pairs.field.periodic == (False, False)
    with pytest.raises(ConfigError, match=r"expected 0000/data of shape \(T, y, x, 2\)"):
        PDEBenchDiffusionReaction(path=tmp_path / "2D_rdb_NA_NA.h5").read()


def test_data_pdebench_incompressible_ns_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ns_incom_inhom_2d_512-0.h5"
    velocity, particles = _random(2, 4, 8, 8, 2, seed=1), _random(2, 4, 8, 8, 1, seed=2)
    with h5py.File(path, "w") as file:
        file.create_dataset("velocity", data=velocity)
        file.create_dataset("particles", data=particles)
        file.create_dataset("force", data=_random(2, 8, 8, 2, seed=3))
        file.create_dataset("t", data=np.tile(np.arange(4, dtype=np.float32) * 0.005, (2, 1)))
    pairs = PDEBenchIncompressibleNS(path=path).read()
    assert pairs.inputs.shape == (6, 3, 8, 8)
    np.testing.assert_array_equal(pairs.inputs[4, :2].numpy(), np.moveaxis(velocity[1, 1], -1, 0))
    np.testing.assert_array_equal(pairs.targets[4, 2].numpy(), particles[1, 2, ..., 0])
    field = pairs.field
    assert field.channels == ("Vx", "Vy", "particles")
    assert field.roles == (Role.VELOCITY_X, Role.VELOCITY_Y, Role.CONCENTRATION)
    assert field.spacing == pytest.approx((1 / 8, 1 / 8)) and field.periodic == (False, False)
    assert pairs.lead_time == pytest.approx(0.005)
    plain = PDEBenchIncompressibleNS(path=path, particles=False, extent=8.0).read()
    assert plain.field.channels == ("Vx", "Vy") and plain.field.spacing == (1.0, 1.0)


def test_data_the_well_round_trip(tmp_path: Path) -> None:
    fields = write_well(tmp_path / "toy.hdf5")
    pairs = TheWell(path=tmp_path / "toy.hdf5", lead_steps=2, stride=1).read()
    field = pairs.field
    assert field.channels == (
        "density",
        "tracer",
        "velocity_x",
        "velocity_y",
        "stress_xx",
        "stress_xy",
        "stress_yx",
        "stress_yy",
    )
    assert (
        field.roles
        == (Role.DENSITY, Role.CONCENTRATION, Role.VELOCITY_X, Role.VELOCITY_Y) + (Role.SCALAR,) * 4
    )
    assert field.spacing == pytest.approx((1 / 8, 0.5)) and field.periodic == (True, False)
    assert pairs.domain == "toy_shear" and pairs.lead_time == pytest.approx(0.2)
    assert pairs.inputs.shape == (4, 8, 8, 6)  # 2 trajectories × inputs at steps 0, 1
    sample, step = 1, 1  # pair 3
    np.testing.assert_array_equal(pairs.inputs[3, 0].numpy(), fields["density"][sample, step])
    np.testing.assert_array_equal(pairs.inputs[3, 1].numpy(), fields["tracer"][step])
    np.testing.assert_array_equal(pairs.targets[3, 3].numpy(), fields["velocity"][sample, step + 2, ..., 1])
    stress_xy = fields["stress"][sample, step, :, None, 0, 1]
    np.testing.assert_array_equal(pairs.inputs[3, 5].numpy(), np.broadcast_to(stress_xy, (8, 6)))


def test_data_the_well_roles_override_and_errors(tmp_path: Path) -> None:
    write_well(tmp_path / "toy.hdf5")
    pairs = TheWell(path=tmp_path / "toy.hdf5", roles={"tracer": "scalar"}, domain="shear").read()
    assert pairs.field.roles[1] == Role.SCALAR and pairs.domain == "shear"
    with pytest.raises(ConfigError, match="no channel named pressure"):
        TheWell(path=tmp_path / "toy.hdf5", roles={"pressure": "pressure"}).read()
    with pytest.raises(ConfigError, match="roles"):
        TheWell(path=tmp_path / "toy.hdf5", roles={"tracer": "temperature"})
    write_well(tmp_path / "sphere.hdf5", grid_type="equiangular")
    with pytest.raises(ConfigError, match="grid_type"):
        TheWell(path=tmp_path / "sphere.hdf5").read()


def test_data_multi_domain_loader_over_files(tmp_path: Path) -> None:
    write_cfd(tmp_path / CFD_NAME)
    write_well(tmp_path / "toy.hdf5")
    loader = MultiDomainLoader(
        sets=[PDEBenchCFD(path=tmp_path / CFD_NAME).read(), TheWell(path=tmp_path / "toy.hdf5").read()],
        batch_size=5,
    )
    batches = list(loader)
    domains = [domain for _, _, domain in batches]
    cfd = CFD_NAME.removesuffix(".hdf5")
    # 12 CFD pairs (3 trajectories × 4 inputs) and 6 Well pairs, one batch of each in turn
    assert domains == [cfd, "toy_shear", cfd, "toy_shear", cfd] and len(loader) == 5
    assert [len(x) for x, _, _ in batches] == [5, 5, 5, 1, 2]
    for inputs, targets, domain in batches:
        loader.field(domain).check_shape(inputs.shape)
        assert targets.shape == inputs.shape
    with pytest.raises(ConfigError, match="not loaded"):
        loader.field("euler")
