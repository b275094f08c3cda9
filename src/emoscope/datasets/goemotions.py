"""GoEmotions (Demszky et al., 2020): Reddit comments with 27 emotions + neutral, multi-label.

Files: ``goemotions/{train,dev,test}.tsv`` without a header, three tab-separated fields per
line: the text, comma-separated label ids, the comment id. Texts containing quotes are quoted
CSV-style (``"a ""quoted"" word"``). ``labels.txt`` names the labels, one per line, id = line index
(0-based); without it the official order of the ``goemotions`` taxonomy is used.
"""

from __future__ import annotations

from pathlib import Path

from emoscope.datasets._common import (
    BadRows,
    LabelNormalizer,
    dataset_dir,
    dataset_file,
    get_info,
    iter_table,
    label_mapper,
    make_dataset,
    normalize_split,
    read_text,
    register_loader,
    text_field,
)
from emoscope.datasets.base import Dataset, Example
from emoscope.errors import DataError
from emoscope.labels import Taxonomy, get_taxonomy

__all__ = ["load_goemotions", "read_label_names"]

COLUMNS = ("text", "labels", "id")


def read_label_names(path: Path, taxonomy: Taxonomy) -> tuple[str, ...]:
    """The label names of ``labels.txt`` (one per line) in canonical form, checked against
    ``taxonomy``."""
    normalize = LabelNormalizer(taxonomy)
    names: list[str] = []
    for n, raw in enumerate(read_text(path).splitlines(), start=1):
        if raw.strip():
            names.append(normalize(raw, path, n))
    if not names:
        raise DataError(path, None, "no label names", "one label name per line")
    return tuple(names)


def load_goemotions(
    split: str = "test",
    root: str | Path | None = None,
    *,
    taxonomy: str | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Load one split of GoEmotions.

    Each example has ``labels`` in the order the ids are listed in the file (duplicates
    dropped), ``id`` the comment id and ``meta["line"]``. With ``taxonomy="ekman"`` each label
    goes through the official GoEmotions → Ekman grouping and repeats are merged, e.g.
    ``(anger, annoyance)`` becomes ``(anger,)``.

    Raises:
        DatasetNotFoundError: the split's file is missing.
        DataError: a malformed line (unless ``skip_bad``): wrong number of fields, empty text,
            a label id that is not an integer or out of range.
    """
    split = normalize_split(split)
    info = get_info("goemotions")
    path = dataset_file("goemotions", info.files[split], root)
    source = get_taxonomy("goemotions")
    labels_file = dataset_dir("goemotions", root) / "labels.txt"
    names = read_label_names(labels_file, source) if labels_file.is_file() else source.labels
    expected = (
        "3 tab-separated fields per line: text, comma-separated label ids "
        f"(0-{len(names) - 1}), comment id"
    )
    target, convert = label_mapper(source, taxonomy)
    bad = BadRows(skip_bad)

    examples: list[Example] = []
    for line, row in iter_table(path, bad, expected=expected, delimiter="\t", columns=COLUMNS):
        with bad:
            text = text_field(row["text"], "text", path, line, expected)
            ids = [p.strip() for p in row["labels"].split(",")]
            if not all(p.isdigit() and int(p) < len(names) for p in ids):
                raise DataError(path, line, f"label ids {row['labels']!r}", expected)
            labels = tuple(dict.fromkeys(names[int(p)] for p in ids))
            examples.append(
                Example(
                    text=text,
                    labels=convert(labels),
                    id=row["id"].strip() or None,
                    meta={"line": line, "goemotions": labels},
                )
            )
    return make_dataset("goemotions", split, examples, path=path, bad=bad, taxonomy=target)


register_loader("goemotions", load_goemotions)
