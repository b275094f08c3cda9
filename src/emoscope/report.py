"""Evaluation reports: ``report.json``, ``report.md`` and plots, plus a console table.

Every file is rendered in memory first and then written atomically, so a failure leaves either
the previous report or none, never a half-written one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoscope._io import atomic_open
from emoscope.evaluate import EvalResult

__all__ = ["format_table", "render_report", "write_report"]

_METRICS = (
    ("accuracy", "accuracy"),
    ("weighted_f1", "weighted F1"),
    ("macro_f1", "macro F1"),
    ("micro_f1", "micro F1"),
)
_VAD_COLUMNS = (("pearson_r", "Pearson r"), ("ccc", "CCC"), ("mae", "MAE"))


def _num(x: Any, digits: int = 4) -> str:
    """A metric for display; ``None`` (undefined, e.g. r of constant values) becomes ``n/a``."""
    if x is None:
        return "n/a"
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return f"{float(x):.{digits}f}"


def _md_cell(x: Any) -> str:
    return str(x).replace("|", r"\|").replace("\n", " ")


def _md_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: bool = True
) -> list[str]:
    """A Markdown table; with ``numeric`` every column but the first is right-aligned."""
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    aligns = ["---"] + ["---:" if numeric else "---"] * (len(header) - 1)
    lines.append("| " + " | ".join(aligns) + " |")
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows)
    return lines


def _throughput(d: dict[str, Any]) -> str:
    tps = d.get("texts_per_second")
    rate = "n/a" if tps is None else f"{tps:.1f} texts/s"
    return f"{rate} ({d.get('seconds', 0.0):.2f} s)"


def _summary_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    dataset = f"{d['dataset']} / {d['split']}"
    if d.get("taxonomy"):
        dataset += f" (taxonomy {d['taxonomy']})"
    rows = [
        ("recogniser", f"{d['recognizer']} (taxonomy {d['recognizer_taxonomy']})"),
        ("dataset", dataset),
        ("examples", str(d["n"]) + (f" (limit {d['limit']})" if d.get("limit") else "")),
    ]
    if d.get("mapping"):
        rows.append(("label mapping", d["mapping"]))
    if d.get("skipped"):
        rows.append(("rows skipped by reader", str(d["skipped"])))
    if d.get("parse_failures"):
        rows.append(("parse failures", str(d["parse_failures"])))
    rows.extend(("note", note) for note in d.get("notes") or [])
    rows.append(("throughput", _throughput(d)))
    rows.append(("emoscope", f"{d['version']}, {d['timestamp']}"))
    return rows


def _render_markdown(result: EvalResult) -> str:
    """The Markdown text of ``report.md``."""
    d = result.to_dict()
    lines = [f"# {d['recognizer']} on {d['dataset']} / {d['split']}", ""]
    lines += _md_table(["", ""], _summary_rows(d), numeric=False)
    cls = d.get("classification")
    if cls:
        kind = "multi-label, exact-match accuracy" if cls.get("multi_label") else "single-label"
        lines += ["", f"## Labels ({kind})", ""]
        lines += _md_table(["metric", "value"], [(name, _num(cls[k])) for k, name in _METRICS])
        lines += ["", "### Per label", ""]
        lines += _md_table(
            ["label", "precision", "recall", "F1", "support"],
            [
                (lab, _num(m["precision"]), _num(m["recall"]), _num(m["f1"]), m["support"])
                for lab, m in cls["per_label"].items()
            ],
        )
        if d.get("confusion"):
            lines += ["", "Confusion matrix: `confusion.png` (rows gold, columns predicted)."]
    vad = d.get("vad")
    if vad:
        lines += ["", f"## VAD (n = {vad['n']})", ""]
        lines += _md_table(
            ["dimension", *(name for _, name in _VAD_COLUMNS)],
            [
                (dim, *(_num(vad[dim][k]) for k, _ in _VAD_COLUMNS))
                for dim in ("valence", "arousal", "dominance")
            ],
        )
    cal = d.get("calibration")
    if cal:
        lines += ["", "## Calibration", ""]
        lines += _md_table(
            ["metric", "value"],
            [
                (f"ECE ({cal['n_bins']} bins)", _num(cal["ece"])),
                ("Brier score", _num(cal["brier"])),
                ("mean confidence", _num(cal["mean_confidence"])),
                ("accuracy", _num(cal["accuracy"])),
            ],
        )
        lines += ["", "Non-empty confidence bins (diagram: `reliability.png`):", ""]
        lines += _md_table(
            ["confidence bin", "count", "mean confidence", "accuracy"],
            [
                (
                    f"({b['lo']:.1f}, {b['hi']:.1f}]",
                    b["count"],
                    _num(b["confidence"], 3),
                    _num(b["accuracy"], 3),
                )
                for b in cal["bins"]
                if b["count"]
            ],
        )
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()


def _confusion_png(result: EvalResult) -> bytes:
    """``confusion.png``: rows normalised to shares of each gold label, counts annotated."""
    from matplotlib.figure import Figure

    if result.confusion is None:
        raise ValueError("this result has no confusion matrix (multi-label or unlabelled data)")
    counts = np.asarray(result.confusion, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = len(result.labels)
    size = max(4.0, 0.6 * k + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold label")
    ax.set_xticks(range(k), result.labels, rotation=45, ha="right")
    ax.set_yticks(range(k), result.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{result.recognizer} on {result.dataset} / {result.split}")
    for i in range(k):
        for j in range(k):
            ax.text(
                j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                color="white" if shares[i, j] > 0.5 else "black",
            )  # fmt: skip
    return _png(fig)


def _reliability_png(result: EvalResult) -> bytes:
    """``reliability.png``: accuracy per confidence bin against perfect calibration."""
    from matplotlib.figure import Figure

    if result.calibration is None:
        raise ValueError("this result has no calibration data (multi-label or unlabelled data)")
    bins = [b for b in result.calibration["bins"] if b["count"]]
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.bar(
        [(b["lo"] + b["hi"]) / 2 for b in bins],
        [b["accuracy"] for b in bins],
        width=[b["hi"] - b["lo"] for b in bins],
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.plot(
        [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3",
        label="(mean confidence, accuracy)",
    )  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ece = result.calibration["ece"]
    ax.set_title(f"{result.recognizer} on {result.dataset} / {result.split}, ECE {ece:.3f}")
    ax.legend(loc="upper left")
    return _png(fig)


def render_report(result: EvalResult) -> dict[str, bytes]:
    """Every report file as ``{file name: content}``, without touching the disk."""
    files = {
        "report.json": (json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n").encode(),
        "report.md": _render_markdown(result).encode(),
    }
    if result.confusion is not None:
        files["confusion.png"] = _confusion_png(result)
    if result.calibration is not None:
        files["reliability.png"] = _reliability_png(result)
    return files


def write_report(result: EvalResult, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and, when available, ``confusion.png`` and
    ``reliability.png`` into ``out_dir`` (created if needed). Returns the paths written.

    All files are rendered before the first is written, and each is written atomically.
    """
    files = render_report(result)
    out = Path(out_dir)
    written = []
    for name, content in files.items():
        with atomic_open(out / name, "wb") as fh:
            fh.write(content)
        written.append(out / name)
    return written


def format_table(result: EvalResult) -> str:
    """A plain-text summary for the console: overview, per-label scores, VAD and calibration."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    d = result.to_dict()
    buf = io.StringIO()
    console = Console(file=buf, width=100, color_system=None, force_terminal=False)

    summary = Table(box=box.SIMPLE, show_header=False, title="evaluation")
    summary.add_column(style="bold")
    summary.add_column()
    for key, value in _summary_rows(d):
        summary.add_row(key, Text(value))  # Text(): names may contain "[", not markup
    cls = d.get("classification")
    if cls:
        for k, name in _METRICS:
            summary.add_row(name, _num(cls[k]))
    cal = d.get("calibration")
    if cal:
        summary.add_row(f"ECE ({cal['n_bins']} bins)", _num(cal["ece"]))
        summary.add_row("Brier score", _num(cal["brier"]))
    console.print(summary)

    if cls:
        per_label = Table(box=box.SIMPLE, title="per label")
        for col in ("label", "precision", "recall", "F1", "support"):
            per_label.add_column(col, justify="left" if col == "label" else "right")
        for lab, m in cls["per_label"].items():
            per_label.add_row(
                lab, _num(m["precision"]), _num(m["recall"]), _num(m["f1"]), str(m["support"])
            )
        console.print(per_label)

    vad = d.get("vad")
    if vad:
        vad_table = Table(box=box.SIMPLE, title=f"VAD (n = {vad['n']})")
        vad_table.add_column("dimension")
        for _, name in _VAD_COLUMNS:
            vad_table.add_column(name, justify="right")
        for dim in ("valence", "arousal", "dominance"):
            vad_table.add_row(dim, *(_num(vad[dim][k]) for k, _ in _VAD_COLUMNS))
        console.print(vad_table)
    return buf.getvalue().rstrip() + "\n"
