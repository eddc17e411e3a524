"""safesvd: physics-aware low-rank SVD compression of physics foundation models (SAFE-SVD).

This module is the users' API: compress, evaluate, save and load, the plugin names available,
configs and errors. Plugin authors import from :mod:`safesvd_core.plugin`.

Importing this package loads no plugin and touches no GPU: plugins load on first use of a
registry (``available``, ``compress``, ...).
"""

from ._compress import compress
from ._errors import (
    BudgetError,
    ConfigError,
    DuplicatePluginError,
    NumericalError,
    SafeSVDError,
    UnknownPluginError,
)
from ._evaluate import EvaluationReport, MetricChange, evaluate, results_json, results_table
from ._field import FieldDescription, Role
from ._structures import register_structure
from .io._checkpoint import CheckpointWarning
from .io._dense import dense_model, export_dense
from .io._manifest import read_manifest
from .io._persist import PartialLoadWarning, load_compressed, save_compressed
from .io._pretrained import from_pretrained, save_pretrained
from .kinds._config import config_from_dict, config_to_dict
from .kinds._plugins import available, registry
from .linalg._balance import balanced, is_balanced
from .model._lowrank import LowRankLinear
from .refinement._refine import RefineDataWarning, RefineOptions, RefineWarning
from .refinement._refine_later import RefinedModel, refine
from .refinement._refinement import Refinement
from .refinement._save_refined import save_refined
from .run._named_phases import named_phases
from .run._phase_list import recipe_phases
from .run._phase_order import insert_phase
from .run._result import CompressionResult
from .run.phases._allocate import AllocationPhase, IdleLayersWarning
from .run.phases._clean import CleanStatisticsPhase
from .run.phases._lambda import LambdaPhase
from .run.phases._probe import ProbePhase
from .run.phases._stages import StagesPhase
from .statistics._solve import Factors, solve_factors, solve_layer
from .statistics._spill import SpillPolicy
from .statistics._statistics import CalibrationStatistics

__all__ = [
    "AllocationPhase",
    "BudgetError",
    "CalibrationStatistics",
    "CheckpointWarning",
    "CleanStatisticsPhase",
    "CompressionResult",
    "ConfigError",
    "DuplicatePluginError",
    "EvaluationReport",
    "Factors",
    "FieldDescription",
    "IdleLayersWarning",
    "LambdaPhase",
    "LowRankLinear",
    "MetricChange",
    "NumericalError",
    "PartialLoadWarning",
    "ProbePhase",
    "RefineDataWarning",
    "RefineOptions",
    "RefineWarning",
    "RefinedModel",
    "Refinement",
    "Role",
    "SafeSVDError",
    "SpillPolicy",
    "StagesPhase",
    "UnknownPluginError",
    "available",
    "balanced",
    "compress",
    "config_from_dict",
    "config_to_dict",
    "dense_model",
    "evaluate",
    "export_dense",
    "from_pretrained",
    "insert_phase",
    "is_balanced",
    "load_compressed",
    "named_phases",
    "read_manifest",
    "recipe_phases",
    "refine",
    "register_structure",
    "registry",
    "results_json",
    "results_table",
    "save_compressed",
    "save_pretrained",
    "save_refined",
    "solve_factors",
    "solve_layer",
]
