"""Reading the input: CSV/TSV and JSON Lines records with their byte offsets, and chunks.

A record is found without parsing its fields (:func:`_still_quoted`), so that the planner can
cut a file into byte ranges in one streaming pass and a worker can read its range alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoscope.annotate.options import _PREVIEW, ChunkSpec, Job
from emoscope.errors import EmoscopeError

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


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise EmoscopeError("Parquet files need pyarrow: pip install pyarrow") from None
    return pq


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
