"""The paper's baselines (App. F, BASELINES.md) as estimators, solvers, allocators and recipes."""
