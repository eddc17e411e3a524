"""The data generators' numbers for docs/data.md: run ``python -m benchmarks.data``.

Per generator: the time to generate its default pairs (16 samples, 32²) and the copy-the-input
relative L2 error (channel mean, then per channel); the time to build the default calibration
set; and the value of every physics check in :mod:`safesvd_data.checks`.
"""

from __future__ import annotations

import math
import time

import torch

from safesvd_data import GENERATORS, checks, default_calibration_set, relative_l2
from safesvd_data._generator import one_thread


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available (generators use 1)\n")
    print("| generator | time (s) | copy error | per channel |\n|---|---|---|---|")
    for name, cls in GENERATORS.items():
        pairs, seconds = _timed(cls().generate)
        channels = ", ".join(
            f"{channel} {relative_l2(pairs.inputs[:, [i]], pairs.targets[:, [i]]):.3f}"
            for i, channel in enumerate(pairs.field.channels)
        )
        print(f"| {name} | {seconds:.2f} | {pairs.copy_error():.3f} | {channels} |")
    _, seconds = _timed(default_calibration_set)
    print(f"\ndefault_calibration_set(): {seconds:.1f} s\n")
    rows = {
        "NS Taylor–Green energy vs exp(−4νt), relative error": checks.navier_stokes_taylor_green,
        "NS largest energy change per 0.5 (must be < 0)": lambda: float(
            checks.navier_stokes_energy_steps().max()
        ),
        "Euler drift of mass, x-mom., y-mom., energy / Σ|q|": lambda: checks.euler_drift().tolist(),
        "shallow water mass drift at t = 0.3": lambda: checks.shallow_water_mass_drift(0.3),
        "shallow water mass drift at t = 0.6 (defaults' end)": lambda: checks.shallow_water_mass_drift(0.6),
        "shallow water front speed / √(g h), g = 2": lambda: (
            checks.shallow_water_front_speed(2.0) / math.sqrt(2.0)
        ),
        "wave energy drift": checks.wave_energy_drift,
        "wave travelling-wave max error": checks.wave_translation_error,
        "Gray–Scott (min, max, std v) at t = 1000": checks.gray_scott_range,
        "Burgers vs Cole–Hopf, relative L2 at 32², 64²": checks.burgers_cole_hopf_errors,
    }
    print("| check | value | time (s) |\n|---|---|---|")
    for label, check in rows.items():
        value, seconds = _timed(check)
        shown = [f"{v:.3g}" for v in value] if isinstance(value, (list, tuple)) else f"{value:.3g}"
        print(f"| {label} | {shown} | {seconds:.2f} |")


if __name__ == "__main__":
    with torch.no_grad(), one_thread():
        main()
