"""Calibration statistics: streaming moments, per-layer estimator states, spilling, the closed-form solve."""
