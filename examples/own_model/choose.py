# examples/own_model/choose.py
"""How the family, λ and α play out per ratio on this model: one row per ratio and variant."""

import math
import os

from safetensors.torch import load_file

from safesvd_core import FieldDescription, compress, evaluate
from safesvd_data import NavierStokesGenerator
from my_operator import build

RATIOS = [float(r) for r in os.environ.get("RATIOS", "0.6 0.4").split()]  # the examples test sets one
VARIANTS = {
    "no physics": {},
    "family, λ auto": {"family": "ns-incompressible"},
    "family, lam_ratio held out": {"family": "ns-incompressible", "lam_ratio": "auto"},
    "family, α held out": {"family": "ns-incompressible", "alpha": "auto"},
}
model = build()
model.load_state_dict(load_file("my_operator.safetensors"))
model.eval()
calibration = list(NavierStokesGenerator(samples=32, size=32, seed=1).generate().batches(16))
test = list(NavierStokesGenerator(samples=64, size=32, seed=2).generate().batches(32))
field = FieldDescription.uniform(channels=("u", "v"), roles=("velocity_x", "velocity_y"), dim=2,
                                 spacing=2 * math.pi / 32, periodic=True)
options = {"field_description": field, "include": ["blocks.*"],
           "block_names": [f"blocks.{i}" for i in range(len(model.blocks))]}

print("| ratio | variant | λ | α | base loss (%) | sobolev (%) | vorticity (%) | divergence-free (%) |")
print("|---|---|---|---|---|---|---|---|")
for ratio in RATIOS:
    for label, variant in VARIANTS.items():
        result = compress(model, calibration, ratio=ratio, adapter_options=options, **variant)
        report = evaluate(model, result.model, test, adapter_options=options, family="ns-incompressible")
        changes = [f"{report.metric(name).signed_change_percent:+.1f}"
                   for name in ("base loss", "sobolev", "vorticity", "divergence-free")]
        lam = "—" if result.lam is None else f"{result.lam:.3g}"
        alpha = result.tuning.get("chosen", {}).get("alpha", result.options["alpha"])
        print(f"| {ratio} | {label} | {lam} | {alpha} | " + " | ".join(changes) + " |")
