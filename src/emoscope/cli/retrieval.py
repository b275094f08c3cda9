"""``emoscope retrieve``: build, query and inspect demonstration stores (see
:mod:`emoscope.retrieval`).

    emoscope retrieve build --dataset meld --split train --dataset goemotions:train --out DIR
    emoscope retrieve query DIR "Oh my God, you got the job!" -k 3
    emoscope retrieve info DIR
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from emoscope.cli._common import DataRootOpt
from emoscope.errors import EmoscopeError

__all__ = ["register"]


def _parse_datasets(datasets: list[str], splits: list[str]) -> list[tuple[str, str]]:
    """``NAME`` or ``NAME:SPLIT`` entries → (name, split) pairs (``splits`` for bare names)."""
    out: list[tuple[str, str]] = []
    for entry in datasets:
        name, sep, split = entry.partition(":")
        if not name.strip() or (sep and not split.strip()):
            raise EmoscopeError(f"bad --dataset {entry!r}; expected NAME or NAME:SPLIT")
        if sep:
            out.append((name.strip(), split.strip()))
        else:
            out.extend((name.strip(), s) for s in splits)
    return list(dict.fromkeys(out))


def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the store to.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset to add, NAME or NAME:SPLIT (repeatable): meld, emorynlp, goemotions, "
            "emobank.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split",
            "-s",
            help="Split(s) for datasets given without :SPLIT (repeatable). Default: train.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            help="Your own labelled texts (.csv/.tsv/.json/.jsonl with 'text' and 'label' "
            "columns); repeatable. The source name is the file's stem.",
            show_default=False,
        ),
    ] = None,
    taxonomy: Annotated[
        str | None,
        typer.Option("--taxonomy", "-t", help="Check the labels of --file against this taxonomy."),
    ] = None,
    index: Annotated[
        str, typer.Option("--index", help="auto (HNSW from 100k items), exact or hnsw.")
    ] = "auto",
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            help="Sentence encoder folder or Hub id. Default: all-MiniLM-L6-v2.",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="Precision of the saved vectors: float32 or float16.")
    ] = "float32",
    data_root: DataRootOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
) -> None:
    """Build a demonstration store from datasets and files, and save it to --out."""
    from emoscope.datasets import load_dataset
    from emoscope.retrieval import DemonstrationStore

    pairs = _parse_datasets(dataset or [], split or ["train"])
    if not pairs and not file:
        raise EmoscopeError("nothing to add: give at least one --dataset or --file")
    if dtype not in ("float32", "float16"):
        raise EmoscopeError(f"--dtype must be float32 or float16, got {dtype!r}")
    store = DemonstrationStore(encoder, index=index, batch_size=batch_size)
    t0 = time.perf_counter()
    for name, sp in pairs:
        ds = load_dataset(name, sp, root=data_root)
        ids = store.add_dataset(ds)
        typer.echo(f"added {len(ids)} items from {ds.name}-{ds.split}", err=True)
    for path in file or []:
        ids = store.add_file(path, taxonomy=taxonomy)
        typer.echo(f"added {len(ids)} items from {path}", err=True)
    store.build_index()
    folder = store.save(out, dtype=dtype)
    typer.echo(
        f"saved {len(store)} items ({', '.join(f'{s} {n}' for s, n in store.sources().items())}) "
        f"to {folder}; index {store.index_type}; encoding {store.timings['encode_seconds']:.1f}s, "
        f"index {store.timings['index_seconds']:.1f}s, total {time.perf_counter() - t0:.1f}s"
    )


def query(
    store_dir: Annotated[Path, typer.Argument(help="A store folder written by 'build'.")],
    texts: Annotated[list[str], typer.Argument(help="Texts to find demonstrations for.")],
    k: Annotated[int, typer.Option("-k", help="Demonstrations per text.")] = 3,
    exclude_id: Annotated[
        list[str] | None,
        typer.Option("--exclude-id", "-x", help="Store id never to return (repeatable)."),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            help="Encoder to embed the queries with (must match the store's).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
) -> None:
    """Print the k most similar stored utterances for each text."""
    from emoscope.retrieval import DemonstrationStore

    store = DemonstrationStore.load(store_dir, encoder=encoder)
    excl = set(exclude_id or ())
    results = store.search(list(texts), k=k, exclude_ids=[excl] * len(texts))
    for text, hits in zip(texts, results, strict=True):
        if as_json:
            row = {"query": text, "hits": [h.to_dict() for h in hits]}
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        typer.echo(f"query: {text}")
        for rank, h in enumerate(hits, 1):
            who = f", speaker {h.speaker}" if h.speaker else ""
            typer.echo(
                f"  {rank}. {json.dumps(h.text, ensure_ascii=False)} → {h.label} "
                f"(from {h.source}, distance {h.distance:.2f}, similarity {h.similarity:.3f}; "
                f"{h.id}{who})"
            )


def info(
    store_dir: Annotated[Path, typer.Argument(help="A store folder written by 'build'.")],
) -> None:
    """Print a store's size, index, encoder and items per source (JSON)."""
    from emoscope.retrieval import DemonstrationStore

    store = DemonstrationStore.load(store_dir)
    typer.echo(json.dumps(store.info(), indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add the ``retrieve`` command group (build, query, info) to ``app``."""
    group = typer.Typer(
        help="Demonstration stores for in-context examples (PRC-Emo retrieval).",
        no_args_is_help=True,
    )
    group.command("build")(build)
    group.command("query")(query)
    group.command("info")(info)
    app.add_typer(group, name="retrieve")
