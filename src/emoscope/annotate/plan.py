"""The plan of a run: chunk boundaries found in one streaming pass over the input."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emoscope.annotate.options import _MAX_DIALOGUE_CHUNKS, AnnotateOptions, ChunkSpec
from emoscope.annotate.readers import (
    _delimiter,
    _iter_records,
    _parse_csv_record,
    _pyarrow_parquet,
    _read_header,
)
from emoscope.errors import EmoscopeError

__all__ = ["Plan", "make_plan"]


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
