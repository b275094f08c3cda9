"""Batch annotation of large files (the library behind ``emoscope annotate IN OUT``).

The input (CSV, TSV, JSON Lines or Parquet) is read as a stream of chunks; every row comes out
in the output, in input order, with prediction columns added:

``pred_label``, ``pred_labels`` (the predicted labels, best first), ``pred_confidence``,
``pred_probs`` (label → probability; or one ``prob_<label>`` column per label with
``probs="columns"``) and ``pred_valence``, ``pred_arousal``, ``pred_dominance`` (on [-1, 1];
empty when the recogniser predicts no VAD), ``pred_language`` (ISO 639-1 code of the detected
language, empty when not detected) and ``pred_warnings`` (the prediction's warnings, e.g.
``not-english: ...`` or ``context-truncated: ...``; see :mod:`emoscope.language`). In CSV and
Parquet output ``pred_labels``, ``pred_probs`` and ``pred_warnings`` are JSON text; in JSON Lines
they are lists and an object.

Texts are predicted one by one, or, with ``dialogue_col``, as conversations: consecutive rows
with the same dialogue id form one dialogue (ordered by ``turn_col`` if given, speakers from
``speaker_col``) and each utterance is read in the context of the turns before it. A chunk
always holds whole dialogues.

How a run works (and why it can be resumed):

1. *Plan*: one streaming pass over the input finds the byte range (CSV/JSONL) or row range
   (Parquet) of every chunk. The plan and the options are saved in ``OUT.parts/manifest.json``.
2. *Annotate*: chunks are handed to workers (``engine="local"``: processes on this machine;
   ``engine="ray"``: Ray Data actors, on a local Ray instance or a cluster). Each worker loads
   the recogniser once, reads its chunk straight from the input, and returns the annotated rows;
   the driver writes them to ``OUT.parts/chunk-NNNNNN.ext`` atomically (temporary file, then
   rename), after that chunk's bad rows.
3. *Finish*: the chunk files are concatenated in order into ``OUT`` (atomically), the bad rows
   into the side file, and the work folder is removed.

A run that is killed leaves complete chunk files only; ``resume=True`` checks that the input
and options are unchanged and annotates only the missing chunks, so no row is lost or repeated.

Bad rows never stop a run. A row whose text is missing, empty, not a string or longer than
``max_chars`` stays in the output with empty prediction columns; a row that cannot be read at
all (invalid JSON or UTF-8, a CSV record with the wrong number of fields) is left out of the
output. Both kinds are listed in the bad-rows file (JSON Lines: ``row`` = 1-based record number,
``line`` = 1-based line where the record starts, ``reason``, ``dropped``).

Ray Data: Moritz et al. (2018), "Ray: A Distributed Framework for Emerging AI Applications",
OSDI; actors are used through ``Dataset.map_batches`` with a callable class.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import pickle
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoscope._io import atomic_open, require_file, write_json
from emoscope.errors import EmoscopeError
from emoscope.recognizers.base import MAX_TEXT_CHARS_ENV, max_text_chars

if TYPE_CHECKING:
    from emoscope.dialogue import Dialogue
    from emoscope.prediction import EmotionPrediction
    from emoscope.recognizers.base import Recognizer

__all__ = [
    "PRED_COLUMNS",
    "AnnotateOptions",
    "AnnotateResult",
    "annotate",
]

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_EXT = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}
PRED_COLUMNS = (
    "pred_label",
    "pred_labels",
    "pred_confidence",
    "pred_probs",
    "pred_valence",
    "pred_arousal",
    "pred_dominance",
    "pred_language",
    "pred_warnings",
)
MANIFEST_VERSION = 1
# A dialogue longer than this many chunks' worth of rows is almost surely a wrong --dialogue-col.
_MAX_DIALOGUE_CHUNKS = 50
_PREVIEW = 120


# ------------------------------------------------------------------------------------------
# Options, plan and results
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotateOptions:
    """Everything that decides the content of the output (a resumed run must match it).

    Args:
        text_col: column holding the text.
        dialogue_col: column holding a dialogue id; consecutive rows with the same id are
            one dialogue. ``None``: every row is a text of its own.
        speaker_col: column holding the speaker (dialogue mode).
        turn_col: column ordering the turns of a dialogue (numbers; dialogue mode).
        recognizer: recogniser name or dotted path (``None``: the default model if installed,
            else the lexicon; resolved before the run starts).
        taxonomy: map predictions into this taxonomy.
        chunk_size: rows per chunk (a chunk holds whole dialogues, so it may be larger).
        max_chars: texts longer than this are bad rows.
        probs: ``"json"`` (one ``pred_probs`` column) or ``"columns"`` (``prob_<label>``).
    """

    text_col: str = "text"
    dialogue_col: str | None = None
    speaker_col: str | None = None
    turn_col: str | None = None
    recognizer: str | None = None
    taxonomy: str | None = None
    chunk_size: int = 1000
    max_chars: int = 5000
    probs: str = "json"

    def check(self) -> None:
        """Raise :class:`EmoscopeError` for inconsistent options."""
        if self.chunk_size < 1:
            raise EmoscopeError(f"chunk size must be at least 1, got {self.chunk_size}")
        if self.max_chars < 1:
            raise EmoscopeError(f"max chars must be at least 1, got {self.max_chars}")
        if self.probs not in ("json", "columns"):
            raise EmoscopeError(f"probs must be 'json' or 'columns', got {self.probs!r}")
        if self.dialogue_col is None and (self.speaker_col or self.turn_col):
            raise EmoscopeError("--speaker-col and --turn-col need --dialogue-col")
        named = [c for c in (self.text_col, self.dialogue_col, self.speaker_col, self.turn_col)]
        cols = [c for c in named if c is not None]
        if len(set(cols)) != len(cols):
            raise EmoscopeError(f"the text, dialogue, speaker and turn columns must differ: {cols}")


@dataclass(frozen=True)
class ChunkSpec:
    """Where one chunk lies in the input.

    ``start``/``end`` are byte offsets (CSV, JSONL) or row offsets (Parquet); ``first_row`` is
    the 0-based number of its first record and ``first_line`` the 1-based line it starts on.
    """

    index: int
    start: int
    end: int
    first_row: int
    n_rows: int
    first_line: int = 0


@dataclass(frozen=True)
class Job:
    """What a worker needs: the input's layout, the output format, options and labels."""

    input: str
    in_format: str
    out_format: str
    columns: tuple[str, ...]
    options: AnnotateOptions
    labels: tuple[str, ...]
    taxonomy: str
    threads: int = 0


@dataclass
class ChunkResult:
    """An annotated chunk: output bytes, its bad rows and counts."""

    index: int
    n_rows: int
    data: bytes
    bad: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AnnotateResult:
    """Summary of a finished run."""

    output: Path
    bad_rows_file: Path
    rows: int
    written: int
    bad: int
    chunks: int
    resumed_chunks: int
    seconds: float
    processed_rows: int
    engine: str
    workers: int
    recognizer: str

    @property
    def rows_per_second(self) -> float:
        """Rows annotated per second in this run (chunks done by an earlier run excluded)."""
        return self.processed_rows / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["output"], d["bad_rows_file"] = str(self.output), str(self.bad_rows_file)
        d["rows_per_second"] = self.rows_per_second
        return d


def _format_of(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EmoscopeError(
            f"{path}: unsupported {what} file type {path.suffix or '(none)'!r}; expected "
            ".csv, .tsv, .jsonl (.ndjson) or .parquet"
        )
    return fmt


def pred_columns(probs: str, labels: Sequence[str]) -> list[str]:
    """The names of the prediction columns added to every row."""
    if probs == "json":
        return list(PRED_COLUMNS)
    cols = [c for c in PRED_COLUMNS if c != "pred_probs"]
    return cols[:3] + [f"prob_{lab}" for lab in labels] + cols[3:]


# ------------------------------------------------------------------------------------------
# Reading: records of CSV and JSONL files with their byte offsets
# ------------------------------------------------------------------------------------------


_QUOTE = 0x22


def _still_quoted(line: bytes, in_quotes: bool, delimiter: int) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of ``line``.

    Follows the ``csv`` module's rules: a quote opens a quoted field only at the start of a
    field; inside one, a doubled quote is a literal quote and a single quote closes it; any
    other quote is a literal character. ``str.find`` jumps from quote to quote, so lines without
    quotes cost one search.
    """
    pos = 0
    n = len(line)
    field_start = not in_quotes  # a line outside quotes starts a new record
    while True:
        q = line.find(b'"', pos)
        if q < 0:
            return in_quotes
        if in_quotes:
            if q + 1 < n and line[q + 1] == _QUOTE:
                pos = q + 2
                continue
            in_quotes = False
        elif (q == 0 and field_start) or (q > 0 and line[q - 1] == delimiter):
            in_quotes = True
        pos = q + 1


def _iter_records(
    lines: Iterable[bytes], offset: int, line_no: int, delimiter: str | None = ","
) -> Iterator[tuple[int, int, int, bytes]]:
    """Group physical lines into records: ``(start, end, first line, bytes)``.

    With a ``delimiter`` (CSV/TSV) a record ends at a newline outside a quoted field, found
    without parsing the fields (:func:`_still_quoted`); with ``None`` (JSON Lines) every line is
    a record. Empty lines (whitespace-only lines in JSON Lines) are skipped, as ``csv`` does.
    """
    parts: list[bytes] = []
    in_quotes = False
    start = first = 0
    pos = offset
    delim = ord(delimiter) if delimiter is not None else -1
    for line in lines:
        if not parts:
            start, first = pos, line_no
        parts.append(line)
        if delimiter is not None:
            in_quotes = _still_quoted(line, in_quotes, delim)
        pos += len(line)
        line_no += 1
        if not in_quotes:
            rec = b"".join(parts) if len(parts) > 1 else line
            parts = []
            if rec.strip(b"\r\n") if delimiter is not None else rec.strip():
                yield start, pos, first, rec
    if parts:  # an unterminated quote runs to the end of the file
        yield start, pos, first, b"".join(parts)


def _delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def _parse_csv_record(rec: bytes, fmt: str) -> list[str]:
    """One CSV record → its fields; ValueError/UnicodeDecodeError when it does not parse."""
    text = rec.decode("utf-8")
    if _still_quoted(rec, False, ord(_delimiter(fmt))):
        # csv accepts an open quote at the end of the input: every later row would vanish in it
        raise ValueError("a quoted field is never closed; it runs to the end of the file")
    rows = list(csv.reader(io.StringIO(text), delimiter=_delimiter(fmt)))
    if len(rows) != 1:
        raise ValueError(f"holds {len(rows)} records")
    return rows[0]


def _read_header(path: Path, fmt: str) -> tuple[list[str], int, int]:
    """The header fields, the byte offset after the header and the next line number."""
    with open(path, "rb") as fh:
        bom = 3 if fh.read(3) == b"\xef\xbb\xbf" else 0
        fh.seek(bom)
        lines = iter(fh.readline, b"")
        for _start, end, first, rec in _iter_records(lines, bom, 1, _delimiter(fmt)):
            if b"\n" not in rec and b"\r" in rec.rstrip(b"\r"):  # no LF in the whole file
                raise EmoscopeError(
                    f"{path}, line 1: a carriage return inside the header row (old Mac CR-only "
                    "line endings?); expected LF or CRLF line endings (convert with "
                    "tr '\\r' '\\n')"
                )
            text = rec.decode("utf-8", errors="replace")
            try:
                header = next(csv.reader(io.StringIO(text), delimiter=_delimiter(fmt)))
            except csv.Error as e:
                raise EmoscopeError(f"{path}, line 1: unreadable header row ({e})") from None
            return header, end, first + rec.count(b"\n")
    raise EmoscopeError(f"{path}: the file is empty; expected a header row")


# ------------------------------------------------------------------------------------------
# The plan: chunk boundaries found in one streaming pass
# ------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """The chunks of the input and its columns (saved in the work folder's manifest)."""

    rows: int
    columns: list[str]
    chunks: list[ChunkSpec]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": self.columns,
            "chunks": [asdict(c) for c in self.chunks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(
            rows=int(d["rows"]),
            columns=list(d["columns"]),
            chunks=[ChunkSpec(**c) for c in d["chunks"]],
        )


class _Chunker:
    """Cuts the record stream into chunks, only where the dialogue id changes."""

    def __init__(self, size: int, path: Path) -> None:
        self.size = size
        self.path = path
        self.chunks: list[ChunkSpec] = []
        self.cur: list[int] | None = None  # start, end, first_row, n_rows, first_line
        self.last_key: Any = None
        self.run_rows = 0
        self.run_start = 0
        self.rows = 0

    def add(self, start: int, end: int, line: int, key: Any = None, grouped: bool = False) -> None:
        row = self.rows
        self.rows += 1
        same = grouped and self.cur is not None and key == self.last_key
        if same:
            self.run_rows += 1
            if self.run_rows > self.size * _MAX_DIALOGUE_CHUNKS:
                raise EmoscopeError(
                    f"{self.path}: dialogue {key!r} from row {self.run_start + 1} has more than "
                    f"{self.size * _MAX_DIALOGUE_CHUNKS:,} rows; check --dialogue-col (or raise "
                    "--chunk-size if your dialogues really are that long)"
                )
        else:
            self.run_rows, self.run_start = 1, row
        if self.cur is not None and self.cur[3] >= self.size and not same:
            self._close()
        if self.cur is None:
            self.cur = [start, end, row, 0, line]
        self.cur[1] = end
        self.cur[3] += 1
        self.last_key = key

    def _close(self) -> None:
        assert self.cur is not None
        s, e, r, n, ln = self.cur
        self.chunks.append(ChunkSpec(len(self.chunks), s, e, r, n, ln))
        self.cur = None

    def finish(self) -> list[ChunkSpec]:
        if self.cur is not None:
            self._close()
        return self.chunks


def _check_columns(path: Path, columns: Sequence[str], opts: AnnotateOptions) -> None:
    needed = [opts.text_col, opts.dialogue_col, opts.speaker_col, opts.turn_col]
    missing = [c for c in needed if c is not None and c not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in columns[:30]) or "(none)"
        raise EmoscopeError(
            f"{path}: no column {missing[0]!r}; the columns are: {shown} "
            "(choose them with --text-col / --dialogue-col / --speaker-col / --turn-col)"
        )


def _plan_table(path: Path, fmt: str, opts: AnnotateOptions) -> Plan:
    header, offset, line = _read_header(path, fmt)
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise EmoscopeError(f"{path}: the header names column {dup!r} twice")
    _check_columns(path, header, opts)
    chunker = _Chunker(opts.chunk_size, path)
    grouped = opts.dialogue_col is not None
    key_at = header.index(opts.dialogue_col) if opts.dialogue_col else -1
    with open(path, "rb") as fh:
        fh.seek(offset)
        lines = iter(fh.readline, b"")
        for start, end, first, rec in _iter_records(lines, offset, line, _delimiter(fmt)):
            key = None
            if grouped:
                try:
                    fields = _parse_csv_record(rec, fmt)
                    key = fields[key_at] if len(fields) == len(header) else chunker.last_key
                except (ValueError, UnicodeDecodeError, csv.Error):
                    key = chunker.last_key  # an unreadable row does not split a dialogue
            chunker.add(start, end, first, key, grouped)
    return Plan(chunker.rows, header, chunker.finish())


def _plan_jsonl(path: Path, opts: AnnotateOptions) -> Plan:
    chunker = _Chunker(opts.chunk_size, path)
    grouped = opts.dialogue_col is not None
    columns: dict[str, None] = {}
    checked = False
    with open(path, "rb") as fh:
        for start, end, first, rec in _iter_records(iter(fh.readline, b""), 0, 1, None):
            key = chunker.last_key
            try:
                obj = json.loads(rec)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                for k in obj:
                    columns.setdefault(k, None)
                if not checked:
                    _check_columns(path, list(obj), opts)
                    checked = True
                if grouped:
                    key = obj.get(opts.dialogue_col or "")
            chunker.add(start, end, first, key, grouped)
    if not checked:
        raise EmoscopeError(f"{path}: no JSON object found; expected one object per line")
    return Plan(chunker.rows, list(columns), chunker.finish())


def _plan_parquet(path: Path, opts: AnnotateOptions) -> Plan:
    pq = _pyarrow_parquet()
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise EmoscopeError(f"{path}: not a readable Parquet file ({e})") from None
    columns = list(pf.schema_arrow.names)
    _check_columns(path, columns, opts)
    n = pf.metadata.num_rows
    chunker = _Chunker(opts.chunk_size, path)
    if opts.dialogue_col is None:
        for start in range(0, n, opts.chunk_size):
            end = min(n, start + opts.chunk_size)
            chunker.chunks.append(ChunkSpec(len(chunker.chunks), start, end, start, end - start))
        chunker.rows = n
        return Plan(n, columns, chunker.chunks)
    row = 0
    for batch in pf.iter_batches(batch_size=65_536, columns=[opts.dialogue_col]):
        for key in batch.column(0).to_pylist():
            chunker.add(row, row + 1, 0, key, True)
            row += 1
    return Plan(chunker.rows, columns, chunker.finish())


def make_plan(path: Path, fmt: str, opts: AnnotateOptions) -> Plan:
    """Scan ``path`` once and cut it into chunks (see :class:`ChunkSpec`)."""
    if fmt in ("csv", "tsv"):
        return _plan_table(path, fmt, opts)
    if fmt == "jsonl":
        return _plan_jsonl(path, opts)
    return _plan_parquet(path, opts)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise EmoscopeError("Parquet files need pyarrow: pip install pyarrow") from None
    return pq


# ------------------------------------------------------------------------------------------
# The worker side: read a chunk, predict, serialise
# ------------------------------------------------------------------------------------------


@dataclass
class _Row:
    row: int  # 0-based record number
    line: int
    record: dict[str, Any] | None
    problem: str | None = None


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


def _read_chunk(job: Job, spec: ChunkSpec) -> list[_Row]:
    fmt = job.in_format
    if fmt == "parquet":
        return _read_parquet_chunk(job, spec)
    with open(job.input, "rb") as fh:
        fh.seek(spec.start)
        data = fh.read(spec.end - spec.start)
    lines = iter(io.BytesIO(data).readline, b"")
    rows: list[_Row] = []
    ncols = len(job.columns)
    delimiter = None if fmt == "jsonl" else _delimiter(fmt)
    records = _iter_records(lines, spec.start, spec.first_line, delimiter)
    for k, (_s, _e, line, rec) in enumerate(records):
        row = spec.first_row + k
        if fmt == "jsonl":
            try:
                obj = json.loads(rec)
            except UnicodeDecodeError:
                rows.append(_Row(row, line, None, "not valid UTF-8"))
                continue
            except ValueError as e:
                rows.append(_Row(row, line, None, f"not valid JSON ({e})"))
                continue
            if not isinstance(obj, dict):
                rows.append(_Row(row, line, None, f"not a JSON object ({type(obj).__name__})"))
                continue
            rows.append(_Row(row, line, obj))
            continue
        try:
            fields = _parse_csv_record(rec, fmt)
        except UnicodeDecodeError:
            rows.append(_Row(row, line, None, "not valid UTF-8"))
            continue
        except (ValueError, csv.Error) as e:
            rows.append(_Row(row, line, None, f"not a valid CSV record ({e})"))
            continue
        if len(fields) != ncols:
            problem = f"has {len(fields)} fields; the header has {ncols}"
            rows.append(_Row(row, line, None, problem))
            continue
        rows.append(_Row(row, line, dict(zip(job.columns, fields, strict=True))))
    if len(rows) != spec.n_rows:
        raise EmoscopeError(
            f"{job.input}: chunk {spec.index} has {len(rows)} rows, the plan says {spec.n_rows}; "
            "was the file changed during the run?"
        )
    return rows


def _read_parquet_chunk(job: Job, spec: ChunkSpec) -> list[_Row]:
    pq = _pyarrow_parquet()
    pf = pq.ParquetFile(job.input)
    groups: list[int] = []
    first_group_start = None
    pos = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if pos < spec.end and pos + n > spec.start:
            groups.append(g)
            if first_group_start is None:
                first_group_start = pos
        pos += n
    records: list[dict[str, Any]] = []
    at = first_group_start or 0
    for batch in pf.iter_batches(batch_size=8192, row_groups=groups):
        lo, hi = max(spec.start - at, 0), min(spec.end - at, batch.num_rows)
        if lo < hi:
            records.extend(batch.slice(lo, hi - lo).to_pylist())
        at += batch.num_rows
        if at >= spec.end:
            break
    return [_Row(spec.first_row + k, 0, r) for k, r in enumerate(records)]


def _text_problem(
    record: dict[str, Any], col: str, max_chars: int, limit_name: str = "--max-chars"
) -> str | None:
    if col not in record:
        return f"no {col!r} field"
    value = record[col]
    if value is None:
        return f"{col!r} is null"
    if not isinstance(value, str):
        return f"{col!r} is not text ({type(value).__name__})"
    if not value.strip():
        return f"{col!r} is empty"
    if len(value) > max_chars:
        return f"{col!r} has {len(value):,} characters; the limit is {max_chars:,} ({limit_name})"
    return None


def _turn_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        if math.isnan(value):
            raise ValueError
        return float(value)
    if isinstance(value, str):
        x = float(value.strip())
        if math.isnan(x):
            raise ValueError
        return x
    raise ValueError


class ChunkAnnotator:
    """Annotates chunks of one job; holds the recogniser (loaded once per process or actor)."""

    def __init__(self, job: Job, recognizer: Recognizer | None = None) -> None:
        from emoscope.recognizers.base import load_recognizer

        self.job = job
        opts = job.options
        assert opts.recognizer is not None
        self.recognizer = recognizer if recognizer is not None else load_recognizer(opts.recognizer)
        if job.threads > 0 and "torch" in sys.modules:
            import torch

            torch.set_num_threads(job.threads)
        if opts.taxonomy is not None:
            from emoscope._views import route
            from emoscope.labels import get_taxonomy

            self.recognizer = route(self.recognizer, get_taxonomy(opts.taxonomy))
        self.pred_cols = pred_columns(opts.probs, job.labels)

    # -- predictions --------------------------------------------------------------------------
    def _predict_groups(
        self, groups: list[list[str | Dialogue]]
    ) -> list[list[EmotionPrediction] | Exception]:
        """Predict each group's inputs; on failure retry group by group, so one bad input
        only costs its own group."""
        flat = [x for g in groups for x in g]
        try:
            preds = self.recognizer.predict(flat)
        except Exception:
            preds = None
        if preds is not None:
            out: list[list[EmotionPrediction] | Exception] = []
            it = iter(preds)
            for g in groups:
                n = sum(len(x) if not isinstance(x, str) else 1 for x in g)
                out.append([next(it) for _ in range(n)])
            return out
        results: list[list[EmotionPrediction] | Exception] = []
        for g in groups:
            try:
                results.append(self.recognizer.predict(g))
            except Exception as e:
                results.append(e)
        return results

    def _predict_texts(self, rows: list[_Row]) -> dict[int, EmotionPrediction]:
        col = self.job.options.text_col
        good = [r for r in rows if r.problem is None]
        if not good:
            return {}
        groups: list[list[str | Dialogue]] = []
        # Batches of 256 texts: a failing text costs its batch one retry text by text.
        for i in range(0, len(good), 256):
            groups.append([r.record[col] for r in good[i : i + 256]])  # type: ignore[index]
        results = self._predict_groups(groups)
        out: dict[int, EmotionPrediction] = {}
        for b, res in enumerate(results):
            batch = good[b * 256 : (b + 1) * 256]
            if isinstance(res, Exception):
                singles = self._predict_groups([[r.record[col]] for r in batch])  # type: ignore[index]
                for r, one in zip(batch, singles, strict=True):
                    if isinstance(one, Exception):
                        r.problem = f"the recogniser failed: {_one_line(one)}"
                    else:
                        out[r.row] = one[0]
            else:
                for r, p in zip(batch, res, strict=True):
                    out[r.row] = p
        return out

    def _predict_dialogues(self, rows: list[_Row]) -> dict[int, EmotionPrediction]:
        from emoscope.dialogue import Dialogue, Utterance

        opts = self.job.options
        dcol, scol, tcol = opts.dialogue_col or "", opts.speaker_col, opts.turn_col
        dialogues: list[tuple[Any, list[_Row]]] = []
        for r in rows:
            if r.problem is not None or r.record is None:
                continue
            key = r.record.get(dcol)
            if key is None or (isinstance(key, str) and not key.strip()):
                r.problem = f"{dcol!r} (the dialogue id) is empty"
                continue
            if dialogues and dialogues[-1][0] == key:
                dialogues[-1][1].append(r)
            else:
                dialogues.append((key, [r]))
        inputs: list[list[str | Dialogue]] = []
        members: list[list[_Row]] = []
        for key, turns in dialogues:
            if tcol is not None:
                numbered = []
                for r in turns:
                    try:
                        numbered.append((_turn_number(r.record.get(tcol)), r))  # type: ignore[union-attr]
                    except (TypeError, ValueError):
                        r.problem = (
                            f"{tcol!r} (the turn) is {_preview(r.record.get(tcol))!r}, not a number"  # type: ignore[union-attr]
                        )
                turns = [r for _, r in sorted(numbered, key=lambda t: t[0])]
            if not turns:
                continue
            utts = []
            for r in turns:
                rec = r.record or {}
                speaker = rec.get(scol) if scol is not None else None
                utts.append(
                    Utterance(rec[opts.text_col], None if speaker is None else str(speaker))
                )
            inputs.append([Dialogue(utts, id=str(key))])
            members.append(turns)
        out: dict[int, EmotionPrediction] = {}
        for turns, res in zip(members, self._predict_groups(inputs), strict=True):
            if isinstance(res, Exception):
                for r in turns:
                    r.problem = f"the recogniser failed on this row's dialogue: {_one_line(res)}"
                continue
            for r, p in zip(turns, res, strict=True):
                out[r.row] = p
        return out

    # -- output -------------------------------------------------------------------------------
    def _pred_values(self, p: EmotionPrediction | None, structured: bool) -> dict[str, Any]:
        cols = self.pred_cols
        if p is None:
            return dict.fromkeys(cols)
        probs = {k: round(v, 6) for k, v in p.probs.items()}
        vad = p.vad or (None, None, None)
        d: dict[str, Any] = {
            "pred_label": p.label,
            "pred_labels": list(p.labels) if structured else json.dumps(list(p.labels)),
            "pred_confidence": round(p.confidence, 6),
        }
        if self.job.options.probs == "json":
            d["pred_probs"] = probs if structured else json.dumps(probs, ensure_ascii=False)
        else:
            for lab in self.job.labels:
                d[f"prob_{lab}"] = probs.get(lab)
        for name, x in zip(("valence", "arousal", "dominance"), vad, strict=True):
            d[f"pred_{name}"] = None if x is None else round(float(x), 6)
        d["pred_language"] = p.language
        warns = list(p.warnings)
        d["pred_warnings"] = warns if structured else json.dumps(warns, ensure_ascii=False)
        return {c: d.get(c) for c in cols}

    def __call__(self, spec: ChunkSpec) -> ChunkResult:
        """Annotate one chunk."""
        opts = self.job.options
        rows = _read_chunk(self.job, spec)
        # predict() refuses texts over the shared per-text limit: such rows are bad rows too.
        shared = max_text_chars()
        limit, name = (
            (opts.max_chars, "--max-chars")
            if opts.max_chars <= shared
            else (shared, MAX_TEXT_CHARS_ENV)
        )
        for r in rows:
            if r.problem is None and r.record is not None:
                r.problem = _text_problem(r.record, opts.text_col, limit, name)
        preds = self._predict_dialogues(rows) if opts.dialogue_col else self._predict_texts(rows)
        out_fmt = self.job.out_format
        structured = out_fmt == "jsonl"
        records: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for r in rows:
            if r.problem is not None:
                entry: dict[str, Any] = {"row": r.row + 1}
                if r.line:
                    entry["line"] = r.line
                entry["reason"] = r.problem
                entry["dropped"] = r.record is None
                if r.record is not None and opts.text_col in r.record:
                    entry["text"] = _preview(r.record[opts.text_col])
                bad.append(entry)
            if r.record is None:
                continue
            records.append({**r.record, **self._pred_values(preds.get(r.row), structured)})
        return ChunkResult(spec.index, len(rows), self._serialise(records), bad)

    def _serialise(self, records: list[dict[str, Any]]) -> bytes:
        fmt = self.job.out_format
        columns = list(self.job.columns) + self.pred_cols
        if fmt == "jsonl":
            lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
            return ("\n".join(lines) + "\n").encode() if lines else b""
        if fmt in ("csv", "tsv"):
            buf = io.StringIO()
            w = csv.writer(buf, delimiter=_delimiter(fmt), lineterminator="\n")
            for r in records:
                w.writerow([_csv_value(r.get(c)) for c in columns])
            return buf.getvalue().encode()
        return _parquet_bytes(self.job, records, columns, self.pred_cols)


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool | int | float | dict | list):
        return json.dumps(v, ensure_ascii=False, default=str)
    return str(v)


def _pred_field_types(pred_cols: Sequence[str]) -> list[Any]:
    import pyarrow as pa

    fields = []
    for c in pred_cols:
        # labels, probs and warnings as JSON text
        if c in ("pred_label", "pred_labels", "pred_probs", "pred_language", "pred_warnings"):
            fields.append(pa.field(c, pa.string()))
        else:
            fields.append(pa.field(c, pa.float64()))
    return fields


def _parquet_bytes(
    job: Job, records: list[dict[str, Any]], columns: list[str], pred_cols: list[str]
) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base: Any
    if job.in_format == "parquet":
        base = pq.read_schema(job.input)
    elif job.in_format in ("csv", "tsv"):
        base = pa.schema([pa.field(c, pa.string()) for c in job.columns])
    else:
        base = None
    if base is not None:
        schema = pa.schema(list(base) + _pred_field_types(pred_cols))
        table = pa.Table.from_pylist(
            [{c: r.get(c) for c in columns} for r in records], schema=schema
        )
    else:
        arrays = []
        for c in job.columns:
            values = [r.get(c) for r in records]
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep them as text
                arrays.append(pa.array([None if v is None else _csv_value(v) for v in values]))
        original = pa.Table.from_arrays(arrays, names=list(job.columns))
        preds = pa.Table.from_pylist(
            [{c: r.get(c) for c in pred_cols} for r in records],
            schema=pa.schema(_pred_field_types(pred_cols)),
        )
        table = original
        for f, col in zip(preds.schema, preds.columns, strict=True):
            table = table.append_column(f, col)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


# ------------------------------------------------------------------------------------------
# Engines
# ------------------------------------------------------------------------------------------

_WORKER: ChunkAnnotator | None = None


def _die_with_parent(parent: int) -> None:
    """End this worker process when the process ``parent`` ends, even by SIGKILL.

    On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. Everywhere (and as a
    fallback) a daemon thread checks once a second whether the parent is gone (the worker is
    re-parented, so ``os.getppid()`` changes) and exits.
    """
    import threading

    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="emoscope-parent-watchdog", daemon=True).start()


def _init_worker(job: Job, parent: int | None = None) -> None:
    global _WORKER
    if parent is not None:
        _die_with_parent(parent)
    _WORKER = ChunkAnnotator(job)


def _work(spec: ChunkSpec) -> ChunkResult:
    assert _WORKER is not None
    return _WORKER(spec)


def _run_inline(annotator: ChunkAnnotator, pending: list[ChunkSpec]) -> Iterator[ChunkResult]:
    for spec in pending:
        yield annotator(spec)


def _run_local(job: Job, pending: list[ChunkSpec], workers: int) -> Iterator[ChunkResult]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    # spawn: workers start clean (no copied threads or torch state) and load the model once.
    ctx = multiprocessing.get_context("spawn")
    # Workers end with this process even when it is SIGKILLed (they would hold the model in
    # memory and the caller's pipes); so does multiprocessing's resource tracker, which exits
    # when its pipe from this process closes.
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(job, os.getpid())
    ) as pool:
        todo = iter(pending)
        running: set[Future[ChunkResult]] = set()
        window = 2 * workers  # chunks in flight: memory stays bounded whatever the input size
        try:
            for spec in todo:
                running.add(pool.submit(_work, spec))
                if len(running) >= window:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        except BaseException:
            for f in running:
                f.cancel()
            raise


class RayChunkAnnotator:
    """The callable class given to Ray Data ``map_batches``: one recogniser per actor."""

    def __init__(self, job: bytes) -> None:
        self.annotator = ChunkAnnotator(pickle.loads(job))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for spec in batch["spec"]:
            result = self.annotator(ChunkSpec(**json.loads(spec)))
            out.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return {"result": out}


def _run_ray(job: Job, pending: list[ChunkSpec], workers: int | None) -> Iterator[ChunkResult]:
    try:
        import ray
        import ray.data  # its own dependencies (pandas) come with the ray[data] extra only
    except ImportError as e:
        raise EmoscopeError(f"--engine ray needs Ray Data ({e}): pip install 'ray[data]'") from None
    started = False
    if not ray.is_initialized():
        # RAY_ADDRESS (e.g. ray://head:10001 or auto) connects to a cluster; without it a local
        # instance starts and is shut down at the end.
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(
                include_dashboard=False,
                num_cpus=os.cpu_count(),
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        started = True
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.ERROR)  # Ray Data's execution notes would break up our progress bar
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = ray.data.from_items(
            [{"spec": json.dumps(asdict(s))} for s in pending], override_num_blocks=len(pending)
        )
        ds = items.map_batches(
            RayChunkAnnotator,
            fn_constructor_kwargs={"job": pickle.dumps(job)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=1,
            batch_format="numpy",
        )
        try:
            for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=n):
                for blob in batch["result"]:
                    yield pickle.loads(bytes(blob))
        except ray.exceptions.RayError as e:
            raise EmoscopeError(
                f"--engine ray: an actor failed: {_ray_cause(e)} (on a cluster, emoscope, the "
                "recogniser's module and the input file must be reachable from every node)"
            ) from None
    finally:
        data_log.setLevel(level)
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------


def _worker_threads(engine: str, n_workers: int, cpus: int) -> int:
    """Torch threads per worker (0: leave as is): the CPUs shared out between the workers, so
    that N workers do not start N x CPUs threads; an explicit ``OMP_NUM_THREADS`` wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return 0
    return 1 if engine == "ray" else max(1, cpus // max(n_workers, 1))


def _ray_cause(exc: BaseException) -> str:
    """The last line of a Ray error (its text ends with the remote traceback's last line)."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else type(exc).__name__


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
    engine: str = "local",
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
        engine: ``"local"`` (processes on this machine) or ``"ray"`` (Ray Data actors).
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
    if engine not in ("local", "ray"):
        raise EmoscopeError(f"unknown engine {engine!r}; expected 'local' or 'ray'")
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
    cpus = os.cpu_count() or 1
    n_workers = workers or (cpus if engine == "local" else 0)
    job = Job(
        input=str(src.resolve()),
        in_format=fmt,
        out_format=out_fmt,
        columns=tuple(plan.columns),
        options=opts,
        labels=labels,
        taxonomy=tax_name,
        threads=_worker_threads(engine, n_workers, cpus),
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
        if not pending:
            results: Iterator[ChunkResult] = iter(())
        elif engine == "ray":
            results = _run_ray(job, pending, workers)
        elif n_workers <= 1 or len(pending) == 1:
            # In the caller's process: leave its torch thread setting alone.
            inline = ChunkAnnotator(dataclasses.replace(job, threads=0), recognizer)
            results = _run_inline(inline, pending)
        else:
            results = _run_local(job, pending, min(n_workers, len(pending)))
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
        engine=engine,
        workers=n_workers if engine == "local" else (workers or 0),
        recognizer=opts.recognizer or "",
    )
