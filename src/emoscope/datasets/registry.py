"""What emoscope knows about each dataset it reads, kept as data in ``datasets.toml``.

The file beside the readers holds one table per dataset (title, folder, files per split,
taxonomy, the reader's name, citation, licence, URL ...); :func:`read_registry` turns it into
:class:`DatasetInfo` records, checking every key, and :data:`DATASETS` holds the shipped ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from emoscope.errors import DataError, DatasetNotFoundError

__all__ = ["DATASETS", "REGISTRY_FILE", "DatasetInfo", "get_info", "read_registry"]

REGISTRY_FILE = "datasets.toml"


@dataclass(frozen=True)
class DatasetInfo:
    """What emoscope knows about one dataset: where its files are and how to cite it.

    Attributes:
        name: the name used by :func:`load_dataset` and the CLI.
        title: the display name.
        folder: the sub-directory of the data root holding the files.
        taxonomy: the name of the gold-label taxonomy (``None`` for VAD data and benchmarks).
        conversational: whether examples are utterances inside dialogues.
        files: file name per split (several splits may share one file, see ``split_column``).
        citation: the paper to cite.
        licence: the licence of the original release.
        url: where to obtain the data.
        multi_label: whether an example may carry several labels.
        has_header: whether the files start with a header row (for row counting).
        split_column: the column that assigns rows to splits when all splits share a file.
        extra_files: further files the reader uses when present.
        reader: the function of :mod:`emoscope.datasets` that reads the dataset.
    """

    name: str
    title: str
    folder: str
    taxonomy: str | None
    conversational: bool
    files: dict[str, str]
    citation: str
    licence: str
    url: str
    multi_label: bool = False
    has_header: bool = True
    split_column: str | None = None
    extra_files: tuple[str, ...] = ()
    reader: str = ""


# key -> (type, required); ``folder`` defaults to the dataset's name, ``taxonomy`` to none.
_KEYS: dict[str, tuple[type, bool]] = {
    "title": (str, True),
    "reader": (str, True),
    "folder": (str, False),
    "taxonomy": (str, False),
    "conversational": (bool, True),
    "files": (dict, True),
    "citation": (str, True),
    "licence": (str, True),
    "url": (str, True),
    "multi_label": (bool, False),
    "has_header": (bool, False),
    "split_column": (str, False),
    "extra_files": (list, False),
}


def _info(name: str, table: Any, source: str) -> DatasetInfo:
    where = f"table [{name}]"
    if not isinstance(table, dict):
        raise DataError(source, None, f"{where} is not a table", "one table per dataset")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise DataError(
            source, None, f"{where} has unknown key(s) {', '.join(unknown)}", ", ".join(_KEYS)
        )
    for key, (kind, required) in _KEYS.items():
        if key not in table:
            if required:
                raise DataError(source, None, f"{where} lacks {key!r}", f"a {kind.__name__}")
            continue
        if not isinstance(table[key], kind):
            raise DataError(source, None, f"{where}: {key} = {table[key]!r}", f"a {kind.__name__}")
    values = {k: v for k, v in table.items() if k not in ("files", "extra_files")}
    files, extra = table["files"], table.get("extra_files", [])
    if not files or not all(isinstance(v, str) for v in [*files.values(), *extra]):
        raise DataError(
            source, None, f"{where}: files/extra_files", "file names (a split -> name table)"
        )
    values.setdefault("folder", name)
    values.setdefault("taxonomy", None)
    return DatasetInfo(name=name, files=dict(files), extra_files=tuple(extra), **values)


def read_registry(text: str, source: str = REGISTRY_FILE) -> dict[str, DatasetInfo]:
    """The datasets described by the TOML ``text`` (``source`` names it in errors), by name.

    Raises:
        DataError: invalid TOML, an unknown or missing key, or a value of the wrong type.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DataError(source, None, f"invalid TOML ({e})", "a dataset registry") from None
    return {name: _info(name, table, source) for name, table in data.items()}


def _shipped() -> dict[str, DatasetInfo]:
    res = resources.files("emoscope.datasets").joinpath(REGISTRY_FILE)
    return read_registry(res.read_text("utf-8"), f"emoscope/datasets/{REGISTRY_FILE}")


DATASETS: dict[str, DatasetInfo] = _shipped()
"""The datasets emoscope knows, by name, in the order of ``datasets.toml``."""


def get_info(name: str) -> DatasetInfo:
    """The registry record of a dataset (name is case-insensitive)."""
    info = DATASETS.get(name.strip().lower())
    if info is None:
        raise DatasetNotFoundError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        )
    return info
