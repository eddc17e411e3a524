# examples/quickstart/install.sh  (from the repository root)
scripts/setup                        # .venv: torch (CPU wheel unless one is there), safesvd, plots + data extras
source .venv/bin/activate            # puts `safesvd` on the PATH
# in an environment of your own instead:
#   pip install -e '.[plots,data]'   # plots: matplotlib for the figures; data: h5py for HDF5 files
