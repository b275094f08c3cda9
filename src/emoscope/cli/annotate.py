"""The ``emoscope annotate`` command over :func:`emoscope.annotate.annotate`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from emoscope.cli._common import (
    ProgressOpt,
    RecognizerOpt,
    TaxonomyOpt,
    note,
    resolve_recognizer,
)

__all__ = ["annotate_command", "register"]


def annotate_command(
    src: Annotated[
        Path, typer.Argument(metavar="IN", help="Input: .csv, .tsv, .jsonl or .parquet.")
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output file; its suffix sets the format.")
    ],
    text_col: Annotated[str, typer.Option("--text-col", help="Column holding the text.")] = "text",
    dialogue_col: Annotated[
        str | None,
        typer.Option(
            "--dialogue-col",
            help="Column holding a dialogue id: consecutive rows with the same id are read as "
            "one conversation.",
            show_default=False,
        ),
    ] = None,
    speaker_col: Annotated[
        str | None, typer.Option("--speaker-col", help="Speaker column.", show_default=False)
    ] = None,
    turn_col: Annotated[
        str | None,
        typer.Option("--turn-col", help="Column ordering turns (numbers).", show_default=False),
    ] = None,
    recognizer: RecognizerOpt = None,
    taxonomy: TaxonomyOpt = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Rows per chunk.")] = 1000,
    engine: Annotated[
        str, typer.Option("--engine", help="'local' (processes) or 'ray'.")
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Worker processes (local) or actors (ray). Default: the CPU count.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run (OUT.parts).")
    ] = False,
    bad_rows: Annotated[
        Path | None,
        typer.Option(
            "--bad-rows",
            help="Where to list bad rows [default: OUT.bad-rows.jsonl].",
            show_default=False,
        ),
    ] = None,
    max_chars: Annotated[
        int,
        typer.Option(
            "--max-chars",
            min=1,
            help="Longer texts are bad rows (at most $EMOSCOPE_MAX_TEXT_CHARS, default 2000).",
        ),
    ] = 5000,
    probs: Annotated[
        str,
        typer.Option("--probs", help="'json' (one pred_probs column) or 'columns' (prob_<label>)."),
    ] = "json",
    progress: ProgressOpt = True,
) -> None:
    """Annotate every row of a CSV/JSONL/Parquet file with emotion predictions."""
    from emoscope.annotate import AnnotateOptions, annotate

    opts = AnnotateOptions(
        text_col=text_col,
        dialogue_col=dialogue_col,
        speaker_col=speaker_col,
        turn_col=turn_col,
        recognizer=recognizer,
        taxonomy=taxonomy,
        chunk_size=chunk_size,
        max_chars=max_chars,
        probs=probs,
    )
    if recognizer is None:
        opts = dataclasses.replace(opts, recognizer=resolve_recognizer(None))
    try:
        res = annotate(
            src, out, opts, engine=engine, workers=workers, resume=resume, bad_rows=bad_rows,
            progress=progress, log=note,
        )  # fmt: skip
    except KeyboardInterrupt:
        work = out.with_name(out.name + ".parts")
        if work.is_dir():
            note(
                f"interrupted; the finished chunks are kept in {work}: run the same command "
                "with --resume to continue"
            )
        else:
            note("interrupted")
        raise SystemExit(130) from None
    note(
        f"annotated {res.rows:,} rows ({res.bad:,} bad, listed in {res.bad_rows_file}) in "
        f"{res.seconds:.1f}s ({res.rows_per_second:,.0f} rows/s); wrote {res.output}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``annotate`` command to the emoscope CLI."""
    app.command("annotate")(annotate_command)
