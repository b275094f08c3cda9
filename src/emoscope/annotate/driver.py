"""The driver of a run: plan, hand chunks to an engine, write chunk files, finish atomically."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoscope._io import atomic_open, require_file, write_json
from emoscope.annotate.engine import Engine, make_engine
from emoscope.annotate.options import (
    _EXT,
    MANIFEST_VERSION,
    AnnotateOptions,
    AnnotateResult,
    ChunkResult,
    Job,
    _format_of,
    pred_columns,
)
from emoscope.annotate.plan import Plan, make_plan
from emoscope.annotate.readers import _delimiter, _pyarrow_parquet
from emoscope.errors import EmoscopeError

if TYPE_CHECKING:
    from emoscope.recognizers.base import Recognizer

__all__ = ["annotate"]


def _chunk_name(i: int, fmt: str) -> str:
    return f"chunk-{i:06d}{_EXT[fmt]}"


def _identity(src: Path, fmt: str, out_fmt: str, opts: AnnotateOptions) -> dict[str, Any]:
    st = src.stat()
    return {
        "input": str(src.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "format": fmt,
        "out_format": out_fmt,
        "options": asdict(opts),
    }


def _load_manifest(work: Path, identity: dict[str, Any]) -> Plan:
    try:
        manifest = json.loads((work / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EmoscopeError(
            f"{work}: cannot read manifest.json ({e}); delete the folder to start again"
        ) from None
    old = manifest.get("identity", {})
    if manifest.get("version") != MANIFEST_VERSION or old != identity:
        diffs = []
        for k in identity:
            if k == "options":
                for ok, ov in identity["options"].items():
                    was = old.get("options", {}).get(ok)
                    if was != ov:
                        diffs.append(f"{ok}: {was!r} then, {ov!r} now")
            elif old.get(k) != identity[k]:
                diffs.append(f"{k}: {old.get(k)!r} then, {identity[k]!r} now")
        raise EmoscopeError(
            f"cannot resume from {work}: the run differs ({'; '.join(diffs) or 'format version'}); "
            "use the same input and options, or delete the folder to start again"
        )
    return Plan.from_dict(manifest["plan"])


def _clean_temporaries(work: Path) -> None:
    for p in work.glob(".*.tmp"):  # atomic_open's leftovers from a killed run
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _finished_name(work: Path) -> Path:
    return work.with_name(work.name + ".finished")


def _finish_step(step: str) -> None:
    """Called after each step of the finishing sequence (tests simulate a kill here)."""


def _concatenate(work: Path, plan: Plan, job: Job, out: Path, pred_cols: list[str]) -> None:
    """Write the chunk files, in order, into ``out`` (atomically; memory bounded by a chunk)."""
    fmt = job.out_format
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = [work / _chunk_name(c.index, fmt) for c in plan.chunks]
        schemas = [pq.read_schema(f) for f in files]
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise EmoscopeError(
                f"the columns of {job.input} change type between chunks ({e}); write CSV or "
                "JSONL output instead"
            ) from None
        with atomic_open(out, "wb") as fh, pq.ParquetWriter(fh, schema) as writer:
            for f in files:
                table = pq.read_table(f)
                for name in schema.names:
                    if name not in table.column_names:
                        table = table.append_column(
                            name, pa.nulls(len(table), schema.field(name).type)
                        )
                try:
                    table = table.select(schema.names).cast(schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    raise EmoscopeError(
                        f"the columns of {job.input} change type between chunks ({e}); write "
                        "CSV or JSONL output instead"
                    ) from None
                writer.write_table(table)
        return
    with atomic_open(out, "wb") as fh:
        if fmt in ("csv", "tsv"):
            buf = io.StringIO()
            csv.writer(buf, delimiter=_delimiter(fmt), lineterminator="\n").writerow(
                list(job.columns) + pred_cols
            )
            fh.write(buf.getvalue().encode())
        for c in plan.chunks:
            with open(work / _chunk_name(c.index, fmt), "rb") as part:
                shutil.copyfileobj(part, fh, 1 << 20)


def annotate(
    src: str | Path,
    out: str | Path,
    options: AnnotateOptions | None = None,
    *,
    engine: str | Engine = "local",
    workers: int | None = None,
    resume: bool = False,
    bad_rows: str | Path | None = None,
    progress: bool = True,
    recognizer: Recognizer | None = None,
    log: Callable[[str], None] | None = None,
) -> AnnotateResult:
    """Annotate every row of ``src`` and write ``out`` (see the module docstring).

    Args:
        src: input file (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``).
        out: output file; its suffix chooses its format.
        options: columns, recogniser, chunking and output options.
        engine: ``"local"`` (processes on this machine), ``"ray"`` (Ray Data actors) or an
            :class:`~emoscope.annotate.engine.Engine` (then ``workers`` is not used).
        workers: processes or actors (default: the CPUs of this machine / the Ray cluster);
            1 with the local engine annotates in this process.
        resume: continue an interrupted run from its work folder ``OUT.parts``.
        bad_rows: the bad-rows file (default ``OUT.bad-rows.jsonl``); always written.
        progress: show a progress bar (rows, rate, ETA) on stderr.
        recognizer: an already loaded recogniser (used in this process only: with several
            workers each loads ``options.recognizer`` itself).
        log: where notes go (default: nowhere).
    """
    t0 = time.monotonic()
    opts = options or AnnotateOptions()
    src, out = Path(src), Path(out)
    require_file(src)
    # fails here on an unknown engine name
    runner = make_engine(engine, workers) if isinstance(engine, str) else engine
    if workers is not None and workers < 1:
        raise EmoscopeError(f"workers must be at least 1, got {workers}")
    fmt, out_fmt = _format_of(src, "input"), _format_of(out, "output")
    if src.resolve() == out.resolve():
        raise EmoscopeError(f"{out}: the output would overwrite the input")
    if "parquet" in (fmt, out_fmt):
        _pyarrow_parquet()
    if opts.recognizer is None:
        from emoscope.recognizers.default import default_recognizer_name

        name = recognizer.name if recognizer else default_recognizer_name()
        opts = dataclasses.replace(opts, recognizer=name)
    opts.check()
    say = log or (lambda _m: None)

    if recognizer is None:
        from emoscope.recognizers.base import load_recognizer

        assert opts.recognizer is not None
        recognizer = load_recognizer(opts.recognizer)  # fails early, here, on a bad name
    if opts.taxonomy is not None:
        from emoscope.labels import get_taxonomy

        try:
            tax_name = get_taxonomy(opts.taxonomy).name
        except ValueError as e:
            raise EmoscopeError(str(e)) from None
    else:
        tax_name = recognizer.taxonomy.name
    from emoscope.labels import get_taxonomy

    labels = get_taxonomy(tax_name).labels

    work = out.with_name(out.name + ".parts")
    identity = _identity(src, fmt, out_fmt, opts)
    if _finished_name(work).exists():  # a finished run killed while removing its work folder
        shutil.rmtree(_finished_name(work), ignore_errors=True)
    if work.exists():
        if not resume:
            raise EmoscopeError(
                f"{work} holds an unfinished run; add --resume to continue it, or delete the "
                "folder to start again"
            )
        plan = _load_manifest(work, identity)
        _clean_temporaries(work)
    else:
        if resume:
            say(f"nothing to resume in {work}; starting a new run")
        plan = make_plan(src, fmt, opts)
        clash = [c for c in pred_columns(opts.probs, labels) if c in plan.columns]
        if clash:
            raise EmoscopeError(
                f"{src}: already has a column {clash[0]!r}; rename it (annotate adds "
                f"{', '.join(pred_columns(opts.probs, labels)[:3])}, ...)"
            )
        work.mkdir(parents=True, exist_ok=True)
        write_json(
            work / "manifest.json",
            {"version": MANIFEST_VERSION, "identity": identity, "plan": plan.to_dict()},
        )
    # An explicit OMP_NUM_THREADS wins over the engine's share of the CPUs (0: leave as is).
    threads = 0 if os.environ.get("OMP_NUM_THREADS") else runner.worker_threads(os.cpu_count() or 1)
    job = Job(
        input=str(src.resolve()),
        in_format=fmt,
        out_format=out_fmt,
        columns=tuple(plan.columns),
        options=opts,
        labels=labels,
        taxonomy=tax_name,
        threads=threads,
    )
    done = {c.index for c in plan.chunks if (work / _chunk_name(c.index, out_fmt)).is_file()}
    pending = [c for c in plan.chunks if c.index not in done]
    done_rows = sum(c.n_rows for c in plan.chunks if c.index in done)
    if done:
        say(f"resuming: {len(done)} of {len(plan.chunks)} chunks ({done_rows:,} rows) already done")

    from tqdm import tqdm

    bar = tqdm(
        total=plan.rows,
        initial=done_rows,
        unit="row",
        unit_scale=True,
        desc="annotate",
        disable=not progress,
        smoothing=0.05,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    t_work = time.monotonic()
    processed = 0
    try:
        results: Iterator[ChunkResult] = (
            runner.run(job, pending, recognizer) if pending else iter(())
        )
        for res in results:
            lines = "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in res.bad)
            with atomic_open(work / f"bad-{res.index:06d}.jsonl") as fh:
                fh.write(lines)
            with atomic_open(work / _chunk_name(res.index, out_fmt), "wb") as fh:
                fh.write(res.data)
            processed += res.n_rows
            bar.update(res.n_rows)
    finally:
        bar.close()
    seconds = time.monotonic() - t_work

    # Finishing is crash-safe: until the work folder is renamed (one atomic step) it holds the
    # manifest and every chunk, so --resume redoes only these steps; after the rename the output
    # and bad-rows files are complete, and a left-over renamed folder is removed on the next run.
    pred_cols = pred_columns(opts.probs, labels)
    _concatenate(work, plan, job, out, pred_cols)
    _finish_step("output")
    bad_path = (
        Path(bad_rows) if bad_rows is not None else out.with_name(out.name + ".bad-rows.jsonl")
    )
    n_bad = dropped = 0
    with atomic_open(bad_path, "wb") as fh:
        for c in plan.chunks:
            data = (work / f"bad-{c.index:06d}.jsonl").read_bytes()
            for line in data.splitlines():
                n_bad += 1
                dropped += bool(json.loads(line)["dropped"])
            fh.write(data)
    _finish_step("bad-rows")
    finished = _finished_name(work)
    if finished.exists():
        shutil.rmtree(finished)
    os.replace(work, finished)
    _finish_step("renamed")
    shutil.rmtree(finished)
    return AnnotateResult(
        output=out,
        bad_rows_file=bad_path,
        rows=plan.rows,
        written=plan.rows - dropped,
        bad=n_bad,
        chunks=len(plan.chunks),
        resumed_chunks=len(done),
        seconds=seconds if pending else time.monotonic() - t0,
        processed_rows=processed,
        engine=runner.name,
        workers=runner.workers,
        recognizer=opts.recognizer or "",
    )
