"""The API for plugin authors: the abstract kinds, the hook marker, validators, the building
blocks the built-in plugins use, and the engine's run loop with its phases and seams.

Everything a plugin, an example or a benchmark needs from the core is importable from here or
from :mod:`safesvd_core` (users' names, e.g. :func:`~safesvd_core.compress`, are not repeated here
unless plugins import them from here); the core's ``_private`` modules are not an API (a
meta-test keeps the repository's own plugins off them, and ``tests/test_public_names.py`` keeps
this list to names plugins use or the docs document, sorted).
"""

from ._defaults import DEFAULTS
from ._deprecation import renamed
from ._errors import BudgetError, ConfigError, NumericalError
from ._field import AXES, MOMENTUM_ROLES, VELOCITY_ROLES, FieldDescription, Role, parse_role
from ._structures import map_structure, tensor_leaves
from .io._checkpoint import Checkpoint
from .kinds._command import CliCommand
from .kinds._hookspecs import hookimpl
from .kinds._interfaces import (
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
from .kinds._make_adapter import make_adapter
from .kinds._plugins import PluginLoadWarning, PluginManager, plugin_manager, registry
from .kinds._validators import (
    AUTO,
    auto_or,
    lam_value,
    non_negative,
    non_negative_int,
    one_of,
    positive,
    positive_int,
    ratio_value,
    registered,
    steps_value,
    unit_interval,
)
from .linalg._linalg import precise_dtype, psd_root, singular_values, thin_svd
from .methods._allocators import (
    GAIN_SCALES,
    GreedyAllocator,
    UniformAllocator,
    gain_weight,
    greedy_fill,
    largest_fitting,
    measured_multiple,
    minimum_ranks,
    rank_at_fraction,
    rank_multiple_value,
    resolve_multiple,
    round_down,
    total_cost,
)
from .methods._estimators import (
    CleanCovariance,
    EnergyBalanced,
    MomentEstimator,
    OutputFisher,
    ShiftedCovariance,
)
from .methods._whitened_solver import WhitenedSolver
from .model._latency import LatencyProfile, Timing, median_seconds
from .model._layers import LinearMap, is_compressible, linear_map
from .model._lowrank import LowRankLinear
from .model._modes import ModeBank, in_mode_bank
from .model._modules import count_parameters, evaluating, set_submodule
from .physics._checks import check_pair, finite
from .physics._family import Metric, PDEFamily
from .physics._objective import FISHER_MODES, LAM_MODES, CalibrationObjective, ObjectiveSpec
from .physics._specs import PhysicsSpec, as_specs
from .physics._symmetry import Symmetry, SymmetryGroup, dihedral, periodic_square
from .refinement._refine import RefineDataWarning, RefineOptions, distil
from .refinement._refine_phase import RefinementPhase
from .refinement._refine_request import RefinementRequest
from .refinement._save_refined import check_new_folder
from .run._distributed import DistributedReducer
from .run._draft import assemble, draft_plan
from .run._engine import DEFAULT_PHASES, clean_statistics, run_plan
from .run._items import check_finite, check_runs, plain_item
from .run._job import STAGE_MODES, CompressionJob, Phase, Plan, RunHook, RunState
from .run._outputs import Allocation, Budget, CleanStatistics, Probe, Progress, RunLog, Stage
from .run._phase_list import PhaseList, run_phase_list
from .run._phase_order import insert_phase
from .run._plan_draft import PlanDraft
from .run._recipe import Recipe
from .run._result import CompressionResult
from .run._rollout import RolloutSource, one_step_batches, trajectory_length
from .run._seams import BatchSource, LocalReducer, PairSource, Shared, StatisticsReducer
from .run._start import factor_budget
from .run.phases._allocate import AllocationPhase
from .run.phases._clean import CleanStatisticsPhase
from .run.phases._lambda import LambdaPhase
from .run.phases._probe import ProbePhase
from .run.phases._stages import StagesPhase
from .statistics._moments import RunningMoment
from .statistics._solve import DECOMPOSITIONS, check_rank, whitened_factorization, whitened_spectrum
from .statistics._statistics import CalibrationStatistics

__all__ = [
    "AUTO",
    "AXES",
    "Allocation",
    "AllocationPhase",
    "Allocator",
    "BatchSource",
    "Budget",
    "BudgetError",
    "CalibrationObjective",
    "CalibrationStatistics",
    "Checkpoint",
    "CleanCovariance",
    "CleanStatistics",
    "CleanStatisticsPhase",
    "CliCommand",
    "CompressionJob",
    "CompressionResult",
    "ConfigError",
    "DECOMPOSITIONS",
    "DEFAULTS",
    "DEFAULT_PHASES",
    "DistributedReducer",
    "EnergyBalanced",
    "Estimator",
    "FISHER_MODES",
    "Factorization",
    "FieldDescription",
    "GAIN_SCALES",
    "GreedyAllocator",
    "LAM_MODES",
    "LambdaPhase",
    "LatencyProfile",
    "LayerCandidate",
    "LayerSignals",
    "LinearMap",
    "LocalReducer",
    "LowRankLinear",
    "MOMENTUM_ROLES",
    "Metric",
    "ModeBank",
    "ModelAdapter",
    "MomentEstimator",
    "NumericalError",
    "ObjectiveSpec",
    "OutputFisher",
    "PDEFamily",
    "PairSource",
    "Phase",
    "PhaseList",
    "PhysicsLoss",
    "PhysicsSpec",
    "Plan",
    "PlanDraft",
    "PluginLoadWarning",
    "PluginManager",
    "Probe",
    "ProbePhase",
    "Progress",
    "Recipe",
    "Reduction",
    "RefineDataWarning",
    "RefineOptions",
    "RefinementPhase",
    "RefinementRequest",
    "Role",
    "RolloutSource",
    "RunHook",
    "RunLog",
    "RunState",
    "RunningMoment",
    "STAGE_MODES",
    "Shared",
    "ShiftedCovariance",
    "SolveRecord",
    "Solver",
    "Stage",
    "StagesPhase",
    "StatisticsReducer",
    "Symmetry",
    "SymmetryGroup",
    "Timing",
    "UniformAllocator",
    "VELOCITY_ROLES",
    "WhitenedSolver",
    "as_specs",
    "assemble",
    "auto_or",
    "check_finite",
    "check_new_folder",
    "check_pair",
    "check_rank",
    "check_runs",
    "clean_statistics",
    "count_parameters",
    "dihedral",
    "distil",
    "draft_plan",
    "evaluating",
    "factor_budget",
    "finite",
    "gain_weight",
    "greedy_fill",
    "hookimpl",
    "in_mode_bank",
    "insert_phase",
    "is_compressible",
    "lam_value",
    "largest_fitting",
    "linear_map",
    "make_adapter",
    "map_structure",
    "measured_multiple",
    "median_seconds",
    "minimum_ranks",
    "non_negative",
    "non_negative_int",
    "one_of",
    "one_step_batches",
    "parse_role",
    "periodic_square",
    "plain_item",
    "plugin_manager",
    "positive",
    "positive_int",
    "precise_dtype",
    "psd_root",
    "rank_at_fraction",
    "rank_multiple_value",
    "ratio_value",
    "registered",
    "registry",
    "resolve_multiple",
    "round_down",
    "run_phase_list",
    "run_plan",
    "set_submodule",
    "singular_values",
    "steps_value",
    "tensor_leaves",
    "thin_svd",
    "total_cost",
    "trajectory_length",
    "unit_interval",
    "whitened_factorization",
    "whitened_spectrum",
]

#: Renamed names: the old one still works, with a ``DeprecationWarning``, for one release.
_RENAMED = {
    "DEFAULT_JITTER": ("DEFAULTS.jitter", lambda: DEFAULTS.jitter),
    "RESIDUALS": ('FISHER_MODES ("observed" is now "empirical")', lambda: ("observed", "sampled")),
    # the refinement loop; safesvd_core.refine now refines a saved model
    "refine": ("distil", lambda: distil),
}


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        new, value = _RENAMED[name]
        renamed(f"safesvd_core.plugin.{name}", new)
        return value()
    raise AttributeError(f"module 'safesvd_core.plugin' has no attribute {name!r}")
