"""The ``emoscope`` command line: small subcommands over the library.

Each subcommand is a plain function registered on :data:`app`. Bad input (unknown names,
missing or malformed files, empty input) ends with one ``error: ...`` line on stderr and exit
code 2; see :func:`main`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emoscope._version import __version__
from emoscope.cli._common import (
    DataRootOpt,
    LimitOpt,
    ProgressOpt,
    RecognizerOpt,
    ReportFolderOpt,
    TaxonomyOpt,
    eval_folder,
    load_recognizer_or_default,
    note,
)
from emoscope.errors import EmoscopeError
from emoscope.recognizers.base import check_text, max_text_chars, unicode_problem
from emoscope.recognizers.default import default_recognizer_name

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from emoscope.datasets.base import Dataset
    from emoscope.dialogue import Dialogue
    from emoscope.labels import Taxonomy
    from emoscope.prediction import EmotionPrediction
    from emoscope.recognizers.base import Recognizer

__all__ = ["app", "default_recognizer_name", "main"]

app = typer.Typer(
    name="emoscope",
    help="Emotion recognition: analyse texts and dialogues, evaluate recognisers on datasets.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False)


def _recognizer_options(args: Sequence[str]) -> dict[str, str]:
    """Extra ``--name VALUE`` pairs of ``eval`` as recogniser keyword arguments (strings)."""
    out: dict[str, str] = {}
    it = iter(args)
    for flag in it:
        value = next(it, None)
        if not flag.startswith("--") or len(flag) < 3 or value is None or value.startswith("--"):
            raise EmoscopeError(
                f"unexpected argument {flag!r}; recogniser options look like '--name VALUE'"
            )
        out[flag[2:].replace("-", "_")] = value
    return out


def _fmt_vad(vad: Sequence[float] | None) -> str:
    return "" if vad is None else " ".join(f"{x:+.2f}" for x in vad)


def _fmt_top(pred: EmotionPrediction, k: int = 3) -> str:
    return ", ".join(f"{lab} {p:.2f}" for lab, p in pred.top(k))


def _taxonomy(name: str | None) -> Taxonomy | None:
    from emoscope.labels import get_taxonomy

    return None if name is None else get_taxonomy(name)


def _predict(
    recognizer: Recognizer, inputs: Sequence[str | Dialogue], taxonomy: Taxonomy | None
) -> list[EmotionPrediction]:
    from emoscope._views import route

    return route(recognizer, taxonomy).predict(list(inputs))


def _warn(preds: Sequence[EmotionPrediction], names: Sequence[str], limit: int = 10) -> None:
    """Print the predictions' input warnings on stderr (``names[i]`` says which input)."""
    lines = [f"warning: {n}: {w}" for n, p in zip(names, preds, strict=True) for w in p.warnings]
    for line in lines[:limit]:
        typer.echo(line, err=True)
    if len(lines) > limit:
        typer.echo(
            f"warning: ... and {len(lines) - limit} more (see the 'warnings' field of --json)",
            err=True,
        )


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")]
NeutralPriorOpt = Annotated[
    float | None,
    typer.Option(
        "--neutral-prior",
        help="Default model: multiply the neutral label's probability by this before "
        "renormalising. 0.35 (fitted on dev data) suits tweets, reviews and other texts with "
        "fewer neutral lines than TV dialogue; 1 = as trained. See docs/model_card.md.",
        show_default=False,
    ),
]


def _load_with_prior(name: str | None, neutral_prior: float | None) -> Recognizer:
    """The recogniser, with ``--neutral-prior`` passed on when given."""
    if neutral_prior is None:
        return load_recognizer_or_default(name)
    try:
        return load_recognizer_or_default(name, neutral_prior=str(neutral_prior))
    except TypeError:  # the recogniser takes no such option
        raise EmoscopeError("--neutral-prior applies to the default model only") from None


# ------------------------------------------------------------------------------------------
# Subcommands
# ------------------------------------------------------------------------------------------


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"emoscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Emotion recognition: analyse texts and dialogues, evaluate recognisers on datasets."""


@app.command()
def version() -> None:
    """Print the emoscope version."""
    typer.echo(f"emoscope {__version__}")


def decode_input(data: bytes, source: str) -> str:
    """``data`` (stdin or an argument) as UTF-8 text, without a leading byte-order mark.

    Undecodable bytes are an error (exit 2) naming the source, the line, the byte and its
    column, never replaced: a replaced character would change what is analysed.
    """
    from emoscope.datasets._common import decode_utf8

    expected = "UTF-8 text (convert it, e.g. with iconv -f latin1 -t utf-8)"
    return decode_utf8(data, source, expected)


def _read_texts(texts: list[str] | None) -> list[str]:
    if texts and texts != ["-"]:
        if "-" in texts:
            raise EmoscopeError("'-' (read stdin) cannot be mixed with texts given as arguments")
        # Undecodable argument bytes arrive as lone surrogates (surrogateescape): recover them.
        lines = [
            decode_input(os.fsencode(t), f"argument {i + 1}") if unicode_problem(t) else t
            for i, t in enumerate(texts)
        ]
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise EmoscopeError("no input: give texts as arguments or pipe lines on stdin")
        raw = getattr(sys.stdin, "buffer", None)
        text = decode_input(raw.read(), "stdin") if raw is not None else sys.stdin.read()
        lines = text.removeprefix("\ufeff").splitlines()
    out = [t.strip() for t in lines if t.strip()]
    if not out:
        raise EmoscopeError("no input: every text is empty")
    limit = max_text_chars()
    for i, t in enumerate(out, 1):  # before the model loads: predict() checks the same
        check_text(t, f"text {i}", limit)
    return out


@app.command()
def analyze(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts to analyse; without any (or with '-') lines are read from stdin.",
            show_default=False,
        ),
    ] = None,
    recognizer: RecognizerOpt = None,
    taxonomy: TaxonomyOpt = None,
    as_json: JsonOpt = False,
    neutral_prior: NeutralPriorOpt = None,
) -> None:
    """Recognise the emotions of texts given as arguments or as lines on stdin."""
    inputs = _read_texts(texts)
    tax = _taxonomy(taxonomy)
    rec = _load_with_prior(recognizer, neutral_prior)
    preds = _predict(rec, inputs, tax)
    _warn(preds, [f"text {i}" for i in range(1, len(preds) + 1)])
    if as_json:
        for text, pred in zip(inputs, preds, strict=True):
            typer.echo(json.dumps({"text": text, **pred.to_dict()}, ensure_ascii=False))
        return
    from rich.table import Table
    from rich.text import Text

    # Text() keeps user strings literal: rich would read "[...]" in them as markup.
    table = Table(title=Text(f"{rec.name} ({preds[0].taxonomy})"))
    table.add_column("text", overflow="fold", ratio=3)
    table.add_column("label")
    table.add_column("conf.", justify="right")
    table.add_column("top 3", ratio=2)
    table.add_column("VAD")
    for text, pred in zip(inputs, preds, strict=True):
        table.add_row(
            Text(text), ", ".join(pred.labels), f"{pred.confidence:.2f}", _fmt_top(pred),
            _fmt_vad(pred.vad),
        )  # fmt: skip
    _stdout().print(table)


def _read_dialogues(path: Path) -> list[Dialogue]:
    from emoscope._io import require_file

    require_file(path)
    from emoscope.datasets import read_dialogue_file

    dialogues = read_dialogue_file(path)
    if not dialogues or not any(len(d) for d in dialogues):
        raise EmoscopeError(f"{path}: no utterances found")
    return dialogues


@app.command()
def dialogue(
    file: Annotated[
        Path, typer.Argument(help="Dialogue file: JSON, JSONL or CSV (text, speaker, dialogue id).")
    ],
    recognizer: RecognizerOpt = None,
    taxonomy: TaxonomyOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Also write the predictions to this JSON file.", show_default=False
        ),
    ] = None,
    neutral_prior: NeutralPriorOpt = None,
) -> None:
    """Recognise the emotion of every utterance of the dialogues in FILE, in context."""
    from emoscope._io import check_writable, write_json

    if out is not None:
        check_writable(out)
    dialogues = _read_dialogues(file)
    tax = _taxonomy(taxonomy)
    rec = _load_with_prior(recognizer, neutral_prior)
    preds = iter(_predict(rec, dialogues, tax))
    records = [[(i, u, next(preds)) for i, u in enumerate(d.utterances)] for d in dialogues]
    flat = [(f"dialogue {d.id} turn {i}", p) for d, rows in zip(dialogues, records, strict=True)
            for i, _, p in rows]  # fmt: skip
    _warn([p for _, p in flat], [n for n, _ in flat])
    if out is not None:
        write_json(
            out,
            {
                "recognizer": rec.name,
                "dialogues": [
                    {
                        "id": d.id,
                        "utterances": [
                            {**u.to_dict(), "prediction": p.to_dict()} for _, u, p in rows
                        ],
                    }
                    for d, rows in zip(dialogues, records, strict=True)
                ],
            },
        )
    if as_json:
        for d, rows in zip(dialogues, records, strict=True):
            for i, u, p in rows:
                line = {"dialogue": d.id, "index": i, "speaker": u.speaker, "text": u.text}
                typer.echo(json.dumps({**line, **p.to_dict()}, ensure_ascii=False))
    else:
        from rich.table import Table
        from rich.text import Text

        console = _stdout()
        for d, rows in zip(dialogues, records, strict=True):
            table = Table(title=Text(f"dialogue {d.id}") if d.id is not None else None)
            for col in ("speaker", "text", "label", "conf.", "VAD"):
                table.add_column(col, overflow="fold" if col == "text" else "ellipsis")
            for _, u, p in rows:
                table.add_row(
                    Text(u.speaker or ""), Text(u.text), ", ".join(p.labels),
                    f"{p.confidence:.2f}", _fmt_vad(p.vad),
                )  # fmt: skip
            console.print(table)
    if out is not None:
        note(f"wrote {out}")


def _cue_text(pred: EmotionPrediction, text: str) -> Text:
    """``text`` with each word coloured by its attribution (green for, red against)."""
    from rich.text import Text

    from emoscope.explain import cue_words

    out = Text(text)
    for c in cue_words(pred):
        if abs(c.weight) >= 0.01:
            strength = "bold " if abs(c.weight) >= 0.1 else ""
            out.stylize(f"{strength}{'green' if c.weight > 0 else 'red'}", c.start, c.end)
    return out


@app.command("explain")
def explain_command(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts to explain; without any (or with '-') lines are read from stdin.",
            show_default=False,
        ),
    ] = None,
    dialogue_file: Annotated[
        Path | None,
        typer.Option(
            "--dialogue",
            help="Explain every turn of the dialogues in this file (as `dialogue` reads it) "
            "instead of texts.",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label", "-l", help="Label to explain (default: each top label).", show_default=False
        ),
    ] = None,
    recognizer: RecognizerOpt = None,
    taxonomy: TaxonomyOpt = None,
    as_json: JsonOpt = False,
    neutral_prior: NeutralPriorOpt = None,
) -> None:
    """Show which words drove each prediction (word occlusion; see emoscope.explain)."""
    from emoscope._views import route
    from emoscope.explain import explain, top_cues

    inputs: list[str | Dialogue]
    if dialogue_file is not None:
        if texts:
            raise EmoscopeError("give texts or --dialogue FILE, not both")
        dialogues = _read_dialogues(dialogue_file)
        inputs = list(dialogues)
        rows = [(f"dialogue {d.id} turn {i}", u.text) for d in dialogues
                for i, u in enumerate(d.utterances)]  # fmt: skip
    else:
        inputs = list(_read_texts(texts))
        rows = [(f"text {i}", str(t)) for i, t in enumerate(inputs, 1)]
    rec = route(_load_with_prior(recognizer, neutral_prior), _taxonomy(taxonomy))
    try:
        preds = explain(rec, inputs, label)
    except ValueError as e:  # an unknown --label
        raise EmoscopeError(str(e)) from None
    _warn(preds, [name for name, _ in rows])
    if as_json:
        for (_, text), pred in zip(rows, preds, strict=True):
            typer.echo(json.dumps({"text": text, **pred.to_dict()}, ensure_ascii=False))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{rec.name} ({preds[0].taxonomy}): why"))
    table.add_column("input")
    table.add_column("text (green: for, red: against)", overflow="fold", ratio=3)
    table.add_column("label")
    table.add_column("p", justify="right")
    table.add_column("top cues", ratio=2)
    for (name, text), pred in zip(rows, preds, strict=True):
        lab = str(pred.cues["attribution_label"])
        cues = ", ".join(f"{c.word} {c.weight:+.2f}" for c in top_cues(pred))
        table.add_row(name, _cue_text(pred, text), lab, f"{pred.probs[lab]:.2f}", Text(cues))
    _stdout().print(table)


def _dataset_from_file(path: Path, taxonomy: str | None) -> Dataset:
    if taxonomy is None:
        raise EmoscopeError("--dataset-file needs --taxonomy to say what its labels mean")
    from emoscope.datasets import read_labelled_file

    return read_labelled_file(path, taxonomy)


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_(
    ctx: typer.Context,
    recognizer: RecognizerOpt = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", "-d", help="Dataset name (see 'emoscope datasets').", show_default=False
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", "-s", help="Dataset split.")] = "test",
    limit: LimitOpt = None,
    out: ReportFolderOpt = None,
    data_root: DataRootOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per batch.")] = 64,
    progress: ProgressOpt = True,
    dataset_file: Annotated[
        Path | None,
        typer.Option(
            "--dataset-file",
            help="Evaluate on your own CSV/JSONL file instead.",
            show_default=False,
        ),
    ] = None,
    taxonomy: Annotated[
        str | None,
        typer.Option(
            "--taxonomy",
            "-t",
            help="The taxonomy of the labels of --dataset-file; with --dataset, map the gold "
            "labels into this taxonomy.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate a recogniser on a dataset; print the scores and write a report folder.

    Further ``--name VALUE`` options go to the recogniser, e.g. ``--recognizer llm --backend hf
    --model PATH --prompt prc --retrieve 3``.
    """
    from emoscope._io import check_writable
    from emoscope.evaluate import evaluate
    from emoscope.report import format_table, write_report

    if (dataset is None) == (dataset_file is None):
        raise EmoscopeError("give exactly one of --dataset and --dataset-file")
    if out is not None:
        check_writable(out, folder=True)
    if dataset is not None:
        from emoscope.datasets import load_dataset

        data = load_dataset(dataset, split, root=data_root, taxonomy=taxonomy)
    else:
        assert dataset_file is not None
        data = _dataset_from_file(dataset_file, taxonomy)
    rec = load_recognizer_or_default(recognizer, **_recognizer_options(ctx.args))
    folder = out or eval_folder(rec.name, data.name, data.split)
    check_writable(folder, folder=True)
    result = evaluate(rec, data, batch_size=batch_size, progress=progress, limit=limit)
    typer.echo(format_table(result), nl=False)
    write_report(result, folder)
    note(f"wrote the report to {folder}")


@app.command()
def datasets(data_root: DataRootOpt = None) -> None:
    """List the datasets emoscope can read and whether their files are present."""
    from rich.table import Table
    from rich.text import Text

    from emoscope.datasets import dataset_status

    table = Table(title="datasets")
    table.add_column("name", no_wrap=True)
    table.add_column("splits", no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("licence", no_wrap=True)
    for row in dataset_status(data_root):
        splits = "\n".join(f"{split} {n:,}" for split, n in row["splits"].items())
        where = row["path"] if row["present"] else f"missing: {row['path']}\nget: {row['get']}"
        table.add_row(row["name"], splits or "-", Text(where), row["licence"])
    _stdout().print(table)


@app.command()
def recognizers() -> None:
    """List the recognisers that can be named with --recognizer."""
    from emoscope.base_model import resolve_base_model
    from emoscope.recognizers import available_recognizers

    default = default_recognizer_name()
    for name in available_recognizers():
        typer.echo(f"{name}  (used by default)" if name == default else name)
    typer.echo("...or a dotted path to your own class, e.g. 'mypackage.module:MyRecognizer'")
    base = resolve_base_model()
    typer.echo(f"base encoder of the default model: {base.location} (from {base.source})")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            help="Built-in training task: meld, emorynlp, goemotions, emobank (repeatable). "
            "Default: all four, unless --dataset is given.",
        ),
    ] = None,
    dataset_file: Annotated[
        Path | None,
        typer.Option("--dataset", help="Your own labelled CSV/TSV/JSON/JSONL file."),
    ] = None,
    dev_file: Annotated[
        Path | None, typer.Option("--dev", help="Dev file for --dataset (default: every 10th).")
    ] = None,
    taxonomy: Annotated[
        str | None, typer.Option("--taxonomy", "-t", help="Taxonomy of --dataset's labels.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training data.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    n_frozen_layers: Annotated[
        int, typer.Option(min=0, help="Lower encoder layers kept as released.")
    ] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Utterances per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Learning rate of the encoder layers.")] = 1e-4,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use only the first N examples of each split.")
    ] = None,
    base_model: Annotated[
        str | None, typer.Option(help="Base encoder (path or Hub id); default all-MiniLM-L6-v2.")
    ] = None,
    soft_targets: Annotated[
        list[str] | None,
        typer.Option(
            "--soft-targets",
            help="Train this multi-label task (e.g. goemotions) on its label sets as "
            "distributions with KL divergence, one softmax (repeatable).",
        ),
    ] = None,
    curriculum: Annotated[
        str,
        typer.Option(
            help="Easy-to-hard order of conversation units: none, emotion-shift, speaker-weighted."
        ),
    ] = "none",
    context_input: Annotated[
        str,
        typer.Option(
            help="Where the model reads a dialogue's context: vector (utterance vectors, the "
            "default), sequence (past turns with speaker names in the encoder's tokens, "
            "EmoBERTa-style) or both."
        ),
    ] = "vector",
    sequence_length: Annotated[
        int, typer.Option(min=8, help="Tokens of a sequence input (target + past).")
    ] = 128,
    bf16: Annotated[
        bool, typer.Option("--bf16", help="Train under bfloat16 autocast (faster with AMX).")
    ] = False,
    data_root: DataRootOpt = None,
) -> None:
    """Fine-tune the encoder model and save it (config.json + model.safetensors)."""
    from emoscope.training import TrainConfig

    tc = TrainConfig(
        tasks=tuple(task) if task else (() if dataset_file else TrainConfig.tasks),
        dataset_file=None if dataset_file is None else str(dataset_file),
        dev_file=None if dev_file is None else str(dev_file),
        taxonomy=taxonomy,
        epochs=epochs,
        seed=seed,
        n_frozen_layers=n_frozen_layers,
        batch_size=batch_size,
        lr=lr,
        limit=limit,
        data_root=None if data_root is None else str(data_root),
        soft_targets=tuple(soft_targets or ()),
        curriculum=curriculum,
        context_input=context_input,
        sequence_length=sequence_length,
        bf16=bf16,
    )
    if base_model:
        tc.base_model = base_model
    from emoscope.training import train as run_training

    log = run_training(tc, out, progress=note)
    best = max(log["epochs"], key=lambda e: e["dev_score"])
    note(f"best epoch {best['epoch']}: dev score {best['dev_score']:.4f}")
    note(f"wrote {out} in {log['seconds']['total']:.0f}s")


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, EmoscopeError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit.

    Every user error (an :class:`~emoscope.errors.EmoscopeError`, a missing file, a value that
    does not parse) ends in one ``error: ...`` line on stderr and exit code 2, as do usage errors
    (which typer reports with a usage hint).
    """
    try:
        app(args=None if argv is None else list(argv), prog_name="emoscope")
    except (EmoscopeError, OSError, ValueError) as e:
        _fail(_describe(e))
