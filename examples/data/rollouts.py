# examples/data/rollouts.py
from safesvd_data import NavierStokesGenerator, PDEBenchIncompressibleNS

items = list(NavierStokesGenerator(samples=32).rollouts(steps=5).batches(16))
items = list(PDEBenchIncompressibleNS(path="ns.h5", lead_steps=2).read_rollouts(steps=5).batches(16))
