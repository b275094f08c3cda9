"""Which known datasets are present under the data root, for ``emoscope datasets``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from emoscope.datasets._common import count_records, dataset_dir
from emoscope.datasets.registry import DATASETS

__all__ = ["dataset_status"]


def _split_counts(path: Path, column: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                key = (row.get(column) or "").strip()
                counts[key] = counts.get(key, 0) + 1
    except (UnicodeDecodeError, csv.Error):
        return {}
    return counts


def dataset_status(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Which known datasets are present under the data root, for ``emoscope datasets``.

    Returns one dict per dataset with keys ``name``, ``title``, ``present`` (all split files
    found), ``path`` (the dataset folder), ``splits`` (split → record count, for the files
    found; counted by lines, so approximate for CSVs with multi-line fields), ``missing``
    (paths not found), ``taxonomy``, ``conversational``, ``citation``, ``licence`` and ``get``
    (the URL to obtain the data).
    """
    out: list[dict[str, Any]] = []
    for info in DATASETS.values():
        folder = dataset_dir(info.name, root)
        splits: dict[str, int] = {}
        missing: list[str] = []
        per_split: dict[str, int] = {}
        if info.split_column is not None:
            shared = folder / next(iter(info.files.values()))
            if shared.is_file():
                per_split = _split_counts(shared, info.split_column)
        for split, fname in info.files.items():
            path = folder / fname
            if not path.is_file():
                if str(path) not in missing:
                    missing.append(str(path))
                continue
            if info.split_column is not None:
                splits[split] = per_split.get(split, 0)
            else:
                splits[split] = count_records(path, has_header=info.has_header)
        out.append(
            {
                "name": info.name,
                "title": info.title,
                "present": not missing,
                "path": str(folder),
                "splits": splits,
                "missing": missing,
                "taxonomy": info.taxonomy,
                "conversational": info.conversational,
                "citation": info.citation,
                "licence": info.licence,
                "get": info.url,
            }
        )
    return out
