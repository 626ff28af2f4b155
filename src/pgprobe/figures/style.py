"""Common figure style and the one way figures are written to disk.

``apply_style(options)`` sets a seaborn theme readable in print (paper context, white
grid, colorblind palette, embedded TrueType fonts); ``save_figure(fig, path)`` writes a
figure atomically (temporary file in the target directory, then rename) with no creation
date in the metadata, so that a PDF is byte-identical from one run to the next (set
``SOURCE_DATE_EPOCH`` as well for any other date a backend might embed).

Helpers shared by the figure modules:

* ``choose(options, key, available, paper)``: the value of a figure option, defaulting to
  the paper's choice when the dataset has it, else to the first available value; a
  requested value the dataset lacks is a one-line ``PgprobeError``.
* ``ALGO_COLORS`` / ``ALGO_LABELS``: one color and label per algorithm in every figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_output  # noqa: E402
from ..errors import PgprobeError  # noqa: E402

ALGO_LABELS = {"ppo": "PPO", "trpo": "TRPO"}
_PALETTE = sns.color_palette("colorblind")
ALGO_COLORS = {"trpo": _PALETTE[0], "ppo": _PALETTE[1]}

# Readable in a two-column paper at the sizes below (inches).
RC = {
    "pdf.fonttype": 42,           # TrueType, selectable text, no Type 3 fonts
    "ps.fonttype": 42,
    "svg.hashsalt": "pgprobe",    # stable SVG ids
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "lines.linewidth": 1.5,
    "axes.linewidth": 0.8,
    "grid.linewidth": 0.5,
    "figure.dpi": 100,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "figure.constrained_layout.use": False,
}
PANEL_WIDTH = 2.6   # inches per panel column
PANEL_HEIGHT = 2.1  # inches per panel row


def apply_style(options: dict | None = None) -> None:
    """Seaborn theme + pgprobe rc; ``options`` may set palette, font_scale, dpi."""
    options = options or {}
    sns.set_theme(context="paper", style="whitegrid", palette=options.get("palette", "colorblind"),
                  font_scale=float(options.get("font_scale", 1.0)), rc=RC)
    if "dpi" in options:
        plt.rcParams["savefig.dpi"] = int(options["dpi"])


def figure_size(options: dict, columns: int, rows: int) -> tuple[float, float]:
    """Figure size in inches: ``options`` width/height, else per-panel defaults."""
    return (float(options.get("width", PANEL_WIDTH * columns)),
            float(options.get("height", PANEL_HEIGHT * rows)))


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) atomically, without timestamps.

    PDF: ``metadata={"CreationDate": None}`` drops the creation date, so with a fixed
    matplotlib version the bytes depend only on the figure.  The figure is closed after.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None},
                "png": {"Software": None}}.get(fmt)
    if metadata is None:
        plt.close(fig)
        raise PgprobeError(f"figure output {str(path)!r}: expected a .pdf, .svg or .png file name")
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format=fmt, metadata=metadata)
    finally:
        plt.close(fig)
    return path


def shared_legend(axes, **legend_kwargs) -> None:
    """One legend, in the top-right panel, with every distinct label of all panels."""
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        axes[0, -1].legend(handles, labels, loc="best", **legend_kwargs)


def _as_list(values: Iterable) -> list:
    return [v.item() if hasattr(v, "item") else v for v in values]


def choose(options: dict, key: str, available: Sequence, paper: Any = None):
    """One value for figure option ``key``.

    ``options[key]`` if given (must be in ``available``); else ``paper`` (the paper's choice)
    if available; else the first available value.
    """
    available = _as_list(available)
    if not available:
        raise PgprobeError(f"figure option {key}: the dataset has no values to choose from")
    if key in options:
        value = options[key]
        if value not in available:
            raise PgprobeError(f"figure option {key}={value!r}: not in the dataset "
                               f"(available: {', '.join(map(str, available))})")
        return value
    if paper is not None and paper in available:
        return paper
    return available[0]


def choose_many(options: dict, key: str, available: Sequence, paper: Sequence | None = None) -> list:
    """Several values for figure option ``key`` (a list), defaulting as ``choose`` does.

    Default: the paper's values that the dataset has, else all available values.
    """
    available = _as_list(available)
    if key in options:
        values = list(options[key])
        missing = [v for v in values if v not in available]
        if missing:
            raise PgprobeError(f"figure option {key}: {', '.join(map(str, missing))} not in the dataset "
                               f"(available: {', '.join(map(str, available))})")
        if not values:
            raise PgprobeError(f"figure option {key}: expected at least one value")
        return values
    if paper is not None:
        present = [v for v in paper if v in available]
        if present:
            return present
    if not available:
        raise PgprobeError(f"figure option {key}: the dataset has no values to choose from")
    return available
