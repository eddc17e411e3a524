"""The ``compress`` config: a TOML file of six tables, checked key by key (docs/cli.md).

``[model]`` (``factory`` + ``options`` + ``weights``, or ``zoo``), ``[data]`` (the calibration
data, and the test split unless ``[test]`` is given), ``[test]``, ``[adapter]``, ``[compress]``,
``[evaluate]`` and ``[refine]`` (refinement data and options, :mod:`.refine_spec`). Relative paths are read
against the config file's folder. Every mistake is a :class:`ConfigError` naming the table and key, what was
expected and what came, with the closest known key for a misspelt one.
"""

from __future__ import annotations

import difflib
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from safesvd_core.plugin import ConfigError, registry

from .data_source import DataSpec, trajectory_steps
from .model_source import ModelSpec
from .phases_spec import read_phases
from .refine_spec import OPTION_KEYS, RefineSpec
from .user_code import toml_value, untrusted_reason

#: Table → its keys (``data`` and ``test`` share theirs, ``test`` without the two calibration-only ones).
DATA_KEYS = (
    "pdebench",
    "layout",
    "the_well",
    "generator",
    "function",
    "options",
    "batch_size",
    "import_from",
)
SCHEMA: Mapping[str, tuple[str, ...]] = {
    "model": ("factory", "options", "weights", "zoo", "import_from"),
    "data": (*DATA_KEYS, "test_fraction", "trajectory_steps"),
    "test": DATA_KEYS,
    "adapter": ("name", "options"),
    "compress": ("recipe", "options", "phases", "ratio", "ratios", "family"),
    "evaluate": ("horizons", "figures"),
    "refine": (*DATA_KEYS, "trajectory_steps", *OPTION_KEYS),
}
#: Renamed keys, table → old → new: the old name is still read, with a ``FutureWarning`` saying what to write.
#: ``rollout_steps`` named the steps of trajectories to load; the recipe's ``rollout_steps`` (the steps a
#: rollout uses of them) kept the name.
RENAMED_KEYS: Mapping[str, Mapping[str, str]] = {
    "data": {"rollout_steps": "trajectory_steps"},
    "refine": {"rollout_steps": "trajectory_steps"},
}
#: The share of the ``[data]`` items kept for the test split when there is no ``[test]`` table.
TEST_FRACTION = 0.25


def _close(word: str, choices: tuple[str, ...]) -> str:
    match = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def renamed_keys(raw: Mapping[str, Any], label: str) -> dict[str, Any]:
    """``raw`` with every key of :data:`RENAMED_KEYS` under its new name, and a ``FutureWarning`` for each."""
    raw = dict(raw)
    for table, renames in RENAMED_KEYS.items():
        if not isinstance(raw.get(table), Mapping):
            continue
        values = dict(raw[table])
        for old, new in renames.items():
            if old not in values:
                continue
            if new in values:
                raise ConfigError(
                    f"{label}: [{table}] gives both {new} and {old}, its old name; keep {new} only"
                )
            values[new] = values.pop(old)
            warnings.warn(
                f"{label}: [{table}] {old} is now called {new} (the steps of each trajectory loaded); write "
                f"{new} = {values[new]!r} (the old name goes in the next release)",
                FutureWarning,
                stacklevel=3,
            )
        raw[table] = values
    return raw


def check_keys(raw: Mapping[str, Any], label: str) -> None:
    """Every table and key of ``raw`` is one of :data:`SCHEMA`'s; ``[model]`` and ``[data]`` are there."""
    for table, values in raw.items():
        if table not in SCHEMA:
            raise ConfigError(
                f"{label}: unknown table [{table}]; the tables are "
                f"{', '.join(SCHEMA)}{_close(table, tuple(SCHEMA))}"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{label}: [{table}] must be a table, got {values!r}")
        for key in values:
            if key not in SCHEMA[table]:
                raise ConfigError(
                    f"{label}: unknown key {key!r} in [{table}]; its keys are "
                    f"{', '.join(SCHEMA[table])}{_close(key, SCHEMA[table])}"
                )
    for table in ("model", "data"):
        if table not in raw:
            raise ConfigError(
                f"{label}: the table [{table}] is missing (docs/cli.md shows a complete config)"
            )


def _ratio(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ConfigError(f"{where}: expected a kept-parameter fraction in (0, 1], got {value!r}")
    return float(value)


def _ratios(table: Mapping[str, Any]) -> tuple[float, ...]:
    if "ratio" in table and "ratios" in table:
        raise ConfigError("[compress]: give ratio or ratios, not both")
    if "ratios" in table:
        values = table["ratios"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"[compress] ratios: expected a non-empty list of fractions, got {values!r}")
        ratios = tuple(_ratio(value, "[compress] ratios") for value in values)
        if len(set(ratios)) != len(ratios):
            raise ConfigError(f"[compress] ratios: expected distinct values, got {list(ratios)}")
        return ratios
    return (_ratio(table.get("ratio", 0.5), "[compress] ratio"),)


def parse_horizons(value: Any) -> tuple[int, ...]:
    """Rollout horizons: distinct integers ≥ 1, sorted."""
    if not isinstance(value, list) or any(
        isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value
    ):
        raise ConfigError(f"[evaluate] horizons: expected a list of integers ≥ 1, got {value!r}")
    return tuple(sorted(set(value)))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table ({{ key = value, ... }}), got {value!r}")
    return dict(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a name, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class RunConfig:
    """A resolved ``compress`` config (see the module docstring and docs/cli.md)."""

    model: ModelSpec
    data: DataSpec
    test: DataSpec | None = None
    test_fraction: float = TEST_FRACTION
    trajectory_steps: int = 0
    adapter: str = "generic"
    adapter_options: Mapping[str, Any] = attrs.field(factory=dict)
    recipe: str = "safe-svd"
    recipe_options: Mapping[str, Any] = attrs.field(factory=dict)
    phases: tuple[Mapping[str, Any], ...] = ()
    ratios: tuple[float, ...] = (0.5,)
    family: str | None = None
    horizons: tuple[int, ...] = ()
    figures: bool = True
    refine: RefineSpec | None = None

    def __attrs_post_init__(self) -> None:
        """Plugin names are checked now, before any model or data is loaded."""
        registry("recipe").get(self.recipe)
        registry("model_adapter").get(self.adapter)
        if self.family is not None:
            registry("pde_family").get(self.family)
        if self.refine is not None and self.test is not None and self.refine.data.source == self.test.source:
            raise ConfigError(
                f"[refine] reads the test data ([test] {self.test.label}, the same options): the "
                "evaluation would score inputs the model was refined on; give [refine] other inputs "
                "(another file, split, seed or arguments)"
            )

    @property
    def recipe_label(self) -> str:
        """What the runs are called: the recipe's name, or ``phases`` for a list of phases."""
        return "phases" if self.phases else self.recipe

    @property
    def refine_reads_data(self) -> bool:
        """Whether ``[refine]`` reads ``[data]``'s source: it then refines on the calibration share
        only (the test share, when ``[data]`` holds it, stays unseen), with a warning."""
        return self.refine is not None and self.refine.data.source == self.data.source

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, base: Path, label: str = "config") -> RunConfig:
        """Check ``raw`` (the TOML tables) and resolve its paths against ``base``."""
        raw = renamed_keys(raw, label)
        check_keys(raw, label)
        data = dict(raw["data"])
        fraction = data.pop("test_fraction", TEST_FRACTION)
        steps = trajectory_steps(data, "[data]")
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
            raise ConfigError(f"[data] test_fraction: expected a number in (0, 1), got {fraction!r}")
        adapter, run, evaluation = raw.get("adapter", {}), raw.get("compress", {}), raw.get("evaluate", {})
        figures = evaluation.get("figures", True)
        if not isinstance(figures, bool):
            raise ConfigError(f"[evaluate] figures: expected true or false, got {figures!r}")
        family = run.get("family")
        return cls(
            model=ModelSpec.from_dict(raw["model"], base=base),
            data=DataSpec.from_dict(data, base=base, name="data"),
            test=DataSpec.from_dict(raw["test"], base=base, name="test") if "test" in raw else None,
            test_fraction=float(fraction),
            trajectory_steps=steps,
            adapter=_name(adapter.get("name", "generic"), "[adapter] name"),
            adapter_options=_table(adapter.get("options", {}), "[adapter] options"),
            recipe=_name(run.get("recipe", "safe-svd"), "[compress] recipe"),
            recipe_options=_table(run.get("options", {}), "[compress] options"),
            phases=read_phases(run, None if family is None else _name(family, "[compress] family")),
            ratios=_ratios(run),
            family=None if family is None else _name(family, "[compress] family"),
            horizons=parse_horizons(evaluation.get("horizons", [])),
            figures=figures,
            refine=RefineSpec.from_dict(raw["refine"], base=base) if "refine" in raw else None,
        )

    def code(self) -> list[str]:
        """The code of its own this config would import and run (not the installed safesvd packages'):
        ``"[table] key 'module:function' (from folder)"`` each."""
        named = [("[model] factory", self.model.factory, self.model.import_from)]
        for table, spec in (
            ("data", self.data),
            ("test", self.test),
            ("refine", self.refine and self.refine.data),
        ):
            if spec is not None:
                named.append((f"[{table}] function", spec.function, spec.import_from))
        reasons = [
            (where, name, folder, untrusted_reason(name, (Path(folder),)))
            for where, name, folder in named
            if name is not None
        ]
        return [f"{where} {name!r} (from {folder}: {why})" for where, name, folder, why in reasons if why]

    def to_dict(self) -> dict[str, Any]:
        """The tables again, paths absolute: ``from_dict(to_dict())`` gives the same config."""
        raw: dict[str, Any] = {
            "model": self.model.to_dict(),
            "data": {
                **self.data.to_dict(),
                "test_fraction": self.test_fraction,
                "trajectory_steps": self.trajectory_steps,
            },
            "adapter": {"name": self.adapter, "options": dict(self.adapter_options)},
            "compress": {
                **(
                    {"phases": [dict(entry) for entry in self.phases]}
                    if self.phases
                    else {"recipe": self.recipe, "options": dict(self.recipe_options)}
                ),
                "ratios": list(self.ratios),
            },
            "evaluate": {"horizons": list(self.horizons), "figures": self.figures},
        }
        if self.test is not None:
            raw["test"] = self.test.to_dict()
        if self.family is not None:
            raw["compress"]["family"] = self.family
        if self.refine is not None:
            raw["refine"] = self.refine.to_dict()
        return raw


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of the TOML file at ``path``."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such config file (give the path of a TOML file; docs/cli.md has an example)"
        )
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def apply_setting(raw: dict[str, Any], setting: str) -> None:
    """Apply ``--set table.key=value`` (``table.options.name=value`` reaches into an options table)."""
    key, sep, value = setting.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(
            f"--set {setting!r}: expected TABLE.KEY=VALUE, e.g. compress.ratio=0.5 or "
            "compress.options.alpha=0.7"
        )
    target = raw
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {setting!r}: {part!r} is not a table")
    target[parts[-1]] = toml_value(value.strip())
