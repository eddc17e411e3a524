"""The refinement phase: after the closed form, the compressed model is distilled towards the
original on fresh inputs (``compress(..., refine=Refinement(...))``), as the run's last phase."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import attrs

from ..io._fingerprint import config_fingerprint
from ..run._job import Phase, RunState
from ._refine import distil, summary
from ._refine_request import RefinementRequest


@attrs.frozen(kw_only=True)
class RefinementPhase(Phase):
    """Distils ``job.model`` towards ``job.original`` on the request's items
    (:func:`~safesvd_core.plugin.distil`), stopping at the best held-out score; the report goes to
    ``log.reports["refine"]`` and a note. ``checkpoint_dir`` keeps its progress for a resume, under a
    key of the run's ``fingerprints`` plus the refinement's items and options."""

    name: ClassVar[str] = "refine"
    reads: ClassVar[tuple[str, ...]] = ("progress",)  # the solved model

    request: RefinementRequest
    fingerprints: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    checkpoint_dir: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))

    def run(self, state: RunState) -> None:
        job, request = state.job, self.request
        key = config_fingerprint(
            {
                **self.fingerprints,
                "refine": request.digest,
                "options": attrs.asdict(request.options),
            }
        )
        report = distil(
            job.original,
            job.model,
            job.adapter,
            request.items,
            request.options,
            progress=job.show_progress,
            checkpoint_dir=self.checkpoint_dir,
            fingerprint=key,
            reducer=job.reducer,
        )
        state.log.reports[self.name] = report
        state.log.notes.append(summary(report))
