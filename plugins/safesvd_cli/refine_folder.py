"""``safesvd refine FOLDER CONFIG --out NEW``: refine a saved compressed model on the ``[refine]`` data of
CONFIG (whose ``[model]`` builds the original, the teacher) and write a new folder: the refined
weights, the source's manifest with the refinement recorded, the config and the evaluation report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from safesvd_core import ConfigError, load_compressed, read_manifest, refine, save_refined
from safesvd_core.plugin import check_new_folder

from . import pipeline, report
from .config import RunConfig
from .folder import CONFIG, REPORT_CSV, REPORT_JSON, RUN_FORMAT, write_json, write_text


def refine_folder(
    config: RunConfig,
    source: Path,
    out: Path,
    *,
    progress: bool = False,
    before_compute: Callable[[], None] = lambda: None,
) -> str:
    """Refine ``source``'s model as ``config``'s ``[refine]`` says and write it to ``out`` (a new
    folder); return what to print: the refinement's line and the refined model's evaluation table."""
    if config.refine is None:
        raise ConfigError(
            "the config has no [refine] table: say there which inputs to refine on and how many steps "
            "(docs/cli.md, [refine])"
        )
    check_new_folder(out, source)  # before any compute; save_refined checks it again when it writes
    prepared = pipeline.prepare(config)
    compressed = load_compressed(config.model.build(), source)
    before_compute()  # after every user mistake is found: those print one line alone
    options = {key: value for key, value in attrs.asdict(config.refine.options).items() if key != "steps"}
    refined = refine(
        compressed,
        prepared.model,
        prepared.refine_items,
        steps=config.refine.options.steps,
        adapter=config.adapter,
        adapter_options=prepared.adapter_options,
        progress=progress,
        **options,
    )
    save_refined(refined, out, source=source)
    manifest = read_manifest(out)
    write_json(out / CONFIG, {"format": RUN_FORMAT, "ratio": manifest["ratio"], **config.to_dict()})
    evaluation = pipeline.evaluation(prepared, refined.model)
    copy, legend = pipeline.copy_input(prepared), pipeline.rows_legend(prepared)
    built = report.build(
        manifest,
        evaluation,
        seconds=refined.report["seconds"],
        figures=[],
        notes=[],
        copy=copy,
        sizes=pipeline.test_sizes(prepared),
        legend=legend,
    )
    write_json(out / REPORT_JSON, built)
    write_text(out / REPORT_CSV, report.to_csv(built))
    table = report.evaluation_table(evaluation, config.horizons, copy=copy, legend=legend)
    return f"## {manifest['notes'][-1]}\n\n{table}\n"
