"""Re-export: the 2-D Navier–Stokes solver lives in :mod:`safesvd_data.navier_stokes`."""

from safesvd_data.navier_stokes import NavierStokes2D, velocity_pairs

__all__ = ["NavierStokes2D", "velocity_pairs"]
