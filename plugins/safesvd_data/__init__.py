"""PDE datasets: readers of the PDEBench and The Well HDF5 layouts, and seeded data generators."""
