"""The figures of an output folder (PNG, matplotlib from the ``plots`` extra), each from plain data.

- :func:`spectra`: the whitened singular values of each layer, the kept rank (or "kept dense") marked
  and named in a legend;
- :func:`ranks`: the rank per layer, the recipe against a uniform allocation of the same budget;
- :func:`error_vs_ratio`: the signed change of each metric against the kept-parameter fraction;
- :func:`fields`: input, original and compressed prediction and their difference per channel
  (and derived field) for one test sample, a colour bar on every panel;
- :func:`rollout_growth`: the metric along a rollout, original against compressed, with the
  copy-the-input baseline where there is one.

Every function returns the path written, or ``None`` when matplotlib is missing (:func:`available`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write

#: The most layers drawn in the spectra figure (evenly chosen beyond that).
MAX_PANELS = 24
MISSING = "figures not drawn: matplotlib is not installed (pip install 'safesvd[plots]')"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def available() -> bool:
    """Whether matplotlib can be imported."""
    return _pyplot() is not None


def _save(figure: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, lambda temporary: figure.savefig(temporary, format="png", dpi=130, bbox_inches="tight")
    )
    plt.close(figure)
    return path


def _chosen(count: int) -> list[int]:
    if count <= MAX_PANELS:
        return list(range(count))
    return sorted({round(i * (count - 1) / (MAX_PANELS - 1)) for i in range(MAX_PANELS)})


def energy_text(energy: float) -> str:
    """The kept share of ``Σ σ_i²`` in percent, one decimal, never rounded up to 100 when some is dropped
    (``">99.9 %"``); ``"100 %"`` only when nothing is."""
    if energy >= 1.0:
        return "100 %"
    text = f"{100.0 * energy:.1f}"
    return ">99.9 %" if text == "100.0" else f"{text} %"


def panel_title(name: str, size: int, rank: int | None, energy: float | None) -> str:
    """The title of one layer's panel: its name, then the kept rank of ``size`` and energy,
    or "kept dense"."""
    if rank is None:
        return f"{name}\nkept dense (not factored): all {size}"
    return f"{name}\nk = {rank} of {size}" + ("" if energy is None else f", {energy_text(energy)} energy")


#: Colours of the spectra figure: kept rank (factored) and a layer kept dense.
KEPT, DENSE = "tab:orange", "tab:green"


def spectra_figure(layers: Sequence[tuple[str, np.ndarray, int | None, float | None]], title: str) -> Any:
    """The spectra figure (see :func:`spectra`), not saved: the caller saves or closes it."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    shown = [layers[i] for i in _chosen(len(layers))]
    columns = min(6, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.1 * rows + 0.9), squeeze=False)
    for axis, (name, values, rank, energy) in zip(axes.flat, shown):
        values = np.asarray(values, dtype=float)
        index = np.arange(1, len(values) + 1)
        if values.size and values[0] > 0:
            # markers, so that a short spectrum (a layer of rank 1 or 2) still shows its values
            axis.semilogy(
                index,
                np.maximum(values / values[0], 1e-12),
                color="tab:blue",
                lw=1.2,
                marker="o" if len(values) <= 16 else None,
                ms=2.5,
            )
        else:
            axis.text(
                0.5, 0.5, "zero spectrum", ha="center", va="center", fontsize=8, transform=axis.transAxes
            )
        if rank is None:
            axis.axvspan(0.5, len(values) + 0.5, color=DENSE, alpha=0.15)
        else:
            axis.axvspan(0.5, rank + 0.5, color=KEPT, alpha=0.2)
            axis.axvline(rank + 0.5, color=KEPT, lw=1.2)
        axis.set_xlim(0.5, max(len(values), 1) + 0.5)
        if len(values) <= 8:
            axis.set_xticks(index)
        else:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(panel_title(name, len(values), rank, energy), fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3, which="both", lw=0.4)
    for axis in list(axes.flat)[len(shown) :]:
        axis.axis("off")
    for axis in axes[-1]:
        axis.set_xlabel("singular value index i", fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel("σ_i / σ_1 (whitened)", fontsize=8)
    handles = [Line2D([], [], color="tab:blue", lw=1.2, label="σ_i / σ_1 of the whitened weight")]
    if any(rank is not None for _, _, rank, _ in shown):
        handles.append(Patch(color=KEPT, alpha=0.35, label="kept: the first k values (factored at rank k)"))
    if any(rank is None for _, _, rank, _ in shown):
        handles.append(Patch(color=DENSE, alpha=0.3, label="kept dense: every value (not factored)"))
    more = f" ({len(shown)} of {len(layers)} layers)" if len(shown) < len(layers) else ""
    figure.suptitle(f"{title}{more}", fontsize=10)
    figure.tight_layout(rect=(0, 0.06 if rows == 1 else 0.03, 1, 1))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    return figure


def spectra(
    path: Path, layers: Sequence[tuple[str, np.ndarray, int | None, float | None]], title: str
) -> Path | None:
    """One panel per layer: ``σ_i / σ_1`` of its whitened weight on a log axis, the kept ``rank``
    shaded with the share of ``Σ σ_i²`` it keeps (:func:`energy_text`), or the whole spectrum shaded
    for a layer kept dense (``rank`` None); a legend names the shadings."""
    if _pyplot() is None or not layers:
        return None
    return _save(spectra_figure(layers, title), path)


def ranks(
    path: Path,
    names: Sequence[str],
    chosen: Sequence[int | None],
    uniform: Sequence[int | None],
    full: Sequence[int],
    labels: tuple[str, str],
    title: str,
) -> Path | None:
    """Grouped bars: the rank of each layer for the recipe and for a uniform allocation; a dense
    layer is drawn at its full rank, hatched."""
    plt = _pyplot()
    if plt is None or not names:
        return None
    x = np.arange(len(names))
    figure, axis = plt.subplots(figsize=(max(6.0, 0.42 * len(names) + 2), 4.2))
    for offset, values, label, colour in (
        (-0.2, chosen, labels[0], "tab:orange"),
        (0.2, uniform, labels[1], "tab:gray"),
    ):
        heights = [f if r is None else r for r, f in zip(values, full)]
        bars = axis.bar(x + offset, heights, width=0.4, label=label, color=colour)
        for bar, rank in zip(bars, values):
            if rank is None:
                bar.set_hatch("//")
                bar.set_alpha(0.55)
    axis.plot(x, full, "k_", markersize=12, label="full rank min(m, n)")
    axis.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("kept rank k")
    axis.set_xlabel("layer (forward order); hatched = left dense")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def error_vs_ratio(
    path: Path,
    ratios: Sequence[float],
    changes: Mapping[str, Sequence[float]],
    title: str,
    later: Mapping[str, Sequence[float]] | None = None,
) -> Path | None:
    """One line per metric: its signed change against the original (%) at each kept fraction;
    ``later``: the same after a rollout, dashed."""
    plt = _pyplot()
    if plt is None or len(ratios) < 2:
        return None
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name, values in changes.items():
        axis.plot(ratios, values, marker="o", label=name)
    for name, values in (later or {}).items():
        axis.plot(ratios, values, marker="s", linestyle="--", label=name)
    axis.axhline(0.0, color="black", lw=0.8)
    axis.set_xlabel("parameters kept (fraction of the original)")
    axis.set_ylabel("change against the original (%)\n(negative: better)")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def fields(
    path: Path,
    rows: Sequence[tuple[str, np.ndarray | None, np.ndarray, np.ndarray]],
    extent: tuple[float, float, float, float],
    axes: tuple[str, str],
    title: str,
) -> Path | None:
    """Per row (a channel or a derived field): input, original prediction, compressed prediction
    (one colour scale) and compressed − original (a symmetric scale), each with a colour bar.
    Arrays are ``(rows, columns)`` with the first axis along ``axes[0]``."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    figure, grid = plt.subplots(len(rows), 4, figsize=(13.5, 3.0 * len(rows) + 0.5), squeeze=False)
    columns = ("input", "original prediction", "compressed prediction", "compressed − original")
    for row, (label, given, original, compressed) in zip(grid, rows):
        shown = [a for a in (given, original, compressed) if a is not None]
        low, high = min(float(a.min()) for a in shown), max(float(a.max()) for a in shown)
        difference = compressed - original
        span = float(np.abs(difference).max()) or 1e-12
        panels = (
            (given, "viridis", low, high),
            (original, "viridis", low, high),
            (compressed, "viridis", low, high),
            (difference, "RdBu_r", -span, span),
        )
        for axis, (values, cmap, vmin, vmax), heading in zip(row, panels, columns):
            if values is None:
                axis.axis("off")
                axis.text(
                    0.5,
                    0.5,
                    "input not shown\n(no input tensor\nof this shape)",
                    ha="center",
                    va="center",
                    fontsize=8,
                )
                continue
            image = axis.imshow(
                values.T, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal"
            )
            colour_bar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.03)
            colour_bar.set_label(label if heading != columns[3] else f"Δ {label}", fontsize=8)
            colour_bar.ax.tick_params(labelsize=7)
            axis.set_title(f"{heading}: {label}", fontsize=9)
            axis.set_xlabel(axes[0], fontsize=8)
            axis.set_ylabel(axes[1], fontsize=8)
            axis.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def rollout_figure(
    steps: Sequence[int],
    original: Sequence[float],
    compressed: Mapping[str, Sequence[float]],
    metric: str,
    lead_time: float | None,
    title: str,
    baseline: Mapping[str, Sequence[float]] | None = None,
) -> Any:
    """The rollout figure (see :func:`rollout_growth`), not saved: the caller saves or closes it."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    for label, values in (baseline or {}).items():
        left.semilogy(steps, values, "--", color="0.55", lw=1.2, label=label)
    left.semilogy(steps, original, "k-o", ms=3, label="original")
    for label, values in compressed.items():
        left.semilogy(steps, values, "-o", ms=3, label=label)
        right.plot(
            steps,
            [100.0 * (c - o) / abs(o) if o else 0.0 for c, o in zip(values, original)],
            "-o",
            ms=3,
            label=label,
        )
    unit = f" (× lead time Δt = {lead_time:g})" if lead_time and math.isfinite(lead_time) else ""
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):
        axis.set_xlabel(f"rollout step{unit}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    left.set_ylabel(f"{metric} against the true state")
    right.set_ylabel(f"change of {metric} against the original (%)")
    right.axhline(0.0, color="black", lw=0.8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def rollout_growth(
    path: Path,
    steps: Sequence[int],
    original: Sequence[float],
    compressed: Mapping[str, Sequence[float]],
    metric: str,
    lead_time: float | None,
    title: str,
    baseline: Mapping[str, Sequence[float]] | None = None,
) -> Path | None:
    """Left: the metric after each rollout step, original and compressed (log axis), and ``baseline``
    (the copy-the-input predictor: the floor to beat) dashed grey; right: the signed change (%) against
    the original (the baseline is not drawn there: against the original it is off the scale)."""
    if _pyplot() is None or not steps:
        return None
    return _save(rollout_figure(steps, original, compressed, metric, lead_time, title, baseline), path)
