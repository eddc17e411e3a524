"""Entry point of the command line's application layer: ``safesvd compress``, ``evaluate``,
``inspect``, ``export``, ``refine`` and ``demo`` (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import ClassVar

import attrs

from safesvd_core import load_compressed
from safesvd_core.plugin import CliCommand, hookimpl

from . import config as configs
from . import figures, folder, pipeline, report
from .data_source import data_spec
from .output import OutputFolder
from .progress_option import add_progress_option, wants_progress
from .threads_option import add_threads_option, apply_threads

TRUST_HELP = (
    "import the factory or data function the folder's config.json names (it runs that code: only for a "
    "folder you trust; zoo models, readers and generators need no code)"
)


class CompressCommand(CliCommand):
    """``safesvd compress CONFIG.toml``: compress, evaluate, and write the output folder."""

    name: ClassVar[str] = "compress"
    help: ClassVar[str] = "compress your model as a TOML config says; write the model, a report and figures"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("config", type=Path, help="the TOML config (docs/cli.md)")
        parser.add_argument("--out", type=Path, help="the output folder (default: <config name>-compressed)")
        parser.add_argument(
            "--ratio", type=float, nargs="+", help="kept-parameter fraction(s); overrides [compress] ratio(s)"
        )
        parser.add_argument("--recipe", help="overrides [compress] recipe")
        parser.add_argument("--family", help="overrides [compress] family")
        parser.add_argument(
            "--horizons", type=int, nargs="+", help="rollout horizons to evaluate; overrides [evaluate]"
        )
        parser.add_argument("--no-figures", action="store_true", help="write no figures")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="TABLE.KEY=VALUE",
            help="override any key, e.g. compress.options.alpha=0.7 (VALUE read as TOML)",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an existing output folder (as a whole)"
        )
        add_progress_option(parser)
        add_threads_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        raw = configs.read_toml(args.config)
        overrides = {
            "compress.recipe": args.recipe,
            "compress.family": args.family,
            "evaluate.horizons": args.horizons,
            "evaluate.figures": False if args.no_figures else None,
        }
        if args.ratio:
            raw.get("compress", {}).pop("ratio", None)
            overrides["compress.ratios"] = list(args.ratio)
        for key, value in overrides.items():
            if value is not None:
                table, name = key.split(".")
                raw.setdefault(table, {})[name] = value
        for setting in args.set:
            configs.apply_setting(raw, setting)
        config = configs.RunConfig.from_dict(raw, base=args.config.resolve().parent, label=str(args.config))
        out = OutputFolder(args.out or Path(f"{args.config.stem}-compressed"), overwrite=args.overwrite)
        with out.locked():  # --out checked, and held, before any compute
            prepared = pipeline.prepare(config)
            apply_threads(args)  # after every user mistake is found: those print one line alone
            runs = pipeline.runs(prepared, config.ratios, progress=wants_progress(args))
            out.write(lambda where: folder.write(where, prepared, runs))
        folders = folder.model_folders(out.path, runs)
        if config.figures and not figures.available():
            print(figures.MISSING)
        copy, legend = pipeline.copy_input(prepared), pipeline.rows_legend(prepared)
        for run, where in zip(runs, folders):
            print(
                f"## {run.result.recipe} at ratio {run.ratio:g}: {run.result.params_after:,} of "
                f"{run.result.params_before:,} parameters kept, {run.seconds:.1f} s → {where}\n"
            )
            print(report.evaluation_table(run.report, config.horizons, copy=copy, legend=legend) + "\n")
        print(f"written: {out.path}")
        return 0


class EvaluateCommand(CliCommand):
    """``safesvd evaluate DIR``: the paper-style table of a compressed model against its original."""

    name: ClassVar[str] = "evaluate"
    help: ClassVar[str] = "evaluate a compressed-model folder against its original model (signed changes)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, help="a folder written by `safesvd compress` (one ratio)")
        parser.add_argument(
            "--data",
            help="test data instead of the config's test split: an HDF5 file (PDEBench or "
            "The Well), a generator name, or module:function",
        )
        parser.add_argument(
            "--data-option",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an option of that reader, generator or function (VALUE read as TOML)",
        )
        parser.add_argument(
            "--horizons", type=int, nargs="+", help="rollout horizons (default: the config's)"
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    def run(self, args: argparse.Namespace) -> int:
        config, _ = folder.read_config(args.folder, trust_code=args.trust_code)
        if args.data:
            config = attrs.evolve(config, test=data_spec(args.data, args.data_option))
        if args.horizons:
            config = attrs.evolve(config, horizons=configs.parse_horizons(args.horizons))
        prepared = pipeline.prepare(config, calibration=False)
        compressed = load_compressed(config.model.build(), args.folder)
        evaluation = pipeline.evaluation(prepared, compressed)
        print(
            evaluation.to_json()
            if args.json
            else report.evaluation_table(
                evaluation,
                config.horizons,
                copy=pipeline.copy_input(prepared),
                legend=pipeline.rows_legend(prepared),
            )
        )
        return 0


class InspectCommand(CliCommand):
    """``safesvd inspect DIR``: the manifest as a table, no tensor loaded."""

    name: ClassVar[str] = "inspect"
    help: ClassVar[str] = (
        "show ranks, shapes, parameters, fallbacks and λ/α per layer from a folder's manifest"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, help="a compressed-model folder (or its manifest.json)")
        parser.add_argument("--json", action="store_true", help="print the manifest as JSON")

    def run(self, args: argparse.Namespace) -> int:
        manifest = folder.manifest_of(args.folder)
        print(json.dumps(manifest, indent=1) if args.json else report.inspect_table(manifest))
        return 0


class ExportCommand(CliCommand):
    """``safesvd export DIR --dense OUT.safetensors``: dense weights for the original architecture."""

    name: ClassVar[str] = "export"
    help: ClassVar[str] = (
        "merge the factors into dense weights that load into the original model without safesvd"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, help="a folder written by `safesvd compress` (one ratio)")
        parser.add_argument(
            "--dense", type=Path, required=True, metavar="OUT.safetensors", help="the file to write"
        )
        parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
        parser.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    def run(self, args: argparse.Namespace) -> int:
        from .export import export

        config, _ = folder.read_config(args.folder, trust_code=args.trust_code)
        written = export(config, args.folder, args.dense, overwrite=args.overwrite)
        print(f"written: {written} (load it with model.load_state_dict(safetensors.torch.load_file(...)))")
        return 0


class RefineCommand(CliCommand):
    """``safesvd refine FOLDER CONFIG --out NEW``: refine a saved compressed model into a new folder."""

    name: ClassVar[str] = "refine"
    help: ClassVar[str] = (
        "refine a compressed model saved in FOLDER on CONFIG's [refine] data, into a new folder"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("folder", type=Path, help="a compressed-model folder (one ratio)")
        parser.add_argument(
            "config", type=Path, help="a compress config: its [model] is the original, [refine] the data"
        )
        parser.add_argument("--out", type=Path, required=True, help="the new folder to write (never FOLDER)")
        add_progress_option(parser)
        add_threads_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from .refine_folder import refine_folder

        config = configs.RunConfig.from_dict(
            configs.read_toml(args.config), base=args.config.resolve().parent, label=str(args.config)
        )
        folder.manifest_of(args.folder)  # a several-ratio folder is refused, its model folders named
        printed = refine_folder(
            config,
            args.folder,
            args.out,
            progress=wants_progress(args),
            before_compute=lambda: apply_threads(args),
        )
        print(printed)
        print(f"written: {args.out}")
        return 0


class DemoCommand(CliCommand):
    """``safesvd demo``: compress the zoo's reference PFM at several ratios and print a table."""

    name: ClassVar[str] = "demo"
    help: ClassVar[str] = (
        "compress the bundled reference PFM, print a table (and with --out write its output folder)"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ratios", type=float, nargs="+", default=[0.8, 0.6, 0.4], help="kept-parameter fractions"
        )
        add_progress_option(parser)
        add_threads_option(parser)
        parser.add_argument(
            "--out",
            type=Path,
            help="also write the output folder `safesvd compress` writes "
            "(models, manifests, reports, figures)",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an output folder that holds other models"
        )

    def run(self, args: argparse.Namespace) -> int:
        from . import demo  # loads the reference model's code only when the demo runs

        print(
            demo.run(
                args.ratios,
                progress=wants_progress(args),
                out=args.out,
                overwrite=args.overwrite,
                before_compute=lambda: apply_threads(args),
            )
        )
        return 0


@hookimpl
def safesvd_cli_commands():
    return [CompressCommand, EvaluateCommand, InspectCommand, ExportCommand, RefineCommand, DemoCommand]
