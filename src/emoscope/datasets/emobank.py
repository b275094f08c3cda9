"""EmoBank (Buechel & Hahn, 2017): 10k English sentences rated for valence, arousal, dominance.

Files in ``emobank/``:

* ``emobank.csv``: ``id, split, V, A, D, text``, the combined (weighted reader and writer)
  ratings on the 1–5 Self-Assessment Manikin scale, with the official train/dev/test split;
* ``reader.csv`` / ``writer.csv``: ``id, V, A, D, stdV, stdA, stdD, N``, the mean ratings of
  each annotation perspective (they also list some texts left out of ``emobank.csv``);
* ``individual_reader_ratings.csv``: ``id, V, A, D``, one row per annotator and text;
* ``meta.tsv``: ``id, document, category, subcategory`` (genre of the source).

All VAD values are converted to emoscope's ``[-1, 1]`` scale by ``(x - 3) / 2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoscope.datasets._common import (
    SPLITS,
    BadRows,
    DatasetOptionError,
    dataset_dir,
    dataset_file,
    float_field,
    get_info,
    iter_table,
    make_dataset,
    normalize_split,
    register_loader,
    text_field,
)
from emoscope.datasets.base import Dataset, Example
from emoscope.errors import DataError

__all__ = ["PERSPECTIVES", "load_emobank", "load_emobank_ratings", "sam_to_unit"]

PERSPECTIVES = ("combined", "reader", "writer")
EXPECTED = "EmoBank CSV with a header and the columns id, split, V, A, D, text (V/A/D in 1-5)"
PERSPECTIVE_EXPECTED = "CSV with a header and the columns id, V, A, D (1-5), stdV, stdA, stdD, N"
RATINGS_EXPECTED = "CSV with a header and the columns id, V, A, D (ratings 1-5)"


def sam_to_unit(x: float) -> float:
    """Map a 1–5 SAM rating to ``[-1, 1]``: ``(x - 3) / 2``."""
    return (x - 3.0) / 2.0


def _vad(row: dict[str, str], path: Path, line: int, expected: str) -> tuple[float, float, float]:
    out: list[float] = []
    for col in ("V", "A", "D"):
        x = float_field(row[col], col, path, line, expected)
        if not 1.0 <= x <= 5.0:
            raise DataError(path, line, f"{col} = {x} is outside the 1-5 SAM scale", expected)
        out.append(sam_to_unit(x))
    return out[0], out[1], out[2]


def _read_genres(path: Path, bad: BadRows) -> dict[str, str]:
    expected = "tab-separated id, document, category, subcategory with a header"
    genres: dict[str, str] = {}
    for _, row in iter_table(
        path, bad, expected=expected, delimiter="\t", required=("id", "category")
    ):
        genres[row["id"].strip()] = row["category"].strip()
    return genres


def load_emobank(
    split: str = "test",
    root: str | Path | None = None,
    *,
    taxonomy: str | None = None,
    skip_bad: bool = False,
    perspective: str = "combined",
) -> Dataset:
    """Load one split of EmoBank with gold VAD on ``[-1, 1]`` and no categorical labels.

    ``perspective="combined"`` uses ``emobank.csv``; ``"reader"`` and ``"writer"`` take the
    V/A/D of ``reader.csv`` / ``writer.csv`` for the texts and split of ``emobank.csv``
    (their standard deviations, halved to the ``[-1, 1]`` scale, and rater counts go to
    ``meta["std"]`` and ``meta["n"]``). ``meta`` also holds ``line``, ``split``,
    ``perspective`` and, when ``meta.tsv`` is present, ``genre``.

    Raises:
        DatasetOptionError: unknown perspective, or a ``taxonomy`` (EmoBank has no labels).
        DatasetNotFoundError: a needed file is missing.
        DataError: a malformed row of the requested split (unless ``skip_bad``), or a text
            without a rating in the perspective file.
    """
    split = normalize_split(split)
    if perspective not in PERSPECTIVES:
        raise DatasetOptionError(
            f"unknown EmoBank perspective {perspective!r}; expected one of: "
            + ", ".join(PERSPECTIVES)
        )
    if taxonomy is not None:
        raise DatasetOptionError(
            "EmoBank has VAD ratings and no categorical labels; taxonomy mapping does not apply"
        )
    info = get_info("emobank")
    path = dataset_file("emobank", info.files[split], root)
    bad = BadRows(skip_bad)

    ratings: dict[str, tuple[int, dict[str, str]]] = {}
    side: Path | None = None
    if perspective != "combined":
        side = dataset_file("emobank", f"{perspective}.csv", root)
        for line, row in iter_table(
            side, bad, expected=PERSPECTIVE_EXPECTED, required=("id", "V", "A", "D")
        ):
            ratings.setdefault(row["id"].strip(), (line, row))
    genres_path = dataset_dir("emobank", root) / "meta.tsv"
    genres = _read_genres(genres_path, bad) if genres_path.is_file() else {}

    examples: list[Example] = []
    required = ("id", "split", "V", "A", "D", "text")
    for line, row in iter_table(path, bad, expected=EXPECTED, required=required):
        with bad:
            row_split = row["split"].strip().lower()
            if row_split not in SPLITS:
                raise DataError(path, line, f"split is {row['split']!r}", "train, dev or test")
            if row_split != split:
                continue
            text = text_field(row["text"], "text", path, line, EXPECTED)
            tid = row["id"].strip()
            if not tid:
                raise DataError(path, line, "empty id", EXPECTED)
            meta: dict[str, Any] = {"line": line, "split": split, "perspective": perspective}
            if side is None:
                vad = _vad(row, path, line, EXPECTED)
            else:
                if tid not in ratings:
                    raise DataError(
                        side,
                        None,
                        f"no {perspective} rating for id {tid!r} ({path.name}, line {line})",
                        "a row for every id of emobank.csv",
                    )
                side_line, side_row = ratings[tid]
                vad = _vad(side_row, side, side_line, PERSPECTIVE_EXPECTED)
                if all(c in side_row for c in ("stdV", "stdA", "stdD")):
                    meta["std"] = tuple(
                        float_field(side_row[c], c, side, side_line, PERSPECTIVE_EXPECTED) / 2.0
                        for c in ("stdV", "stdA", "stdD")
                    )
                if "N" in side_row:
                    meta["n"] = int(
                        float_field(side_row["N"], "N", side, side_line, PERSPECTIVE_EXPECTED)
                    )
            if tid in genres:
                meta["genre"] = genres[tid]
            examples.append(Example(text=text, vad=vad, id=tid, meta=meta))
    return make_dataset("emobank", split, examples, path=path, bad=bad)


def load_emobank_ratings(
    root: str | Path | None = None, *, skip_bad: bool = False
) -> list[dict[str, Any]]:
    """The individual reader ratings of EmoBank (``individual_reader_ratings.csv``).

    Returns one dict per rating with ``id`` (the text id), ``v``, ``a``, ``d`` on ``[-1, 1]``
    and ``line``, in file order (several rows per text, one per annotator).

    Raises:
        DatasetNotFoundError: the file is missing.
        DataError: a malformed row (unless ``skip_bad``).
    """
    path = dataset_file("emobank", "individual_reader_ratings.csv", root)
    bad = BadRows(skip_bad)
    out: list[dict[str, Any]] = []
    for line, row in iter_table(
        path, bad, expected=RATINGS_EXPECTED, required=("id", "V", "A", "D")
    ):
        with bad:
            tid = row["id"].strip()
            if not tid:
                raise DataError(path, line, "empty id", RATINGS_EXPECTED)
            v, a, d = _vad(row, path, line, RATINGS_EXPECTED)
            out.append({"id": tid, "v": v, "a": a, "d": d, "line": line})
    bad.finish()
    return out


register_loader("emobank", load_emobank)
