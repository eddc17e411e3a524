"""safesvd: physics-aware low-rank SVD compression of physics foundation models (SAFE-SVD).

This module is the users' API: compress, evaluate, save and load, the plugin names available,
configs and errors. Plugin authors import from :mod:`safesvd_core.plugin`.

Importing this package loads no plugin and touches no GPU: plugins load on first use of a
registry (``available``, ``compress``, ...).
"""

from ._compress import compress
from ._config import config_from_dict, config_to_dict
from ._dense import dense_model, export_dense
from ._errors import BudgetError, ConfigError, DuplicatePluginError, NumericalError, SafeSVDError, UnknownPluginError
from ._evaluate import EvaluationReport, MetricChange, evaluate, results_json, results_table
from ._field import FieldDescription, Role
from ._balance import balanced, is_balanced
from ._lowrank import LowRankLinear
from ._manifest import read_manifest
from ._persist import PartialLoadWarning, load_compressed, save_compressed
from ._plugins import available, registry
from ._pretrained import from_pretrained, save_pretrained
from ._refine import RefineDataWarning, RefineOptions, RefineWarning
from ._result import CompressionResult
from ._solve import solve_layer
from ._statistics import CalibrationStatistics

__all__ = sorted(
    [
        "BudgetError",
        "CalibrationStatistics",
        "CompressionResult",
        "ConfigError",
        "DuplicatePluginError",
        "EvaluationReport",
        "FieldDescription",
        "LowRankLinear",
        "RefineDataWarning",
        "RefineOptions",
        "RefineWarning",
        "balanced",
        "is_balanced",
        "MetricChange",
        "NumericalError",
        "PartialLoadWarning",
        "Role",
        "SafeSVDError",
        "UnknownPluginError",
        "available",
        "compress",
        "config_from_dict",
        "config_to_dict",
        "evaluate",
        "dense_model",
        "export_dense",
        "from_pretrained",
        "load_compressed",
        "read_manifest",
        "registry",
        "results_json",
        "results_table",
        "save_compressed",
        "save_pretrained",
        "solve_layer",
    ]
)
