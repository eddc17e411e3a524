"""The API for plugin authors: the abstract kinds, the hook marker, validators, the building
blocks the built-in plugins use, and the engine's run loop with its phases and seams.

Everything a plugin, an example or a benchmark needs from the core is importable from here or
from :mod:`safesvd_core`; the core's ``_private`` modules are not an API (a meta-test keeps the
repository's own plugins off them).
"""

from ._allocate import AllocationPhase
from ._clean import CleanStatisticsPhase
from ._command import CliCommand
from ._compress import make_adapter, make_recipe
from ._config import config_version
from ._engine import DEFAULT_PHASES, clean_statistics, evaluating, factor_budget, run_phases, run_plan, start_state
from ._errors import BudgetError, ConfigError, DuplicatePluginError, NumericalError, SafeSVDError, UnknownPluginError
from ._family import Metric, PDEFamily
from ._files import atomic_write, sha256_file
from ._field import AXES, MOMENTUM_ROLES, VELOCITY_ROLES, FieldDescription, Role, parse_role
from ._hookspecs import hookimpl
from ._interfaces import (
    Allocator,
    Estimator,
    Factorization,
    LayerCandidate,
    LayerSignals,
    ModelAdapter,
    PhysicsLoss,
    Reduction,
    Solver,
    SolveRecord,
)
from ._job import STAGE_MODES, CompressionJob, Phase, Plan, Probe, Recipe, RunHook, RunState, Stage
from ._lambda import LambdaPhase
from ._latency import LatencyProfile, Timing, median_seconds
from ._layers import LinearMap, is_compressible, linear_map
from ._linalg import DEFAULT_JITTER, Root, psd_root, singular_values, thin_svd
from ._balance import balanced, is_balanced
from ._items import check_finite, check_runs, plain_item
from ._lowrank import LowRankLinear
from ._modules import count_parameters, get_submodule, set_submodule
from ._moments import RunningMoment
from ._objective import LAM_MODES, RESIDUALS, CalibrationObjective
from ._plugins import KINDS, PluginFailure, PluginLoadWarning, PluginManager, Registry, plugin_manager, registry
from ._probe import ProbePhase
from ._refine import RefineDataWarning, RefineOptions, RefineWarning, refine
from ._result import CompressionResult
from ._rollout import ONE_STEP, ROLLOUT, RolloutSource, one_step_batches, trajectory_length
from ._seams import BatchSource, LocalReducer, PairSource, StatisticsReducer
from ._solve import check_rank, whitened_factorization, whitened_spectrum
from ._stages import StagesPhase
from ._statistics import CalibrationStatistics, EstimatorFactory
from ._validators import non_negative, non_negative_int, one_of, positive, positive_int, ratio_value, registered, unit_interval

__all__ = sorted(
    [
        "median_seconds",
        "Timing",
        "LatencyProfile",
        "RESIDUALS",
        "trajectory_length",
        "one_step_batches",
        "RolloutSource",
        "ROLLOUT",
        "ONE_STEP",
        "AXES",
        "AllocationPhase",
        "atomic_write",
        "sha256_file",
        "Allocator",
        "BatchSource",
        "BudgetError",
        "CalibrationObjective",
        "CalibrationStatistics",
        "CleanStatisticsPhase",
        "CliCommand",
        "CompressionJob",
        "CompressionResult",
        "ConfigError",
        "DEFAULT_JITTER",
        "DEFAULT_PHASES",
        "DuplicatePluginError",
        "Estimator",
        "EstimatorFactory",
        "Factorization",
        "FieldDescription",
        "KINDS",
        "LAM_MODES",
        "LambdaPhase",
        "LayerCandidate",
        "LayerSignals",
        "LinearMap",
        "LocalReducer",
        "LowRankLinear",
        "check_finite",
        "check_runs",
        "plain_item",
        "RefineDataWarning",
        "RefineOptions",
        "RefineWarning",
        "refine",
        "balanced",
        "is_balanced",
        "MOMENTUM_ROLES",
        "Metric",
        "ModelAdapter",
        "NumericalError",
        "PDEFamily",
        "PairSource",
        "Phase",
        "PhysicsLoss",
        "Plan",
        "PluginFailure",
        "PluginLoadWarning",
        "PluginManager",
        "Probe",
        "ProbePhase",
        "Recipe",
        "Reduction",
        "Registry",
        "Role",
        "Root",
        "RunHook",
        "RunState",
        "RunningMoment",
        "STAGE_MODES",
        "SafeSVDError",
        "SolveRecord",
        "Solver",
        "Stage",
        "StagesPhase",
        "StatisticsReducer",
        "UnknownPluginError",
        "VELOCITY_ROLES",
        "check_rank",
        "clean_statistics",
        "config_version",
        "count_parameters",
        "evaluating",
        "factor_budget",
        "get_submodule",
        "hookimpl",
        "is_compressible",
        "linear_map",
        "make_adapter",
        "make_recipe",
        "non_negative",
        "non_negative_int",
        "one_of",
        "parse_role",
        "plugin_manager",
        "positive",
        "positive_int",
        "psd_root",
        "ratio_value",
        "registered",
        "registry",
        "run_phases",
        "run_plan",
        "set_submodule",
        "singular_values",
        "start_state",
        "thin_svd",
        "unit_interval",
        "whitened_factorization",
        "whitened_spectrum",
    ]
)
