# examples/physics/field.py
from safesvd_core import FieldDescription

field = FieldDescription(
    channels=("u", "v", "rho", "p"),
    roles=("velocity_x", "velocity_y", "density", "pressure"),
    spacing=(1 / 128, 1 / 128),       # one entry per grid axis: this sets the dimension
    periodic=(True, True),
    masked=(),                        # channels that carry no data (multi-physics padding)
)
field = FieldDescription.uniform(channels=("h",), roles=("water_height",), dim=2, spacing=0.01, periodic=False)
assert FieldDescription.from_dict(field.to_dict()) == field   # a versioned, JSON/TOML-ready dict
