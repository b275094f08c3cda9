"""Pieces shared by the command modules of :mod:`emoscope.cli`: options, notes, recogniser choice.

Only typer and the recogniser registry are imported here, so that every command module
(``core``, ``llm``, ``annotate`` ...) can import this at the top.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emoscope.recognizers.default import load_default_or, resolve_recognizer_name

if TYPE_CHECKING:
    from emoscope.recognizers.base import Recognizer

__all__ = [
    "DataRootOpt",
    "LimitOpt",
    "ProgressOpt",
    "RecognizerOpt",
    "ReportFolderOpt",
    "TaxonomyOpt",
    "eval_folder",
    "load_recognizer_or_default",
    "note",
    "resolve_recognizer",
    "slug",
]


def note(message: str) -> None:
    """Print ``note: MESSAGE`` on stderr."""
    typer.echo(f"note: {message}", err=True)


def resolve_recognizer(name: str | None) -> str:
    """``name``, or the default recogniser's name with a note when the model is not installed."""
    return resolve_recognizer_name(name, log=note)


def load_recognizer_or_default(name: str | None, **options: str) -> Recognizer:
    """The recogniser ``name`` (the default one when ``None``, with the note above)."""
    return load_default_or(name, log=note, **options)


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
