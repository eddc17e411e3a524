"""The rows of the paper's Table 1 (ablation, Poseidon on NS) as plain ``safe-svd`` options.

An experiment is a config: ``compress(model, data, ratio=r, recipe="safe-svd", **TABLE1[row])``,
or ``config_from_dict({"kind": "recipe", "name": "safe-svd", "version": 1, "options": TABLE1[row]})``.
RS = rank selection (greedy vs uniform), SE = loss-aware sensitivity (Fisher ``S`` of the calibration
loss with the Sobolev term; off: ``S = I`` and no Sobolev term), SL = the Sobolev loss's type (``p``)
and order. Rows 3–5 are the L2 variants and rows 6–8 the L1 ones (the text: L1 is adopted, order 2
with L1 is the best, 1.22 %); rows 9–10 vary α with L1, order 2.
"""

from __future__ import annotations

from typing import Any

#: The PDE family of Table 1's benchmark (NS-BB: incompressible Navier–Stokes).
FAMILY = "ns-incompressible"


def _sobolev(p: int, order: int, alpha: float = 0.5) -> dict[str, Any]:
    return {
        "allocator": "greedy",
        "sensitivity": True,
        "family": FAMILY,
        "sobolev_p": p,
        "sobolev_order": order,
        "alpha": alpha,
    }


TABLE1: dict[str, dict[str, Any]] = {
    "base": {"allocator": "uniform", "sensitivity": False, "alpha": 0.5},
    "+RS": {"allocator": "greedy", "sensitivity": False, "alpha": 0.5},
    "+RS +SE, L2, order 0": _sobolev(2, 0),
    "+RS +SE, L2, order 1": _sobolev(2, 1),
    "+RS +SE, L2, order 2": _sobolev(2, 2),
    "+RS +SE, L1, order 0": _sobolev(1, 0),
    "+RS +SE, L1, order 1": _sobolev(1, 1),
    "+RS +SE, L1, order 2": _sobolev(1, 2),
    "+RS +SE, L1, order 2, α = 0.3": _sobolev(1, 2, 0.3),
    "+RS +SE, L1, order 2, α = 0.7": _sobolev(1, 2, 0.7),
}

#: The rollout mechanisms, each a ``safe-svd`` variant for trajectory calibration items (the
#: benchmark's rollout ablation). From the paper's one-step recipe to today's default, one step at
#: a time, then variations of the default.
ROLLOUT: dict[str, dict[str, Any]] = {
    "paper's one-step recipe: empirical Fisher, block stages, one-step batches": {
        "rollout": False,
        "fisher": "empirical",
        "stage_mode": "block",
    },
    "+ layer stages": {"rollout": False, "fisher": "empirical"},
    "+ sampled Fisher": {"rollout": False},
    "+ rollout calibration (K = 5), horizons not balanced": {"balance_horizons": False},
    "+ balanced horizons (the default)": {},
    "default with the empirical Fisher": {"fisher": "empirical"},
    "default with layer stages (block inputs cached: cheaper, misses cross-step effects)": {
        "stage_mode": "layer"
    },
    "default with K = 3": {"rollout_steps": 3},
    "default with α = 0.25": {"alpha": 0.25},
    "default with a uniform floor of ½ in the allocation": {"allocator_options": {"uniform_floor": 0.5}},
    "default with α chosen on held-out items": {"alpha": "auto"},
    "default with λ's ratio chosen on held-out items": {"lam_ratio": "auto"},
    "default with K chosen on held-out items": {"rollout_steps": "auto"},
    "default, then 60 epochs of refinement (distillation, lr 3e-4)": {"refine_epochs": 60, "refine_lr": 3e-4},
}
