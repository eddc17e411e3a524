# examples/data/readers.py
from safesvd_data import PDEBenchCFD, TheWell, MultiDomainLoader, default_calibration_set

cfd = PDEBenchCFD(path="2D_CFD_Rand_M0.1_Eta0.01_Zeta0.01_periodic_128_Train.hdf5",
                  lead_steps=5, trajectories=32).read()
well = TheWell(path="shear_flow_Reynolds_1e4_Schmidt_1e0.hdf5", lead_steps=4).read()
loader = MultiDomainLoader(sets=[cfd, well], batch_size=8)
for inputs, targets, domain in loader:      # one domain per batch, domains in turn
    field = loader.field(domain)            # that domain's FieldDescription
    ...

calibration = default_calibration_set()     # 6 generated families, 16 samples each, 32²
