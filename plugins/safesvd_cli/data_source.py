"""The data of a ``compress`` config: a PDEBench or The Well HDF5 file (the :mod:`safesvd_data`
readers), a generator of :data:`safesvd_data.GENERATORS`, or ``module:function``; cut into a
calibration and a test share, as one-step batches or trajectories."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from safesvd_core import FieldDescription
from safesvd_core.plugin import ConfigError, plain_item

from .user_code import call_user, code_value, import_object, options_value, path_value, toml_value

PDEBENCH_LAYOUTS = {
    "cfd": "PDEBenchCFD",
    "diffusion-reaction": "PDEBenchDiffusionReaction",
    "shallow-water": "PDEBenchShallowWater",
    "incompressible-ns": "PDEBenchIncompressibleNS",
}
SOURCES = ("pdebench", "the_well", "generator", "function")


def trajectory_steps(table: dict[str, Any], where: str) -> int:
    """Pop ``trajectory_steps`` from ``table``: the steps each loaded trajectory holds, an integer ≥ 0
    (0, the default: one-step pairs). Not the recipe's ``rollout_steps``, the steps a rollout uses of them."""
    steps = table.pop("trajectory_steps", 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(
            f"{where} trajectory_steps: expected an integer ≥ 0 (0: one-step pairs), got {steps!r}"
        )
    return steps


@attrs.frozen
class Loaded:
    """Items in the adapter's batch form and, where the source knows it, their field description."""

    items: list[Any]
    field: FieldDescription | None = None
    lead_time: float | None = None


def _part(count: int, share: tuple[float, float]) -> slice:
    """The items of ``count`` that the fractions ``share = (start, stop)`` cover."""
    return slice(round(count * share[0]), round(count * share[1]))


def _split(items: Any, share: tuple[float, float]) -> Any:
    """The samples ``share`` of a PairSet or RolloutSet."""
    keep = _part(len(items), share)
    if hasattr(items, "targets"):
        return attrs.evolve(items, inputs=items.inputs[keep], targets=items.targets[keep])
    return attrs.evolve(items, inputs=items.inputs[keep], trajectories=items.trajectories[keep])


@attrs.frozen(kw_only=True)
class DataSpec:
    """One of ``pdebench`` (+ ``layout``), ``the_well``, ``generator`` or ``function``, with ``options``."""

    pdebench: str | None = None
    layout: str | None = None
    the_well: str | None = None
    generator: str | None = None
    function: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    batch_size: int = 16
    import_from: str = "."

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], *, base: Path, name: str = "data") -> DataSpec:
        where = f"[{name}]"
        given = [key for key in SOURCES if key in table]
        if len(given) != 1:
            raise ConfigError(
                f"{where}: give exactly one of {', '.join(SOURCES)}; got {', '.join(given) or 'none'}"
            )
        layout = table.get("layout")
        if layout is not None and (given != ["pdebench"] or layout not in PDEBENCH_LAYOUTS):
            raise ConfigError(
                f"{where} layout: expected one of {', '.join(PDEBENCH_LAYOUTS)} beside pdebench, got "
                f"{layout!r}"
            )
        size = table.get("batch_size", 16)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"{where} batch_size: expected an integer ≥ 1, got {size!r}")
        files = {
            key: path_value(table[key], base, f"{where} {key}")
            for key in ("pdebench", "the_well")
            if key in table
        }
        generator = table.get("generator")
        if generator is not None and (not isinstance(generator, str) or not generator):
            raise ConfigError(f"{where} generator: expected a generator's name, got {generator!r}")
        return cls(
            **files,
            layout=layout,
            generator=generator,
            function=code_value(table.get("function"), f"{where} function"),
            options=options_value(table.get("options", {}), f"{where} options"),
            batch_size=size,
            import_from=path_value(table.get("import_from", "."), base, f"{where} import_from"),
        )

    def to_dict(self) -> dict[str, Any]:
        values = {key: getattr(self, key) for key in (*SOURCES, "layout") if getattr(self, key) is not None}
        return {
            **values,
            "options": dict(self.options),
            "batch_size": self.batch_size,
            "import_from": self.import_from,
        }

    @property
    def source(self) -> tuple[str, str, str]:
        """What the items are read from, for comparing two tables: the kind, the file (resolved) or
        generator or function (with its folder), and the options (split, seed, arguments)."""
        key = next(key for key in SOURCES if getattr(self, key) is not None)
        where = str(getattr(self, key))
        if key in ("pdebench", "the_well"):
            where = str(Path(where).resolve())
        elif key == "function":
            where = f"{where} from {Path(self.import_from).resolve()}"
        return key, where, json.dumps(dict(self.options), sort_keys=True, default=repr)

    @property
    def label(self) -> str:
        key = next(key for key in SOURCES if getattr(self, key) is not None)
        return f"{key} {getattr(self, key)!r}"

    def _dataset(self, steps: int | None, asked_by: str | None) -> Any:
        """A PairSet (``steps`` None) or RolloutSet from a reader or generator; else the function's value."""
        import safesvd_data

        if self.function is not None:
            function = import_object(self.function, "data function", (Path(self.import_from), Path.cwd()))
            if steps is not None and not _takes(function, "steps"):
                asker, fallback = (
                    (f"trajectory_steps = {steps}", "trajectory_steps = 0 (one-step pairs)")
                    if asked_by is None
                    else (asked_by, f"leave out {asked_by.split(' = ')[0]}")
                )
                raise ConfigError(
                    f"{asker} asks data function {self.function!r} for {steps}-step trajectories, but it "
                    "takes no 'steps' argument: give a function that returns (input, trajectory) items "
                    f"for steps=K, or {fallback}"
                )
            return call_user(
                function,
                f"data function {self.function!r}",
                **self.options,
                **({} if steps is None else {"steps": steps}),
            )
        if self.generator is not None:
            if self.generator not in safesvd_data.GENERATORS:
                raise ConfigError(
                    f"data generator {self.generator!r} is not one of {', '.join(safesvd_data.GENERATORS)}"
                )
            source = safesvd_data.GENERATORS[self.generator](**self.options)
            return source.generate() if steps is None else source.rollouts(steps)
        if self.the_well is not None:
            reader = safesvd_data.TheWell(path=self.the_well, **self.options)
        else:
            layout = self.layout or detect_layout(Path(self.pdebench))
            reader = getattr(safesvd_data, PDEBENCH_LAYOUTS[layout])(path=self.pdebench, **self.options)
        return reader.read() if steps is None else reader.read_rollouts(steps)

    def load(
        self,
        steps: int | None = None,
        share: tuple[float, float] = (0.0, 1.0),
        *,
        asked_by: str | None = None,
    ) -> Loaded:
        """One-step batches (``steps`` None) or ``steps``-step trajectories of the samples in the
        fractions ``share = (start, stop)`` (for a function's items: of its items). ``asked_by``: the
        setting that asks for the trajectories, for messages (default: ``trajectory_steps``)."""
        try:
            dataset = self._dataset(steps, asked_by)
        except TypeError as error:  # a reader or generator given an option it does not take
            raise ConfigError(f"{self.label}: {error} (check its options)") from None
        if hasattr(dataset, "batches") and hasattr(dataset, "field"):
            dataset = _split(dataset, share)
            if len(dataset) == 0:
                raise ConfigError(
                    f"{self.label}: no samples left for this split (more data, or another test_fraction)"
                )
            return Loaded(list(dataset.batches(self.batch_size)), dataset.field, dataset.lead_time)
        try:
            items = [plain_item(item) for item in dataset]  # a dataclass batch: the dict of its fields
        except TypeError:
            raise ConfigError(
                f"{self.label} returned a {type(dataset).__name__}: expected batches (a list of "
                "the adapter's batches: (input, target) or (input, trajectory) tuples for the generic "
                "adapter, dicts, dataclasses; docs/cli.md), a PairSet or a RolloutSet"
            ) from None
        items = items[_part(len(items), share)]
        if not items:
            raise ConfigError(
                f"{self.label}: no items left for this split (more data, or another test_fraction)"
            )
        return Loaded(items)


def _takes(function: Any, name: str) -> bool:
    """Whether ``function`` accepts the keyword ``name`` (or any keyword)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call say
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def detect_layout(path: Path) -> str:
    """The PDEBench layout of the HDF5 file at ``path``, from the datasets it holds."""
    try:
        import h5py
    except ImportError:
        raise ConfigError("reading HDF5 files needs h5py: pip install 'safesvd[data]'") from None
    if not path.is_file():
        raise ConfigError(
            f"[data] pdebench: no such file {str(path)!r} (relative paths are read from the config's folder)"
        )
    try:
        with h5py.File(path, "r") as file:
            if not len(file):
                raise ConfigError(
                    f"[data] pdebench: {path} is an empty HDF5 file (no dataset or group: an interrupted "
                    "download or write?); give the file again"
                )
            if "velocity" in file:
                return "incompressible-ns"
            if "density" in file:
                return "cfd"
            groups = [key for key in file if hasattr(file[key], "keys") and "data" in file[key]]
            channels = file[groups[0]]["data"].shape[-1] if groups else None
    except OSError as error:
        raise ConfigError(f"[data] pdebench: {path} is not a readable HDF5 file ({error})") from None
    if channels in (1, 2):
        return "shallow-water" if channels == 1 else "diffusion-reaction"
    raise ConfigError(
        f"[data] pdebench: cannot tell the layout of {path.name}; set layout = one of "
        f"{', '.join(PDEBENCH_LAYOUTS)}"
    )


def data_spec(text: str, settings: list[str]) -> DataSpec:
    """The data ``--data TEXT`` names (an HDF5 file, a generator name or ``module:function``), with
    ``--data-option KEY=VALUE`` settings (VALUE read as TOML)."""
    from safesvd_data import GENERATORS

    options = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--data-option {setting!r}: expected KEY=VALUE, e.g. lead_steps=2")
        options[key.strip()] = toml_value(value.strip())
    path = Path(text)
    if path.is_file():
        return DataSpec.from_dict(
            {_hdf5_kind(path): str(path.resolve()), "options": options}, base=Path.cwd(), name="--data"
        )
    if text in GENERATORS:
        return DataSpec(generator=text, options=options)
    if ":" in text:
        return DataSpec(function=text, options=options, import_from=str(Path.cwd()))
    raise ConfigError(
        f"--data {text!r}: not a file, a generator ({', '.join(GENERATORS)}) or module:function"
    )


def _hdf5_kind(path: Path) -> str:
    """``the_well`` for a file with The Well's root attributes, else ``pdebench``."""
    try:
        import h5py
    except ImportError:
        raise ConfigError("reading HDF5 files needs h5py: pip install 'safesvd[data]'") from None
    try:
        with h5py.File(path, "r") as file:
            return "the_well" if "grid_type" in file.attrs or "t0_fields" in file else "pdebench"
    except OSError as error:
        raise ConfigError(f"--data {path}: not a readable HDF5 file ({error})") from None
