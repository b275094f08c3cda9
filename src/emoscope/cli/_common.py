"""Pieces shared by :mod:`emoscope.cli` and the feature modules that add commands to it.

Only typer is imported here, so that the feature modules (``cli_llm``, ``annotate`` ...) can
import this at the top without importing :mod:`emoscope.cli`, which imports them in turn.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DataRootOpt",
    "LimitOpt",
    "ProgressOpt",
    "RecognizerOpt",
    "ReportFolderOpt",
    "TaxonomyOpt",
    "eval_folder",
    "note",
    "slug",
]


def note(message: str) -> None:
    """Print ``note: MESSAGE`` on stderr."""
    typer.echo(f"note: {message}", err=True)


def slug(name: str, empty: str = "recognizer") -> str:
    """``name`` made safe for a folder name (``empty`` when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or empty


def eval_folder(recognizer: str, dataset: str, split: str, *, empty: str = "recognizer") -> Path:
    """The default report folder of an evaluation: ``runs/eval/REC-DATASET-SPLIT``."""
    return Path("runs", "eval", f"{slug(recognizer, empty)}-{slug(dataset, empty)}-{split}")


RecognizerOpt = Annotated[
    str | None,
    typer.Option(
        "--recognizer",
        "-r",
        help="Recogniser name (see 'emoscope recognizers') or dotted path 'module:Class'. "
        "Default: the fine-tuned model if installed, else the lexicon.",
        show_default=False,
    ),
]
TaxonomyOpt = Annotated[
    str | None,
    typer.Option(
        "--taxonomy", "-t", help="Map predictions into this taxonomy.", show_default=False
    ),
]
DataRootOpt = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding the datasets.", show_default=False),
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit", "-n", min=1, help="Score only the first N examples.", show_default=False
    ),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")]
ReportFolderOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Report folder [default: runs/eval/REC-DATASET-SPLIT].",
        show_default=False,
    ),
]
