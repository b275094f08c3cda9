"""The figure of layer curves with their bootstrap bands (matplotlib, written atomically)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = [
    "plot_layer_curves",
]


def plot_layer_curves(
    panels: Sequence[tuple[str, Sequence[tuple[str, Mapping[str, Any]]]]],
    path: str | Path,
    *,
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
    baselines: Sequence[Mapping[str, Mapping[str, float]]] | None = None,
) -> Path:
    """Draw layer curves with bootstrap bands and write a PNG atomically.

    Args:
        panels: one row per panel: ``(title, [(legend label, curve dict), ...])`` where a curve
            dict is :meth:`ProbeCurve.to_dict` output (``scores`` with ``layer``, metric and
            ``<metric>_ci``).
        path: where to write the PNG.
        metrics: one column per metric.
        baselines: per panel, ``{name: {metric: value}}`` drawn as dotted horizontal lines
            (e.g. the majority-class baseline).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emoscope._io import atomic_open

    names = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
    fig, axes = plt.subplots(
        len(panels), len(metrics), figsize=(4.6 * len(metrics), 3.4 * len(panels)), squeeze=False
    )
    for r, (title, curves) in enumerate(panels):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for label, curve in curves:
                xs = [s["layer"] for s in curve["scores"]]
                ys = [s[metric] for s in curve["scores"]]
                lo = [s[f"{metric}_ci"][0] for s in curve["scores"]]
                hi = [s[f"{metric}_ci"][1] for s in curve["scores"]]
                (line,) = ax.plot(xs, ys, marker="o", label=label)
                ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
            if baselines is not None and r < len(baselines):
                for k, (name, vals) in enumerate(baselines[r].items()):
                    if metric in vals and not math.isnan(vals[metric]):
                        ls = (":", "--", "-.")[k % 3]
                        ax.axhline(vals[metric], ls=ls, color="grey", label=name)
            ax.set_title(f"{title}: {names.get(metric, metric)}", fontsize=10)
            ax.set_xlabel("layer (0 = embeddings)")
            ax.set_ylabel(names.get(metric, metric))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_open(out, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)
    return out
