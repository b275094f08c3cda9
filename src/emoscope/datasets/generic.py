"""Readers for your own files: labelled texts and dialogues in CSV, TSV, JSON or JSON Lines.

The file type comes from the suffix: ``.csv``, ``.tsv``, ``.jsonl`` (also ``.ndjson``) or
``.json``. CSV/TSV files need a header row. Column names are arguments; a column left at its
default name is optional (when the file lacks it, the field is treated as absent), while a
column you name explicitly must be present.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from emoscope.datasets._common import (
    BadRows,
    LabelNormalizer,
    Turn,
    assemble_dialogues,
    float_field,
    iter_jsonl,
    iter_table,
    json_array_items,
    load_json,
    make_dataset,
    read_text,
)
from emoscope.datasets.base import Dataset, Example
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import DataError, DatasetNotFoundError
from emoscope.labels import get_taxonomy

__all__ = ["read_dialogue_file", "read_dialogues", "read_labelled_file", "read_texts"]

_KINDS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
_SPLIT = "all"


def _kind(path: Path) -> str:
    if path.is_dir():
        raise DataError(path, None, "is a folder", "a file")
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: no such file")
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            path,
            None,
            f"unsupported file type {path.suffix or '(none)'!r}",
            ".csv, .tsv, .json or .jsonl",
        )
    return kind


def _explicit(*pairs: tuple[str | None, str | None]) -> list[str]:
    """The columns that must exist: those given with a name other than their default."""
    return [col for col, default in pairs if col is not None and col != default]


def _value(
    record: dict[str, Any], col: str | None, required: bool, path: Path, line: int, expected: str
) -> Any:
    """A field of a record; ``None`` when absent and not required."""
    if col is None:
        return None
    if col not in record:
        if required:
            raise DataError(path, line, f"missing field {col!r}", expected)
        return None
    return record[col]


def _as_str(value: Any, col: str, path: Path, line: int, expected: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DataError(path, line, f"{col} is {value!r}, not a string", expected)


def _text(value: Any, col: str, path: Path, line: int, expected: str) -> str:
    text = _as_str(value, col, path, line, expected).strip()
    if not text:
        raise DataError(path, line, f"empty text in {col!r}", expected)
    return text


def _labels(
    value: Any,
    col: str,
    sep: str | None,
    normalize: LabelNormalizer | None,
    path: Path,
    line: int,
    expected: str,
) -> tuple[str, ...]:
    """Labels from a string (split on ``sep`` when given) or a JSON list of strings."""
    if isinstance(value, list):
        parts = [_as_str(v, col, path, line, expected) for v in value]
    else:
        raw = _as_str(value, col, path, line, expected)
        parts = raw.split(sep) if sep else [raw]
    parts = [p.strip() for p in parts if p.strip()]
    if not parts:
        raise DataError(path, line, f"empty label in {col!r}", expected)
    if normalize is not None:
        parts = [normalize(p, path, line) for p in parts]
    return tuple(dict.fromkeys(parts))


def _number(value: Any, col: str, path: Path, line: int, expected: str) -> float:
    if isinstance(value, bool) or value is None:
        raise DataError(path, line, f"{col} is {value!r}, not a number", expected)
    if isinstance(value, int | float):
        return float_field(str(value), col, path, line, expected)
    return float_field(_as_str(value, col, path, line, expected), col, path, line, expected)


def _records(
    path: Path, kind: str, bad: BadRows, expected: str, required: Sequence[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for each object/row of a table or JSON file of flat records."""
    if kind in ("csv", "tsv"):
        delimiter = "\t" if kind == "tsv" else ","
        yield from iter_table(path, bad, expected=expected, delimiter=delimiter, required=required)
        return
    if kind == "jsonl":
        items: Iterator[tuple[int, Any]] | list[tuple[int, Any]] = iter_jsonl(
            path, bad, expected=expected
        )
    else:
        text = read_text(path)
        found = json_array_items(path, text, expected=expected)
        if found is None:
            raise DataError(path, 1, "the top-level JSON value is not a list", expected)
        items = found
    for line, obj in items:
        if not isinstance(obj, dict):
            bad.add(DataError(path, line, f"a JSON {type(obj).__name__}, not an object", expected))
            continue
        yield line, obj


def read_texts(
    path: str | Path,
    *,
    text_col: str = "text",
    label_col: str | None = "label",
    taxonomy: str | None = None,
    vad_cols: tuple[str, str, str] | None = None,
    id_col: str | None = None,
    label_sep: str | None = None,
    skip_bad: bool = False,
    vad_scale: tuple[float, float] | None = None,
) -> Dataset:
    """Read standalone labelled texts from ``.csv``, ``.tsv``, ``.jsonl`` or ``.json``.

    A JSON file holds a list of objects; a JSON Lines file one object per line; CSV/TSV one
    row per text under a header. Fields:

    * ``text_col``: the text (required, must not be empty);
    * ``label_col``: the gold label. In JSON it may also be a list of labels; with
      ``label_sep`` a string is split into several labels (``"joy;surprise"``). When
      ``taxonomy`` is given, every label must belong to it (case-insensitive) and is stored in
      canonical form; otherwise labels are kept as written. ``None`` reads no labels, and so
      does a file without the default ``label`` column;
    * ``vad_cols``: three columns with valence, arousal, dominance. Values must lie in
      ``[-1, 1]`` unless ``vad_scale=(low, high)`` names their scale, in which case they are
      rescaled linearly (``(1, 5)`` for SAM ratings, ``(0, 1)`` for NRC VAD);
    * ``id_col``: an identifier per text (default: none).

    Every example records its 1-based starting line in ``meta["line"]``. The dataset is named
    after the file's stem, with split ``"all"``.

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: unsupported file type, a missing column, an empty text, an unknown label
            (the message lists the taxonomy's labels), a non-numeric or out-of-range VAD
            value, invalid UTF-8 or JSON; with ``skip_bad`` bad records are skipped instead.
    """
    path = Path(path)
    kind = _kind(path)
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    normalize = LabelNormalizer(tax) if tax is not None else None
    described = [f"{text_col} (text)"]
    if label_col:
        described.append(
            f"{label_col} (label{f's separated by {label_sep!r}' if label_sep else ''})"
        )
    if vad_cols:
        described.append(f"{', '.join(vad_cols)} (valence, arousal, dominance)")
    if id_col:
        described.append(f"{id_col} (id)")
    expected = f"records with the fields {'; '.join(described)}"
    if tax is not None:
        expected += f"; labels from the {tax.name} taxonomy"
    required = [text_col, *_explicit((label_col, "label"), (id_col, None)), *(vad_cols or ())]
    if vad_scale is not None and not vad_scale[0] < vad_scale[1]:
        raise ValueError(f"vad_scale must be (low, high) with low < high, got {vad_scale}")

    bad = BadRows(skip_bad)
    examples: list[Example] = []
    for line, rec in _records(path, kind, bad, expected, required):
        with bad:
            raw_text = _value(rec, text_col, True, path, line, expected)
            text = _text(raw_text, text_col, path, line, expected)
            labels: tuple[str, ...] = ()
            raw_label = _value(rec, label_col, label_col != "label", path, line, expected)
            if label_col is not None and label_col in rec:
                labels = _labels(raw_label, label_col, label_sep, normalize, path, line, expected)
            vad: tuple[float, float, float] | None = None
            if vad_cols is not None:
                vad = _read_vad(rec, vad_cols, vad_scale, path, line, expected)
            ident = _value(rec, id_col, True, path, line, expected)
            examples.append(
                Example(
                    text=text,
                    labels=labels,
                    vad=vad,
                    id=None if ident is None else _as_str(ident, str(id_col), path, line, expected),
                    meta={"line": line},
                )
            )
    return make_dataset(path.stem, _SPLIT, examples, path=path, bad=bad, taxonomy=tax)


def _read_vad(
    rec: dict[str, Any],
    cols: tuple[str, str, str],
    scale: tuple[float, float] | None,
    path: Path,
    line: int,
    expected: str,
) -> tuple[float, float, float]:
    out: list[float] = []
    for col in cols:
        x = _number(_value(rec, col, True, path, line, expected), col, path, line, expected)
        if scale is not None:
            lo, hi = scale
            if not lo <= x <= hi:
                raise DataError(path, line, f"{col} = {x} is outside {lo}..{hi}", expected)
            x = 2.0 * (x - lo) / (hi - lo) - 1.0
        elif not -1.0 <= x <= 1.0:
            raise DataError(
                path, line, f"{col} = {x} is outside [-1, 1]", expected + " (or pass vad_scale)"
            )
        out.append(x)
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------------------------
# Dialogues


def read_dialogues(
    path: str | Path,
    *,
    text_col: str = "text",
    speaker_col: str = "speaker",
    dialogue_col: str = "dialogue_id",
    turn_col: str | None = "turn",
    label_col: str | None = None,
    taxonomy: str | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Read dialogues from CSV/TSV (one row per utterance) or JSON/JSON Lines.

    CSV/TSV: rows are grouped by ``dialogue_col`` (dialogues in order of first appearance; the
    whole file is one dialogue when the default column is absent) and ordered by the numeric
    ``turn_col`` (file order when ``turn_col`` is ``None`` or the default column is absent).
    ``speaker_col`` gives the speaker (``None`` when absent or empty), ``label_col`` the gold
    label of each utterance.

    JSON: a single dialogue, a list of turns (one dialogue) or a list of dialogues; JSON
    Lines: one dialogue per line. A dialogue is a list of turns or an object
    ``{"id": ..., "utterances": [...]}``; a turn is a string or an object with ``text_col``,
    optional ``speaker_col``, ``id``, ``meta`` and a label under ``label_col`` (or ``label``
    when ``label_col`` is ``None``; a string or a list of strings). Dialogues without an id
    are numbered from 1.

    Utterances without an id get ``"<dialogue id>_<turn>"`` (CSV with turns) or
    ``"<dialogue id>_<position>"``. With ``taxonomy``, labels are checked and canonicalised.
    With ``skip_bad``, a bad CSV row drops that utterance while a bad JSON turn drops its
    whole dialogue (each counts once in ``Dataset.skipped``).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: unsupported file type, a missing column, an empty text, an unknown label,
            a non-numeric or repeated turn number, invalid UTF-8 or JSON.
    """
    return _read_dialogues(
        Path(path),
        text_col=text_col,
        speaker_col=speaker_col,
        dialogue_col=dialogue_col,
        turn_col=turn_col,
        label_col=label_col,
        taxonomy=taxonomy,
        skip_bad=skip_bad,
        read_labels=True,
    )


def read_dialogue_file(path: str | Path) -> list[Dialogue]:
    """Read the dialogues of a file for ``emoscope dialogue FILE``; labels are ignored.

    Accepts JSON (one dialogue object, a list of turns, or a list of dialogues), JSON Lines
    (one dialogue per line) and CSV/TSV with ``text``, optional ``speaker`` and optional
    ``dialogue_id`` (and ``turn``) columns; see :func:`read_dialogues`.
    """
    data = _read_dialogues(
        Path(path),
        text_col="text",
        speaker_col="speaker",
        dialogue_col="dialogue_id",
        turn_col="turn",
        label_col=None,
        taxonomy=None,
        skip_bad=False,
        read_labels=False,
    )
    return list(data.dialogues or [])


def _read_dialogues(
    path: Path,
    *,
    text_col: str,
    speaker_col: str,
    dialogue_col: str,
    turn_col: str | None,
    label_col: str | None,
    taxonomy: str | None,
    skip_bad: bool,
    read_labels: bool,
) -> Dataset:
    kind = _kind(path)
    tax = get_taxonomy(taxonomy) if taxonomy is not None else None
    normalize = LabelNormalizer(tax) if tax is not None else None
    bad = BadRows(skip_bad)
    if kind in ("csv", "tsv"):
        groups, ids = _dialogues_from_table(
            path,
            kind,
            bad,
            text_col,
            speaker_col,
            dialogue_col,
            turn_col,
            label_col if read_labels else None,
            normalize,
        )
        sort_turns = turn_col is not None
    else:
        groups, ids = _dialogues_from_json(
            path,
            kind,
            bad,
            text_col,
            speaker_col,
            (label_col or "label") if read_labels else None,
            normalize,
        )
        sort_turns = False
    dialogues, examples = assemble_dialogues(
        groups, ids, sort_dialogues=False, sort_turns=sort_turns
    )
    return make_dataset(
        path.stem, _SPLIT, examples, path=path, bad=bad, taxonomy=tax, dialogues=dialogues
    )


def _table_expected(
    text_col: str, speaker_col: str, dialogue_col: str, turn_col: str | None, label_col: str | None
) -> str:
    cols = [f"{text_col} (text)", f"{speaker_col} (speaker)", f"{dialogue_col} (dialogue id)"]
    if turn_col:
        cols.append(f"{turn_col} (turn number)")
    if label_col:
        cols.append(f"{label_col} (label)")
    return "a header and one row per utterance with the columns " + ", ".join(cols)


def _dialogues_from_table(
    path: Path,
    kind: str,
    bad: BadRows,
    text_col: str,
    speaker_col: str,
    dialogue_col: str,
    turn_col: str | None,
    label_col: str | None,
    normalize: LabelNormalizer | None,
) -> tuple[dict[str, list[Turn]], dict[str, str]]:
    expected = _table_expected(text_col, speaker_col, dialogue_col, turn_col, label_col)
    required = [
        text_col,
        *_explicit(
            (speaker_col, "speaker"),
            (dialogue_col, "dialogue_id"),
            (turn_col, "turn"),
            (label_col, None),
        ),
    ]
    groups: dict[str, list[Turn]] = {}
    turns_seen: dict[tuple[str, float], int] = {}
    for line, row in _records(path, kind, bad, expected, required):
        with bad:
            text = _text(row[text_col], text_col, path, line, expected)
            did = path.stem
            if dialogue_col in row:
                did = row[dialogue_col].strip()
                if not did:
                    raise DataError(path, line, f"empty {dialogue_col}", expected)
            position = len(groups.get(did, ()))
            order: float = position
            uid = f"{did}_{position}"
            if turn_col is not None and turn_col in row:
                order = float_field(row[turn_col], turn_col, path, line, expected)
                if (did, order) in turns_seen:
                    raise DataError(
                        path,
                        line,
                        f"turn {row[turn_col].strip()} of dialogue {did!r} repeats line "
                        f"{turns_seen[did, order]}",
                        expected,
                    )
                turns_seen[did, order] = line
                uid = f"{did}_{row[turn_col].strip()}"
            speaker = None
            if speaker_col in row:
                speaker = row[speaker_col].strip() or None
            labels: tuple[str, ...] = ()
            if label_col is not None:
                labels = _labels(row[label_col], label_col, None, normalize, path, line, expected)
            utt = Utterance(text, speaker=speaker, id=uid)
            groups.setdefault(did, []).append(Turn(order, utt, labels, meta={"line": line}))
    return groups, {k: k for k in groups}


_JSON_EXPECTED = (
    'a dialogue ({{"id": ..., "utterances": [turns]}} or a list of turns), a list of '
    "dialogues, or one dialogue per line (JSON Lines); a turn is a string or an object with "
    "{text!r}, optional {speaker!r} and {label!r}"
)


def _is_dialogue(obj: Any) -> bool:
    return isinstance(obj, list) or (isinstance(obj, dict) and "utterances" in obj)


def _dialogues_from_json(
    path: Path,
    kind: str,
    bad: BadRows,
    text_col: str,
    speaker_col: str,
    label_key: str | None,
    normalize: LabelNormalizer | None,
) -> tuple[dict[str, list[Turn]], dict[str, str]]:
    expected = _JSON_EXPECTED.format(text=text_col, speaker=speaker_col, label=label_key or "label")
    # Each unit: (line of the dialogue, the dialogue, per-turn lines if known).
    units: list[tuple[int, Any, list[int] | None]] = []
    if kind == "jsonl":
        units = [(line, obj, None) for line, obj in iter_jsonl(path, bad, expected=expected)]
    else:
        text = read_text(path)
        items = json_array_items(path, text, expected=expected)
        if items is None:
            units = [(1, load_json(path, expected=expected, text=text), None)]
        elif items and not any(_is_dialogue(obj) for _, obj in items):
            units = [(items[0][0], [obj for _, obj in items], [line for line, _ in items])]
        else:
            for line, obj in items:
                if not _is_dialogue(obj):
                    raise DataError(
                        path,
                        line,
                        "a single turn in a list of dialogues (the list mixes both)",
                        expected,
                    )
            units = [(line, obj, None) for line, obj in items]

    groups: dict[str, list[Turn]] = {}
    ids: dict[str, str] = {}
    for n, (line, obj, turn_lines) in enumerate(units, start=1):
        with bad:
            did, turns = _json_dialogue(
                obj,
                n,
                line,
                turn_lines,
                path,
                expected,
                text_col,
                speaker_col,
                label_key,
                normalize,
            )
            key = did
            if key in groups:
                raise DataError(path, line, f"dialogue id {did!r} used twice", expected)
            groups[key] = turns
            ids[key] = did
    return groups, ids


def _json_dialogue(
    obj: Any,
    n: int,
    line: int,
    turn_lines: list[int] | None,
    path: Path,
    expected: str,
    text_col: str,
    speaker_col: str,
    label_key: str | None,
    normalize: LabelNormalizer | None,
) -> tuple[str, list[Turn]]:
    if isinstance(obj, dict) and isinstance(obj.get("utterances"), list):
        raw_turns: list[Any] = obj["utterances"]
        raw_id = obj.get("id")
        did = str(n) if raw_id is None else _as_str(raw_id, "id", path, line, expected)
    elif isinstance(obj, list):
        raw_turns, did = obj, str(n)
    else:
        raise DataError(
            path, line, f"dialogue {n} is neither a list nor has 'utterances'", expected
        )
    if not raw_turns:
        raise DataError(path, line, f"dialogue {did!r} has no utterances", expected)
    turns: list[Turn] = []
    for i, t in enumerate(raw_turns):
        where = turn_lines[i] if turn_lines is not None else line
        label_of = f"dialogue {did!r}, turn {i + 1}"
        labels: tuple[str, ...] = ()
        if isinstance(t, str):
            text, speaker, uid = _text(t, label_of, path, where, expected), None, None
            meta: dict[str, Any] = {}
        elif isinstance(t, dict):
            if text_col not in t:
                raise DataError(path, where, f"{label_of} has no {text_col!r}", expected)
            text = _text(t[text_col], f"{label_of} {text_col}", path, where, expected)
            raw_speaker = t.get(speaker_col)
            speaker = None if raw_speaker is None else str(raw_speaker).strip() or None
            uid = None if t.get("id") is None else str(t["id"])
            meta = t.get("meta") or {}
            if not isinstance(meta, dict):
                raise DataError(path, where, f"{label_of} meta is not an object", expected)
            if label_key is not None and t.get(label_key) is not None:
                labels = _labels(
                    t[label_key], f"{label_of} {label_key}", None, normalize, path, where, expected
                )
        else:
            raise DataError(path, where, f"{label_of} is a JSON {type(t).__name__}", expected)
        utt = Utterance(
            text, speaker=speaker, id=uid if uid is not None else f"{did}_{i}", meta=dict(meta)
        )
        turns.append(Turn(i, utt, labels, meta={"line": where}))
    return did, turns


def read_labelled_file(path: str | Path, taxonomy: str) -> Dataset:
    """Read a user's labelled file as dialogues or texts, whichever it holds.

    Dialogues are recognised by a ``dialogue_id`` column (CSV/TSV) or dialogue objects
    (JSON/JSONL: objects with ``utterances`` or lists of turns) and read with
    :func:`read_dialogues` (``label`` column); anything else goes to :func:`read_texts`.
    A file without any labelled row raises :class:`DataError`.
    """
    path = Path(path)
    _kind(path)
    if _is_conversational(path):
        ds = read_dialogues(path, label_col="label", taxonomy=taxonomy)
    else:
        ds = read_texts(path, taxonomy=taxonomy)
    if not any(e.labels or e.vad is not None for e in ds.examples):
        found = f"{len(ds.examples):,} rows, none with a label" if ds.examples else "no rows"
        raise DataError(
            path, None, f"no labelled rows ({found})", f"a 'label' column of {taxonomy} labels"
        )
    return ds


def _is_conversational(path: Path) -> bool:
    # Unreadable files count as texts, so that the text reader reports what is wrong with them.
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8") as fh:
            if suffix in {".csv", ".tsv"}:
                header = next(
                    csv.reader([fh.readline()], delimiter="\t" if suffix == ".tsv" else ",")
                )
                return "dialogue_id" in (h.strip() for h in header)
            if suffix in {".jsonl", ".ndjson"}:
                first = next((line for line in fh if line.strip()), "null")
                obj = json.loads(first)
            else:
                obj = json.load(fh)
                if isinstance(obj, list) and obj and not _is_dialogue(obj):
                    obj = obj[0]
    except (OSError, UnicodeDecodeError, ValueError, StopIteration):
        return False
    return _is_dialogue(obj)
