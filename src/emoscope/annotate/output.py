"""Serialising annotated rows: CSV/TSV, JSON Lines and Parquet bytes of one chunk."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from emoscope.annotate.options import Job
from emoscope.annotate.readers import _delimiter

__all__ = ["serialise"]


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


def serialise(job: Job, records: list[dict[str, Any]], pred_cols: list[str]) -> bytes:
    """The annotated ``records`` of one chunk as bytes of ``job.out_format`` (no CSV header)."""
    fmt = job.out_format
    columns = list(job.columns) + pred_cols
    if fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
        return ("\n".join(lines) + "\n").encode() if lines else b""
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=_delimiter(fmt), lineterminator="\n")
        for r in records:
            w.writerow([_csv_value(r.get(c)) for c in columns])
        return buf.getvalue().encode()
    return _parquet_bytes(job, records, columns, pred_cols)
