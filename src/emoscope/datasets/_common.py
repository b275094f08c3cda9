"""Machinery shared by the dataset readers.

* where the data lives (:func:`data_root`, :func:`dataset_dir`; what each dataset looks like on
  disk is data: :mod:`emoscope.datasets.registry`);
* strict UTF-8 reading that reports the line of a bad byte;
* CSV/TSV, JSONL and JSON-array iteration that yields the 1-based line where each record
  *starts* (for a CSV record with a quoted multi-line field, the line of its first character);
* :class:`BadRows`, which either raises a :class:`~emoscope.errors.DataError` or, with
  ``skip_bad=True``, counts the bad record, skips it and warns once at the end;
* label normalisation and mapping between taxonomies, and assembly of conversational datasets.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from emoscope.datasets.base import Dataset, Example
from emoscope.datasets.registry import DATASETS, DatasetInfo, get_info
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import DataError, DatasetNotFoundError, EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy, map_label

ENV_VAR = "EMOSCOPE_DATA"
SPLITS = ("train", "dev", "test")
_SPLIT_ALIASES = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}

VAD = tuple[float, float, float]


class DatasetOptionError(EmoscopeError, ValueError):
    """An argument of a dataset loader is not valid (unknown split, perspective, task...)."""


class DataWarning(UserWarning):
    """Emitted when ``skip_bad=True`` made a reader skip malformed records."""


def normalize_split(split: str, allowed: Sequence[str] = SPLITS) -> str:
    """Canonical split name (``validation`` is ``dev``); unknown splits raise."""
    canon = _SPLIT_ALIASES.get(split.strip().lower())
    if canon is None or canon not in allowed:
        raise DatasetOptionError(
            f"unknown split {split!r}; expected one of: {', '.join(allowed)} "
            "(validation is accepted for dev)"
        )
    return canon


# --------------------------------------------------------------------------------------------
# Where the data lives


def _root_candidates(root: str | Path | None) -> list[tuple[Path, str]]:
    """Candidate data roots with a description of where each comes from, in priority order."""
    if root is not None:
        return [(Path(root).expanduser(), "the root argument")]
    env = os.environ.get(ENV_VAR)
    if env:
        return [(Path(env).expanduser(), f"the {ENV_VAR} environment variable")]
    out = [(Path.cwd().parent / "shared" / "data", "the default ../shared/data")]
    here = Path(__file__).resolve()
    # _common.py -> datasets -> emoscope -> src -> repository root; the data sits beside it.
    if len(here.parents) > 4:
        out.append((here.parents[4] / "shared" / "data", "the default beside the checkout"))
    return out


def data_root(root: str | Path | None = None) -> Path:
    """The directory holding the dataset folders (``meld/``, ``goemotions/``...).

    An explicit ``root`` wins, then the ``EMOSCOPE_DATA`` environment variable; both are
    returned as given even if they do not exist, so that a later load fails naming them.
    Otherwise the first existing of ``../shared/data`` (relative to the current directory)
    and ``shared/data`` beside the repository checkout is used; if neither exists the first
    is returned and loading reports what was looked for.
    """
    candidates = _root_candidates(root)
    for path, _ in candidates:
        if path.is_dir():
            return path
    return candidates[0][0]


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder of one dataset: ``<data root>/<folder>``.

    A root that already *is* the dataset folder (it holds the dataset's files directly) is
    accepted too.
    """
    info = get_info(name)
    base = data_root(root)
    sub = base / info.folder
    if not sub.is_dir() and any((base / f).is_file() for f in info.files.values()):
        return base
    return sub


def dataset_file(name: str, filename: str, root: str | Path | None = None) -> Path:
    """The path of one file of a dataset; raises :class:`DatasetNotFoundError` if missing."""
    path = dataset_dir(name, root) / filename
    if not path.is_file():
        raise not_found(get_info(name), [path], root)
    return path


def not_found(
    info: DatasetInfo, missing: Sequence[Path], root: str | Path | None
) -> DatasetNotFoundError:
    """The error for missing dataset files: what was looked for, where, and how to fix it."""
    candidates = _root_candidates(root)
    base = data_root(root)
    origin = next((desc for p, desc in candidates if p == base), candidates[0][1])
    tried = ""
    if root is None and not os.environ.get(ENV_VAR) and len(candidates) > 1:
        tried = " (also tried " + ", ".join(str(p) for p, _ in candidates if p != base) + ")"
    files = ", ".join(str(p) for p in missing)
    return DatasetNotFoundError(
        f"{info.title} not found: looked for {files}; data root {base} comes from {origin}"
        f"{tried}. Get the data from {info.url} and put the files in {base / info.folder}, or "
        f"point emoscope at the directory that contains {info.folder}/ with the root argument "
        f"or the {ENV_VAR} environment variable."
    )


# --------------------------------------------------------------------------------------------
# Bad records


class BadRows:
    """Raise or count malformed records.

    Use one instance per load. ``add(err)`` raises ``err`` unless ``skip_bad`` is set, in which
    case the line is remembered. The instance is also a context manager that does the same
    for a :class:`DataError` raised inside the block, so a reader's loop body reads::

        with bad:
            examples.append(parse(line, row))

    :meth:`finish` emits one :class:`DataWarning` summarising what was skipped.
    """

    def __init__(self, skip_bad: bool = False) -> None:
        self.skip_bad = skip_bad
        self.errors: list[DataError] = []

    @property
    def count(self) -> int:
        """How many records were skipped."""
        return len(self.errors)

    def add(self, err: DataError) -> None:
        """Raise ``err``, or record it when skipping bad records."""
        if not self.skip_bad:
            raise err
        self.errors.append(err)

    def __enter__(self) -> BadRows:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, DataError) and self.skip_bad:
            self.errors.append(exc)
            return True
        return False

    def finish(self) -> int:
        """Warn about skipped records (if any) and return how many there were."""
        if self.errors:
            first = self.errors[0]
            lines = [str(e.line) for e in self.errors[:5] if e.line is not None]
            word = "line" if self.count == 1 else "lines"
            where = f" ({word} {', '.join(lines)}{', ...' if self.count > 5 else ''})"
            warnings.warn(
                f"{first.path or '<input>'}: skipped {self.count} malformed record(s)"
                f"{where if lines else ''}; first problem: {first}",
                DataWarning,
                stacklevel=3,
            )
        return self.count


# --------------------------------------------------------------------------------------------
# Reading files

_SURROGATE = re.compile("[\udc80-\udcff]")
UTF8_EXPECTED = "a UTF-8 encoded file"


def read_text(path: Path, *, lenient: bool = False) -> str:
    """The content of ``path`` decoded as UTF-8 (a leading byte-order mark is dropped).

    Invalid UTF-8 raises :class:`DataError` naming the line of the first bad byte. With
    ``lenient=True`` bad bytes are kept as lone surrogates instead (``surrogateescape``), so
    that the record containing them can be reported and skipped by :func:`check_utf8`.
    """
    data = path.read_bytes()
    if lenient:
        return data.decode("utf-8-sig", errors="surrogateescape")
    return decode_utf8(data, path)


def decode_utf8(data: bytes, source: str | Path, expected: str = UTF8_EXPECTED) -> str:
    """``data`` decoded as UTF-8 without a leading byte-order mark; invalid UTF-8 raises
    :class:`DataError` naming ``source``, the line and column of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            source, line, f"invalid UTF-8 byte 0x{data[e.start]:02x} at column {col}", expected
        ) from None


def check_utf8(values: Sequence[str], path: Path, line: int) -> None:
    """Raise :class:`DataError` if leniently decoded ``values`` contain an invalid byte."""
    for v in values:
        m = _SURROGATE.search(v)
        if m:
            byte = ord(m.group()) - 0xDC00
            raise DataError(path, line, f"invalid UTF-8 byte 0x{byte:02x}", UTF8_EXPECTED)


def iter_table(
    path: Path,
    bad: BadRows,
    *,
    expected: str,
    delimiter: str = ",",
    columns: Sequence[str] | None = None,
    required: Sequence[str] = (),
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for each record of a CSV/TSV file.

    ``line`` is the 1-based line on which the record starts. With ``columns=None`` the first
    record is the header and must contain every name in ``required`` (otherwise a
    :class:`DataError` is raised even when skipping bad rows); otherwise ``columns`` names the
    fields of a header-less file. Records with the wrong number of fields or invalid UTF-8
    go to ``bad``. Blank lines are ignored. ``expected`` describes the format for messages.
    """
    text = read_text(path, lenient=bad.skip_bad)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = list(columns) if columns is not None else None
    prev_end = 0
    while True:
        start = prev_end + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            prev_end = reader.line_num
            problem = f"unreadable record ({e}); a quoted field may be left open"
            bad.add(DataError(path, start, problem, expected))
            continue
        prev_end = reader.line_num
        if not values:
            continue
        if header is None:
            header = [h.strip() for h in values]
            check_utf8(header, path, start)
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    path,
                    start,
                    f"header lacks column(s) {', '.join(missing)} (found: {', '.join(header)})",
                    expected,
                )
            continue
        if len(values) != len(header):
            problem = f"{len(values)} field(s) where the header has {len(header)}"
            if columns is not None:
                problem = f"{len(values)} field(s) instead of {len(header)}"
            if any("\n" in v or "\r" in v for v in values):
                problem += " (a quoted field may be left open)"
            bad.add(DataError(path, start, problem, expected))
            continue
        try:
            check_utf8(values, path, start)
        except DataError as e:
            bad.add(e)
            continue
        yield start, dict(zip(header, values, strict=True))
    if header is None and columns is None:
        raise DataError(path, 1, "empty file (no header row)", expected)


def iter_jsonl(path: Path, bad: BadRows, *, expected: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each non-blank line of a JSON Lines file."""
    text = read_text(path, lenient=bad.skip_bad)
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            check_utf8([raw], path, n)
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            where = "" if e.msg.endswith(" at") else " at"  # "...string starting at"
            bad.add(DataError(path, n, f"invalid JSON ({e.msg}{where} column {e.colno})", expected))
            continue
        except DataError as e:
            bad.add(e)
            continue
        yield n, value


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def load_json(path: Path, *, expected: str, text: str | None = None) -> Any:
    """Parse a whole JSON file (or its already read ``text``); syntax errors become a
    :class:`DataError` with their line."""
    if text is None:
        text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"invalid JSON ({e.msg})", expected) from None


def json_array_items(path: Path, text: str, *, expected: str) -> list[tuple[int, Any]] | None:
    """The items of a top-level JSON array in ``text``, each with the line it starts on, or
    ``None`` when the top-level value is not an array (parse it with :func:`load_json`)."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if not text.startswith("[", pos):
        return None
    items: list[tuple[int, Any]] = []
    # Decode element by element so that each item's starting line is known.
    line, counted = 1, 0
    pos = _skip_ws(text, pos + 1)
    if text.startswith("]", pos):
        return items
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(path, e.lineno, f"invalid JSON ({e.msg})", expected) from None
        line += text.count("\n", counted, pos)
        counted = pos
        items.append((line, item))
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("]", pos) and not text[pos + 1 :].strip():
            return items
        bad_line = text.count("\n", 0, pos) + 1
        raise DataError(path, bad_line, "malformed JSON array (expected ',' or ']')", expected)


def iter_json_members(path: Path, *, expected: str) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(line, key, value)`` for each member of a top-level JSON object, ``line`` being
    where the key starts."""
    text = read_text(path)
    decoder = json.JSONDecoder()

    def fail(problem: str, pos: int) -> DataError:
        return DataError(path, text.count("\n", 0, pos) + 1, problem, expected)

    pos = _skip_ws(text, 0)
    if not text.startswith("{", pos):
        raise fail("the file is not a JSON object", pos)
    pos = _skip_ws(text, pos + 1)
    if text.startswith("}", pos):
        return
    line, counted = 1, 0
    while True:
        try:
            key, pos_after = decoder.raw_decode(text, pos)
            if not isinstance(key, str):
                raise fail("malformed JSON object (expected a key)", pos)
            colon = _skip_ws(text, pos_after)
            if not text.startswith(":", colon):
                raise fail("malformed JSON object (expected ':')", colon)
            value, end = decoder.raw_decode(text, _skip_ws(text, colon + 1))
        except json.JSONDecodeError as e:
            raise DataError(path, e.lineno, f"invalid JSON ({e.msg})", expected) from None
        line += text.count("\n", counted, pos)
        counted = pos
        yield line, key, value
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("}", pos) and not text[pos + 1 :].strip():
            return
        raise fail("malformed JSON object", pos)


def count_records(path: Path, *, has_header: bool) -> int:
    """Cheap record count: non-blank lines (minus a header); for ``.json`` the array length."""
    if path.suffix == ".json":
        try:
            value = json.loads(path.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 0
        return len(value) if isinstance(value, list | dict) else 1
    with path.open("rb") as fh:
        n = sum(1 for raw in fh if raw.strip())
    return max(0, n - 1) if has_header else n


# --------------------------------------------------------------------------------------------
# Field parsing


def text_field(value: str | None, column: str, path: Path, line: int, expected: str) -> str:
    """A non-empty text with surrounding whitespace removed."""
    text = (value or "").strip()
    if not text:
        raise DataError(path, line, f"empty text in column {column!r}", expected)
    return text


def int_field(value: str, column: str, path: Path, line: int, expected: str) -> int:
    """A non-negative integer field (ids, turn numbers)."""
    v = value.strip()
    if not v.isdigit():
        raise DataError(path, line, f"{column} is {value!r}, not a non-negative integer", expected)
    return int(v)


def float_field(value: str, column: str, path: Path, line: int, expected: str) -> float:
    """A finite number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if x != x or x in (float("inf"), float("-inf")):
        raise DataError(path, line, f"{column} is {value!r}, not a number", expected)
    return x


class LabelNormalizer:
    """Turn a label of a file into the canonical form of a taxonomy, or raise a DataError."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._table = {lab.lower(): lab for lab in taxonomy.labels}
        self._table.update({a.lower(): lab for a, lab in taxonomy.aliases})

    def __call__(self, label: str, path: Path, line: int) -> str:
        """The canonical label (case-insensitive)."""
        found = self._table.get(label.strip().lower())
        if found is None:
            raise DataError(
                path,
                line,
                f"unknown label {label!r}",
                f"one of the {self.taxonomy.name} labels: {', '.join(self.taxonomy.labels)}",
            )
        return found


def label_mapper(
    source: Taxonomy, target: str | None
) -> tuple[Taxonomy, Callable[[Sequence[str]], tuple[str, ...]]]:
    """The dataset taxonomy after mapping to ``target`` and the function that maps a label set.

    Label sets are mapped element-wise, keeping the first occurrence of each mapped label.
    Mapping multi-label data keeps it multi-label: the returned taxonomy is ``target`` with
    ``multi_label=True`` (GoEmotions mapped to Ekman still has several labels per text).
    """
    if target is None:
        return source, tuple
    tgt = get_taxonomy(target)
    if tgt.name == source.name:
        return source, tuple
    if source.multi_label and not tgt.multi_label:
        tgt = replace(tgt, multi_label=True)
    table = {lab: map_label(lab, source, tgt) for lab in source.labels}

    def convert(labels: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(table[lab] for lab in labels))

    return tgt, convert


# --------------------------------------------------------------------------------------------
# Conversational datasets


@dataclass
class Turn:
    """One parsed utterance with its gold data, before dialogues are assembled."""

    order: Any
    utterance: Utterance
    labels: tuple[str, ...] = ()
    vad: VAD | None = None
    meta: dict[str, Any] = field(default_factory=dict)


K = TypeVar("K", bound=Hashable)


def assemble_dialogues(
    groups: Mapping[K, Sequence[Turn]],
    dialogue_ids: Mapping[K, str],
    *,
    sort_dialogues: bool,
    sort_turns: bool,
) -> tuple[list[Dialogue], list[Example]]:
    """Build dialogues and their per-utterance examples from grouped turns.

    Dialogues keep the order of ``groups`` unless ``sort_dialogues`` (sorted by group key);
    turns are sorted by :attr:`Turn.order` when ``sort_turns``, else kept in given order.
    """
    keys = sorted(groups) if sort_dialogues else list(groups)  # type: ignore[type-var]
    dialogues: list[Dialogue] = []
    examples: list[Example] = []
    for key in keys:
        turns = list(groups[key])
        if sort_turns:
            turns.sort(key=lambda t: t.order)
        dialogue = Dialogue([t.utterance for t in turns], id=dialogue_ids[key])
        dialogues.append(dialogue)
        for i, t in enumerate(turns):
            examples.append(
                Example(
                    text=t.utterance.text,
                    labels=t.labels,
                    vad=t.vad,
                    dialogue=dialogue,
                    index=i,
                    id=t.utterance.id,
                    meta=t.meta,
                )
            )
    return dialogues, examples


def make_dataset(
    name: str,
    split: str,
    examples: list[Example],
    *,
    path: Path,
    bad: BadRows,
    taxonomy: Taxonomy | None = None,
    dialogues: list[Dialogue] | None = None,
) -> Dataset:
    """Wrap up a load: warn about skipped records and build the :class:`Dataset`."""
    skipped = bad.finish()
    return Dataset(
        name=name,
        split=split,
        examples=examples,
        taxonomy=taxonomy,
        dialogues=dialogues,
        path=path,
        skipped=skipped,
    )


# --------------------------------------------------------------------------------------------
# Loader registry

Loader = Callable[..., Dataset]
_LOADERS: dict[str, Loader] = {}


def register_loader(name: str, loader: Loader) -> None:
    """Make ``loader(split, root, *, taxonomy, skip_bad, **options)`` reachable by name."""
    _LOADERS[name] = loader


def _reader_options(loader: Loader) -> dict[str, Any]:
    """The options a reader owns (its keyword-only arguments besides ``taxonomy`` and
    ``skip_bad``), with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("taxonomy", "skip_bad")
    }


def load_dataset(
    name: str,
    split: str = "test",
    root: str | Path | None = None,
    *,
    taxonomy: str | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> Dataset:
    """Load a split of a known labelled dataset.

    Args:
        name: ``meld``, ``emorynlp``, ``goemotions`` or ``emobank`` (case-insensitive).
        split: ``train``, ``dev`` (or ``validation``) or ``test``.
        root: the data directory holding the dataset folders; see :func:`data_root`.
        taxonomy: map the gold labels into this taxonomy (e.g. ``"ekman"``); the dataset's
            ``taxonomy`` becomes that taxonomy. Multi-label sets are mapped element-wise and
            de-duplicated, keeping order.
        skip_bad: skip malformed records (counted in ``Dataset.skipped``, reported in a
            :class:`DataWarning`) instead of raising :class:`~emoscope.errors.DataError`.
        options: options of the dataset's own reader, e.g. EmoBank's ``perspective``
            (``combined``, ``reader`` or ``writer``; see :func:`load_emobank`). Another
            reader's option is accepted at its default value and refused otherwise.

    Raises:
        DatasetNotFoundError: unknown dataset or missing files (the message says where the
            files were looked for and where to get them).
        DatasetOptionError: an option the dataset's reader does not have.
        DataError: a malformed record (file, line and expected format in the message).
    """
    info = get_info(name)
    loader = _LOADERS.get(info.name)
    if loader is None:
        raise DatasetOptionError(
            f"{info.title} is not a labelled-text dataset"
            + (f"; use emoscope.datasets.{info.reader}()" if info.reader else "")
        )
    own = _reader_options(loader)
    for key, value in list(options.items()):
        if key in own:
            continue
        owners = {n: _reader_options(f) for n, f in _LOADERS.items()}
        titles = [DATASETS[n].title for n, opts in owners.items() if key in opts]
        if not titles:
            raise DatasetOptionError(f"unknown dataset option {key!r}")
        if all(opts[key] == value for opts in owners.values() if key in opts):
            del options[key]  # another reader's option at its default: nothing to apply
            continue
        raise DatasetOptionError(f"{key}={value!r} applies to {' and '.join(titles)} only")
    return loader(split, root, taxonomy=taxonomy, skip_bad=skip_bad, **options)
