"""safesvd: physics-aware low-rank SVD compression of physics foundation models (SAFE-SVD).

Importing this package loads no plugin and touches no GPU: plugins load on first use of a
registry (``available``, ``compress``, ...).
"""

from ._compress import compress
from ._config import config_from_dict, config_to_dict
from ._evaluate import EvaluationReport, MetricChange, evaluate, results_json, results_table
from ._engine import CompressionJob, Plan, run_plan
from ._family import Metric, PDEFamily
from ._field import FieldDescription, Role
from ._errors import BudgetError, ConfigError, DuplicatePluginError, NumericalError, SafeSVDError, UnknownPluginError
from ._hookspecs import hookimpl
from ._interfaces import (
    Allocator,
    Estimator,
    Factorization,
    LayerCandidate,
    LayerSignals,
    ModelAdapter,
    PhysicsLoss,
    Recipe,
    Solver,
    SolveRecord,
)
from ._lowrank import LowRankLinear
from ._persist import load_compressed, save_compressed
from ._plugins import KINDS, PluginManager, Registry, available, plugin_manager, registry
from ._result import CompressionResult
from ._solve import solve_layer
from ._statistics import CalibrationStatistics

__all__ = sorted(
    [
        "Allocator",
        "BudgetError",
        "CalibrationStatistics",
        "CompressionJob",
        "CompressionResult",
        "ConfigError",
        "DuplicatePluginError",
        "Estimator",
        "EvaluationReport",
        "Factorization",
        "FieldDescription",
        "KINDS",
        "LayerCandidate",
        "LayerSignals",
        "LowRankLinear",
        "ModelAdapter",
        "Metric",
        "MetricChange",
        "NumericalError",
        "PDEFamily",
        "PhysicsLoss",
        "Plan",
        "PluginManager",
        "Recipe",
        "Registry",
        "Role",
        "SafeSVDError",
        "SolveRecord",
        "Solver",
        "UnknownPluginError",
        "available",
        "compress",
        "config_from_dict",
        "config_to_dict",
        "evaluate",
        "hookimpl",
        "load_compressed",
        "plugin_manager",
        "registry",
        "results_json",
        "results_table",
        "run_plan",
        "save_compressed",
        "solve_layer",
    ]
)
