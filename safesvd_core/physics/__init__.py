"""The calibration objective (base loss + λ · physics) and the PDE-family kind."""
